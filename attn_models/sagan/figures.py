"""Model-card figures for a SAGAN: samples per class, query points with their attention maps, and
the same latents with attention switched off (gamma = 0)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from attn_models.layers.maps import resize_map  # noqa: E402

# Query points in image pixels (y, x) on the 32x32 canvas: top, middle, bottom-left, right edge.
QUERIES = ((8, 16), (16, 16), (24, 10), (20, 24))


def sample_grid(model, path: Path, per_class: int = 10, seed: int = 0) -> None:
    labels = np.repeat(np.arange(model.num_classes), per_class)
    imgs = model.generate(labels.tolist(), seed=seed, return_attention=False).images[..., 0]
    s = imgs.shape[-1]
    fig, axes = plt.subplots(model.num_classes, 1, figsize=(per_class * 0.6 + 1.2, model.num_classes * 0.62))
    for c, ax in enumerate(axes):
        row = imgs[labels == c].transpose(1, 0, 2).reshape(s, -1)
        ax.imshow(row, cmap="gray", vmin=0, vmax=255)
        ax.set_yticks([])
        ax.set_xticks([])
        ax.set_ylabel(model.class_names[c], rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(f"seed {seed}: one column per latent, one row per class", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def attention_figure(model, path: Path, labels=(0, 1, 7, 9), seed: int = 3) -> None:
    out = model.generate(list(labels), seed=seed)
    qh, qw = out.query_hw
    kh, kw = out.key_hw
    size = out.images.shape[1]
    fig, axes = plt.subplots(len(labels), len(QUERIES) + 1, figsize=(1.7 * (len(QUERIES) + 1), 1.8 * len(labels)))
    for i in range(len(labels)):
        img = out.images[i, ..., 0]
        axes[i, 0].imshow(img, cmap="gray", vmin=0, vmax=255)
        axes[i, 0].set_title(model.class_names[labels[i]], fontsize=8)
        for j, (y, x) in enumerate(QUERIES):
            q = (y * qh // size) * qw + (x * qw // size)
            attn = out.attention[i, q].reshape(kh, kw)
            ax = axes[i, j + 1]
            ax.imshow(img, cmap="gray", vmin=0, vmax=255)
            ax.imshow(resize_map(attn, size, size), cmap="inferno", alpha=0.6)
            ax.scatter([x], [y], s=40, facecolors="none", edgecolors="cyan", linewidths=1.5)
            ax.set_title(f"query ({y},{x})", fontsize=7)
        for ax in axes[i]:
            ax.axis("off")
    fig.suptitle(f"attention of the {qh}x{qw} layer over its {kh}x{kw} keys (gamma={out.gamma:.3f})", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def gamma_off_figure(model, path: Path, seed: int = 0) -> None:
    labels = list(range(model.num_classes))
    on = model.generate(labels, seed=seed, return_attention=False).images[..., 0]
    off = model.generate(labels, seed=seed, attention_off=True, return_attention=False).images[..., 0]
    fig, axes = plt.subplots(2, 1, figsize=(8, 2.2))
    for ax, imgs, title in ((axes[0], on, "as trained"), (axes[1], off, "gamma set to 0 at inference")):
        ax.imshow(np.concatenate(list(imgs), axis=1), cmap="gray", vmin=0, vmax=255)
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw_card_figures(model, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / "samples.png"]
    sample_grid(model, paths[0])
    if model.vis_layer is not None:
        paths += [folder / "attention.png", folder / "gamma_off.png"]
        attention_figure(model, paths[1])
        gamma_off_figure(model, paths[2])
    return paths
