"""Masked local 1D / local 2D / full attention of the Image Transformer (Parmar et al. 2018, sec. 3.2).

Positions. An image (h, w, c) is a grid of (h, w*c) positions: every channel of every pixel is its own
position, channels interleaved along the width as tensor2tensor does. N = h*w*c and the raster index of
grid cell (row, col) is ``row * (w*c) + col``. All tensors here are in raster order.

Patterns (``AttentionPattern``):
- ``full``: query r sees every key k <= r (raster order = generation order).
- ``local1d``: the raster sequence is cut into query blocks of ``query_len`` positions; a query sees its own
  block up to itself plus the ``memory_len`` positions before the block.
- ``local2d``: the grid is cut into query blocks of ``block_h x block_w`` cells, generated in block-raster
  order (blocks left to right, top to bottom; raster order inside a block; blocks at the right/bottom edge
  are partial when the sizes do not divide). A query sees the memory flange around its block -- ``flange_h``
  rows above, ``flange_w`` columns left and right (rows above and beside the block) -- plus its own block,
  restricted to positions generated no later than itself (so the right flange beside the block, which is
  generated later, is masked, like the white cells of the paper's Fig. 3).

Two implementations of the same function:
- ``dense_reference_attention``: scaled dot product with the (N, N) boolean mask of ``attention_mask``.
  O(N^2) memory; for tests and benchmarks only.
- ``local_attention``: blocked. Queries are gathered into blocks, each block gathers only the M keys of its
  window (M = query_len + memory_len, or (flange_h + block_h) * (block_w + 2 flange_w)), so scores take
  N/Q * Q * M = N*M entries: memory linear in N. ``full`` is inherently N x N and uses causal SDPA.

Blocked weight layout (``BlockedWeights``): ``weights[b, head, blk, i, j]`` is the weight query
``query_index[blk, i]`` gives key ``key_index[blk, j]`` (raster indices; N marks padding). ``dense_weights``
scatters them into (B, heads, N, N) for visualisation and tests.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

KINDS = ("full", "local1d", "local2d")
VIS_OUTSIDE, VIS_MEMORY, VIS_BLOCK, VIS_QUERY, VIS_MASKED = 0, 1, 2, 3, 4


@dataclass(frozen=True)
class AttentionPattern:
    kind: str                 # "full" | "local1d" | "local2d"
    query_len: int = 64       # lq, 1D query block length (positions)
    memory_len: int = 64      # lm, 1D: positions before the block
    block_h: int = 4          # qh, 2D query block rows (grid cells)
    block_w: int = 16         # qw, 2D query block cols (grid cells)
    flange_h: int = 4         # fh, 2D memory rows above the block
    flange_w: int = 8         # fw, 2D memory cols left and right of the block

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"attention kind must be one of {KINDS}, got {self.kind!r}")
        for name in ("query_len", "block_h", "block_w"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        for name in ("memory_len", "flange_h", "flange_w"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {v!r}")


def _check_shape(h: int, w: int, c: int) -> None:
    for name, v in (("h", h), ("w", w), ("c", c)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
            raise ValueError(f"image {name} must be an integer >= 1, got {v!r}")


# ---------------------------------------------------------------------------------------------
# Generation order and the dense "who may see whom" mask (written from the definitions, independently
# of the blocked index maps below, so that tests comparing the two mean something).
# ---------------------------------------------------------------------------------------------

@lru_cache(maxsize=64)
def _order_and_rank(h: int, w: int, c: int, pattern: AttentionPattern) -> tuple[torch.Tensor, torch.Tensor]:
    n, wc = h * w * c, w * c
    if pattern.kind != "local2d":
        order = torch.arange(n)
    else:
        rows = torch.arange(h).repeat_interleave(wc)
        cols = torch.arange(wc).repeat(h)
        nbw = -(-wc // pattern.block_w)
        block = (rows // pattern.block_h) * nbw + cols // pattern.block_w
        # Inside a block: raster order; stable sort on block id keeps the raster order of ties.
        order = torch.sort(block, stable=True).indices
    rank = torch.empty(n, dtype=torch.long)
    rank[order] = torch.arange(n)
    return order, rank


def generation_order(h: int, w: int, c: int, pattern: AttentionPattern) -> torch.LongTensor:
    """(N,) raster index of the i-th generated position."""
    _check_shape(h, w, c)
    return _order_and_rank(h, w, c, pattern)[0].clone()


def generation_rank(h: int, w: int, c: int, pattern: AttentionPattern) -> torch.LongTensor:
    """(N,) step at which each raster position is generated (inverse of ``generation_order``)."""
    _check_shape(h, w, c)
    return _order_and_rank(h, w, c, pattern)[1].clone()


def _region(h: int, w: int, c: int, pattern: AttentionPattern, queries: torch.Tensor):
    """For raster queries (Q,): (in_block (Q, N), in_memory (Q, N)) booleans, ignoring causality."""
    n, wc = h * w * c, w * c
    keys = torch.arange(n)
    q = queries[:, None]
    if pattern.kind == "full":
        return torch.zeros(len(queries), n, dtype=torch.bool), torch.ones(len(queries), n, dtype=torch.bool)
    if pattern.kind == "local1d":
        start = (q // pattern.query_len) * pattern.query_len
        in_block = (keys >= start) & (keys < start + pattern.query_len)
        in_mem = (keys >= start - pattern.memory_len) & (keys < start)
        return in_block, in_mem
    qr, qc = q // wc, q % wc
    kr, kc = keys // wc, keys % wc
    r0 = (qr // pattern.block_h) * pattern.block_h
    c0 = (qc // pattern.block_w) * pattern.block_w
    in_block = (kr >= r0) & (kr < r0 + pattern.block_h) & (kc >= c0) & (kc < c0 + pattern.block_w)
    in_window = ((kr >= r0 - pattern.flange_h) & (kr < r0 + pattern.block_h)
                 & (kc >= c0 - pattern.flange_w) & (kc < c0 + pattern.block_w + pattern.flange_w))
    return in_block, in_window & ~in_block


def attention_mask(h: int, w: int, c: int, pattern: AttentionPattern) -> torch.BoolTensor:
    """(N, N) dense reference in raster indexing: [q, k] = query q may attend key k."""
    _check_shape(h, w, c)
    n = h * w * c
    rank = _order_and_rank(h, w, c, pattern)[1]
    in_block, in_mem = _region(h, w, c, pattern, torch.arange(n))
    return (in_block | in_mem) & (rank[None, :] <= rank[:, None])


def visibility(h: int, w: int, c: int, pattern: AttentionPattern, query: int) -> np.ndarray:
    """int8 (h, w*c) map of what raster position ``query`` sees, coded with the VIS_* constants.

    VIS_MASKED marks positions inside the query's block/memory region that are masked because they are
    generated later. For "full", everything earlier is VIS_MEMORY and everything later VIS_MASKED."""
    _check_shape(h, w, c)
    n = h * w * c
    if isinstance(query, bool) or not isinstance(query, (int, np.integer)) or not 0 <= query < n:
        raise ValueError(f"query must be a raster index in [0, {n}), got {query!r}")
    rank = _order_and_rank(h, w, c, pattern)[1]
    in_block, in_mem = (m[0] for m in _region(h, w, c, pattern, torch.tensor([int(query)])))
    earlier = rank <= rank[query]
    out = torch.full((n,), VIS_OUTSIDE, dtype=torch.int8)
    out[in_mem & earlier] = VIS_MEMORY
    out[in_block & earlier] = VIS_BLOCK
    out[(in_block | in_mem) & ~earlier] = VIS_MASKED
    out[query] = VIS_QUERY
    return out.view(h, w * c).numpy()


def dense_reference_attention(q, k, v, h, w, c, pattern, return_weights=False):
    """Scaled dot-product attention with the dense boolean mask. q, k, v: (B, heads, N, d)."""
    mask = attention_mask(h, w, c, pattern).to(q.device)
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    weights = scores.masked_fill(~mask, float("-inf")).softmax(-1)  # every query sees itself: no empty row
    out = weights @ v
    return (out, weights) if return_weights else out


# ---------------------------------------------------------------------------------------------
# Blocked implementation
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BlockIndex:
    """Gather maps of a pattern on an (h, w, c) image. Padding entries hold N (a zero row appended)."""
    query_index: torch.Tensor  # (nblocks, Q) raster index of the i-th query of each block, in generation order
    key_index: torch.Tensor    # (nblocks, M) raster index of the j-th key of each block's window
    mask: torch.Tensor         # (nblocks, Q, M) bool: query i may attend key j
    inverse: torch.Tensor      # (N,) flat (blk * Q + i) slot of each raster position


@lru_cache(maxsize=64)
def block_index(h: int, w: int, c: int, pattern: AttentionPattern) -> BlockIndex:
    _check_shape(h, w, c)
    n, wc = h * w * c, w * c
    rank = torch.cat([_order_and_rank(h, w, c, pattern)[1], torch.tensor([n])])  # padding ranks last
    if pattern.kind == "full":
        qi = torch.arange(n)[None]
        ki = torch.arange(n)[None]
    elif pattern.kind == "local1d":
        lq, lm = pattern.query_len, pattern.memory_len
        nb = -(-n // lq)
        starts = torch.arange(nb)[:, None] * lq
        qi = starts + torch.arange(lq)
        ki = starts - lm + torch.arange(lm + lq)
        qi = torch.where(qi < n, qi, n)
        ki = torch.where((ki >= 0) & (ki < n), ki, n)
    else:
        qh, qw, fh, fw = pattern.block_h, pattern.block_w, pattern.flange_h, pattern.flange_w
        nbh, nbw = -(-h // qh), -(-wc // qw)
        br = torch.arange(nbh).repeat_interleave(nbw)[:, None]
        bc = torch.arange(nbw).repeat(nbh)[:, None]
        i = torch.arange(qh * qw)
        qr, qc = br * qh + i // qw, bc * qw + i % qw
        j = torch.arange((fh + qh) * (qw + 2 * fw))
        kr, kc = br * qh - fh + j // (qw + 2 * fw), bc * qw - fw + j % (qw + 2 * fw)
        qi = torch.where((qr < h) & (qc < wc), qr * wc + qc, n)
        ki = torch.where((kr >= 0) & (kr < h) & (kc >= 0) & (kc < wc), kr * wc + kc, n)
    mask = (qi[:, :, None] < n) & (ki[:, None, :] < n) & (rank[ki][:, None, :] <= rank[qi][:, :, None])
    # Padding queries (outside the image) would have no visible key; let them see the padding keys (their
    # blocks always have some) so that no softmax row is empty. Their outputs are dropped.
    mask |= (qi[:, :, None] == n) & (ki[:, None, :] == n)
    flat = qi.reshape(-1)
    inverse = torch.empty(n, dtype=torch.long)
    real = flat < n
    inverse[flat[real]] = torch.arange(flat.numel())[real]
    return BlockIndex(qi, ki, mask, inverse)


@dataclass
class BlockedWeights:
    """Attention weights in blocked layout; see the module docstring."""
    weights: torch.Tensor      # (B, heads, nblocks, Q, M)
    query_index: torch.Tensor  # (nblocks, Q)
    key_index: torch.Tensor    # (nblocks, M)
    n: int                     # N (index N = padding)

    def query_row(self, query: int) -> torch.Tensor:
        """(B, heads, N) weights of raster position ``query`` over all keys (zeros where not visible)."""
        blk, i = (self.query_index == query).nonzero()[0].tolist()
        b, hd = self.weights.shape[:2]
        row = self.weights.new_zeros(b, hd, self.n + 1)
        row.index_add_(2, self.key_index[blk], self.weights[:, :, blk, i])
        return row[..., : self.n]


def dense_weights(bw: BlockedWeights) -> torch.Tensor:
    """Expand blocked weights to (B, heads, N, N) (rows = queries in raster order). Visualisation/tests only."""
    b, hd, nb, nq, nm = bw.weights.shape
    n = bw.n
    out = bw.weights.new_zeros(b, hd, (n + 1) * (n + 1))
    flat = (bw.query_index[:, :, None] * (n + 1) + bw.key_index[:, None, :]).reshape(-1)
    out.index_add_(2, flat.to(out.device), bw.weights.reshape(b, hd, -1))
    return out.view(b, hd, n + 1, n + 1)[:, :, :n, :n]


def local_attention(q, k, v, h, w, c, pattern, return_weights=False):
    """Masked attention of ``pattern`` over an (h, w, c) image. q, k, v: (B, heads, N, d), raster order.

    Returns out (B, heads, N, d), or (out, BlockedWeights) with ``return_weights=True``."""
    _check_shape(h, w, c)
    n = h * w * c
    if q.shape[-2] != n or k.shape[-2] != n or v.shape[-2] != n:
        raise ValueError(f"expected {n} positions for a {h}x{w}x{c} image, got {q.shape[-2]}")
    if pattern.kind == "full" and not return_weights:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    idx = block_index(h, w, c, pattern)
    dev = q.device
    qi, ki, mask = idx.query_index.to(dev), idx.key_index.to(dev), idx.mask.to(dev)
    pad = (0, 0, 0, 1)  # one zero row at index N for padding entries

    def gather(x, index):  # (B, H, N, d) -> (B, H, nb, len, d)
        x = F.pad(x, pad)
        return x.index_select(2, index.reshape(-1)).unflatten(2, index.shape)

    qb, kb, vb = gather(q, qi), gather(k, ki), gather(v, ki)  # (B, H, nb, Q|M, d)
    if not return_weights:
        # fused kernel: same masked softmax, without materialising the weights for backward
        outb = F.scaled_dot_product_attention(qb, kb, vb, attn_mask=mask)
        return outb.flatten(2, 3).index_select(2, idx.inverse.to(dev))
    scores = (qb * q.shape[-1] ** -0.5) @ kb.transpose(-1, -2)  # (B, H, nb, Q, M)
    weights = scores.masked_fill(~mask, float("-inf")).softmax(-1)
    outb = weights @ vb  # (B, H, nb, Q, d)
    out = outb.flatten(2, 3).index_select(2, idx.inverse.to(dev))
    return out, BlockedWeights(weights, idx.query_index, idx.key_index, n)
