"""SAGAN generator (residual up-blocks, conditional BN) and projection discriminator (Miyato &
Koyama 2018), with self-attention at configurable feature-map resolutions.

The blocks are BigGAN-style residual blocks, as in the SAGAN authors' code; spectral norm on every conv and
linear layer (torch's parametrization)."""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from attn_models.sagan.attention import SelfAttention2d, sn_conv, sn_linear

SIZES = (32, 64, 128)


def _check(img_size: int, attn_res: list[int], top: int) -> int:
    if img_size not in SIZES:
        raise ValueError(f"img_size must be one of {SIZES}, got {img_size}")
    n = int(math.log2(img_size // 4))
    valid = {4 * 2 ** i for i in range(1, n + 1)} if top == 0 else {img_size // 2 ** i for i in range(0, n + 1)}
    bad = [r for r in attn_res if r not in valid]
    if bad:
        raise ValueError(f"attention resolutions {bad} not reachable; choose from {sorted(valid)}")
    return n


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm without its own affine; class-dependent gain (1 + e_g[y]) and bias e_b[y].

    The per-class gain/bias tables are plain embeddings as in the official code (the paper applies
    spectral norm to weight layers; these are per-class scalars, not a linear map of features).
    """

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False, eps=1e-4)
        self.gain = nn.Embedding(num_classes, channels)
        self.bias = nn.Embedding(num_classes, channels)
        nn.init.zeros_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        g = 1 + self.gain(y)[:, :, None, None]
        b = self.bias(y)[:, :, None, None]
        return self.bn(x) * g + b


class GBlock(nn.Module):
    """CBN-ReLU-up-conv3-CBN-ReLU-conv3, plus an up-conv1 shortcut."""

    def __init__(self, c_in: int, c_out: int, num_classes: int):
        super().__init__()
        self.bn1 = ConditionalBatchNorm2d(c_in, num_classes)
        self.conv1 = sn_conv(c_in, c_out, 3)
        self.bn2 = ConditionalBatchNorm2d(c_out, num_classes)
        self.conv2 = sn_conv(c_out, c_out, 3)
        self.skip = sn_conv(c_in, c_out, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = F.interpolate(F.relu(self.bn1(x, y)), scale_factor=2, mode="nearest")
        h = self.conv2(F.relu(self.bn2(self.conv1(h), y)))
        return h + self.skip(F.interpolate(x, scale_factor=2, mode="nearest"))


class DBlock(nn.Module):
    """(ReLU)-conv3-ReLU-conv3-avgpool, plus a conv1(-avgpool) shortcut. The first block skips the
    leading ReLU (its input is the image), as in the reference implementations."""

    def __init__(self, c_in: int, c_out: int, down: bool = True, first: bool = False):
        super().__init__()
        self.first, self.down = first, down
        self.conv1 = sn_conv(c_in, c_out, 3)
        self.conv2 = sn_conv(c_out, c_out, 3)
        self.skip = sn_conv(c_in, c_out, 1) if (c_in != c_out or down) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.first else F.relu(x)
        h = self.conv2(F.relu(self.conv1(h)))
        if self.down:
            h = F.avg_pool2d(h, 2)
        s = x
        if self.first:  # pool before the 1x1 conv: same result, 4x cheaper
            s = F.avg_pool2d(s, 2) if self.down else s
            s = self.skip(s) if self.skip is not None else s
        else:
            s = self.skip(s) if self.skip is not None else s
            s = F.avg_pool2d(s, 2) if self.down else s
        return h + s


class Generator(nn.Module):
    """z (B, z_dim), y (B,) -> image (B, C, S, S) in [-1, 1].

    4x4 seed from an SN-linear of z, then log2(S/4) up-blocks (channels ch*2^k ... ch); a
    self-attention block follows every up-block whose output resolution is in ``attn_res``.
    """

    def __init__(self, img_size: int = 32, img_channels: int = 1, num_classes: int = 10, z_dim: int = 128,
                 ch: int = 32, attn_res: list[int] = (16,), attn_variant: str = "official"):
        super().__init__()
        n_up = _check(img_size, list(attn_res), top=0)
        self.z_dim, self.num_classes = z_dim, num_classes
        mults = [2 ** (n_up - 1 - i) for i in range(n_up)]  # e.g. 32 px: 4, 2, 1
        self.c0 = ch * mults[0]
        self.linear = sn_linear(z_dim, self.c0 * 16)
        self.blocks = nn.ModuleList()
        self.attn = nn.ModuleDict()  # resolution (as str) -> block
        c_in, res = self.c0, 4
        for m in mults:
            self.blocks.append(GBlock(c_in, ch * m, num_classes))
            c_in, res = ch * m, res * 2
            if res in attn_res:
                self.attn[str(res)] = SelfAttention2d(c_in, attn_variant)
        self.out_bn = nn.BatchNorm2d(c_in, eps=1e-4)
        self.out_conv = sn_conv(c_in, img_channels, 3)

    def forward(self, z: torch.Tensor, y: torch.Tensor, return_attn: bool = False, attention_off: bool = False,
                knockout: dict[str, int] | None = None):
        """Returns images, or (images, {resolution: beta (B, Q, K)}) with return_attn. ``knockout`` maps a layer's
        resolution to the query whose attention output is zeroed (see SelfAttention2d.forward)."""
        h = self.linear(z).view(z.shape[0], self.c0, 4, 4)
        maps = {}
        knockout = knockout or {}
        for block in self.blocks:
            h = block(h, y)
            key = str(h.shape[-1])
            if key in self.attn:
                if return_attn:
                    h, maps[key] = self.attn[key](h, return_attn=True, attention_off=attention_off,
                                                  knockout=knockout.get(key))
                else:
                    h = self.attn[key](h, attention_off=attention_off, knockout=knockout.get(key))
        img = torch.tanh(self.out_conv(F.relu(self.out_bn(h))))
        return (img, maps) if return_attn else img


class Discriminator(nn.Module):
    """Residual down-blocks, ReLU, global sum pooling, then score = psi(phi(x)) + <embed(y), phi(x)>
    (the projection discriminator used by SAGAN)."""

    def __init__(self, img_size: int = 32, img_channels: int = 1, num_classes: int = 10, ch: int = 32,
                 attn_res: list[int] = (16,), attn_variant: str = "official"):
        super().__init__()
        n_down = _check(img_size, list(attn_res), top=1)
        mults = [2 ** i for i in range(n_down)]  # e.g. 32 px: 1, 2, 4 (down to 4x4), then one more block
        self.blocks = nn.ModuleList()
        self.attn = nn.ModuleDict()
        c_in, res = img_channels, img_size
        for i, m in enumerate(mults):
            self.blocks.append(DBlock(c_in, ch * m, down=True, first=i == 0))
            c_in, res = ch * m, res // 2
            if res in attn_res:
                self.attn[str(res)] = SelfAttention2d(c_in, attn_variant)
        self.blocks.append(DBlock(c_in, c_in, down=False))
        self.linear = sn_linear(c_in, 1)
        self.embed = nn.utils.parametrizations.spectral_norm(nn.Embedding(num_classes, c_in), eps=1e-6)

    def forward(self, x: torch.Tensor, y: torch.Tensor, return_attn: bool = False):
        """x (B, C, S, S) in [-1, 1], y (B,) -> score (B,), or (score, {resolution: beta (B, Q, K)}) with
        return_attn. Under the hinge loss a score above 0 leans "real", below 0 "generated"."""
        h = x
        maps = {}
        for block in self.blocks:
            h = block(h)
            key = str(h.shape[-1])
            if key in self.attn and block.down:
                if return_attn:
                    h, maps[key] = self.attn[key](h, return_attn=True)
                else:
                    h = self.attn[key](h)
        h = F.relu(h).sum(dim=(2, 3))  # (B, C)
        score = self.linear(h).squeeze(1) + (self.embed(y) * h).sum(1)
        return (score, maps) if return_attn else score
