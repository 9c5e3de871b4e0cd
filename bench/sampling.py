"""Image Transformer sampling speed: cached incremental decoding vs full recompute, side by side in one run.

    python bench/sampling.py                 # 28x28x1 (shipped models if present) and 32x32x3 (cached only)
    python bench/sampling.py --quick         # smaller batches, for a smoke run

For 28x28x1, both samplers draw the same images (same seeds) with the same model, and the bench checks that
the outputs are identical. "Full recompute" re-runs the whole teacher-forced model on the canvas for every
position, as the reference implementations do. The 32x32x3 rows time the cached sampler only (a full recompute
of 3,072 positions per image is hours on a CPU); those models have random weights of the same architecture
(speed does not depend on the weight values). Times: wall clock and this process's CPU time (the CPU time is
the fairer number on a shared machine).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from attn_models.image_transformer.model import ImageTransformer  # noqa: E402
from attn_models.image_transformer.sampler import recompute_sample  # noqa: E402

WEIGHTS = Path(__file__).resolve().parent.parent / "weights"
DEFAULT = dict(d_model=128, heads=4, layers=4, ffn=256, num_classes=10)


def model_for(kind: str, size: int, channels: int, root: Path = WEIGHTS) -> tuple[ImageTransformer, str]:
    name = {"local1d": "image-transformer-1d-fashion-mnist", "local2d": "image-transformer-2d-fashion-mnist"}[kind]
    if size == 28 and channels == 1 and (root / name / "model.safetensors").is_file():
        return ImageTransformer.from_pretrained(root / name).eval(), f"{root.name}/{name}"
    torch.manual_seed(0)
    return ImageTransformer(image_size=size, channels=channels, attention=kind, **DEFAULT).eval(), "random init"


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=2, help="images per sampler call (both samplers, 28x28)")
    p.add_argument("--n-large", type=int, default=2, help="images per call at 32x32x3")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="28x28 local1d only, one image")
    p.add_argument("--weights-root", default=str(WEIGHTS), help="folder holding <name>/ model folders "
                   "(e.g. checkpoints/ for training checkpoints)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    kinds = ["local1d"] if args.quick else ["local1d", "local2d"]
    n = 1 if args.quick else args.n
    rows = []
    with torch.inference_mode():
        for kind in kinds:
            m, source = model_for(kind, 28, 1, Path(args.weights_root))
            labels = list(range(n))
            m.sample(1, [0], seed=99)  # warm-up (index tables, allocator)
            cached, cw, cc = timed(lambda m=m, labels=labels: m.sample(n, labels, seed=0))
            full, fw, fc = timed(lambda m=m, labels=labels: recompute_sample(m, n, labels, seed=0))
            rows.append(dict(config=f"28x28x1 {kind}", weights=source, n=n, cached_img_s=n / cw,
                             recompute_img_s=n / fw, speedup_wall=fw / cw, speedup_cpu=fc / cc,
                             identical=bool(np.array_equal(cached, full))))
        if not args.quick:
            for kind in kinds:
                m, source = model_for(kind, 32, 3)
                _, cw, cc = timed(lambda m=m: m.sample(args.n_large, list(range(args.n_large)), seed=0))
                rows.append(dict(config=f"32x32x3 {kind}", weights=source, n=args.n_large,
                                 cached_img_s=args.n_large / cw, recompute_img_s=None, speedup_wall=None,
                                 speedup_cpu=None, identical=None))
    print(f"torch {torch.__version__}, {args.threads} thread(s)")
    print(f"{'config':<18}{'weights':<48}{'n':>3}{'cached img/s':>14}{'recompute img/s':>17}"
          f"{'speedup (wall)':>16}{'speedup (cpu)':>15}{'identical':>11}")
    for r in rows:
        def f(v, fmt):
            return "-" if v is None else format(v, fmt)
        print(f"{r['config']:<18}{r['weights']:<48}{r['n']:>3}{f(r['cached_img_s'], '.3f'):>14}"
              f"{f(r['recompute_img_s'], '.4f'):>17}{f(r['speedup_wall'], '.0f'):>16}"
              f"{f(r['speedup_cpu'], '.0f'):>15}{f(r['identical'], ''):>11}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return rows


if __name__ == "__main__":
    main()
