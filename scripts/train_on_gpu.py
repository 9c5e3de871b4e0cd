"""Train the models on a GPU through the same scaffold, for a short lease of a GPU machine, and bring the runs
back as a few files that resume or evaluate on the CPU.

    python scripts/train_on_gpu.py --out $OUT --minutes 2 [--models classifier sagan image-transformer-1d ...]

For each model, in the order given: continue ``runs/<name>`` when it is there (``--resume``; carry the folder to
the GPU machine), else start from the shipped ``weights/<name>`` (``--init-from``). It trains with
``--device cuda``, a larger batch (the schedule is by step, so it is the same schedule), for ``--minutes`` of wall
time, validation off (the GPU's minutes are for training; validation runs on the CPU afterwards), then packs the
run directory into ``<out>/<name>.tar`` (one file, a few MB: the checkpoint, log.jsonl and train_info.json).
Fashion-MNIST is read from ``$FASHION_MNIST_DIR`` (carry a folder holding the four idx .gz files).

Back on the CPU: ``tar -xf <name>.tar -C runs/`` and ``python -m attn_models.<model>.train --resume
--run-dir runs/<name> --device cpu --batch-size <cpu batch>`` continues the same run; train_info.json records
which steps ran on which machine. Try it here first on a few steps:
``python scripts/train_on_gpu.py --out /tmp/out --device cpu --minutes 0.1 --runs-root /tmp/runs``.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# name -> (training module, flags of a run started from the shipped weights, batch per step on the GPU)
MODELS = {
    "fashion-mnist-classifier": ("attn_models.classifier.train", ["--max-steps", "12000"], 512),
    "sagan-fashion-mnist": ("attn_models.sagan.train", ["--max-steps", "60000"], 256),
    "sagan-fashion-mnist-no-attention": ("attn_models.sagan.train", ["--attn-res", "none", "--max-steps", "60000"],
                                         256),
    "image-transformer-1d-fashion-mnist": ("attn_models.image_transformer.train",
                                           ["--attention", "local1d", "--lr", "5e-4", "--max-steps", "6000"], 128),
    "image-transformer-2d-fashion-mnist": ("attn_models.image_transformer.train",
                                           ["--attention", "local2d", "--lr", "5e-4", "--max-steps", "6000"], 128),
}


def train_one(name: str, out: Path, runs_root: Path, minutes: float, device: str, extra: list[str]) -> dict:
    module, new_run_flags, gpu_batch = MODELS[name]
    run_dir = runs_root / name
    start = ["--resume"] if (run_dir / "checkpoint").is_dir() else [*new_run_flags, "--init-from",
                                                                      str(ROOT / "weights" / name)]
    cmd = [sys.executable, "-m", module, *start, "--run-dir", str(run_dir), "--device", device,
           "--batch-size", str(gpu_batch), "--time-budget-min", str(minutes), "--no-validation",
           "--checkpoint-every-min", str(max(1.0, minutes / 2)), "--no-progress", *extra]
    t0 = time.time()
    done = subprocess.run(cmd, cwd=ROOT)
    archive = out / f"{name}.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(run_dir, arcname=name)
    return {"name": name, "rc": done.returncode, "minutes": round((time.time() - t0) / 60, 2),
            "archive_mb": round(archive.stat().st_size / 2**20, 2)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="folder that comes back ($OUT on the GPU machine)")
    p.add_argument("--minutes", type=float, default=2.0, help="training minutes per model")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"), help="cpu: try the script here first")
    p.add_argument("--runs-root", default=str(ROOT / "runs"))
    p.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more flags for every training command")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs_root = Path(args.runs_root)
    results = [train_one(n, out, runs_root, args.minutes, args.device, args.extra) for n in args.models]
    for r in results:
        print(r, flush=True)
    return max(r["rc"] for r in results)


if __name__ == "__main__":
    sys.exit(main())
