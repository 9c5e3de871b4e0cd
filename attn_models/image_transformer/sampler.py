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

The per-position arithmetic is the model's own: ``ImageTransformer.step_input`` / ``Layer.step`` /
``ImageTransformer.step``; this module only owns the slot bookkeeping, the random draws and the loop.

``recompute_sample`` is the quadratic-time baseline of the reference implementations: run the whole
teacher-forced model on the canvas for every position.

Dependencies point one way: ``model`` imports this module (``sample_stream`` runs a ``CachedSampler``); this
module imports nothing from ``model`` and reads the model only through its public methods.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from attn_models.layers.local_attention import block_index

MAX_SAMPLES = 64


def check_draw_args(n, temperature, seed) -> float:
    """Validate the model-independent sampling arguments; returns the temperature as a float."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= MAX_SAMPLES:
        raise ValueError(f"n must be an integer in [1, {MAX_SAMPLES}], got {n!r}")
    try:
        t = float(temperature)
    except (TypeError, ValueError):
        raise ValueError(f"temperature must be a number, got {temperature!r}") from None
    if not math.isfinite(t) or t <= 0:
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    return t


def uniform_draws(seed: int, k: int, n_positions: int) -> np.ndarray:
    """The uniform numbers image k of a call with ``seed`` uses, one per generation step (float64).
    Per-image streams make image k independent of the batch size."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), int(k)]))).random(n_positions)


def batch_draws(seed: int, n: int, n_positions: int) -> torch.Tensor:
    """float64 (n, n_positions): ``uniform_draws`` of images 0..n-1."""
    return torch.from_numpy(np.stack([uniform_draws(seed, k, n_positions) for k in range(n)]))


def draw(logits: torch.Tensor, u: torch.Tensor, temperature: float) -> torch.Tensor:
    """Inverse-CDF sampling: logits (B, 256), u (B,) in [0, 1) -> (B,) int64. (Not in the paper, which does
    not say how it samples; a CDF lookup makes a sample a deterministic function of the seed's draws.)"""
    p = torch.softmax(logits.double() / temperature, -1)
    cdf = p.cumsum(-1)
    return torch.searchsorted(cdf, (u * cdf[:, -1])[:, None], right=True).squeeze(1).clamp(max=255)


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
    """Incremental decoding of an ``ImageTransformer`` (see the module docstring). ``new_caches`` and ``seek``
    are public so that tests can drive ``Layer.step`` with the very caches the sampler uses."""

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
        self.visible = torch.zeros(n, self.size + 1, dtype=torch.bool)  # (N, S + 1)
        self.visible.scatter_(1, torch.where(idx.mask[blk, i], key_slots, self.size), True)
        self.visible[:, self.size] = False  # the dummy slot
        self._slot_list = self.slot_of.tolist()  # python ints: indexing with them is cheaper per step
        self._visible_on = {}  # device -> the table there, copied once

    def new_caches(self, batch: int) -> list:
        """One empty ``KVCache`` per layer, with S + 1 slots (slot S: the never-visible dummy)."""
        return [layer.new_cache(batch, self.size + 1, self.m.device) for layer in self.m.layers]

    def seek(self, caches: list, p: int) -> None:
        """Point every layer's cache at raster position ``p``: its write slot and visible slots."""
        dev = caches[0].keys.device
        if dev not in self._visible_on:
            self._visible_on[dev] = self.visible.to(dev)
        visible, write = self._visible_on[dev][p], self._slot_list[p]  # (S + 1,) bool, one query row
        for cache in caches:
            cache.write, cache.visible = write, visible

    @torch.inference_mode()
    def stream(self, n, labels, temperature, seed, prefix, known, every, trace: list | None = None):
        """Yield (images, done) as ``ImageTransformer.sample_stream`` documents, from arguments already checked
        by ``ImageTransformer.check_sampling_args``. ``trace``, if a list, receives the (n, 256)
        log-probabilities (before temperature) of every step, for tests.

        ``known`` may be any mask here, not only a prefix in generation order (``completion.complete`` relies on
        it): where it is set the step writes ``prefix`` instead of its draw, and every later step reads that
        value through the shifted input and the cache, as it would read a sampled one."""
        m, dev = self.m, self.m.device
        H, W, C = m.image_shape
        N = m.num_positions
        caches = self.new_caches(n)
        u = batch_draws(seed, n, N).to(dev)  # (n, N) float64, one per generation step, beside the logits
        image = torch.zeros(n, N, dtype=torch.long, device=dev)  # raster order
        done = torch.zeros(N, dtype=torch.bool)
        # everything in the input that does not depend on sampled values, for all positions at once
        context = m.step_context(None if labels is None else labels.to(dev)).expand(n, N, -1)  # (n, N, d)
        prefix = None if prefix is None else prefix.to(dev)
        known = None if known is None else known.to(dev)
        order = m.order.tolist()
        for t, p in enumerate(order):
            prev = order[t - 1] if t else None
            x = m.step_input(context[:, p], prev, None if prev is None else image[:, prev])  # (n, d)
            self.seek(caches, p)
            logits = m.step(x, caches)  # (n, 256)
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
    """Baseline sampler without a cache: the full teacher-forced model is re-run for every position.
    Draws the same images as ``model.sample`` (same seeds), up to float rounding of the logits."""
    t, y, _, _ = model.check_sampling_args(n, labels, temperature, seed)
    dev = model.device
    N = model.num_positions
    u = batch_draws(seed, n, N).to(dev)  # (n, N) float64
    image = torch.zeros(n, N, dtype=torch.long, device=dev)  # raster order
    yd = None if y is None else y.to(dev)
    for step, p in enumerate(model.order.tolist()):
        logits = model(image, yd)[:, p]  # (n, 256)
        image[:, p] = draw(logits, u[:, step], t).to(dev)
    return image.view(n, *model.image_shape).to(torch.uint8).cpu().numpy()
