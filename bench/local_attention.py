"""Blocked local 1D / 2D attention vs dense masked SDPA: time and peak memory, side by side in one run.

    python bench/local_attention.py [--repeats 3] [--heads 2] [--dim 64] [--threads 1] [--device cpu]

For each image size the same random q, k, v (batch 1) go through
- ``local_attention`` (blocked: each query block is scored against its memory block only), and
- ``F.scaled_dot_product_attention`` with the pattern's dense (N, N) boolean mask,
for the local 1D and local 2D patterns of the shipped Image Transformers. Times are the median of
``--repeats`` runs after a warm-up. Peak memory is the largest amount of memory allocated through PyTorch's
allocator during one call, above what was live before it (inputs, the cached block index and the dense mask
are built beforehand and not counted; the mask's own size is printed). On CPU it is read from
torch.profiler's memory events (profile_memory=True); allocations outside PyTorch's allocator (e.g. oneDNN
scratch) are not seen. On CUDA it is torch.cuda.max_memory_allocated. Ratios are dense / blocked.
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from attn_models.layers.cost import (  # noqa: E402
    dense_masked_sdpa,
    human_bytes,
    median_seconds,
    peak_allocated_bytes,
    random_qkv,
)
from attn_models.layers.local_attention import AttentionPattern, attention_mask, local_attention  # noqa: E402

SIZES = [(28, 28, 1), (32, 32, 3), (64, 64, 3)]
# The patterns of the shipped models (attn_models.image_transformer.model defaults).
PATTERNS = {
    "local1d": AttentionPattern("local1d", query_len=56, memory_len=112),
    "local2d": AttentionPattern("local2d", block_h=4, block_w=14, flange_h=4, flange_w=7),
}


@torch.inference_mode()
def row(h, w, c, name, pattern, q, k, v, repeats, dev) -> str:
    n = h * w * c
    blocked = partial(local_attention, q, k, v, h, w, c, pattern)
    out_b = blocked()  # builds and caches the block index before anything is measured
    mask = attention_mask(h, w, c, pattern).to(dev)
    dense = partial(dense_masked_sdpa, q, k, v, mask)
    tb = median_seconds(blocked, repeats, dev)
    td = median_seconds(dense, repeats, dev)
    mb = peak_allocated_bytes(blocked, dev)
    md = peak_allocated_bytes(dense, dev)
    diff = (dense() - out_b).abs().max().item()
    return (f"{f'{h}x{w}x{c}':>9} {n:>6} {name:>8} | {tb * 1e3:>10.2f} {td * 1e3:>10.2f} {td / tb:>7.1f} | "
            f"{human_bytes(mb):>12} {human_bytes(md):>11} {md / mb:>7.1f} | "
            f"{human_bytes(mask.numel() * mask.element_size()):>10} {diff:>9.1e}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--heads", type=int, default=2)
    p.add_argument("--dim", type=int, default=64, help="head dimension")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: steadier on a shared machine)")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    print(f"torch {torch.__version__}, device {dev}, {args.threads} CPU thread(s), {platform.processor() or ''}")
    print(f"batch 1, {args.heads} heads, head dim {args.dim}, median of {args.repeats}; ratios = dense / blocked\n")
    header = (f"{'image':>9} {'N':>6} {'pattern':>8} | {'blocked ms':>10} {'dense ms':>10} {'time x':>7} | "
              f"{'blocked peak':>12} {'dense peak':>11} {'mem x':>7} | {'dense mask':>10} {'max|diff|':>9}")
    print(header)
    print("-" * len(header))
    t_start = time.time()
    for h, w, c in SIZES:
        q, k, v = random_qkv(h * w * c, args.heads, args.dim, device=dev)
        for name, pattern in PATTERNS.items():
            print(row(h, w, c, name, pattern, q, k, v, args.repeats, dev), flush=True)
    print(f"\ntotal {time.time() - t_start:.0f} s")


if __name__ == "__main__":
    main()
