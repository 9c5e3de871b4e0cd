"""The training scaffold itself, on a toy task (no data set): schedules, data order, resume rules, stops,
torn checkpoints. Each model's own training is tested in tests/<model>/test_train.py."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch
from torch import nn

from attn_models import training
from tests.training_checks import assert_exact_resume


class ToyTask(training.TrainTask):
    """Noisy linear regression with dropout and an extra state tensor: every source of randomness and state."""

    name = "toy"

    def add_args(self, p):
        p.add_argument("--width", type=int, default=8)
        p.set_defaults(lr=0.05, warmup_steps=2, log_every=1, eval_every=3)

    def setup(self):
        model = nn.Sequential(nn.Linear(4, self.args.width), nn.Dropout(0.3), nn.Linear(self.args.width, 1))
        opt = torch.optim.SGD(model.parameters(), lr=self.args.lr, momentum=0.9)
        self.model, opt = self.acc.prepare(model, opt)
        self.optimizers, self.export_model = [opt], self.model
        self.running = torch.zeros(1)
        self.w = torch.arange(4.0)

    def train_step(self, step, rng):
        x = torch.from_numpy(rng.normal(size=(16, 4))).float()
        y = x @ self.w + 0.1 * torch.randn(16)  # global generator: seeded per step by the scaffold
        self.model.train()
        loss = ((self.model(x)[:, 0] - y) ** 2).mean()
        self.optimize(loss)
        self.running = 0.9 * self.running + 0.1 * loss.detach()
        return {"loss": loss.item()}

    def evaluate(self, step):
        return {"val_running": float(self.running)}

    def state_tensors(self):
        return {"running": self.running}

    def load_state_tensors(self, tensors):
        self.running = tensors["running"]

    def export(self, folder):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "exported.json").write_text(json.dumps({"step": "done"}))


def toy(argv):
    return training.run(ToyTask(), argv)


def records(run_dir):
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


def test_toy_resume_is_exact(tmp_path):
    assert_exact_resume(toy, [], tmp_path, k=5, atol=0)


def schedule_args(**kw):
    base = dict(max_steps=100, warmup_steps=10, lr_schedule="cosine", min_lr_factor=0.1)
    return argparse.Namespace(**{**base, **kw})


def test_lr_schedules_go_by_step():
    a = schedule_args()
    assert training.lr_factor(a, 0) == pytest.approx(0.1)  # warm-up: (step + 1) / warmup
    assert training.lr_factor(a, 9) == pytest.approx(1.0)
    assert training.lr_factor(a, 10) == pytest.approx(1.0)  # peak right after warm-up
    assert training.lr_factor(a, 55) == pytest.approx(0.1 + 0.9 * 0.5)  # half-way down the cosine
    assert training.lr_factor(a, 100) == pytest.approx(0.1) == training.lr_factor(a, 500)
    lin = schedule_args(lr_schedule="linear")
    assert training.lr_factor(lin, 55) == pytest.approx(0.1 + 0.9 * 0.5)
    assert training.lr_factor(lin, 32.5) == pytest.approx(0.1 + 0.9 * 0.75)
    const = schedule_args(lr_schedule="constant")
    assert training.lr_factor(const, 80) == 1.0


def test_epoch_indices_cover_each_item_once_per_epoch_and_split_across_processes():
    one = np.concatenate([training.epoch_indices(3, s, 5, 20) for s in range(4)])
    assert sorted(one.tolist()) == list(range(20))
    two = [np.concatenate([training.epoch_indices(3, s, 5, 20, rank=r, world=2) for r in (0, 1)]) for s in (0, 1)]
    np.testing.assert_array_equal(np.concatenate(two), one)  # two processes share out the same global batches
    np.testing.assert_array_equal(training.epoch_indices(3, 7, 5, 20), training.epoch_indices(3, 7, 5, 20))
    assert not np.array_equal(training.epoch_indices(3, 4, 5, 20), training.epoch_indices(4, 4, 5, 20))


def test_resume_reuses_the_runs_flags_and_a_larger_max_steps_extends_it(tmp_path):
    run = tmp_path / "run"
    toy(["--max-steps", "4", "--width", "5", "--run-dir", str(run), "--no-progress"])
    info = toy(["--resume", "--max-steps", "6", "--run-dir", str(run), "--no-progress"])
    assert info["steps"] == 6 and info["args"]["width"] == 5  # the run's width, not the default 8
    assert [(s["from_step"], s["to_step"]) for s in info["segments"]] == [(0, 4), (4, 6)]


def test_clear_errors_for_a_missing_or_an_existing_run(tmp_path):
    with pytest.raises(SystemExit, match="no checkpoint"):
        toy(["--resume", "--run-dir", str(tmp_path / "none"), "--no-progress"])
    toy(["--max-steps", "1", "--run-dir", str(tmp_path / "run"), "--no-progress"])
    with pytest.raises(SystemExit, match="--resume"):
        toy(["--max-steps", "1", "--run-dir", str(tmp_path / "run"), "--no-progress"])


def test_a_time_budget_stops_with_a_checkpoint_and_the_schedule_unchanged(tmp_path):
    run = tmp_path / "run"
    info = toy(["--max-steps", "100000", "--time-budget-min", "0.001", "--run-dir", str(run), "--no-progress"])
    assert 0 < info["steps"] < 100000
    meta = json.loads((run / "checkpoint" / "task_state.json").read_text())
    assert meta["step"] == info["steps"]
    lrs = [r["lr"] for r in records(run) if "lr" in r]
    a = schedule_args(max_steps=100000, warmup_steps=2, lr_schedule="cosine", min_lr_factor=0.05)
    assert lrs[-1] == pytest.approx(0.05 * training.lr_factor(a, info["steps"] - 1))


def test_validation_and_losses_are_logged_by_step(tmp_path):
    run = tmp_path / "run"
    toy(["--max-steps", "7", "--run-dir", str(run), "--no-progress"])
    log = records(run)
    assert [r["step"] for r in log if "loss" in r] == list(range(1, 8))
    assert [r["step"] for r in log if "eval" in r] == [3, 6, 7]
    assert log[0]["event"] == "start" and log[-1]["event"] == "end"
    info = json.loads((run / "train_info.json").read_text())
    assert info["versions"]["torch"] == torch.__version__ and info["wall_time_s"] >= 0


def test_a_checkpoint_torn_between_its_two_renames_still_resumes(tmp_path):
    run = tmp_path / "run"
    toy(["--max-steps", "3", "--run-dir", str(run), "--no-progress"])
    (run / "checkpoint").rename(run / "checkpoint.old")  # as if the process died between the renames
    info = toy(["--resume", "--max-steps", "5", "--run-dir", str(run), "--no-progress"])
    assert info["segments"][-1]["from_step"] == 3 and info["steps"] == 5


def test_init_from_evaluates_the_starting_point(tmp_path):
    """A run started from shipped weights logs their validation first: the number the run has to beat."""
    from safetensors.torch import save_model

    task = ToyTask()
    training.run(task, ["--max-steps", "2", "--run-dir", str(tmp_path / "a"), "--no-progress"])
    save_model(task.acc.unwrap_model(task.model), str(tmp_path / "w.safetensors"))
    toy(["--max-steps", "2", "--init-from", str(tmp_path / "w.safetensors"), "--run-dir", str(tmp_path / "b"),
         "--no-progress"])
    assert [r["step"] for r in records(tmp_path / "b") if "eval" in r][0] == 0
    with pytest.raises(SystemExit, match="no model.safetensors"):
        toy(["--init-from", str(tmp_path / "nothing"), "--run-dir", str(tmp_path / "c"), "--no-progress"])
