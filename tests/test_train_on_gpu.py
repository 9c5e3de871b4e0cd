"""scripts/train_on_gpu.py, tried on the CPU as the issue asks before a GPU lease: each model comes back as one
small archive whose run resumes on the CPU as the same run."""
from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_runs_come_back_as_archives_that_resume_on_the_cpu(fashion_mnist, tmp_path):
    names = ["fashion-mnist-classifier", "image-transformer-1d-fashion-mnist"]
    out, runs = tmp_path / "out", tmp_path / "runs"
    done = subprocess.run([sys.executable, "scripts/train_on_gpu.py", "--out", str(out), "--device", "cpu",
                           "--minutes", "0.05", "--runs-root", str(runs), "--models", *names,
                           "--extra", "--limit", "64"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}.tar" for n in names)
    assert all(p.stat().st_size < 16 * 2**20 for p in out.iterdir())  # what a GPU lease can bring back
    back = tmp_path / "back"
    for name in names:
        with tarfile.open(out / f"{name}.tar") as tar:
            tar.extractall(back, filter="data")
        log = [json.loads(line) for line in (back / name / "log.jsonl").read_text().splitlines()]
        assert not any("eval" in r for r in log), "validation is off on the GPU"
        first = json.loads((back / name / "train_info.json").read_text())
        assert "--init-from" in first["segments"][0]["command"] and first["steps"] > 0
    before = json.loads((back / names[0] / "train_info.json").read_text())["steps"]
    module = "attn_models.classifier.train"
    info = subprocess.run([sys.executable, "-m", module, "--resume", "--run-dir", str(back / names[0]),
                           "--steps-this-run", "1", "--batch-size", "16", "--no-progress"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert info.returncode == 0, info.stderr[-3000:]
    resumed = json.loads((back / names[0] / "train_info.json").read_text())
    assert [s["to_step"] - s["from_step"] for s in resumed["segments"]][-1] == 1
    assert resumed["steps"] == before + 1 and resumed["segments"][-1]["device"] == "cpu"


def test_captioning_seeds_run_side_by_side_and_come_back_exported(fashion_mnist, tmp_path):
    """A captioning recipe trains a new decoder on the encoder frozen inside the shipped model of its attention
    (soft and hard froze different encoder runs); --parallel runs the recipes at once, each archive holding its
    run, its exported model and its own output."""
    names = ["sat-hard-seed1", "sat-soft-seed2"]
    out, runs = tmp_path / "out", tmp_path / "runs"
    done = subprocess.run([sys.executable, "scripts/train_on_gpu.py", "--out", str(out), "--device", "cpu",
                           "--minutes", "0.5", "--runs-root", str(runs), "--models", *names, "--parallel",
                           "--extra", "--feature-pool", "40", "--max-steps", "3"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}.tar" for n in names)
    assert all(p.stat().st_size < 16 * 2**20 for p in out.iterdir())
    from safetensors.torch import load_file

    for name, seed in zip(names, (1, 2), strict=True):
        shipped = load_file(str(ROOT / "weights" / f"sat-{name.split('-')[1]}-fashion-scenes" / "model.safetensors"))
        with tarfile.open(out / f"{name}.tar") as tar:
            tar.extractall(tmp_path / "back", filter="data")
        run = tmp_path / "back" / name
        info = json.loads((run / "train_info.json").read_text())
        assert info["steps"] == 3 and "--encoder-from" in info["segments"][0]["command"]
        assert json.loads((run / "args.json").read_text())["seed"] == seed
        assert (run / "stdout.log").exists() and (run / "export" / "config.json").exists()
        model = load_file(str(run / "export" / "model.safetensors"))
        frozen = [k for k in shipped if k.startswith("encoder.")]
        assert frozen and all(model[k].equal(shipped[k]) for k in frozen), "the shipped encoder, frozen"
