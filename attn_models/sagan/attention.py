"""SAGAN self-attention block (Zhang et al. 2019, Sec. 3; official code ``sn_non_local_block_sim``).

    f = W_f x (query), g = W_g x (key), h = W_h x (value)          1x1 convolutions
    beta[i, j] = softmax_j(f_i . g_j)                                where query i looks at key j
    o_i = W_v sum_j beta[i, j] h_j ;  y = gamma * o + x              gamma is learnt and starts at 0

variant="official" follows the authors' released code where it differs from the paper: key and value
are 2x2 max-pooled (4x fewer keys), the value has C/2 channels, and every 1x1 conv is spectrally
normalised. variant="paper" keeps C/8 channels for f, g and h and attends over all positions.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import spectral_norm

VARIANTS = ("official", "paper")


# Spectrally normalised layers (torch's own parametrization), used here and by every layer of G and D.
def sn_conv(c_in: int, c_out: int, k: int, bias: bool = True) -> nn.Module:
    return spectral_norm(nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=bias), eps=1e-6)


def sn_linear(c_in: int, c_out: int, bias: bool = True) -> nn.Module:
    return spectral_norm(nn.Linear(c_in, c_out, bias=bias), eps=1e-6)


class SelfAttention2d(nn.Module):
    def __init__(self, channels: int, variant: str = "official"):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown attention variant {variant!r}; expected one of {VARIANTS}")
        if channels < 8:
            raise ValueError(f"self-attention needs at least 8 channels (C/8 query width), got {channels}")
        self.variant = variant
        self.pool = variant == "official"
        qk = channels // 8
        v = channels // 2 if variant == "official" else channels // 8
        self.f = sn_conv(channels, qk, 1, bias=False)  # query
        self.g = sn_conv(channels, qk, 1, bias=False)  # key
        self.h = sn_conv(channels, v, 1, bias=False)  # value
        self.v = sn_conv(v, channels, 1, bias=False)  # output projection back to C
        self.gamma = nn.Parameter(torch.zeros(()))  # 0 at init: the block starts as the identity

    def key_hw(self, h: int, w: int) -> tuple[int, int]:
        return (h // 2, w // 2) if self.pool else (h, w)

    def forward(self, x: torch.Tensor, return_attn: bool = False, attention_off: bool = False,
                knockout: int | None = None):
        """x (B, C, H, W) -> y (B, C, H, W) [, beta (B, H*W, K)]. attention_off gives y = x
        (gamma taken as 0) without touching the shared parameter, so concurrent callers are unaffected.
        ``knockout`` (a query index, row-major on the H x W grid) zeroes the attention output o of that one
        position, so y there is x: what the image owes to that query's attention."""
        if attention_off and not return_attn:
            return x
        b, c, hh, ww = x.shape
        query = self.f(x).flatten(2)  # (B, C/8, Q)
        key, value = self.g(x), self.h(x)
        if self.pool:
            key, value = F.max_pool2d(key, 2), F.max_pool2d(value, 2)
        key, value = key.flatten(2), value.flatten(2)  # (B, C/8, K), (B, Cv, K)
        beta = torch.softmax(torch.bmm(query.transpose(1, 2), key), dim=-1)  # (B, Q, K)
        o = torch.bmm(value, beta.transpose(1, 2))  # (B, Cv, Q)
        if knockout is not None:
            if not 0 <= knockout < hh * ww:
                raise ValueError(f"knockout query must be in 0..{hh * ww - 1}, got {knockout}")
            o = o.clone()
            o[:, :, knockout] = 0  # W_v is a bias-free 1x1 conv, so gamma * W_v o is 0 there too
        o = o.view(b, -1, hh, ww)
        y = x if attention_off else x + self.gamma * self.v(o)
        return (y, beta) if return_attn else y
