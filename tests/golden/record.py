"""Record what every shipped model outputs on fixed inputs, through the public API only.

    python -m tests.golden.record            # rewrites tests/golden/shipped_outputs.npz

The file pins today's outputs so that moving code around (or refactoring a forward pass) cannot change
what a shipped model does without a test noticing. Each model's entry carries the SHA-256 of its
weights: after shipping new weights, re-run this script and commit the new file with them.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).with_name("shipped_outputs.npz")
SCENES = ("scene_0002.png", "scene_0006.png", "scene_0022.png")  # bundled example images


def weights_sha(name: str) -> str:
    return hashlib.sha256((ROOT / "weights" / name / "model.safetensors").read_bytes()).hexdigest()


def fixed_gray(n: int, seed: int) -> np.ndarray:
    """Deterministic 28x28 grayscale test inputs: smooth blobs, not noise, so the models see image-like data."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:28, :28]
    out = np.zeros((n, 28, 28), np.float64)
    for i in range(n):
        for _ in range(3):
            cy, cx, s = rng.uniform(6, 22), rng.uniform(6, 22), rng.uniform(3, 8)
            out[i] += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
    return np.clip(out / out.max(axis=(1, 2), keepdims=True) * 255, 0, 255).astype(np.uint8)


def outputs() -> dict[str, np.ndarray]:
    """name/field -> array, for every shipped model; computed with one torch thread on the CPU."""
    from attn_models import list_models, load

    torch.set_num_threads(1)
    out: dict[str, np.ndarray] = {}
    for name in list_models():
        m = load(name, device="cpu", source="local")
        out[f"{name}/sha256"] = np.array(weights_sha(name))
        if hasattr(m, "caption"):
            for f in SCENES:
                cap = m.caption(Image.open(ROOT / "demo" / "examples" / f).convert("RGB"), beam_size=3)
                out[f"{name}/{f}/words"] = np.array(" ".join(cap.words))
                out[f"{name}/{f}/alphas"] = cap.alphas.astype(np.float32)
        elif hasattr(m, "generate"):
            g = m.generate(list(range(10)), seed=3)
            out[f"{name}/images"] = g.images
            out[f"{name}/attention"] = np.zeros(0, np.float32) if g.attention is None else g.attention
            out[f"{name}/gamma"] = np.array(np.nan if g.gamma is None else g.gamma, np.float64)
        elif hasattr(m, "sample"):
            x = fixed_gray(3, seed=1)[..., None]
            logits = m.logits(x, labels=[0, 4, 9])  # (3, 28, 28, 1, 256)
            # the log-likelihood of every given pixel, plus the full 256-way logits of the first row of one image
            logp = torch.log_softmax(logits, -1).gather(-1, torch.from_numpy(x).long()[..., None])[..., 0]
            out[f"{name}/log_probs"] = logp.numpy().astype(np.float32)
            out[f"{name}/logits_row0"] = logits[0, 0].numpy().astype(np.float32)
            out[f"{name}/bits_per_dim"] = np.array(m.bits_per_dim(x, labels=[0, 4, 9]), np.float64)
            out[f"{name}/samples"] = m.sample(2, labels=[1, 7], temperature=0.9, seed=5)
        elif hasattr(m, "predict_proba"):
            out[f"{name}/proba"] = m.predict_proba(fixed_gray(16, seed=2)).astype(np.float32)
        else:
            raise TypeError(f"{name}: no public API method to record")
    return out


if __name__ == "__main__":
    rec = outputs()
    np.savez_compressed(OUT, **rec)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, {len(rec)} arrays)")
