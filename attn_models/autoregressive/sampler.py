"""Incremental decoding of the Image Transformer with a key/value cache that only keeps what local attention can
still see.

Each generation step runs the model on one position: per layer it projects that position's query/key/value,
writes its key/value into a cache slot and attends over the slots of its block's window (the same window and
mask as the teacher-forced blocked attention, so the distributions are the same up to float rounding).

Cache slots (per layer, (B, heads, S + 1, d_head); slot S is an always-zero dummy for out-of-image keys):
- local 1D: slot = raster % (query_len + memory_len). A query in the block starting at s reads [s - lm, s + lq);
  the next writer of a slot is lm + lq positions later, i.e. past the end of the block, so nothing still
  visible is overwritten. S = lq + lm, independent of the image size.
- local 2D: slot = (row % (flange_h + block_h), col). A block row reads the rows [r0 - fh, r0 + qh); a slot is
  rewritten only by a row fh + qh further down, i.e. in a later block row. S = (fh + qh) * W * C: a band of
  rows, independent of the image height.
- full: every position stays visible, so S = N (this is what full attention costs).

``recompute_sample`` is the quadratic-time baseline of the reference implementations: run the whole
teacher-forced model on the canvas for every position.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from attn_models.layers.local_attention import block_index

from .model import draw, uniform_draws


def cache_slots(h: int, w: int, c: int, pattern) -> tuple[torch.Tensor, int]:
    """(slot of every raster position, plus slot S for padding at index N; S)."""
    n, wc = h * w * c, w * c
    r = torch.arange(n)
    if pattern.kind == "local1d":
        size = min(n, pattern.query_len + pattern.memory_len)
        slot = r % size
    elif pattern.kind == "local2d":
        rows = min(h, pattern.flange_h + pattern.block_h)
        size = rows * wc
        slot = (r // wc) % rows * wc + r % wc
    else:
        size, slot = n, r
    return torch.cat([slot, torch.tensor([size])]), size


class CachedSampler:
    def __init__(self, model):
        self.m = model
        h, w, c = model.image_shape
        self.idx = block_index(h, w, c, model.pattern)
        self.slot_of, self.size = cache_slots(h, w, c, model.pattern)
        self.key_slots = self.slot_of[self.idx.key_index]  # (nblocks, M)

    def _draws(self, n: int, seed: int) -> torch.Tensor:
        return torch.from_numpy(np.stack([uniform_draws(seed, k, self.m.num_positions) for k in range(n)]))

    @torch.no_grad()
    def stream(self, n, labels, temperature, seed, prefix, known, every, trace: list | None = None):
        """Yield (images, done) as ``ImageTransformer.sample_stream`` documents. ``trace``, if a list, receives
        the (n, 256) log-probabilities (before temperature) of every step, for tests."""
        m, dev = self.m, self.m.device
        H, W, C = m.image_shape
        N, nq = m.num_positions, self.idx.query_index.shape[1]
        dh = m.d_model // m.num_heads
        caches = [(torch.zeros(n, m.num_heads, self.size + 1, dh, device=dev),
                   torch.zeros(n, m.num_heads, self.size + 1, dh, device=dev)) for _ in m.layers]
        u = self._draws(n, seed)  # (n, N) float64, one per generation step
        image = torch.zeros(n, N, dtype=torch.long, device=dev)
        done = torch.zeros(N, dtype=torch.bool)
        cls = m.class_emb(labels.to(dev)) if m.class_emb is not None else 0.0
        order = m.order.tolist()
        inverse = self.idx.inverse.tolist()
        neg = torch.finfo(torch.float32).min
        prefix = None if prefix is None else prefix.to(dev)
        known = None if known is None else known.to(dev)
        for t, p in enumerate(order):
            p_t = torch.tensor([p], device=dev)
            if t == 0:
                x = m.start.expand(n, -1)
            else:
                prev = torch.tensor([order[t - 1]], device=dev)
                x = m.token_embedding(prev, image[:, prev])[:, 0]
            x = x + m.position_embedding(p_t) + cls  # (n, d)
            blk, i = divmod(inverse[p], nq)
            slots = self.key_slots[blk].to(dev)  # (M,)
            visible = self.idx.mask[blk, i].to(dev)  # (M,)
            write = self.slot_of[p].item()
            for layer, (kc, vc) in zip(m.layers, caches, strict=True):
                q, k, v = layer.attn.split(layer.norm1(x))  # (n, heads, dh)
                kc[:, :, write] = k
                vc[:, :, write] = v
                keys, vals = kc[:, :, slots], vc[:, :, slots]  # (n, heads, M, dh)
                scores = (keys @ q[..., None]).squeeze(-1) / math.sqrt(dh)  # (n, heads, M)
                a = (scores.masked_fill(~visible, neg).softmax(-1)[:, :, None] @ vals).squeeze(-2)
                x = x + layer.attn.out(a.flatten(1))
                x = x + layer.ffn(layer.norm2(x))
            logits = m.head(m.norm(x))  # (n, 256)
            if trace is not None:
                trace.append(torch.log_softmax(logits, -1).cpu())
            value = draw(logits, u[:, t], temperature).to(dev)
            if known is not None:
                value = torch.where(known[:, p], prefix[:, p], value)
            image[:, p] = value
            done[p] = True
            if (t + 1) % every == 0 or t == N - 1:
                yield (image.view(n, H, W, C).to(torch.uint8).cpu().numpy(), done.view(H, W, C).numpy().copy())


@torch.no_grad()
def recompute_sample(model, n: int, labels=None, temperature: float = 1.0, seed: int = 0) -> np.ndarray:
    """Baseline sampler without a cache: the full teacher-forced model is re-run for every position."""
    t, y, _, _ = model._check_sampling(n, labels, temperature, seed, None, None)
    dev = model.device
    N = model.num_positions
    u = torch.from_numpy(np.stack([uniform_draws(seed, k, N) for k in range(n)]))
    image = torch.zeros(n, N, dtype=torch.long, device=dev)
    yd = None if y is None else y.to(dev)
    for step, p in enumerate(model.order.tolist()):
        logits = model(image, yd)[:, p]
        image[:, p] = draw(logits, u[:, step], t).to(dev)
    return image.view(n, *model.image_shape).to(torch.uint8).cpu().numpy()
