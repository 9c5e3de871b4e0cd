"""Checks every model's training entry must pass (used by tests/<model>/test_train.py): exact resume and
training under ``accelerate launch --num_processes 2 --cpu``."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

REPO_ROOT = Path(__file__).resolve().parent.parent


def checkpoint_tensors(run_dir: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a run's checkpoint: model(s) and the task's extra state (EMA, baselines, ...)."""
    ckpt = run_dir / "checkpoint"
    out = {}
    for f in sorted(ckpt.glob("*.safetensors")):
        out.update({f"{f.name}/{k}": v for k, v in load_file(str(f)).items()})
    return out


def optimizer_tensors(run_dir: Path) -> dict[str, torch.Tensor]:
    out = {}
    for f in sorted((run_dir / "checkpoint").glob("optimizer*.bin")):
        state = torch.load(f, weights_only=True, map_location="cpu")["state"]
        out.update({f"{f.name}/{i}/{k}": v for i, s in state.items() for k, v in s.items()
                    if isinstance(v, torch.Tensor)})
    return out


def assert_exact_resume(main, args: list[str], tmp_path: Path, k: int, atol: float = 1e-6) -> None:
    """k steps, stop, --resume, k more == 2k steps in one go (parameters, task state and optimizer moments)."""
    once, twice = tmp_path / "once", tmp_path / "twice"
    common = [*args, "--max-steps", str(2 * k), "--no-progress"]
    main([*common, "--run-dir", str(once)])
    main([*common, "--run-dir", str(twice), "--steps-this-run", str(k)])
    assert json.loads((twice / "checkpoint" / "task_state.json").read_text())["step"] == k
    main(["--run-dir", str(twice), "--resume", "--no-progress"])  # everything else comes from args.json
    assert json.loads((twice / "checkpoint" / "task_state.json").read_text())["step"] == 2 * k
    for got, want in ((checkpoint_tensors(twice), checkpoint_tensors(once)),
                      (optimizer_tensors(twice), optimizer_tensors(once))):
        assert got.keys() == want.keys() and got
        for name in want:
            torch.testing.assert_close(got[name], want[name], rtol=0, atol=atol, msg=name)
    # the resumed run is one run: two invocations recorded, steps adding up
    info = json.loads((twice / "train_info.json").read_text())
    assert [(s["from_step"], s["to_step"]) for s in info["segments"]] == [(0, k), (k, 2 * k)]


def launch_two_processes(module: str, args: list[str], run_dir: Path, timeout: int = 300) -> dict:
    """Train with two processes on the CPU (gloo) through ``accelerate launch``; returns train_info.json.

    Accelerate's ``--cpu`` launcher starts several processes only through mpirun; its torchrun launcher
    (``--multi_gpu``) with the scaffold's ``--device cpu`` is how two CPU processes are started without MPI."""
    from tests.conftest import free_port

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--main_process_port", str(free_port()), "--mixed_precision", "no",
           "--dynamo_backend", "no", "-m", module, *args, "--device", "cpu", "--run-dir", str(run_dir),
           "--no-progress"]
    done = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    starts = [r for r in log if r.get("event") == "start"]
    assert len(starts) == 1 and starts[0]["num_processes"] == 2, "one process writes the log"
    assert (run_dir / "checkpoint" / "task_state.json").is_file()
    return json.loads((run_dir / "train_info.json").read_text())
