"""Completion from any mask: keep the visible pixels of an image and sample the hidden ones.

``model.sample(prefix=, known=)`` keeps only a *prefix* in generation order (the paper's completions keep the top
rows, sec. 5). Here any pixel may be visible. Generation still runs in the model's order (raster for local 1D,
block-raster for local 2D); when it reaches a visible pixel it writes that pixel's value instead of a draw, so
every position generated after it conditions on it, exactly as on a sampled value. A hidden pixel generated
*before* a visible one cannot see it: the model is autoregressive, and the visible value only enters the input
of the next position in generation order (the shifted input, see ``model.py``). ``could_not_see`` says which.

Not in Parmar et al. (2018), who complete only from a prefix: with a non-prefix mask the samples are draws from
the model's conditionals given what was generated so far, not from p(hidden | visible), which an
autoregressive model cannot condition on in one pass. The tab says so next to the "could not see" map.

A separate function rather than ``sample(known=any mask)``: ``sample`` documents ``known`` as a prefix and its
tests refuse any other mask, and the model module is left as it is. The loop is the sampler's own
(``CachedSampler.stream``), which already writes ``prefix`` wherever ``known`` is set, so the two agree on a prefix.
"""
from __future__ import annotations

import numpy as np
import torch

from attn_models.image_transformer.sampler import CachedSampler
from attn_models.layers.local_attention import generation_rank

__all__ = ["check_known", "complete", "could_not_see", "unseen_counts"]


def _image_batch(model, image, n: int) -> np.ndarray:
    """uint8 (H, W), (H, W, C) or (n, H, W, C) -> (n, H, W, C)."""
    h, w, c = model.image_shape
    arr = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if arr.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {arr.dtype}")
    if arr.shape == (h, w) and c == 1:
        arr = arr[..., None]
    if arr.shape == (h, w, c):
        arr = np.broadcast_to(arr, (n, h, w, c))
    if arr.shape != (n, h, w, c):
        raise ValueError(f"image must have shape ({h}, {w}, {c}) or ({n}, {h}, {w}, {c}), got {arr.shape}")
    return arr


def check_known(model, known, n: int | None = None) -> np.ndarray:
    """A mask of visible pixels -> bool (H, W, C), or (n, H, W, C) when ``n`` is given (one mask per image).
    Accepts (H, W) (a pixel mask, every channel alike), (H, W, C), or (n, H, W, C) when ``n`` is given."""
    h, w, c = model.image_shape
    arr = np.asarray(known)
    if arr.dtype != np.bool_:
        raise ValueError(f"known must be a boolean mask, got {arr.dtype}")
    if arr.shape == (h, w):
        arr = np.repeat(arr[..., None], c, axis=-1)
    if arr.shape == (h, w, c):
        return arr.copy() if n is None else np.broadcast_to(arr, (n, h, w, c)).copy()
    if n is not None and arr.shape == (n, h, w, c):
        return arr.copy()
    per_image = f" or ({n}, {h}, {w}, {c})" if n is not None else ""
    raise ValueError(f"known must have shape ({h}, {w}) or ({h}, {w}, {c}){per_image}, got {arr.shape}")


def complete(model, image, known, n: int = 1, labels=None, temperature: float = 1.0, seed: int = 0) -> np.ndarray:
    """uint8 (n, H, W, C): ``image`` with its visible pixels (``known`` True) kept and the others sampled in
    generation order, each conditioned on everything generated before it, visible pixels included.

    ``image``: uint8 (H, W, C) (or (H, W) for grey models), or one per completion (n, H, W, C). ``known``: bool
    (H, W), (H, W, C) or (n, H, W, C). Labels, temperature and seed as in ``model.sample``; completion k uses the
    same random draws as ``model.sample(..., seed)`` does for image k (one per generation step, visible steps'
    draws unused), so with a prefix mask the result equals ``model.sample(prefix=image, known=known)``."""
    t, y, _, _ = model.check_sampling_args(n, labels, temperature, seed)
    px = torch.from_numpy(_image_batch(model, image, n).astype(np.int64)).reshape(n, -1)
    kn = torch.from_numpy(check_known(model, known, n)).reshape(n, -1)
    *_, (images, _done) = CachedSampler(model).stream(n, y, t, seed, px, kn, every=model.num_positions)
    return images


def could_not_see(model, known) -> np.ndarray:
    """bool (N, N) in raster order: [q, k] is True when position q is hidden, k is visible, and k comes later in
    generation order, so q was sampled without k (nothing at q, in any layer, depends on k's value).
    ``known``: one mask, as ``check_known`` takes it."""
    kn = check_known(model, known).reshape(-1)
    rank = generation_rank(*model.image_shape, model.pattern).numpy()
    return ~kn[:, None] & kn[None, :] & (rank[None, :] > rank[:, None])


def unseen_counts(model, known) -> np.ndarray:
    """int64 (H, W, C): for each hidden position, how many visible positions it could not see (later in
    generation order); 0 at visible positions."""
    kn = check_known(model, known).reshape(-1)
    rank = generation_rank(*model.image_shape, model.pattern).numpy()
    # visible positions generated after each step: a suffix count over generation order, O(N) not O(N^2)
    later_visible = np.cumsum(kn[np.argsort(rank)][::-1])[::-1]  # [t] = visible positions with rank >= t
    after = np.append(later_visible, 0)[rank + 1]
    return np.where(kn, 0, after).astype(np.int64).reshape(model.image_shape)
