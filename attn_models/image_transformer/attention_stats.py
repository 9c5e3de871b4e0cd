"""Every head of every layer at once: one query's weights as a layer x head grid (what BertViz's model view shows
for text), and per head the mean attention distance and entropy over a set of images.

The weights are the model's real teacher-forced ones (``ImageTransformer.forward(weights_layer=l)``, one
forward per layer, so the model module keeps returning one layer at a time and stays as it is).

Not in Parmar et al. (2018). Mean attention distance is the attention-weighted distance between a query and its
keys, averaged over queries (as in Dosovitskiy et al. 2021, Fig. 7, for ViT), here in pixels: the Euclidean
distance between the query's pixel and the key's pixel (channels of one pixel are 0 apart). Entropy is
-sum w log2 w of a query's weights, in bits; ``uniform_entropy`` is log2 of the number of keys the query may
attend, its largest possible value, for scale. Keys sit at the positions of the pattern; the value a key carries
is the one generated just before it (the input is shifted), as in ``ImageTransformer.query_attention``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from attn_models.layers.local_attention import BlockedWeights, block_index

__all__ = ["HeadStats", "head_stats", "layer_weights", "model_head_stats", "pixel_distances", "query_grid"]


def _inputs(model, images, labels):
    h, w, c = model.image_shape
    arr = np.asarray(images)
    if arr.dtype != np.uint8:
        raise ValueError(f"images must be uint8, got {arr.dtype}")
    if arr.ndim == 3 and c == 1 and arr.shape[1:] == (h, w):
        arr = arr[..., None]
    if arr.ndim != 4 or arr.shape[1:] != (h, w, c) or len(arr) == 0:
        raise ValueError(f"images must have shape (N >= 1, {h}, {w}, {c}), got {arr.shape}")
    # the model's own label rules (None -> one of each class, range checks), without sampling
    _, y, _, _ = model.check_sampling_args(len(arr), labels)
    x = torch.from_numpy(arr.astype(np.int64)).reshape(len(arr), -1).to(model.device)
    return x, None if y is None else y.to(model.device)


@torch.no_grad()
def layer_weights(model, images, labels=None) -> list[BlockedWeights]:
    """One ``BlockedWeights`` per layer, teacher-forced on ``images`` uint8 (n, H, W, C) (n <= sampling's limit)."""
    x, y = _inputs(model, images, labels)
    return [model(x, y, weights_layer=layer)[1] for layer in range(model.num_layers)]


def query_grid(model, image, label, row: int, col: int, channel: int = 0) -> np.ndarray:
    """float32 (layers, heads, H, W*C): the weights query (row, col, channel) gives every key, for every head of
    every layer, teacher-forced on ``image`` (H, W, C) (zeros where not visible; each head sums to 1).
    Layer ``l`` equals ``model.query_attention(image, label, row, col, channel, layer=l)``."""
    h, w, c = model.image_shape
    for name, v, hi in (("row", row, h), ("col", col, w), ("channel", channel, c)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v < hi:
            raise ValueError(f"{name} out of range [0, {hi}): {v!r}")
    img = np.asarray(image)
    img = img[None] if img.ndim == 3 or (img.ndim == 2 and c == 1) else img
    q = (row * w + col) * c + channel
    rows = [bw.query_row(q)[0].float().cpu().numpy() for bw in layer_weights(model, img, None if label is None
                                                                             else [label])]
    return np.stack(rows).reshape(model.num_layers, model.num_heads, h, w * c)


def pixel_distances(h: int, w: int, c: int, query_index: torch.Tensor, key_index: torch.Tensor) -> torch.Tensor:
    """float64 (..., Q, M): Euclidean pixel distance between each query and each key of the blocked layout
    (``query_index`` (..., Q), ``key_index`` (..., M), raster indices, N = padding, whose distances are 0)."""
    n = h * w * c

    def pixel(r):  # raster index -> (row, pixel column) as floats
        r = r.to(torch.float64)
        return torch.div(r, w * c, rounding_mode="floor"), torch.div(r % (w * c), c, rounding_mode="floor")

    qy, qx = pixel(query_index)
    ky, kx = pixel(key_index)
    d = torch.hypot(qy[..., :, None] - ky[..., None, :], qx[..., :, None] - kx[..., None, :])
    pad = (query_index[..., :, None] >= n) | (key_index[..., None, :] >= n)
    return d.masked_fill(pad, 0.0)


def head_stats(weights: torch.Tensor, distance: torch.Tensor, valid: torch.Tensor | None = None,
               allowed: torch.Tensor | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per head: (mean distance, mean entropy in bits, mean log2 of the attended-key count) over the queries.

    ``weights`` (B, heads, Q, K): each row a distribution over K keys (any layout: flatten blocks into Q);
    ``distance`` (Q, K) between query and key; ``valid`` bool (Q,) (or (B, Q)): the queries to average over
    (default all); ``allowed`` bool (Q, K): the keys each query may attend (default: those with weight > 0).
    Each (image, query) pair counts once."""
    wt = weights.double()
    b, heads, nq, _ = wt.shape
    valid = torch.ones(nq, dtype=torch.bool) if valid is None else valid.to(torch.bool).cpu()
    valid = valid.expand(b, nq).to(wt.device)
    count = valid.sum().item()
    if count == 0:
        raise ValueError("no query to average over")
    dist = (wt * distance.to(wt)).sum(-1)  # (B, heads, Q)
    logs = torch.where(wt > 0, torch.log2(wt.clamp_min(1e-300)), torch.zeros_like(wt))
    ent = -(wt * logs).sum(-1)
    seen = (wt > 0).sum(-1) if allowed is None else allowed.to(wt.device).sum(-1).expand(b, heads, nq)
    keys = torch.log2(seen.clamp_min(1).double())

    def mean(x):  # (B, heads, Q) -> (heads,)
        return (x * valid[:, None]).sum((0, 2)).cpu().numpy() / count

    return mean(dist), mean(ent), mean(keys)


@dataclass
class HeadStats:
    mean_distance: np.ndarray  # (layers, heads), pixels
    entropy: np.ndarray  # (layers, heads), bits
    uniform_entropy: np.ndarray  # (layers, heads), bits: log2 of the keys attended, the most the entropy can be
    images: int  # how many images the means are over
    queries: int  # query positions per image averaged over

    def rows(self) -> list[list]:
        """[layer (1-based), head (0-based), mean distance, entropy, uniform entropy] per head."""
        layers, heads = self.mean_distance.shape
        return [[l + 1, hd, float(self.mean_distance[l, hd]), float(self.entropy[l, hd]),
                 float(self.uniform_entropy[l, hd])] for l in range(layers) for hd in range(heads)]


def model_head_stats(model, images, labels=None, queries=None) -> HeadStats:
    """Mean attention distance and entropy of every head of every layer, teacher-forced on ``images`` uint8
    (n, H, W, C). ``queries``: bool (H, W, C) of the query positions to average over (default all)."""
    h, w, c = model.image_shape
    n = h * w * c
    if queries is None:
        q_valid = torch.ones(n, dtype=torch.bool)
    else:
        arr = np.asarray(queries)
        if arr.dtype != np.bool_ or arr.shape not in ((h, w, c), (h, w)):
            raise ValueError(f"queries must be a boolean ({h}, {w}, {c}) mask, got {arr.dtype} {arr.shape}")
        q_valid = torch.from_numpy(np.broadcast_to(arr.reshape(h, w, -1), (h, w, c)).reshape(-1).copy())
    bws = layer_weights(model, images, labels)
    qi, ki = bws[0].query_index, bws[0].key_index  # (nb, Q), (nb, M): the same layout in every layer
    dist = pixel_distances(h, w, c, qi, ki)  # (nb, Q, M)
    real = qi < n
    valid = real & torch.cat([q_valid, torch.tensor([False])])[qi]  # padding queries never count
    nb, nq, nm = dist.shape
    allowed = block_index(h, w, c, model.pattern).mask.reshape(nb * nq, nm)
    out = []
    for bw in bws:
        wt = bw.weights.cpu().flatten(2, 3)  # (B, heads, nb * Q, M)
        out.append(head_stats(wt, dist.reshape(nb * nq, nm), valid.reshape(-1), allowed))
    d, e, u = (np.stack(x) for x in zip(*out, strict=True))
    return HeadStats(d, e, u, images=int(bws[0].weights.shape[0]), queries=int(valid.sum()))
