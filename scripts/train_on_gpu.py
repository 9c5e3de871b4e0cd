"""Train the models on a GPU through the same scaffold, for a short lease of a GPU machine, and bring the runs
back as a few files that resume or evaluate on the CPU.

    python scripts/train_on_gpu.py --out $OUT --minutes 2 [--models fashion-mnist-classifier sat-hard-seed1 ...] \
        [--parallel]

Each name is a recipe (RECIPES below). A recipe that continues a model (the classifier, SAGAN, the Image
Transformers) continues ``runs/<name>`` when it is there (``--resume``; carry the folder to the GPU machine), else
starts from the shipped ``weights/<name>`` (``--init-from``), with a larger batch than on the CPU (the schedule is
by step, so it is the same schedule). A captioning recipe trains a new decoder with the flags of the shipped one,
another seed, on the encoder frozen inside that shipped model (written out to ``runs/sat-encoder-shipped-soft``
or ``-hard`` first: since soft v7 the two shipped decoders froze different encoder runs),
at the CPU's batch: a GPU makes those runs minutes long, so a lease can train several seeds side by side
(``--parallel``: the recipes at once, the CPU's cores shared among them) and the seeds are comparable with the
runs that made the shipped models.

Every run trains with ``--device cuda`` for at most ``--minutes`` of wall time, validation off (the GPU's minutes
are for training; validation runs on the CPU afterwards), then its run directory is packed into
``<out>/<name>.tar`` (one file of a few MB: the checkpoint, log.jsonl, train_info.json, and for captioning the
exported model). Fashion-MNIST is read from ``$FASHION_MNIST_DIR`` (carry a folder holding the four idx .gz files).

Back on the CPU: ``tar -xf <name>.tar -C runs/`` and ``python -m <module> --resume --run-dir runs/<name>
--device cpu`` continues the same run (for the continued models add the CPU's ``--batch-size``);
train_info.json records which steps ran on which machine. Try it here first on a few steps:
``python scripts/train_on_gpu.py --out /tmp/out --device cpu --minutes 0.1 --runs-root /tmp/runs``.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENCODER_DIR = "sat-encoder-shipped-{}"  # under --runs-root: the encoder frozen inside the shipped soft / hard model


def _captioning(attention: str, seed: int, pool: int) -> tuple[str, list[str], int | None, None]:
    """A decoder recipe (docs/model-cards.md) with another seed, trained from scratch on the shipped encoder: hard,
    the shipped v8's; soft, v7's one-stage recipe (the shipped soft v8 is a second stage, `--train-only`, on top of
    the 8,000-scene version of it, which this script does not chain)."""
    kind = (["--attention", "soft", "--ds-lambda", "0", "--max-steps", "13641"] if attention == "soft" else
            ["--attention", "hard", "--reward", "to_go", "--reward-discount", "0.5", "--entropy-weight", "0.003",
             "--hard-context", "expect", "--max-steps", "11498"])
    return ("attn_models.captioning.train",
            [*kind, "--encoder-channels", "128", "--encoder-widths", "32", "64", "96", "--feature-pool", str(pool),
             "--lr", "2e-3", "--seed", str(seed)], None, None)


# name -> (training module, flags of a new run, batch per step on the GPU (None: the CPU's), shipped weights to
# start from (None: a new model))
RECIPES = {
    "fashion-mnist-classifier": ("attn_models.classifier.train", ["--max-steps", "12000"], 512,
                                 "fashion-mnist-classifier"),
    "sagan-fashion-mnist": ("attn_models.sagan.train", ["--max-steps", "60000"], 256, "sagan-fashion-mnist"),
    "sagan-fashion-mnist-no-attention": ("attn_models.sagan.train", ["--attn-res", "none", "--max-steps", "60000"],
                                         256, "sagan-fashion-mnist-no-attention"),
    "image-transformer-1d-fashion-mnist": ("attn_models.image_transformer.train",
                                           ["--attention", "local1d", "--lr", "5e-4", "--max-steps", "6000"], 128,
                                           "image-transformer-1d-fashion-mnist"),
    "image-transformer-2d-fashion-mnist": ("attn_models.image_transformer.train",
                                           ["--attention", "local2d", "--lr", "5e-4", "--max-steps", "6000"], 128,
                                           "image-transformer-2d-fashion-mnist"),
    **{f"sat-soft-seed{s}": _captioning("soft", s, 16000) for s in (1, 2, 3)},
    **{f"sat-hard-seed{s}": _captioning("hard", s, 64000) for s in (1, 2, 3)},
}


def write_shipped_encoder(runs_root: Path, attention: str) -> Path:
    """The encoder the shipped ``attention`` model froze (its ``encoder.*`` tensors), as --encoder-from reads it."""
    folder = runs_root / ENCODER_DIR.format(attention)
    if not (folder / "encoder.safetensors").exists():  # a module of the repo, run as the trainings are (cwd ROOT)
        subprocess.run([sys.executable, "-m", "attn_models.captioning.extract_encoder",
                        str(ROOT / "weights" / f"sat-{attention}-fashion-scenes"), str(folder)], cwd=ROOT, check=True)
    return folder


def command(name: str, runs_root: Path, minutes: float, device: str, threads: int, extra: list[str]) -> list[str]:
    module, new_run_flags, gpu_batch, weights = RECIPES[name]
    run_dir = runs_root / name
    if (run_dir / "checkpoint").is_dir():
        start = ["--resume"]
    elif weights is not None:
        start = [*new_run_flags, "--init-from", str(ROOT / "weights" / weights)]
    else:  # a new captioning decoder: its own pool of encoded scenes beside the run, outside the archive
        attention = new_run_flags[new_run_flags.index("--attention") + 1]
        start = [*new_run_flags, "--encoder-from", str(write_shipped_encoder(runs_root, attention)),
                 "--pool-cache", str(runs_root / f"{name}.pool.safetensors")]
    batch = ["--batch-size", str(gpu_batch)] if gpu_batch else []
    export = ["--export", str(run_dir / "export")] if module == "attn_models.captioning.train" else []
    return [sys.executable, "-m", module, *start, "--run-dir", str(run_dir), "--device", device, *batch,
            "--threads", str(threads), "--time-budget-min", str(minutes), "--no-validation",
            "--checkpoint-every-min", str(max(1.0, minutes / 2)), "--no-progress", *export, *extra]


def pack(name: str, out: Path, runs_root: Path, started: float, rc: int) -> dict:
    archive = out / f"{name}.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(runs_root / name, arcname=name)
        if (runs_root / f"{name}.stdout").exists():
            tar.add(runs_root / f"{name}.stdout", arcname=f"{name}/stdout.log")
    return {"name": name, "rc": rc, "minutes": round((time.time() - started) / 60, 2),
            "archive_mb": round(archive.stat().st_size / 2**20, 2)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="folder that comes back ($OUT on the GPU machine)")
    p.add_argument("--minutes", type=float, default=2.0, help="training minutes per run (at most)")
    p.add_argument("--models", nargs="+", default=list(RECIPES)[:5], choices=list(RECIPES),
                   help="recipes to run (default: continue the five non-captioning models)")
    p.add_argument("--parallel", action="store_true", help="run the recipes at once (default: one after another)")
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"), help="cpu: try the script here first")
    p.add_argument("--runs-root", default=str(ROOT / "runs"))
    p.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more flags for every training command")
    args = p.parse_args(argv)
    out, runs_root = Path(args.out), Path(args.runs_root)
    out.mkdir(parents=True, exist_ok=True)
    runs_root.mkdir(parents=True, exist_ok=True)
    cores = os.cpu_count() or 1
    threads = max(1, cores // len(args.models)) if args.parallel else cores
    results = []
    if args.parallel:
        started = time.time()
        procs = {}
        for name in args.models:  # each run's output to its own file (packed with it), not interleaved
            with open(runs_root / f"{name}.stdout", "w") as log:  # the child keeps its own handle
                procs[name] = subprocess.Popen(command(name, runs_root, args.minutes, args.device, threads,
                                                       args.extra), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        for name, proc in procs.items():
            results.append(pack(name, out, runs_root, started, proc.wait()))
    else:
        for name in args.models:
            started = time.time()
            rc = subprocess.run(command(name, runs_root, args.minutes, args.device, threads, args.extra),
                                cwd=ROOT).returncode
            results.append(pack(name, out, runs_root, started, rc))
    for r in results:
        print(r, flush=True)
    return max(r["rc"] for r in results)


if __name__ == "__main__":
    sys.exit(main())
