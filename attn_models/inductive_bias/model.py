"""Three small Fashion-MNIST classifiers trained on equal terms, to measure what the article says a vision model
needs: translation equivariance and the relative position of pixels.

All take a 40x40 canvas (a 28x28 item placed on black; centred when trained) and return class logits, and expose
``features(x) -> list of (B, C, h, w)`` maps, one per layer, for the equivariance measurements.

- ``cnn``: stride-1 3x3 convolutions with zero padding, then a global average. A shift of the input shifts every
  feature map by the same amount (exactly, where nothing crosses the border), and the average is invariant.
- ``attention``: the canvas cut into ``patch`` x ``patch`` patches (tokens), a linear embedding, pre-norm
  transformer layers, a mean over tokens. ``position="absolute"``: a learned embedding per token position (ViT);
  ``"relative"``: a learned bias per head and 2D offset added to the attention logits (Swin/T5-style tables), so
  attention depends only on where tokens are relative to each other; ``"none"``: no position information, so the
  net is invariant to any permutation of the patches.
A shift by a multiple of the patch size moves tokens; other shifts change what each patch holds, so the attention
nets' equivariance is measured at token shifts.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

CANVAS = 40
ITEM = 28
POSITIONS = ("absolute", "relative", "none")


def place(items: torch.Tensor, dy: int = 0, dx: int = 0) -> torch.Tensor:
    """(B, 28, 28) uint8/float items -> (B, 1, 40, 40) float in [0, 1], each item centred then moved by (dy, dx)
    pixels (|dy|, |dx| <= 6 keeps it whole on the canvas)."""
    off = (CANVAS - ITEM) // 2
    if max(abs(dy), abs(dx)) > off:
        raise ValueError(f"shift ({dy}, {dx}) moves the item off the {CANVAS}x{CANVAS} canvas (at most {off})")
    x = items.float() / (255.0 if items.dtype == torch.uint8 else 1.0)
    canvas = torch.zeros(x.shape[0], 1, CANVAS, CANVAS, dtype=x.dtype, device=x.device)
    canvas[:, 0, off + dy:off + dy + ITEM, off + dx:off + dx + ITEM] = x
    return canvas


class ConvNet(nn.Module):
    def __init__(self, widths: list[int]):
        super().__init__()
        chans = [1, *widths]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1) for a, b in zip(chans, chans[1:], strict=False))

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        maps = []
        for conv in self.convs:
            x = F.relu(conv(x))
            maps.append(x)  # (B, C, 40, 40)
        return maps


class RelativeBias(nn.Module):
    """A learned bias per head for every 2D offset (dy, dx) between two tokens of an h x w grid."""

    def __init__(self, heads: int, h: int, w: int):
        super().__init__()
        self.h, self.w = h, w
        self.table = nn.Parameter(torch.zeros(heads, 2 * h - 1, 2 * w - 1))
        ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        ys, xs = ys.flatten(), xs.flatten()
        # offset of key j from query i, shifted to index the table: (N, N) each
        self.register_buffer("dy", ys[None, :] - ys[:, None] + h - 1, persistent=False)
        self.register_buffer("dx", xs[None, :] - xs[:, None] + w - 1, persistent=False)

    def forward(self) -> torch.Tensor:
        return self.table[:, self.dy, self.dx]  # (heads, N, N)


class Block(nn.Module):
    def __init__(self, d: int, heads: int, grid: int, relative: bool):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
        self.bias = RelativeBias(heads, grid, grid) if relative else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, N, d)
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        mask = None if self.bias is None else self.bias()[None]  # (1, heads, N, N) added to the logits
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, heads, N, d/heads)
        x = x + self.out(a.transpose(1, 2).reshape(b, n, d))
        return x + self.mlp(self.norm2(x))


class AttentionNet(nn.Module):
    def __init__(self, d: int, heads: int, layers: int, patch: int, position: str):
        super().__init__()
        if position not in POSITIONS:
            raise ValueError(f"position must be one of {POSITIONS}, got {position!r}")
        if CANVAS % patch:
            raise ValueError(f"patch must divide {CANVAS}, got {patch}")
        self.patch, self.grid = patch, CANVAS // patch
        self.embed = nn.Linear(patch * patch, d)
        n = self.grid * self.grid
        self.pos = nn.Parameter(torch.randn(1, n, d) * 0.02) if position == "absolute" else None
        self.blocks = nn.ModuleList(Block(d, heads, self.grid, position == "relative") for _ in range(layers))
        self.norm = nn.LayerNorm(d)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, 40, 40) -> (B, N, patch*patch), row-major over the patch grid."""
        p = self.patch
        return F.unfold(x, p, stride=p).transpose(1, 2)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        t = self.embed(self.tokens(x))
        if self.pos is not None:
            t = t + self.pos
        maps = []
        for block in self.blocks:
            t = block(t)
            maps.append(t.transpose(1, 2).reshape(t.shape[0], -1, self.grid, self.grid))  # (B, d, g, g)
        return maps


class InductiveBiasNet(nn.Module, PyTorchModelHubMixin):
    """The classifier: ``kind`` "cnn" or "attention" (with ``position``), a linear head on the mean feature."""

    def __init__(self, kind: str = "cnn", widths: list[int] = (32, 64, 64), d_model: int = 64, heads: int = 4,
                 layers: int = 3, patch: int = 4, position: str = "absolute", num_classes: int = 10):
        super().__init__()
        if kind == "cnn":
            self.body, width = ConvNet(list(widths)), list(widths)[-1]
        elif kind == "attention":
            self.body, width = AttentionNet(d_model, heads, layers, patch, position), d_model
        else:
            raise ValueError(f"kind must be 'cnn' or 'attention', got {kind!r}")
        self.kind, self.position = kind, position if kind == "attention" else None
        self.head = nn.Linear(width, num_classes)

    @property
    def num_layers(self) -> int:
        """How many maps ``features`` returns."""
        return len(self.body.convs) if self.kind == "cnn" else len(self.body.blocks)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """One (B, C, h, w) map per layer: conv outputs (40x40) or token grids (40/patch squared)."""
        return self.body.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)[-1].mean(dim=(2, 3)))

    @torch.no_grad()
    def predict_proba(self, items, dy: int = 0, dx: int = 0) -> np.ndarray:
        """uint8 items (N, 28, 28) or (N, 28, 28, 1), placed on the canvas and moved by (dy, dx) -> (N, 10)."""
        items = torch.as_tensor(np.asarray(items))
        if items.ndim == 4 and items.shape[-1] == 1:
            items = items[..., 0]
        if items.ndim != 3 or tuple(items.shape[1:]) != (ITEM, ITEM):
            raise ValueError(f"items must be (N, {ITEM}, {ITEM}) or (N, {ITEM}, {ITEM}, 1), got {tuple(items.shape)}")
        dev = next(self.parameters()).device
        return torch.softmax(self(place(items, dy, dx).to(dev)), dim=1).cpu().numpy()
