"""The classifier trains through the scaffold: exact resume, two processes, export that loads."""
from __future__ import annotations

import json

import torch

from attn_models.classifier import train
from attn_models.classifier.model import FashionMNISTClassifier
from attn_models.hub import build_and_load
from tests.training_checks import assert_exact_resume, launch_two_processes

TINY = ["--limit", "600", "--val-size", "100", "--batch-size", "16", "--widths", "8", "8", "8",
        "--hidden", "16", "--eval-every", "3", "--log-every", "1", "--warmup-steps", "2"]


def test_resume_is_exact(fashion_mnist, tmp_path):
    assert_exact_resume(train.main, TINY, tmp_path, k=3)


def test_export_loads_and_logs_validation(fashion_mnist, tmp_path):
    info = train.main([*TINY, "--max-steps", "4", "--run-dir", str(tmp_path / "run"),
                       "--export", str(tmp_path / "w"), "--no-progress"])
    model = build_and_load(FashionMNISTClassifier, tmp_path / "w")
    assert model.predict_proba(fashion_mnist[2][:5]).shape == (5, 10)
    assert info["steps"] == 4 and 0 <= info["final_eval"]["val_accuracy"] <= 1
    assert info["epochs"] == round(4 * 16 / 500, 3)  # 600 images minus 100 held out
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "eval" in r] == [3, 4]
    assert info["segments"][0]["command"].startswith("python -m attn_models.classifier.train ")


def test_two_processes(fashion_mnist, tmp_path):
    info = launch_two_processes("attn_models.classifier.train", [*TINY, "--max-steps", "3"], tmp_path / "run")
    assert info["steps"] == 3 and info["segments"][0]["num_processes"] == 2
    # the run goes on in one process (e.g. back on a laptop): the checkpoint holds unwrapped weights
    info = train.main(["--resume", "--max-steps", "4", "--run-dir", str(tmp_path / "run"), "--no-progress"])
    assert [(s["to_step"], s["num_processes"]) for s in info["segments"]] == [(3, 2), (4, 1)]


def test_resume_with_zero_steps_exports_the_current_state(fashion_mnist, tmp_path):
    """`--resume --steps-this-run 0 --export DIR`: the run's state now, without another step."""
    run = tmp_path / "run"
    train.main([*TINY, "--max-steps", "10", "--steps-this-run", "2", "--run-dir", str(run), "--no-progress"])
    info = train.main(["--resume", "--steps-this-run", "0", "--run-dir", str(run), "--export", str(tmp_path / "w"),
                       "--no-progress"])
    assert info["steps"] == 2
    exported = build_and_load(FashionMNISTClassifier, tmp_path / "w").state_dict()
    from tests.training_checks import checkpoint_tensors

    ckpt = {k.split("/", 1)[1]: v for k, v in checkpoint_tensors(run).items() if k.startswith("model.safetensors/")}
    for k, v in exported.items():
        assert torch.equal(v, ckpt[k]), k
