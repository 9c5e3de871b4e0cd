"""Bits/dim of a registered Image Transformer on the Fashion-MNIST test set, next to a baseline.

    python -m attn_models.image_transformer.evaluate image-transformer-1d-fashion-mnist
    python -m attn_models.image_transformer.evaluate image-transformer-1d-fashion-mnist --limit 500   # quick check
    python -m attn_models.image_transformer.evaluate NAME --figures weights/NAME   # + sample grid and completions
    python -m attn_models.image_transformer.evaluate runs/NAME/export   # a weights folder (a run's export) instead

Baseline: the per-position marginal, i.e. an independent 256-way histogram for every position estimated on the
60,000 training images (add-one smoothing), scored on the same test images.
--json writes the numbers (and the command) to a file that the model card quotes.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm


def marginal_baseline_bpd(train_x: np.ndarray, test_x: np.ndarray, alpha: float = 1.0) -> float:
    """Bits/dim of independent per-position histograms (train, add-``alpha`` smoothing) on test images.
    train_x, test_x: uint8 (N, ...) with the same trailing shape."""
    tr = train_x.reshape(len(train_x), -1)
    te = test_x.reshape(len(test_x), -1)
    d = tr.shape[1]
    counts = np.bincount((np.arange(d) * 256 + tr).ravel(), minlength=d * 256).reshape(d, 256).astype(np.float64)
    logp = np.log(counts + alpha) - np.log(len(tr) + 256 * alpha)
    return float(-logp[np.arange(d)[None, :], te].mean() / math.log(2))


def model_bpd(model, images: np.ndarray, labels: np.ndarray | None, batch_size: int, progress: bool) -> float:
    total, count = 0.0, 0
    for s in tqdm(range(0, len(images), batch_size), disable=not progress, unit="batch"):
        xb = images[s:s + batch_size]
        yb = None if labels is None else labels[s:s + batch_size]
        total += model.bits_per_dim(xb, yb, batch_size=batch_size) * xb.size
        count += xb.size
    return total / count


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", help="registry name (e.g. image-transformer-1d-fashion-mnist) or a weights folder")
    p.add_argument("--limit", type=int, default=None, help="first N test images only (quick checks)")
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--device", default="cpu")
    p.add_argument("--source", default="local", choices=("auto", "local", "hub"))
    p.add_argument("--path", default=None, help="load config.json + model.safetensors from this folder instead")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--json", default=None, help="write the results to this JSON file")
    p.add_argument("--figures", default=None, help="also write samples/completions PNGs into this folder")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    from attn_models import load
    from attn_models.data import load_fashion_mnist
    from attn_models.registry import load_name_or_folder

    if Path(args.name).is_dir() or args.path:
        model = load_name_or_folder(args.path or args.name, "image_transformer", args.device)
    else:
        model = load(args.name, device=args.device, source=args.source)
    train_x, _ = load_fashion_mnist("train", args.data_dir)
    test_x, test_y = load_fashion_mnist("test", args.data_dir)
    all_test = test_x[..., None], test_y  # figures pick one test image per class from the whole set
    if args.limit:
        test_x, test_y = test_x[: args.limit], test_y[: args.limit]
    test_x = test_x[..., None]
    t0 = time.time()
    baseline = marginal_baseline_bpd(train_x, test_x)
    with torch.inference_mode():
        bpd = model_bpd(model, test_x, test_y.astype(np.int64) if model.class_conditional else None,
                        args.batch_size, not args.no_progress)
    result = {
        "model": args.name, "test_images": int(len(test_x)), "bits_per_dim": bpd,
        "marginal_baseline_bits_per_dim": baseline, "eval_seconds": round(time.time() - t0, 1),
        "command": "python -m attn_models.image_transformer.evaluate " + " ".join(argv if argv is not None else
                                                                                sys.argv[1:]),
    }
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    if args.figures:
        from attn_models.image_transformer.figures import write_figures
        write_figures(model, *all_test, Path(args.figures))
    return result


if __name__ == "__main__":
    main()
