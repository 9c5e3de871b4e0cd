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

import numpy as np
import torch
import torch.nn.functional as F

from attn_models.layers.local_attention import block_index

from attn_models.image_transformer.model import draw, uniform_draws


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
        idx = block_index(h, w, c, model.pattern)
        self.slot_of, self.size = cache_slots(h, w, c, model.pattern)
        # visible[p] = which cache slots raster position p may attend to (its window's visible keys, mapped to
        # their slots; distinct live positions have distinct slots, see the module docstring).
        n = h * w * c
        blk, i = idx.inverse // idx.query_index.shape[1], idx.inverse % idx.query_index.shape[1]
        key_slots = self.slot_of[idx.key_index][blk]  # (N, M)
        self.visible = torch.zeros(n, self.size + 1, dtype=torch.bool)
        self.visible.scatter_(1, torch.where(idx.mask[blk, i], key_slots, self.size), True)
        self.visible[:, self.size] = False  # the dummy slot

    def _draws(self, n: int, seed: int) -> torch.Tensor:
        return torch.from_numpy(np.stack([uniform_draws(seed, k, self.m.num_positions) for k in range(n)]))

    @torch.inference_mode()
    def stream(self, n, labels, temperature, seed, prefix, known, every, trace: list | None = None):
        """Yield (images, done) as ``ImageTransformer.sample_stream`` documents. ``trace``, if a list, receives
        the (n, 256) log-probabilities (before temperature) of every step, for tests."""
        m, dev = self.m, self.m.device
        H, W, C = m.image_shape
        N, heads = m.num_positions, m.num_heads
        dh = m.d_model // heads
        caches = [(torch.zeros(n, heads, self.size + 1, dh, device=dev),
                   torch.zeros(n, heads, self.size + 1, dh, device=dev)) for _ in m.layers]
        u = self._draws(n, seed)  # (n, N) float64, one per generation step
        image = torch.zeros(n, N, dtype=torch.long, device=dev)
        done = torch.zeros(N, dtype=torch.bool)
        r = torch.arange(N, device=dev)
        # everything that does not depend on sampled values, for all positions at once: (N, d) [+ (n, 1, d)]
        context = m.position_embedding(r)[None] + (m.class_emb(labels.to(dev))[:, None] if m.class_emb else 0.0)
        context = context.expand(n, N, -1)
        tok_w, chan_of = m.tok_emb.weight, m.chan_of.tolist()
        visible = self.visible.to(dev)
        slot_of = self.slot_of.tolist()
        prefix = None if prefix is None else prefix.to(dev)
        known = None if known is None else known.to(dev)
        order = m.order.tolist()
        d = m.d_model
        for t, p in enumerate(order):
            if t == 0:
                x = m.start + context[:, p]
            else:
                prev = order[t - 1]
                x = tok_w[chan_of[prev] * 256 + image[:, prev]] + context[:, p]  # (n, d)
            vis, write = visible[p, None], slot_of[p]  # (1, S + 1): one query row
            for layer, (kc, vc) in zip(m.layers, caches, strict=True):
                a1 = layer.norm1
                qkv = F.linear(F.layer_norm(x, (d,), a1.weight, a1.bias, a1.eps), layer.attn.qkv.weight,
                               layer.attn.qkv.bias).view(n, 3, heads, dh)
                kc[:, :, write] = qkv[:, 1]
                vc[:, :, write] = qkv[:, 2]
                a = F.scaled_dot_product_attention(qkv[:, 0, :, None], kc, vc, attn_mask=vis)  # (n, heads, 1, dh)
                x = x + F.linear(a.view(n, d), layer.attn.out.weight, layer.attn.out.bias)
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
