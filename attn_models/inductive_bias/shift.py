"""One image, one shift: what each inductive-bias model's layers do with it (the tab's view), and the Image
Transformer's bits/dim of shifted images (one more curve beside the classifiers').

Feature maps are compared at pixel resolution: the CNN's maps are pixel grids already; an attention net's token
grid is spread over the pixels its patches cover. So a shift by a whole number of patches moves its tokens, and
any other shift changes what each patch holds: the error map shows that too, which is part of the story (patch
tokens are equivariant to shifts by whole patches at best, whatever the position information).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from attn_models.inductive_bias.model import CANVAS, ITEM, InductiveBiasNet, place

MAX_SHIFT = (CANVAS - ITEM) // 2  # 6: the item stays whole on the canvas


def shift_map(f: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Move a (..., h, w) map by (dy, dx) cells, filling what comes in with zeros (nothing wraps round)."""
    out = torch.zeros_like(f)
    h, w = f.shape[-2:]
    if abs(dy) >= h or abs(dx) >= w:
        return out
    src_y, dst_y = slice(max(0, -dy), h - max(0, dy)), slice(max(0, dy), h - max(0, -dy))
    src_x, dst_x = slice(max(0, -dx), w - max(0, dx)), slice(max(0, dx), w - max(0, -dx))
    out[..., dst_y, dst_x] = f[..., src_y, src_x]
    return out


def cell_size(model: InductiveBiasNet) -> int:
    """Pixels per feature-map cell: 1 for the CNN, the patch size for the attention nets."""
    return 1 if model.kind == "cnn" else model.body.patch


@torch.no_grad()
def pixel_features(model: InductiveBiasNet, canvases: torch.Tensor) -> list[torch.Tensor]:
    """Every layer's map at canvas resolution: (B, C, 40, 40) each (token grids repeated over their patches)."""
    cell = cell_size(model)
    return [f.repeat_interleave(cell, dim=2).repeat_interleave(cell, dim=3) if cell > 1 else f
            for f in model.features(canvases)]


@dataclass
class ShiftComparison:
    """One model's answer to one item shifted by (dy, dx), all at canvas resolution."""

    probs: np.ndarray  # (2, 10): softmax for the centred and the shifted canvas
    energy: np.ndarray  # (2, 40, 40): the chosen layer's feature norm (over channels) for both canvases
    error: np.ndarray  # (40, 40): ||f(shift x) - shift(f(x))|| over channels, over the mean norm of f(x)
    relative_error: float  # ||f(shift x) - shift(f(x))|| / ||shift(f(x))|| away from the borders
    margin: int  # pixels left out at each border for relative_error (the shift and the CNN's padding reach)

    @property
    def compared(self) -> np.ndarray:
        """bool (40, 40): the pixels behind ``relative_error`` (outside them the error map is not a fair test)."""
        inside = np.zeros(self.error.shape, bool)
        m = self.margin
        inside[m:inside.shape[0] - m, m:inside.shape[1] - m] = True
        return inside


@torch.no_grad()
def compare(model: InductiveBiasNet, item: np.ndarray | torch.Tensor, dy: int, dx: int,
            layer: int = -1) -> ShiftComparison:
    """``item``: one (28, 28) uint8 image. Layer ``layer`` (an index into ``model.features``) of the centred and
    the shifted canvas, and how far the shifted canvas's map is from the centred one's map shifted."""
    item = torch.as_tensor(np.asarray(item))[None]
    if item.shape[1:] != (ITEM, ITEM):
        raise ValueError(f"item must be {ITEM}x{ITEM}, got {tuple(item.shape[1:])}")
    dev = next(model.parameters()).device
    canvases = torch.cat([place(item), place(item, dy, dx)]).to(dev)  # (2, 1, 40, 40); place checks the shift
    probs = torch.softmax(model(canvases), dim=1).cpu().numpy()
    maps = pixel_features(model, canvases)
    layers = len(maps)
    if not -layers <= layer < layers:
        raise ValueError(f"layer must be between 0 and {layers - 1}, got {layer}")
    f = maps[layer].cpu()  # (2, C, 40, 40)
    want, got = shift_map(f[0], dy, dx), f[1]
    diff = (got - want).norm(dim=0)  # (40, 40)
    scale = f[0].norm(dim=0).mean().clamp_min(1e-12)
    # The CNN's zero padding meets the background one pixel further in per layer; the attention nets' tokens all
    # see each other, so no margin keeps their border out, and theirs is the shift alone.
    index = layer % layers
    margin = max(abs(dy), abs(dx)) + (index + 1 if model.kind == "cnn" else 0)
    inner = (slice(margin, CANVAS - margin),) * 2
    rel = float((got - want)[:, inner[0], inner[1]].norm() / want[:, inner[0], inner[1]].norm().clamp_min(1e-12))
    return ShiftComparison(probs=probs, energy=f.norm(dim=1).numpy(), error=(diff / scale).numpy(),
                           relative_error=rel, margin=margin)


def shift_images(images: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """(N, H, W[, C]) images moved by (dy, dx) pixels, black coming in (what leaves the frame is lost)."""
    out = np.zeros_like(images)
    h, w = images.shape[1:3]
    out[:, max(0, dy):h - max(0, -dy), max(0, dx):w - max(0, -dx)] = \
        images[:, max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
    return out


DIRECTIONS = {"down": (1, 0), "up": (-1, 0), "right": (0, 1), "left": (0, -1)}


def bits_per_dim_vs_shift(model, images: np.ndarray, labels: np.ndarray, max_shift: int = MAX_SHIFT) -> dict:
    """An autoregressive model's bits/dim of ``images`` (N, 28, 28[, C]) uint8 moved 0..max_shift pixels in each
    direction: {"mean": [...], "<direction>": [...], "cropped_mean": [...], "position_penalty": [...],
    "ink_lost": [...]}.

    The Fashion-MNIST frame is tight, so a shift also crops: what leaves the frame is lost and black comes in, and
    a simpler image scores fewer bits. ``cropped_mean`` is the control: the same pixels lost (moved out and back),
    the item left where it was. ``position_penalty`` = mean - cropped_mean is what moving alone costs; ``ink_lost``
    is the share of the images' total intensity that left the frame."""
    if images.ndim == 3:
        images = images[..., None]
    total = float(images.astype(np.float64).sum())
    base = float(model.bits_per_dim(images, labels=labels))
    out: dict[str, list[float]] = {d: [base] for d in DIRECTIONS}
    out.update(cropped_mean=[base], ink_lost=[0.0])
    for s in range(1, max_shift + 1):
        lost, cropped = [], []
        for d, (uy, ux) in DIRECTIONS.items():
            moved = shift_images(images, uy * s, ux * s)
            out[d].append(float(model.bits_per_dim(moved, labels=labels)))
            in_place = shift_images(moved, -uy * s, -ux * s)  # the same pixels lost, nothing moved
            cropped.append(float(model.bits_per_dim(in_place, labels=labels)))
            lost.append(1.0 - float(moved.astype(np.float64).sum()) / total)
        out["cropped_mean"].append(float(np.mean(cropped)))
        out["ink_lost"].append(float(np.mean(lost)))
    out["mean"] = [float(np.mean([out[d][s] for d in DIRECTIONS])) for s in range(max_shift + 1)]
    out["position_penalty"] = [m - c for m, c in zip(out["mean"], out["cropped_mean"], strict=True)]
    return out
