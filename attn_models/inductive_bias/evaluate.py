"""What each inductive-bias model's bias buys, measured on the Fashion-MNIST test set.

    python -m attn_models.inductive_bias.evaluate runs/inductive-bias-cnn/export [more names or folders] --json OUT

For every model (a registry name or a weights folder):
- ``accuracy_vs_shift``: test accuracy with the items moved 0..6 pixels off centre, up, down, left and right
  (the mean of the four directions per distance; each direction too);
- ``equivariance_error``: per layer and shift, ||f(shift(x)) - shift(f(x))|| / ||f(x)|| over test images, on the
  part of the feature map that no shift or border can reach (a margin of the shift plus, for the CNN, one pixel
  per layer, where the zero padding meets the background), for shifts of 1..6 pixels. Maps are compared at
  canvas resolution: the attention nets' token grids are spread over their patches, so only shifts by whole
  patches (4 px) can move their tokens; other shifts change what every patch holds;
- ``shuffled_accuracy``: accuracy when the centred canvas's patches (``--patch``) are randomly permuted: a net with
  no position information cannot tell the difference.

``--image-transformer NAME`` (repeatable) adds ``image_transformer_bits_per_dim_vs_shift``: the Image Transformer's
bits/dim of test images moved 0..6 pixels (mean of the four directions; it learned absolute positions), on the
first ``--it-images`` test images.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np
import torch

from attn_models.inductive_bias.model import InductiveBiasNet, place
from attn_models.inductive_bias.shift import (
    DIRECTIONS,
    MAX_SHIFT,
    bits_per_dim_vs_shift,
    pixel_features,
    shift_map,
)


def load_model(name_or_dir: str, device: str = "cpu") -> InductiveBiasNet:
    from attn_models.registry import load_name_or_folder

    return load_name_or_folder(name_or_dir, "inductive_bias", device)


@torch.no_grad()
def predict(model, canvases: torch.Tensor, batch: int = 500) -> torch.Tensor:
    dev = next(model.parameters()).device
    return torch.cat([model(canvases[i:i + batch].to(dev)).argmax(1).cpu() for i in range(0, len(canvases), batch)])


def accuracy_vs_shift(model, items: torch.Tensor, labels: torch.Tensor, max_shift: int = MAX_SHIFT) -> dict:
    """{"mean": [acc at 0..max_shift], "<direction>": [...]} for items moved by s pixels in each direction."""
    out = {d: [] for d in DIRECTIONS}
    for s in range(max_shift + 1):
        for d, (uy, ux) in DIRECTIONS.items():
            out[d].append(float((predict(model, place(items, uy * s, ux * s)) == labels).float().mean()))
    out["mean"] = [float(np.mean([out[d][s] for d in DIRECTIONS])) for s in range(max_shift + 1)]
    return out


@torch.no_grad()
def equivariance_error(model, items: torch.Tensor, max_shift: int = MAX_SHIFT) -> dict:
    """{layer index: {shift: relative error}} for shifts along the diagonal (dy = dx = s), s = 1..max_shift, every
    layer's map compared at canvas resolution (``shift.pixel_features``), away from the borders."""
    dev = next(model.parameters()).device
    f0 = pixel_features(model, place(items).to(dev))
    out: dict[int, dict[int, float]] = {k: {} for k in range(len(f0))}
    for s in range(1, max_shift + 1):
        f1 = pixel_features(model, place(items, s, s).to(dev))
        for k, (a, b) in enumerate(zip(f0, f1, strict=True)):
            m = s + (k + 1 if model.kind == "cnn" else 0)  # pixels a shift or the CNN's padding can reach
            want = shift_map(a, s, s)[..., m:a.shape[2] - m, m:a.shape[3] - m]
            got = b[..., m:b.shape[2] - m, m:b.shape[3] - m]
            out[k][s] = float((got - want).norm() / want.norm().clamp_min(1e-12))
    return out


def shuffle_patches(canvases: torch.Tensor, patch: int, seed: int = 0) -> torch.Tensor:
    """The same random permutation of the patch grid applied to every canvas."""
    b, c, h, w = canvases.shape
    g = h // patch
    tiles = canvases.reshape(b, c, g, patch, g, patch).permute(0, 1, 2, 4, 3, 5).reshape(b, c, g * g, patch, patch)
    perm = torch.from_numpy(np.random.default_rng(seed).permutation(g * g))
    tiles = tiles[:, :, perm].reshape(b, c, g, g, patch, patch).permute(0, 1, 2, 4, 3, 5)
    return tiles.reshape(b, c, h, w)


def shuffled_accuracy(model, items, labels, patch: int = 4, seeds: int = 3) -> float:
    canvases = place(items)
    return float(np.mean([(predict(model, shuffle_patches(canvases, patch, s)) == labels).float().mean()
                          for s in range(seeds)]))


def evaluate(model, items: torch.Tensor, labels: torch.Tensor, equivariance_images: int = 500, patch: int = 4):
    shift_curve = accuracy_vs_shift(model, items, labels)
    equivariance = equivariance_error(model, items[:equivariance_images])
    last = equivariance[len(equivariance) - 1]
    return {"test_accuracy": float((predict(model, place(items)) == labels).float().mean()),
            "accuracy_vs_shift": shift_curve,
            "equivariance_error": equivariance,
            "shuffled_accuracy": shuffled_accuracy(model, items, labels, patch),
            # flat views of the above for the model card's table
            "accuracy_at_shift": {str(s): a for s, a in enumerate(shift_curve["mean"])},
            "last_layer_equivariance_error": {str(s): e for s, e in last.items()},
            "kind": model.kind, "position": model.position, "test_images": int(len(items)),
            "equivariance_images": int(min(equivariance_images, len(items)))}


def main(argv=None) -> dict:
    from attn_models.data import load_fashion_mnist

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", help="registry names or weights folders (none: only the Image Transformer "
                                            "curves of --image-transformer)")
    p.add_argument("--limit", type=int, default=None, help="first N test images only (quick checks)")
    p.add_argument("--patch", type=int, default=4, help="patch size of the shuffled-patches test")
    p.add_argument("--device", default="cpu")
    p.add_argument("--image-transformer", action="append", default=[], metavar="NAME",
                   help="also measure this Image Transformer's bits/dim against shift (registry name or folder)")
    p.add_argument("--it-images", type=int, default=200, help="test images for the Image Transformer curve")
    p.add_argument("--json", default=None)
    p.add_argument("--store", action="store_true",
                   help="also write each registry model's entry to weights/<name>/metrics.json and each Image "
                        "Transformer's curve to weights/<name>/shift_bpd.json (what the app's tab shows)")
    args = p.parse_args(argv)
    if not args.names and not args.image_transformer:
        p.error("give inductive-bias models to evaluate, or --image-transformer NAME")
    x, y = load_fashion_mnist("test")
    items, labels = torch.from_numpy(x[: args.limit].copy()), torch.from_numpy(y[: args.limit].astype(np.int64))
    argv = sys.argv[1:] if argv is None else argv
    result = {"command": "python -m attn_models.inductive_bias.evaluate " + shlex.join(argv),
              "models": {n: evaluate(load_model(n, args.device), items, labels, patch=args.patch)
                         for n in args.names}}
    if args.image_transformer:
        from attn_models.registry import load_name_or_folder

        n = args.it_images
        result["image_transformer_bits_per_dim_vs_shift"] = {
            name: {**bits_per_dim_vs_shift(load_name_or_folder(name, "image_transformer", args.device),
                                           x[:n], y[:n].astype(np.int64)), "test_images": int(len(x[:n]))}
            for name in args.image_transformer}
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    if args.store:
        store(result)
    return result


def store(result: dict) -> list[Path]:
    """Each registry model's numbers beside its weights (``metrics.json``; ``shift_bpd.json`` for the Image
    Transformers), with the command that measured them. Folders given by path are left alone."""
    from attn_models.registry import get_spec, list_models

    written = []
    for key, file in (("models", "metrics.json"), ("image_transformer_bits_per_dim_vs_shift", "shift_bpd.json")):
        for name, numbers in result.get(key, {}).items():
            if name in list_models():
                path = get_spec(name).local_dir / file
                path.write_text(json.dumps({"command": result["command"], **numbers}, indent=1))
                written.append(path)
    return written


if __name__ == "__main__":
    main()
