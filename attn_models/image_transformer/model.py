"""Image Transformer (Parmar et al. 2018): a decoder-only transformer over the channels of the pixels.

Faithful points (paper sec. 3):
- every channel of every pixel is its own position, channels interleaved along the width: an (H, W, C)
  image is a grid of (H, W*C) positions, generated in raster order (local 1D, full) or block-raster order
  (local 2D), see ``attn_models.layers.local_attention``;
- input = a channel-specific embedding of the 256 intensities of the *previous* position in generation order
  (the sequence shifted right, a learned start vector first), plus learned embeddings of the current
  position's row, column and channel, plus an optional class embedding (class-conditional generation);
- pre-norm transformer layers (layer norm -> masked local self-attention / ReLU feed-forward -> dropout ->
  residual, tensor2tensor's "n" / "da" pre/post-processing), final layer norm, a 256-way softmax per position.
Deviations: learned rather than sinusoidal position embeddings (the paper reports trying both); no
discretized-logistic output (the paper's categorical output is used, as the issue asks).

Incremental decoding (the paper's sampling, sec. 4; its code re-runs the model, we cache keys/values): every
module has a one-position ``step`` (``LocalSelfAttention.step``, ``Layer.step``, ``ImageTransformer.step``)
that computes exactly what the teacher-forced ``forward`` computes for that position, given a ``KVCache``
holding the earlier positions' keys/values. ``sampler.py`` owns the cache slot layout and the loop; it imports
nothing from this module (this module imports it for ``sample_stream``).

This module holds the teacher-forced model and the public API (``sample``, ``sample_stream``, ``logits``,
``bits_per_dim``, ``query_attention``, ``preprocess``, ``prefix_mask``).
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin

from attn_models.data.images import to_fashion_mnist_style
from attn_models.image_transformer.sampler import MAX_SAMPLES, CachedSampler, check_draw_args
from attn_models.layers.local_attention import (
    AttentionPattern,
    BlockedWeights,
    generation_order,
    generation_rank,
    local_attention,
)

__all__ = ["MAX_SAMPLES", "ImageTransformer", "KVCache", "Layer", "LocalSelfAttention", "SamplingArgs"]


@dataclass
class KVCache:
    """One layer's key/value cache for incremental decoding, and the position being decoded now.

    ``step`` writes the new position's key/value into slot ``write`` and attends over the slots where
    ``visible`` is True (its own slot included). Which slot a position uses and which slots it may see is the
    caller's business (``sampler.CachedSampler`` maps the local 1D / 2D windows onto a bounded ring of slots)."""

    keys: torch.Tensor  # (B, heads, S, d_head), written in place
    values: torch.Tensor  # (B, heads, S, d_head), written in place
    write: int = 0  # slot that receives the new position's key and value
    visible: torch.Tensor | None = None  # bool (S,): slots the new position attends to (the same for the batch)


class SamplingArgs(NamedTuple):
    """Checked ``sample`` arguments, as ``sampler.CachedSampler.stream`` takes them."""

    temperature: float
    labels: torch.Tensor | None  # (n,) int64, None for an unconditional model
    prefix: torch.Tensor | None  # (n, N) int64 in raster order
    known: torch.Tensor | None  # (n, N) bool in raster order, a prefix in generation order


class LocalSelfAttention(nn.Module):
    """Multi-head masked self-attention over a local 1D / local 2D / full window (paper sec. 3.2, Fig. 2).
    Deviation: no dropout on the attention weights (tensor2tensor has it); ``dropout`` is only stored, and
    ``Layer`` applies dropout to the residual branches."""

    def __init__(self, d_model: int, heads: int, dropout: float):
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by heads ({heads})")
        self.heads = heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.dropout = dropout

    def split(self, x: torch.Tensor):  # (..., d) -> 3 x (..., heads, d/heads)
        return self.qkv(x).unflatten(-1, (3, self.heads, -1)).unbind(-3)

    def forward(self, x, shape, pattern, return_weights=False):
        q, k, v = (t.transpose(1, 2) for t in self.split(x))  # (B, heads, N, dh)
        res = local_attention(q, k, v, *shape, pattern, return_weights=return_weights)
        out, weights = res if return_weights else (res, None)
        return self.out(out.transpose(1, 2).flatten(2)), weights

    def new_cache(self, batch: int, slots: int, device=None) -> KVCache:
        """An all-zero cache of ``slots`` slots (zero keys/values: a dummy slot that is never visible is safe)."""
        shape = (batch, self.heads, slots, self.qkv.out_features // (3 * self.heads))
        w = self.qkv.weight
        return KVCache(torch.zeros(shape, dtype=w.dtype, device=device if device is not None else w.device),
                       torch.zeros(shape, dtype=w.dtype, device=device if device is not None else w.device))

    def step(self, x: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """One position: x (B, d) -> (B, d), the ``forward`` output at that position, given the earlier positions'
        keys/values in ``cache``; writes this position's key/value into ``cache.write`` first (a query sees
        its own key, as in the teacher-forced mask)."""
        if cache.visible is None:
            raise ValueError("cache.visible is not set: point the cache at a position first")
        b, d = x.shape
        q, k, v = self.qkv(x).view(b, 3, self.heads, d // self.heads).unbind(1)  # 3 x (B, heads, dh)
        cache.keys[:, :, cache.write] = k
        cache.values[:, :, cache.write] = v
        a = F.scaled_dot_product_attention(q[:, :, None], cache.keys, cache.values,
                                           attn_mask=cache.visible.view(1, -1))  # (B, heads, 1, dh)
        return self.out(a.view(b, d))


class Layer(nn.Module):
    """A pre-norm transformer layer (tensor2tensor's "n" / "da" pre/post-processing, paper sec. 3)."""

    def __init__(self, d_model: int, heads: int, ffn: int, dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.attn = LocalSelfAttention(d_model, heads, dropout)
        self.norm2 = nn.LayerNorm(d_model)
        self.ffn = nn.Sequential(nn.Linear(d_model, ffn), nn.ReLU(), nn.Linear(ffn, d_model))
        self.drop = nn.Dropout(dropout)

    def forward(self, x, shape, pattern, return_weights=False):
        a, weights = self.attn(self.norm1(x), shape, pattern, return_weights)
        x = x + self.drop(a)
        x = x + self.drop(self.ffn(self.norm2(x)))
        return x, weights

    def new_cache(self, batch: int, slots: int, device=None) -> KVCache:
        return self.attn.new_cache(batch, slots, device)

    def step(self, x: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """One position: x (B, d) -> (B, d), see ``LocalSelfAttention.step``. For decoding: no dropout, i.e.
        ``forward`` in eval mode."""
        x = x + self.attn.step(self.norm1(x), cache)
        return x + self.ffn(self.norm2(x))


class ImageTransformer(nn.Module, PyTorchModelHubMixin):
    """Constructor kwargs are the JSON config (``save_pretrained`` writes them to config.json)."""

    def __init__(self, image_size: int | list = 28, channels: int = 1, num_classes: int = 10,
                 d_model: int = 128, heads: int = 4, layers: int = 4, ffn: int = 512, dropout: float = 0.0,
                 attention: str = "local1d", query_len: int = 56, memory_len: int = 112,
                 block_h: int = 4, block_w: int = 14, flange_h: int = 4, flange_w: int = 7):
        super().__init__()
        hw = [image_size, image_size] if isinstance(image_size, int) else list(image_size)
        if len(hw) != 2 or min(hw) < 1 or channels < 1 or num_classes < 0:
            raise ValueError(f"bad image shape {image_size!r} x {channels} or num_classes {num_classes}")
        self.H, self.W, self.C = int(hw[0]), int(hw[1]), int(channels)
        self.num_classes = int(num_classes)
        self._pattern = AttentionPattern(attention, query_len, memory_len, block_h, block_w, flange_h, flange_w)
        self.d_model = d_model
        n = self.H * self.W * self.C
        self.tok_emb = nn.Embedding(self.C * 256, d_model)  # channel-specific intensity embeddings
        self.start = nn.Parameter(torch.zeros(d_model))
        self.row_emb = nn.Embedding(self.H, d_model)
        self.col_emb = nn.Embedding(self.W, d_model)
        self.chan_emb = nn.Embedding(self.C, d_model)
        self.class_emb = nn.Embedding(self.num_classes, d_model) if self.num_classes else None
        self.layers = nn.ModuleList(Layer(d_model, heads, ffn, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, 256)
        self.drop = nn.Dropout(dropout)
        for emb in (self.tok_emb, self.row_emb, self.col_emb, self.chan_emb, self.class_emb):
            if emb is not None:
                nn.init.normal_(emb.weight, std=0.02)
        # Raster bookkeeping (not parameters, not saved): channel and position of every raster index,
        # and the raster index of the previous position in generation order (N = start token).
        r = torch.arange(n)
        order = generation_order(self.H, self.W, self.C, self._pattern)
        rank = generation_rank(self.H, self.W, self.C, self._pattern)
        prev = torch.where(rank > 0, order[(rank - 1).clamp(min=0)], n)
        self.register_buffer("chan_of", r % self.C, persistent=False)
        self.register_buffer("row_of", r // (self.W * self.C), persistent=False)
        self.register_buffer("col_of", (r // self.C) % self.W, persistent=False)
        self.register_buffer("order", order, persistent=False)
        self.register_buffer("prev_of", prev, persistent=False)

    # ----- the small API the demo reads -----
    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.H, self.W, self.C

    @property
    def pattern(self) -> AttentionPattern:
        return self._pattern

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def num_heads(self) -> int:
        return self.layers[0].attn.heads

    @property
    def class_conditional(self) -> bool:
        return self.num_classes > 0

    @property
    def num_positions(self) -> int:
        return self.H * self.W * self.C

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    # ----- inputs from the outside world -----
    def preprocess(self, image) -> tuple[np.ndarray, str]:
        """Any picture (PIL image or numpy array) -> (uint8 (H, W, C) at the model's size and channels, a note of
        what changed, "" if nothing did). Not part of the paper: it makes arbitrary uploads usable as
        ``sample(prefix=...)``. See ``attn_models.data.images.to_fashion_mnist_style`` for the rules."""
        return to_fashion_mnist_style(image, self.image_shape)

    def prefix_mask(self, rows: int) -> np.ndarray:
        """bool (H, W, C): the longest prefix in generation order that lies inside the first ``rows`` rows
        (those rows whole for raster order; for local 2D, which generates block by block, whole block rows plus
        the leading blocks of the cut block row that fit). A valid ``known`` for ``sample``."""
        if isinstance(rows, bool) or not isinstance(rows, (int, np.integer)) or not 0 <= rows <= self.H:
            raise ValueError(f"rows must be an integer in [0, {self.H}], got {rows!r}")
        h, w, c = self.image_shape
        rank = generation_rank(h, w, c, self._pattern).numpy().reshape(h, w * c)  # (H, W*C)
        cut = rank[rows:].min() if rows < h else rank.size  # first generation step outside the rows
        return (rank < cut).reshape(h, w, c)

    # ----- teacher-forced forward -----
    def position_embedding(self, raster: torch.Tensor) -> torch.Tensor:
        rows, cols, chans = self.row_of[raster], self.col_of[raster], self.chan_of[raster]
        return self.row_emb(rows) + self.col_emb(cols) + self.chan_emb(chans)

    def token_embedding(self, raster: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """Embedding of intensity ``values`` (B, ...) at raster positions ``raster`` (...)."""
        return self.tok_emb(self.chan_of[raster] * 256 + values)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None, weights_layer: int | None = None):
        """x: (B, N) int64 intensities in raster order -> logits (B, N, 256) [, BlockedWeights of a layer]."""
        b, n = x.shape
        r = torch.arange(n, device=x.device)
        tok = self.token_embedding(r, x)  # (B, N, d)
        tok = torch.cat([tok, self.start.expand(b, 1, -1)], 1)  # index N = start
        h = tok[:, self.prev_of] + self.position_embedding(r)  # shifted right in generation order
        if self.class_emb is not None:
            h = h + self.class_emb(labels)[:, None]
        h = self.drop(h)
        weights = None
        for i, layer in enumerate(self.layers):
            want = weights_layer is not None and i == weights_layer % len(self.layers)
            h, w = layer(h, self.image_shape, self._pattern, return_weights=want)
            weights = w if want else weights
        logits = self.output_logits(h)
        return (logits, weights) if weights_layer is not None else logits

    def output_logits(self, h: torch.Tensor) -> torch.Tensor:
        """Final layer norm and 256-way output: h (..., d) -> logits (..., 256)."""
        return self.head(self.norm(h))

    # ----- incremental decoding, one position at a time (what ``forward`` computes, position by position) -----
    def step_context(self, labels: torch.Tensor | None = None) -> torch.Tensor:
        """The part of every position's input that does not depend on the image: position embeddings plus the
        class embedding, (1 or B, N, d) in raster order."""
        r = torch.arange(self.num_positions, device=self.device)
        return self.position_embedding(r)[None] + (self.class_emb(labels)[:, None] if self.class_emb is not None
                                                   else 0.0)

    def step_input(self, context: torch.Tensor, prev: int | None = None,
                   prev_values: torch.Tensor | None = None) -> torch.Tensor:
        """Input (B, d) of one position: its ``context`` (B, d) (a slice of ``step_context``) plus the embedding
        of ``prev_values`` (B,), the intensities at raster position ``prev`` generated just before it, or the
        start vector for the first position (``prev`` None)."""
        if prev is None:
            return self.start + context
        return self.token_embedding(prev, prev_values) + context

    def step(self, x: torch.Tensor, caches: list[KVCache]) -> torch.Tensor:
        """One position through every layer and the output: x (B, d) from ``step_input`` -> logits (B, 256).
        ``caches``: one per layer, all pointed at this position (``sampler.CachedSampler.seek``)."""
        for layer, cache in zip(self.layers, caches, strict=True):
            x = layer.step(x, cache)
        return self.output_logits(x)

    # ----- input validation -----
    def _check_images(self, images, name="images") -> torch.Tensor:
        arr = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
        if arr.dtype != np.uint8:
            raise ValueError(f"{name} must be uint8, got {arr.dtype}")
        if arr.ndim == 3 and self.C == 1 and arr.shape == (arr.shape[0], self.H, self.W):
            arr = arr[..., None]
        if arr.ndim != 4 or arr.shape[1:] != self.image_shape:
            raise ValueError(f"{name} must have shape (N, {self.H}, {self.W}, {self.C}), got {arr.shape}")
        return torch.from_numpy(arr.astype(np.int64)).reshape(arr.shape[0], -1)  # astype copies: writable

    def _check_labels(self, labels, n: int) -> torch.Tensor | None:
        if not self.class_conditional:
            if labels is not None:
                raise ValueError("this model is unconditional: labels must be None")
            return None
        if labels is None:
            return torch.arange(n) % self.num_classes  # one of each class, cycling
        arr = np.asarray(labels)
        if arr.ndim == 0:
            arr = np.full(n, arr)
        if arr.ndim != 1 or len(arr) != n or not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"labels must be an int or {n} ints, got {labels!r}")
        if arr.min() < 0 or arr.max() >= self.num_classes:
            raise ValueError(f"labels must be in [0, {self.num_classes}), got {arr.tolist()}")
        return torch.from_numpy(arr.astype(np.int64))

    # ----- public API -----
    @torch.no_grad()
    def logits(self, images, labels=None, batch_size: int = 64) -> torch.Tensor:
        """Teacher-forced logits: images uint8 (N, H, W, C) -> (N, H, W, C, 256) float32."""
        x = self._check_images(images)
        y = self._check_labels(labels, len(x))
        out = []
        for s in range(0, len(x), batch_size):
            yb = None if y is None else y[s:s + batch_size].to(self.device)
            out.append(self(x[s:s + batch_size].to(self.device), yb).float().cpu())
        return torch.cat(out).view(len(x), self.H, self.W, self.C, 256)

    @torch.no_grad()
    def bits_per_dim(self, images, labels=None, batch_size: int = 64) -> float:
        """Mean negative log2-likelihood per sub-pixel (channel position) over the images."""
        x = self._check_images(images)
        y = self._check_labels(labels, len(x))
        total = 0.0
        for s in range(0, len(x), batch_size):
            xb = x[s:s + batch_size].to(self.device)
            yb = None if y is None else y[s:s + batch_size].to(self.device)
            nll = F.cross_entropy(self(xb, yb).flatten(0, 1).double(), xb.flatten(), reduction="sum")
            total += nll.item()
        return total / (x.numel() * math.log(2))

    def check_sampling_args(self, n, labels=None, temperature=1.0, seed=0, prefix=None,
                            known=None) -> SamplingArgs:
        """Validate ``sample``'s arguments (ValueError with a readable message) and convert them to tensors."""
        t = check_draw_args(n, temperature, seed)
        y = self._check_labels(labels, n)
        if (prefix is None) != (known is None):
            raise ValueError("prefix and known go together: give both or neither")
        if prefix is None:
            return SamplingArgs(t, y, None, None)
        prefix = np.asarray(prefix)
        if prefix.ndim == 3:
            prefix = np.broadcast_to(prefix, (n, *prefix.shape))
        px = self._check_images(prefix, "prefix")
        if len(px) != n:
            raise ValueError(f"prefix holds {len(px)} images for n={n}")
        known = np.asarray(known)
        if known.dtype != np.bool_:
            raise ValueError(f"known must be a boolean mask, got {known.dtype}")
        if known.shape == self.image_shape:
            known = np.broadcast_to(known, (n, *known.shape))
        if known.shape != (n, *self.image_shape):
            raise ValueError(f"known must have shape {self.image_shape} or ({n}, ...), got {known.shape}")
        kn = torch.from_numpy(np.array(known)).reshape(n, -1)  # a writable copy
        in_order = kn[:, self.order.cpu()]
        if (in_order[:, 1:] & ~in_order[:, :-1]).any():
            raise ValueError("known must be a prefix in generation order (all known pixels before all unknown)")
        return SamplingArgs(t, y, px, kn)

    def sample_stream(self, n: int, labels=None, temperature: float = 1.0, seed: int = 0, prefix=None,
                      known=None, every: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (images uint8 (n, H, W, C), done bool (H, W, C)) every ``every`` generated positions (default:
        one query block for local 2D, one image row otherwise) and once at the end with the finished images,
        equal to ``sample`` with the same arguments. Positions not generated yet are 0."""
        t, y, px, kn = self.check_sampling_args(n, labels, temperature, seed, prefix, known)
        if every is None:
            p = self._pattern
            every = p.block_h * p.block_w if p.kind == "local2d" else self.W * self.C
        if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
            raise ValueError(f"every must be an integer >= 1, got {every!r}")
        return CachedSampler(self).stream(n, y, t, seed, px, kn, every)  # arguments checked now, not lazily

    def sample(self, n: int, labels=None, temperature: float = 1.0, seed: int = 0, prefix=None,
               known=None) -> np.ndarray:
        """uint8 (n, H, W, C). Image k depends only on (seed, k, labels[k], prefix[k], known[k])."""
        *_, (images, _done) = self.sample_stream(n, labels, temperature, seed, prefix, known,
                                                 every=self.num_positions)
        return images

    @torch.no_grad()
    def query_attention(self, image, label: int | None, row: int, col: int, channel: int = 0,
                        layer: int = -1) -> np.ndarray:
        """float32 (heads, H, W*C): the real attention weights of query (row, col, channel), teacher-forced on
        ``image``, over the key positions of the (H, W*C) grid (zeros where not visible; each head sums to 1).
        The key at a position carries the embedding of the position generated just before it (shifted input)."""
        img = np.asarray(image)
        if img.ndim == 2 and self.C == 1:
            img = img[..., None]
        x = self._check_images(img[None], "image")
        for name, v, hi in (("row", row, self.H), ("col", col, self.W), ("channel", channel, self.C),
                            ("layer", layer + self.num_layers if layer < 0 else layer, self.num_layers)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v < hi:
                raise ValueError(f"{name} out of range [0, {hi}): {v!r}")
        y = self._check_labels(None if label is None else [label], 1)
        _, bw = self(x.to(self.device), None if y is None else y.to(self.device), weights_layer=layer)
        bw: BlockedWeights
        q = (row * self.W + col) * self.C + channel
        return bw.query_row(q)[0].float().cpu().numpy().reshape(self.num_heads, self.H, self.W * self.C)
