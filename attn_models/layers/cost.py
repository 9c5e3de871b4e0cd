"""What a local attention pattern costs: exact counts from the pattern, and measurements of the real layer.

Counts (``pattern_cost``) follow the Image Transformer's argument (Parmar et al. 2018, sec. 3.2): a blocked
layer computes, for each query block of ``Q`` positions, scores against the ``M`` keys of its memory block
(the paper's ``l_m``, which contains the query block), so the work is ``N * M * d`` instead of full
attention's ``N * N * d``. Positions a query *may* attend (after the causal mask) are counted exactly from the
same index maps the layer uses.

Measurements (``measure_layer``) time ``local_attention`` against dense masked SDPA on random inputs and
record the peak bytes allocated through PyTorch's CPU allocator during the call, read from the memory events
of ``torch.profiler`` (``profile_memory=True``; the exported trace's ``[memory]`` events carry each
allocation's size). Buffers a kernel takes from outside PyTorch's allocator (e.g. oneDNN scratch) are not
seen; on CUDA ``torch.cuda.max_memory_allocated`` is used instead.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from attn_models.layers.local_attention import (
    AttentionPattern,
    attention_mask,
    block_index,
    generation_rank,
    local_attention,
)

BYTES_PER_SCORE = 4  # float32 attention scores


def _check_shape(h: int, w: int, c: int) -> None:
    for name, v in (("height", h), ("width", w), ("channels", c)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"image {name} must be an integer >= 1, got {v!r}")


@dataclass(frozen=True)
class PatternCost:
    h: int
    w: int
    c: int
    kind: str
    positions: int            # N = h*w*c
    query_block: int          # Q: positions per query block (N for full)
    memory_block: int         # M: keys each query block is scored against (the paper's l_m; N for full)
    num_blocks: int
    attended_mean: float      # positions a query may attend after the causal mask, mean over queries
    attended_max: int
    score_entries: int        # entries of the attention matrix the layer computes (padding included)
    full_score_entries: int   # N*N: dense full attention
    head_dim: int

    @property
    def flops(self) -> int:
        """Multiply-adds x2 per head for QK^T and weights@V: 4*d per computed score entry."""
        return 4 * self.head_dim * self.score_entries

    @property
    def full_flops(self) -> int:
        return 4 * self.head_dim * self.full_score_entries

    @property
    def flops_ratio(self) -> float:
        return self.flops / self.full_flops

    @property
    def matrix_bytes(self) -> int:
        return BYTES_PER_SCORE * self.score_entries

    @property
    def full_matrix_bytes(self) -> int:
        return BYTES_PER_SCORE * self.full_score_entries


def attended_counts(h: int, w: int, c: int, pattern: AttentionPattern) -> np.ndarray:
    """(N,) int64: how many positions each raster query may attend (itself included)."""
    _check_shape(h, w, c)
    if pattern.kind == "full":
        # Every earlier position in generation order; counted without building the N x N mask.
        return generation_rank(h, w, c, pattern).numpy() + 1
    idx = block_index(h, w, c, pattern)
    n = h * w * c
    per_slot = idx.mask.sum(-1).reshape(-1)  # (nblocks*Q,)
    return per_slot[idx.inverse].numpy().astype(np.int64) if n else np.zeros(0, np.int64)


def pattern_cost(h: int, w: int, c: int, pattern: AttentionPattern, head_dim: int = 64) -> PatternCost:
    """Exact counts for ``pattern`` on an (h, w, c) image; raises ValueError on bad sizes."""
    _check_shape(h, w, c)
    if isinstance(head_dim, bool) or not isinstance(head_dim, (int, np.integer)) or head_dim < 1:
        raise ValueError(f"head_dim must be an integer >= 1, got {head_dim!r}")
    n = h * w * c
    counts = attended_counts(h, w, c, pattern)
    if pattern.kind == "full":
        nb, q, m = 1, n, n
    else:
        idx = block_index(h, w, c, pattern)
        nb, q = idx.query_index.shape
        m = idx.key_index.shape[1]
    return PatternCost(
        h=h, w=w, c=c, kind=pattern.kind, positions=n, query_block=q, memory_block=m, num_blocks=nb,
        attended_mean=float(counts.mean()), attended_max=int(counts.max()),
        score_entries=nb * q * m, full_score_entries=n * n, head_dim=int(head_dim),
    )


# ---------------------------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------------------------

_profiler_lock = threading.Lock()  # one torch.profiler per process at a time


def peak_allocated_bytes(fn: Callable[[], object], device: torch.device | str = "cpu") -> int:
    """Peak bytes allocated through PyTorch's allocator while ``fn()`` runs, above what was live before."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base
    from torch.profiler import ProfilerActivity, profile

    with _profiler_lock:
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            fn()
        fd, path = tempfile.mkstemp(suffix=".json")
        os.close(fd)
        try:
            prof.export_chrome_trace(path)
            with open(path) as f:
                events = json.load(f)["traceEvents"]
        finally:
            os.unlink(path)
    deltas = sorted((e["ts"], e["args"]["Bytes"]) for e in events
                    if e.get("name") == "[memory]" and e.get("args", {}).get("Device Type", 0) == 0)
    live = peak = 0
    for _, b in deltas:
        live += b
        peak = max(peak, live)
    return peak


def median_seconds(fn: Callable[[], object], repeats: int = 3, device: torch.device | str = "cpu") -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs after one warm-up run."""
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


@dataclass(frozen=True)
class LayerMeasurement:
    local_seconds: float
    local_peak_bytes: int
    dense_seconds: float | None   # None: skipped (too large)
    dense_peak_bytes: int | None
    dense_mask_bytes: int          # the (N, N) bool mask dense attention needs (built before timing)
    max_abs_diff: float | None     # local vs dense outputs, a check that both computed the same thing


def random_qkv(n: int, heads: int, head_dim: int, batch: int = 1, seed: int = 0, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, heads, n, head_dim, generator=g).to(device) for _ in range(3)]


def dense_masked_sdpa(q, k, v, mask):
    """Dense baseline: PyTorch's SDPA with the (N, N) boolean mask of the pattern."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def measure_layer(h: int, w: int, c: int, pattern: AttentionPattern, head_dim: int = 64, heads: int = 1,
                  repeats: int = 3, dense_limit: int = 4096, device="cpu", measure_memory: bool = True
                  ) -> LayerMeasurement:
    """Time (and peak memory of) the blocked layer and dense masked SDPA on the same random inputs.

    Dense is skipped when N > ``dense_limit`` (its N x N matrix would dominate a shared machine)."""
    _check_shape(h, w, c)
    n = h * w * c
    q, k, v = random_qkv(n, heads, head_dim, device=device)
    with torch.inference_mode():
        def run_local():
            return local_attention(q, k, v, h, w, c, pattern)

        local_out = run_local()  # also builds and caches the block index outside the measurement
        local_s = median_seconds(run_local, repeats, device)
        local_peak = peak_allocated_bytes(run_local, device) if measure_memory else 0
        if n > dense_limit:
            return LayerMeasurement(local_s, local_peak, None, None, n * n, None)
        mask = attention_mask(h, w, c, pattern).to(device)

        def run_dense():
            return dense_masked_sdpa(q, k, v, mask)

        dense_s = median_seconds(run_dense, repeats, device)
        dense_peak = peak_allocated_bytes(run_dense, device) if measure_memory else None
        diff = float((run_dense() - local_out).abs().max())
    return LayerMeasurement(local_s, local_peak, dense_s, dense_peak, n * n, diff)


def human_bytes(b: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(b) < 1024 or unit == "TiB":
            return f"{b:.0f} {unit}" if unit == "B" else f"{b:.1f} {unit}"
        b /= 1024
    return f"{b} B"  # unreachable


def human_count(x: float) -> str:
    if x < 1e4:
        return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.1f}"
    exp = int(math.floor(math.log10(x)))
    return f"{x / 10 ** exp:.2f}e{exp}"
