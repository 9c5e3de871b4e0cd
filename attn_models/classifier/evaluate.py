"""Test-set accuracy of a Fashion-MNIST classifier (the feature extractor behind the GAN metrics).

    python -m attn_models.classifier.evaluate fashion-mnist-classifier --json metrics.json
    python -m attn_models.classifier.evaluate runs/fashion-mnist-classifier/export --json m.json   # a folder

Reports accuracy on all 10,000 test images with the model's own test-time mirror averaging (``flip_tta``)
and without it (single view), and per class.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np

from attn_models.registry import load_name_or_folder


def accuracy(model, images: np.ndarray, labels: np.ndarray) -> float:
    return float((model.predict_proba(images).argmax(1) == labels).mean())


def evaluate(model, images: np.ndarray, labels: np.ndarray) -> dict:
    pred = model.predict_proba(images).argmax(1)
    tta, model.flip_tta = model.flip_tta, False
    try:
        single = accuracy(model, images, labels)
    finally:
        model.flip_tta = tta
    return {"test_accuracy": float((pred == labels).mean()), "test_accuracy_single_view": single,
            "n": int(len(labels)), "flip_tta": bool(tta),
            "per_class": {int(c): round(float((pred[labels == c] == c).mean()), 4) for c in range(10)}}


def main(argv=None) -> dict:
    from attn_models.data import load_fashion_mnist

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", nargs="?", default="fashion-mnist-classifier", help="registry name or weights folder")
    p.add_argument("--device", default="cpu")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--json", default=None, help="also write the numbers here")
    args = p.parse_args(argv)
    x, y = load_fashion_mnist("test", args.data_dir)
    argv = sys.argv[1:] if argv is None else argv
    result = {"model": args.name, **evaluate(load_name_or_folder(args.name, "classifier", args.device), x, y),
              "command": "python -m attn_models.classifier.evaluate " + shlex.join(argv)}
    print(json.dumps(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
