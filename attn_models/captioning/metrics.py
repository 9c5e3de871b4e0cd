"""Captioning metrics: attention correctness and its uniform baseline, and corpus BLEU.

Attention correctness follows Liu et al. 2017 ("Attention Correctness in Neural Image Captioning"):
for each generated object word that names an item of the scene, the share of its attention mass,
upsampled to the canvas, that falls inside the item's box. The uniform baseline is what a map spread
evenly over the canvas would score: box area / canvas area; the item-cells reference, a map spread evenly over the
cells of the item's box. Object recall is ``scenes.object_recall``.
"""
from __future__ import annotations

import numpy as np

from attn_models.data.scenes import CANVAS, Scene, class_words, word_boxes
from attn_models.layers.maps import resize_map


def upsample_attention(alpha: np.ndarray, size: int = CANVAS) -> np.ndarray:
    """(gh, gw) map -> (size, size) map with the same total mass (bilinear, then renormalised).

    Bilinear rather than block upsampling because that is how the maps are shown, and a cell's
    receptive field is centred on the cell, not confined to it.
    """
    up = np.clip(resize_map(alpha, size, size), 0, None)
    total = up.sum()
    return up / total if total > 0 else np.full((size, size), 1.0 / size**2)


def attention_correctness(alphas: np.ndarray, words: list[str], scene: Scene) -> list[float | None]:
    """Per word: share of its attention (upsampled to the canvas) inside its item's box; None for
    words that do not name an item of the scene (see ``scenes.match_items``)."""
    alphas = np.asarray(alphas)
    if alphas.ndim != 3 or alphas.shape[0] != len(words):
        raise ValueError(f"alphas must be (len(words), gh, gw) = ({len(words)}, gh, gw), got {alphas.shape}")
    out: list[float | None] = []
    for alpha, box in zip(alphas, word_boxes(scene, words), strict=True):
        if box is None:
            out.append(None)
            continue
        out.append(box_mass(alpha, box))
    return out


def box_mass(alpha: np.ndarray, box) -> float:
    """The share of a (gh, gw) map, upsampled to the canvas, inside ``box``: attention correctness of one word."""
    return float(upsample_attention(alpha)[box[0]:box[2], box[1]:box[3]].sum())


def class_word_attention(alphas: np.ndarray, words: list[str], scene: Scene) -> list[tuple[str, str, float]]:
    """Per class word after an item's colour (``scenes.class_words``): (the item's class, the class said, the
    share of that word's attention inside the item's box, as ``attention_correctness`` measures it). Says whether
    a wrong class came with attention off the item (looked elsewhere) or on it (read the item wrongly)."""
    alphas = np.asarray(alphas)
    return [(item.words[1], words[t], box_mass(alphas[t], item.box)) for t, item in class_words(scene, words)]


def uniform_baseline(scene: Scene, words: list[str]) -> list[float | None]:
    """Attention correctness of a uniform map, per word: box area / canvas area (None for non-object words)."""
    return [None if b is None else (b[2] - b[0]) * (b[3] - b[1]) / CANVAS**2 for b in word_boxes(scene, words)]


def item_cells_baseline(scene: Scene, words: list[str], grid: tuple[int, int]) -> list[float | None]:
    """Attention correctness of a map spread evenly over the grid cells whose centres lie inside the word's item box
    (None for non-object words): what a map that found the item but not its centre scores, since the upsampling
    carries mass past the box edge. A map on the item's central cells alone scores close to 1."""
    out: list[float | None] = []
    for box in word_boxes(scene, words):
        if box is None:
            out.append(None)
            continue
        cells = box_cells(box, grid).astype(np.float64)
        up = upsample_attention(cells / cells.sum())
        out.append(float(up[box[0]:box[2], box[1]:box[3]].sum()))
    return out


def box_cells(box, grid: tuple[int, int]) -> np.ndarray:
    """(gh, gw) bool: the grid cells whose centres lie inside ``box`` (canvas px), the cells the encoder's per-cell
    tag loss labels with that item; for a box smaller than a cell, the cell holding the box's centre."""
    gh, gw = grid
    cy, cx = (np.arange(gh) + 0.5) * CANVAS / gh, (np.arange(gw) + 0.5) * CANVAS / gw  # cell centres, canvas px
    cells = np.outer((cy >= box[0]) & (cy < box[2]), (cx >= box[1]) & (cx < box[3]))
    if not cells.any():
        cells[min(int((box[0] + box[2]) / 2 * gh / CANVAS), gh - 1),
              min(int((box[1] + box[3]) / 2 * gw / CANVAS), gw - 1)] = True
    return cells


def corpus_bleu(hypotheses: list[list[str]], references: list[list[list[str]]]) -> dict[str, float]:
    """BLEU-1..4 in [0, 1] with sacrebleu, corpus level, every reference of every image.

    Captions are already lower-case words, so sacrebleu's tokenizer is off (``tokenize="none"``).
    Images with fewer references are padded with None, which sacrebleu skips.
    """
    from sacrebleu.metrics import BLEU

    n_refs = max(len(r) for r in references)
    streams = [[" ".join(r[k]) if k < len(r) else None for r in references] for k in range(n_refs)]
    hyps = [" ".join(h) for h in hypotheses]
    return {f"bleu{n}": BLEU(max_ngram_order=n, tokenize="none").corpus_score(hyps, streams).score / 100
            for n in range(1, 5)}
