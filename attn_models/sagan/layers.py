"""Building blocks of the SAGAN generator and discriminator (BigGAN-style residual blocks, as in the
SAGAN authors' code): spectral norm from torch's own parametrization on every conv/linear layer."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import spectral_norm


def sn_conv(c_in: int, c_out: int, k: int, bias: bool = True) -> nn.Module:
    return spectral_norm(nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=bias), eps=1e-6)


def sn_linear(c_in: int, c_out: int, bias: bool = True) -> nn.Module:
    return spectral_norm(nn.Linear(c_in, c_out, bias=bias), eps=1e-6)


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
