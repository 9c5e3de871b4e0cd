"""How much SAGAN's attention maps depend on their query (light: numpy only, so the tab can import it fast)."""
from __future__ import annotations

import numpy as np


def js_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon divergence in bits (0 = the same map, 1 = disjoint), over the last axis."""
    m = (p + q) / 2

    def kl(a, b):
        return np.where(a > 0, a * (np.log2(np.maximum(a, 1e-30)) - np.log2(np.maximum(b, 1e-30))), 0.0).sum(-1)

    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def query_dependence(attention: np.ndarray, pairs: int = 64, seed: int = 0) -> dict:
    """How much a SAGAN attention map depends on its query (Cao et al. 2019 found non-local maps nearly the same
    for every query). attention: (N, Q, K) maps of N images. Returns the mean Jensen-Shannon divergence between
    the maps of two random queries of the same image (``within_image``) and between the maps of the same query in
    two different images (``across_images``), each with its spread (std over images). Maps that ignore the query
    have ``within_image`` near 0 however much they differ across images; the ratio within/across says which of
    the two, the query or the image, moves the map more."""
    n, q, _ = attention.shape
    if n < 2 or q < 2:
        raise ValueError(f"need at least 2 images and 2 queries, got attention of shape {attention.shape}")
    rng = np.random.default_rng(seed)
    a = attention.astype(np.float64)
    q1, q2 = rng.integers(0, q, (n, pairs)), rng.integers(0, q - 1, (n, pairs))
    q2 = q2 + (q2 >= q1)  # a different query
    rows = np.arange(n)[:, None]
    within = js_divergence(a[rows, q1], a[rows, q2]).mean(1)  # (N,) per image
    other = (np.arange(n)[:, None] + rng.integers(1, n, (n, pairs))) % n  # a different image
    qs = rng.integers(0, q, (n, pairs))
    across = js_divergence(a[rows, qs], a[other, qs]).mean(1)
    return {"within_image": float(within.mean()), "within_image_std": float(within.std()),
            "across_images": float(across.mean()), "across_images_std": float(across.std()),
            "ratio": float(within.mean() / max(across.mean(), 1e-12)), "images": int(n), "pairs_per_image": pairs}
