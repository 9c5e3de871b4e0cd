"""Model-card pictures for an Image Transformer: samples per class and completions of test images."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from attn_models.data.fashion_mnist import CLASS_NAMES


def write_figures(model, test_x: np.ndarray, test_y: np.ndarray, out: Path, per_class: int = 8,
                  temperature: float = 1.0, seed: int = 0) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    classes = list(range(model.num_classes)) if model.class_conditional else [None]
    paths = []
    fig, axes = plt.subplots(len(classes), per_class, figsize=(per_class * 0.9, len(classes) * 0.95))
    axes = np.atleast_2d(axes)
    for r, cls in enumerate(classes):
        imgs = model.sample(per_class, None if cls is None else [cls] * per_class, temperature, seed + r)
        for k in range(per_class):
            ax = axes[r, k]
            ax.imshow(imgs[k].squeeze(-1) if imgs.shape[-1] == 1 else imgs[k], cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
        if cls is not None:
            axes[r, 0].set_ylabel(CLASS_NAMES[cls], rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(f"samples, temperature {temperature}, seeds {seed}..{seed + len(classes) - 1}", fontsize=9)
    fig.tight_layout()
    paths.append(out / "samples.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    # completions: one test image per class, the generation-order prefix inside the top half kept (for local
    # 2D: whole block rows plus the leading blocks of the cut block row), 4 completions each
    known = model.prefix_mask(model.image_shape[0] // 2)  # bool (H, W, C)
    picks = [int(np.flatnonzero(test_y == c)[0]) for c in range(min(10, model.num_classes or 10))]
    n_comp = 4
    fig, axes = plt.subplots(len(picks), n_comp + 2, figsize=((n_comp + 2) * 0.9, len(picks) * 0.95))
    for r, i in enumerate(picks):
        src = test_x[i]
        labels = [int(test_y[i])] * n_comp if model.class_conditional else None
        comp = model.sample(n_comp, labels, temperature, seed, prefix=src, known=known)
        shown = [src, np.where(known, src, 0).astype(np.uint8), *comp]
        for k, img in enumerate(shown):
            ax = axes[r, k]
            ax.imshow(img.squeeze(-1) if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
        if r == 0:
            for k, title in enumerate(["original", "kept"] + [f"#{j + 1}" for j in range(n_comp)]):
                axes[0, k].set_title(title, fontsize=8)
    whole = int(known.all(axis=(1, 2)).sum())
    part = " (and part of the next)" if known[whole:].any() else ""
    fig.suptitle(f"completions of test images: top {whole} rows{part} kept", fontsize=9)
    fig.tight_layout()
    paths.append(out / "completions.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths
