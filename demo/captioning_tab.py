"""Captioning tab: Show, Attend and Tell (Xu et al. 2015) with soft and hard attention.

The user uploads an image (or picks an example / random Fashion-Scenes test scene), the model
captions it, and the tab shows where the model looked for each word: one overlay per word (on one sheet, the word
under each map, as in the paper's figures), an animation through the words, a large view of a chosen word, and, for
scenes whose ground truth is known, the attention correctness of each object word (Liu et al. 2017). Below them,
on request: every hypothesis of the beam with its score and maps, the soft and the hard model's maps side by side
word by word, and whether each object word depends on where the model looked (``attn_models.captioning.faithfulness``).

Decoding of uploads happens here, not in Gradio: the events run with ``preprocess=False`` so the
handler gets the uploaded file's path and can turn every unreadable, empty, huge or exotic file
into a clear ``gr.Error`` (Gradio's own preprocessing would open the file first and fail with an
opaque error).
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd
import torch
from PIL import Image

from demo import common, render
from demo.common import choice, handler, user_errors, whole
from demo.gpu import gpu_handler

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
MODEL_NAMES = {"soft": "sat-soft-fashion-scenes", "hard": "sat-hard-fashion-scenes"}
# Deployers can serve weights trained on photos: these name a Hub repo per attention kind.
REPO_ENV = {"soft": "ATTN_CAPTION_SOFT_REPO", "hard": "ATTN_CAPTION_HARD_REPO"}
MAX_BEAM = 10
MAX_LEN = 20
WORK_SIZE = 1024  # images larger than twice this are reduced before captioning and rendering
VIEW_SIZE = 320  # longer side of the overlays on the sheet and in the animation
SHEET_COLUMNS = 5
LARGE_SIZE = 480  # longer side of the enlarged map of the selected word
ANIMATION_FPS = 1.5
THUMB = 128  # side of each word's map in the n-best, comparison and faithfulness pictures
MAX_DRAWS = 20  # random draws per word in the faithfulness test
MAX_SEED = 2**31 - 1
NUMBER_EXPORTS = ("PNG picture", "NPZ numbers", "JSON numbers")  # the views below export no animation

ABOUT = """
**Show, Attend and Tell** (Xu et al. 2015): a CNN turns the image into a grid of annotation vectors, and an
LSTM writes the caption one word at a time, each time choosing where to look: **soft** attention takes a
weighted average of the grid (weights α), **hard** attention picks one cell (trained with REINFORCE; at test
time the most likely cell). β is the model's gate: how much of what it looked at it lets into the word.

**About the bundled weights.** They were trained on *Fashion-Scenes*: synthetic 96×96 images of one to three
tinted Fashion-MNIST items on a black background, described as "red tshirt left of blue bag". Any image you
upload gets a caption in that small vocabulary (8 colours, 10 clothing classes, left/right/above/below), so a
photo will be described as if it were such a scene. To caption photos, train on COCO or Flickr8k
(`python -m attn_models.captioning.train --data karpathy ...`), push the model to the Hugging Face Hub and load
it with `attn_models.load("sat-soft-fashion-scenes", source="hub", repo_id="you/your-model")`; to show it here,
start the app with `ATTN_CAPTION_SOFT_REPO=you/your-model` (and/or `ATTN_CAPTION_HARD_REPO`), or with
`ATTN_MODELS_HUB_ORG=your-org` when the repos are named like the bundled models.
"""

MORE_ABOUT = """
The image, attention kind and beam size above apply here too. **Every beam**: each hypothesis the beam search
finished, best first, ranked by log-probability per token (the caption above is the first). **Soft vs hard**: both
models caption the image; their maps in two rows, the words of the two captions aligned. **Faithfulness**: for
each colour and class word, the cells holding half of its attention are hidden (filled with the background) and
the same caption is scored again: how much log-probability the word loses, against hiding as many random other
cells; and where its gradient says it depends on the pixels (saliency), beside α. A map that shows what made the
word loses more from its own cells than from random ones. (Not in the paper: a test of its maps.)
"""


# ---------------------------------------------------------------------------------------------
# Models: loaded on first use, never at import (the app starts fast and works without weights).

def get_model(kind: str, device: str | None = None):
    """The captioning model for ``kind`` ("soft"/"hard"): the bundled weights, or the Hub repo a deployer
    named in REPO_ENV (source="auto" turns to the Hub itself when ATTN_MODELS_HUB_ORG is set)."""
    repo = os.environ.get(REPO_ENV[kind])
    hub = {"source": "hub", "repo_id": repo} if repo else {}
    return common.get_model(MODEL_NAMES[kind], device, **hub)


@gpu_handler
def _run_caption(model, image: Image.Image, beam_size: int):
    with torch.inference_mode():
        return model.caption(image, beam_size=beam_size, max_len=MAX_LEN)


def run_model(model, image: Image.Image, beam_size: int):
    with user_errors("The model could not caption this image"):
        return _run_caption(model, image, beam_size)


@gpu_handler
def _run_beams(model, image: Image.Image, beam_size: int):
    with torch.inference_mode():
        return model.caption_beams(image, beam_size=beam_size, max_len=MAX_LEN)


@gpu_handler
def _run_faithfulness(model, image: Image.Image, beam_size: int, draws: int, seed: int):
    from attn_models.captioning.faithfulness import faithfulness

    # Not in inference mode: the saliency test needs gradients with respect to the pixels.
    return faithfulness(model, image, beam_size=beam_size, max_len=MAX_LEN, draws=draws, seed=seed)


# ---------------------------------------------------------------------------------------------
# Input checking and decoding.

def _to_rgb(im: Image.Image) -> Image.Image:
    """Any Pillow mode -> RGB, keeping what the picture means rather than Pillow's raw cast."""
    if im.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        # High bit depth: Pillow's convert would clip everything above 255 to white, so stretch
        # the actual value range to 0..255 instead.
        a = np.asarray(im, dtype=np.float64)
        lo, hi = float(a.min()), float(a.max())
        grey = np.zeros(a.shape, np.uint8) if hi <= lo else np.rint((a - lo) / (hi - lo) * 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (im.mode == "P" and "transparency" in im.info):
        # Transparent pixels become black, the Fashion-Scenes background, rather than Pillow's
        # arbitrary hidden colour values.
        rgba = im.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(black, rgba).convert("RGB")
    return im.convert("RGB")  # 1, L, P, CMYK, YCbCr, LAB, HSV, RGB(X)


def read_image(value) -> Image.Image:
    """Decode an upload into an RGB PIL image, or raise gr.Error saying what is wrong with it."""
    # JPEG only: big photos are decoded at reduced scale
    im = common.read_upload(value, "upload one, pick an example or press “New random scene”",
                            draft=(2 * VIEW_SIZE, 2 * VIEW_SIZE))
    rgb = _to_rgb(im)
    # The model sees a 96x96 resize and the views are at most LARGE_SIZE wide, so big photos are
    # box-averaged down to about WORK_SIZE first (fast, and no aliasing in the model's resize).
    factor = max(rgb.size) // WORK_SIZE
    return rgb.reduce(factor) if factor >= 2 else rgb


def check_beam(beam_size) -> int:
    return whole("Beam size", beam_size, 1, MAX_BEAM)


def check_kind(kind) -> str:
    return choice("Attention", kind, MODEL_NAMES)


def check_draws(draws) -> int:
    return whole("Random draws", draws, 1, MAX_DRAWS)


def check_seed(seed) -> int:
    return whole("Seed", seed, 0, MAX_SEED)


# ---------------------------------------------------------------------------------------------
# Scenes with known ground truth (shipped examples and random test scenes), found by pixel content
# so an example keeps its ground truth whatever name the browser uploads it under.

def _pixel_key(rgb: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(rgb).tobytes() + str(rgb.shape).encode()).hexdigest()


_known_scenes: OrderedDict[str, object] = OrderedDict()
_known_lock = threading.Lock()
_KNOWN_MAX = 512  # random scenes generated by users; the oldest are forgotten


def _remember_scene(scene, origin: str) -> None:
    with _known_lock:
        _known_scenes[_pixel_key(scene.image)] = (scene, origin)
        while len(_known_scenes) > _KNOWN_MAX + len(_example_meta()):
            _known_scenes.popitem(last=False)


def _example_meta() -> list[dict]:
    path = EXAMPLES_DIR / "scenes.json"
    return json.loads(path.read_text()) if path.is_file() else []


def example_paths() -> list[str]:
    return [str(EXAMPLES_DIR / m["file"]) for m in _example_meta() if (EXAMPLES_DIR / m["file"]).is_file()]


_examples_loaded = False


def _load_examples() -> None:
    global _examples_loaded
    if _examples_loaded:
        return
    from attn_models.data.scenes import Scene, SceneItem

    for meta in _example_meta():
        image = np.asarray(Image.open(EXAMPLES_DIR / meta["file"]).convert("RGB"))
        items = [SceneItem(label=it["label"], colour=it["colour"], box=tuple(it["box"])) for it in meta["items"]]
        _remember_scene(Scene(image=image, items=items, captions=[c.split() for c in meta["captions"]]),
                        f"example: Fashion-Scenes test scene #{meta['test_index']}")
    _examples_loaded = True


def find_scene(rgb: np.ndarray):
    """(scene, where it comes from) for an image whose ground truth is known, else None."""
    _load_examples()
    with _known_lock:
        return _known_scenes.get(_pixel_key(rgb))


@handler
def new_random_scene() -> str:
    """A fresh Fashion-Scenes test-split scene (test images only, random seed) saved as a PNG."""
    from attn_models.data.scenes import fashion_scenes

    seed = random.randrange(2**31)
    with user_errors("Could not build a scene (Fashion-MNIST is needed)"):
        scene = fashion_scenes("test", 1, seed)[0]
    _remember_scene(scene, f"random Fashion-Scenes test scene, seed {seed}")
    return render.save_image(scene.image)


# ---------------------------------------------------------------------------------------------
# Rendering.

def display_image(rgb: np.ndarray, size: int) -> np.ndarray:
    """The image at about ``size`` on its longer side: small images (scenes) are enlarged with
    nearest neighbour so their pixels stay crisp, big photos shrunk with a proper filter."""
    h, w = rgb.shape[:2]
    if max(h, w) <= size:
        return render.enlarge(rgb, size)
    scale = size / max(h, w)
    pil = Image.fromarray(rgb).resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.LANCZOS)
    return np.asarray(pil)


def word_label(words: list[str], t: int, betas) -> str:
    beta = f"  β={float(betas[t]):.2f}" if betas is not None else ""
    return f"{t + 1}. {words[t]}{beta}"


def label_size(width: int, text: str) -> int:
    """Font size that fits ``text`` on one line of an image ``width`` wide (readable, never huge)."""
    size = max(10, min(22, width // 20))
    while size > 9 and render.text_font(size).getlength(text) > width - 8:
        size -= 1
    return size


def fitted(text: str, width: int) -> tuple[str, int]:
    """``text`` and the font size to write it on one line ``width`` wide: cut at the end when even the smallest
    size is too wide."""
    size = label_size(width, text)
    while render.text_font(size).getlength(text) > width - 8 and len(text) > 2:
        text = text[:-2] + "…"
    return text, size


def labelled(image: np.ndarray, text: str) -> np.ndarray:
    text, size = fitted(text, image.shape[1])
    return render.caption_text(image, text, font_size=size)


def strip_height(width: int) -> int:
    """Height of the strip under a panel of the sheet ``width`` wide (fixed by the width: a click finds its panel)."""
    return label_size(width, "") + 10


def panel(overlay: np.ndarray, text: str) -> np.ndarray:
    """A word's map on the sheet, the word under it."""
    width = overlay.shape[1]
    text, size = fitted(text, width)
    return np.concatenate([overlay, render.text_cell(text, strip_height(width), width, font_size=size)])


def word_overlay(base: np.ndarray, alpha: np.ndarray, text: str, smooth: bool) -> np.ndarray:
    return labelled(render.overlay(base, alpha, smooth=smooth), text)


def correctness_rows(scene, words: list[str], alphas: np.ndarray) -> list[list]:
    from attn_models.captioning.metrics import attention_correctness, uniform_baseline

    scores = attention_correctness(alphas, words, scene)
    base = uniform_baseline(scene, words)
    return [[t + 1, w, round(s, 3), round(b, 3)]
            for t, (w, s, b) in enumerate(zip(words, scores, base, strict=True)) if s is not None]


# ---------------------------------------------------------------------------------------------
# Handlers.

@dataclass
class Result:
    words: list[str]
    alphas: np.ndarray
    betas: np.ndarray | None
    image: np.ndarray  # the RGB image as given to the model
    smooth: bool
    panel_hw: tuple[int, int]  # size of each word's panel on the sheet (the PNG download), found again on a click


CORRECTNESS_HEADERS = ["#", "word", "attention correctness", "uniform baseline"]
NO_EXPORTS = (None,) * len(render.EXPORT_KINDS)
NO_GROUND_TRUTH = ("Attention correctness needs the ground-truth boxes of a Fashion-Scenes image: "
                   "pick an example or a random scene to see it.")


def checked_request(image, attention, beam_size, device: str | None):
    """What every single-model handler starts from: the checked model kind and beam size, the decoded image,
    and the model (arguments are checked before the image is decoded or the model loaded)."""
    kind = check_kind(attention)
    beam = check_beam(beam_size)
    pil = read_image(image)
    return kind, beam, pil, get_model(kind, device)


@handler
def caption(image, attention="soft", beam_size=3, smooth_maps=True, device: str | None = None):
    """Caption an image with Show, Attend and Tell and render each word's attention map (``device``: where
    the model runs, by default the app's)."""
    kind, beam, pil, model = checked_request(image, attention, beam_size, device)
    smooth = bool(smooth_maps)
    out = run_model(model, pil, beam)
    words = list(out.words)
    alphas = np.asarray(out.alphas, dtype=np.float32)
    betas = None if out.betas is None else np.asarray(out.betas, dtype=np.float32)
    rgb = np.asarray(pil)
    base = display_image(rgb, VIEW_SIZE)
    result = Result(words, alphas, betas, rgb, smooth, (base.shape[0] + strip_height(base.shape[1]), base.shape[1]))
    raw = {"model": MODEL_NAMES[kind], "attention": kind, "beam_size": beam, "words": words,
           "alphas": alphas.tolist(), "betas": None if betas is None else betas.tolist(),
           "grid_hw": list(alphas.shape[1:])}

    if not words:
        return ("(the model produced an empty caption)", rgb, gr.update(choices=[], value=None),
                gr.update(value=None, visible=False), "", raw, *NO_EXPORTS, result)

    labels = [word_label(words, t, betas) for t in range(len(words))]
    overlays = [render.overlay(base, alphas[t], smooth=smooth) for t in range(len(words))]
    intro = labelled(base, " ".join(words))
    # The sheet the tab shows is the PNG download, the animation it shows the GIF download (see
    # common.show_downloads).
    exports = render.save_exports(render.sheet([panel(im, text) for im, text in zip(overlays, labels, strict=True)],
                                               columns=SHEET_COLUMNS),
                                  [intro, *(labelled(im, text) for im, text in zip(overlays, labels, strict=True))],
                                  ANIMATION_FPS, {**raw, "alphas": alphas, "betas": betas})
    large = enlarged_view(result, 0)
    choices = [(f"{t + 1}. {w}", t) for t, w in enumerate(words)]

    known = find_scene(rgb)
    if known is not None:
        scene, origin = known
        rows = correctness_rows(scene, words, alphas)
        refs = " · ".join(" ".join(c) for c in scene.captions[:3]) + (" · …" if len(scene.captions) > 3 else "")
        note = (f"Ground truth known ({origin}). References: {refs}.  \nCorrectness = share of the word's "
                "attention (upsampled to the canvas) inside its item's box; uniform baseline = box area / canvas area.")
        if rows:
            note += (f"  \nMean over the {len(rows)} object words: **{np.mean([r[2] for r in rows]):.2f}** "
                     f"(uniform attention would score {np.mean([r[3] for r in rows]):.2f}).")
        else:
            note += " No object word of the caption names an item of this scene."
        table = gr.update(value=rows, visible=bool(rows))
    else:
        table, note = gr.update(value=None, visible=False), NO_GROUND_TRUTH
    return (" ".join(words), large, gr.update(choices=choices, value=0), table, note, raw, *exports, result)


@handler
def caption_if_image(image, attention, beam_size, smooth_maps, device: str | None = None):
    """Captions a newly chosen image (upload, example, random scene, changed settings); clears the
    outputs when the image box is empty."""
    if image is None:
        return ("", None, gr.update(choices=[], value=None), gr.update(value=None, visible=False), "", None,
                *NO_EXPORTS, None)
    return caption(image, attention, beam_size, smooth_maps, device)


@handler
def enlarged_view(result: Result | None, index) -> np.ndarray | None:
    if result is None or index is None or not result.words:
        return None
    t = int(index)
    if not 0 <= t < len(result.words):
        return None
    base = display_image(result.image, LARGE_SIZE)
    return word_overlay(base, result.alphas[t], word_label(result.words, t, result.betas), result.smooth)


@handler
def select_from_sheet(result: Result | None, evt: gr.SelectData):
    """A click on a word's panel of the sheet enlarges its map and selects the word; elsewhere, nothing happens."""
    panel_at = None
    if result is not None and evt is not None and isinstance(evt.index, (list, tuple)) and len(evt.index) == 2:
        panel_at = render.sheet_cell(evt.index[1], evt.index[0], result.panel_hw, len(result.words), SHEET_COLUMNS)
    if panel_at is None:
        return gr.skip(), gr.skip()
    return enlarged_view(result, panel_at[0]), gr.update(value=panel_at[0])


ARRIVAL_EXAMPLE = -1  # the example with three items: the richest caption and correctness table


def arrival() -> tuple:
    """The tab's first view: an example scene with its caption, per-word maps and correctness table; then the sheet
    and the animation shown (the PNG and GIF downloads)."""
    path = example_paths()[ARRIVAL_EXAMPLE]
    out = caption(path)
    png, gif = out[-6:-4]  # the downloads come last but for the state: PNG, GIF, MP4, NPZ, JSON
    return path, *out, png, gif


# ---------------------------------------------------------------------------------------------
# More views, computed on request only (never on arrival): every beam, soft vs hard, faithfulness.

def with_header(image: np.ndarray, text: str) -> np.ndarray:
    """``image`` under a black strip holding ``text`` (the strip is added, so it covers nothing)."""
    width = image.shape[1]
    size = label_size(width, text)
    strip = labelled(np.zeros((size + 8, width, 3), np.uint8), text)
    return np.concatenate([strip, render.to_rgb(image)])


def word_strip(base: np.ndarray, words: list[str], alphas: np.ndarray, smooth: bool, columns: int = 10) -> np.ndarray:
    """Each word's map over ``base`` (labelled with its position and word), in rows of ``columns``."""
    if not words:
        return labelled(np.zeros_like(base), "(empty caption)")
    return render.sheet([word_overlay(base, alphas[t], f"{t + 1}. {w}", smooth) for t, w in enumerate(words)],
                        columns=columns)


def _finite_or_none(value):
    """JSON for the browser: NaN and inf have no JSON form, so they become null."""
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, list):
        return [_finite_or_none(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    return value


BEAM_HEADERS = ["rank", "caption", "score (log-prob per token)", "log-prob", "ended with <end>"]


@handler
def caption_beams(image, attention="soft", beam_size=3, smooth_maps=True, device: str | None = None):
    """Every hypothesis the beam search finished (best first) with its score, words and per-word maps: the table, the
    raw numbers, downloads (the PNG is the picture the tab shows: a strip of word maps per hypothesis)."""
    kind, beam, pil, model = checked_request(image, attention, beam_size, device)
    smooth = bool(smooth_maps)
    with user_errors("The model could not caption this image"):
        beams = _run_beams(model, pil, beam)
    base = display_image(np.asarray(pil), THUMB)
    rows, sheets = [], []
    for rank, b in enumerate(beams, 1):
        text = " ".join(b.words) or "(empty)"
        rows.append([rank, text, round(b.score, 4), round(b.log_prob, 4), bool(b.ended)])
        label = f"#{rank}  score {b.score:.3f}  (log-prob {b.log_prob:.2f}): {text}"
        sheets.append(with_header(word_strip(base, b.words, b.alphas, smooth), label))
    grid_hw = list(model.grid_hw)
    raw = {"model": MODEL_NAMES[kind], "attention": kind, "beam_size": beam, "grid_hw": grid_hw,
           "hypotheses": [{"rank": r, "words": b.words, "score": b.score, "log_prob": b.log_prob, "ended": b.ended,
                           "alphas": b.alphas.tolist(), "betas": None if b.betas is None else b.betas.tolist()}
                          for r, b in enumerate(beams, 1)]}
    numbers = {"model": MODEL_NAMES[kind], "attention": kind, "beam_size": beam, "grid_hw": grid_hw,
               "scores": np.array([b.score for b in beams]), "log_probs": np.array([b.log_prob for b in beams]),
               "ended": np.array([b.ended for b in beams]),
               # one entry per hypothesis (ranks from 1): their lengths differ
               "words": {str(r): b.words for r, b in enumerate(beams, 1)},
               "alphas": {str(r): b.alphas for r, b in enumerate(beams, 1)},
               "betas": {str(r): b.betas for r, b in enumerate(beams, 1)}}
    picture = render.sheet(sheets, columns=1)
    return pd.DataFrame(rows, columns=BEAM_HEADERS), raw, render.save_image(picture), *render.save_numbers(numbers)


def _blank(size: tuple[int, int]) -> np.ndarray:
    return np.full((*size, 3), 40, np.uint8)


@handler
def compare_soft_hard(image, beam_size=3, smooth_maps=True, device: str | None = None):
    """The image captioned by the soft and the hard model, their maps in two rows aligned by word."""
    from attn_models.captioning.compare import align_words

    beam = check_beam(beam_size)
    smooth = bool(smooth_maps)
    pil = read_image(image)
    caps = {kind: run_model(get_model(kind, device), pil, beam) for kind in MODEL_NAMES}
    soft, hard = caps["soft"], caps["hard"]
    columns = align_words(soft.words, hard.words)
    base = display_image(np.asarray(pil), THUMB)

    def cell(cap, t):
        if t is None:
            return labelled(_blank(base.shape[:2]), "—")
        return word_overlay(base, cap.alphas[t], f"{t + 1}. {cap.words[t]}", smooth)

    rows = []
    for kind, cap, side in (("soft", soft, 0), ("hard", hard, 1)):
        strip = render.sheet([cell(cap, col[side]) for col in columns], columns=max(1, len(columns))) \
            if columns else labelled(_blank(base.shape[:2]), "(empty caption)")
        rows.append(with_header(strip, f"{kind}: {' '.join(cap.words) or '(empty)'}"))
    picture = render.sheet(rows, columns=1)
    same = sum(1 for i, j in columns if i is not None and j is not None and soft.words[i] == hard.words[j])
    note = (f"**soft**: {' '.join(soft.words) or '(empty)'}  \n**hard**: {' '.join(hard.words) or '(empty)'}  \n"
            f"Columns pair the words of the two captions ({same} of {len(columns)} the same word); a dash is a "
            "word the other caption does not have.")
    raw = {"beam_size": beam, "columns": [list(c) for c in columns],
           **{kind: {"model": MODEL_NAMES[kind], "words": cap.words, "alphas": cap.alphas.tolist()}
              for kind, cap in caps.items()}}
    return picture, note, raw


FAITH_HEADERS = ["#", "word", "cells hidden", "α mass hidden", "drop: attended cells", "drop: random cells (mean)",
                 "random (sd)", "saliency vs α (Spearman)"]
NO_OBJECT_WORDS = "The caption has no colour or class word to test."


def _grid_image(x: torch.Tensor) -> np.ndarray:
    return (x.clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)


def faithfulness_picture(model, pil: Image.Image, result) -> np.ndarray | None:
    """Per tested word one row: the model's input with the attended cells hidden, with one draw of random cells
    hidden, the word's α, and its saliency, under a header with the numbers."""
    from attn_models.captioning.faithfulness import occlude

    if not result.tests:
        return None
    with torch.no_grad():
        x = model.preprocess(pil)[0]
    gh, gw = model.grid_hw
    bg = torch.tensor(result.background, dtype=x.dtype, device=x.device)
    model_view = _grid_image(x)
    rows = []
    for w in result.tests:
        hidden = w.hidden_cells[:, 0] * gw + w.hidden_cells[:, 1]
        random_draw = w.random_cells[0, :, 0] * gw + w.random_cells[0, :, 1]
        def hidden_view(cells):
            return render.enlarge(_grid_image(occlude(x, cells, (gh, gw), bg)), THUMB)

        panels = [
            labelled(hidden_view(hidden), f"{len(hidden)} attended hidden"),
            labelled(hidden_view(random_draw), "random hidden"),
            labelled(render.overlay(render.enlarge(model_view, THUMB), result.alphas[w.index], smooth=False), "α"),
            labelled(render.overlay(render.enlarge(model_view, THUMB), w.saliency, smooth=False), "saliency"),
        ]
        rho = "n/a" if not np.isfinite(w.rank_correlation) else f"{w.rank_correlation:.2f}"
        rows.append(with_header(render.sheet(panels, columns=4),
                                f"{w.index + 1}. {w.word}: drop {w.drop_attended:.2f} attended vs "
                                f"{w.drop_random:.2f} random; ρ {rho}"))
    return render.sheet(rows, columns=1)


@handler
def caption_faithfulness(image, attention="soft", beam_size=3, random_draws=5, seed=0, device: str | None = None):
    """Per object word of the caption: the log-probability lost when its attended cells are hidden vs as many
    random cells, and its gradient saliency beside α with their rank correlation: the table, the summary in words,
    the raw numbers, downloads (the PNG is the picture the tab shows: per word, the attended and random cells hidden,
    α and saliency; None when the caption has no colour or class word)."""
    from attn_models.captioning.decoder import ARGMAX
    from attn_models.captioning.faithfulness import MASS, summary

    draws = check_draws(random_draws)
    seed = check_seed(seed)
    kind, beam, pil, model = checked_request(image, attention, beam_size, device)
    with user_errors("The faithfulness test failed on this image"):
        result = _run_faithfulness(model, pil, beam, draws, seed)
        picture = faithfulness_picture(model, pil, result)
    tests = result.tests
    rows = [[w.index + 1, w.word, len(w.hidden_cells), round(w.hidden_mass, 3), round(w.drop_attended, 4),
             round(w.drop_random, 4), round(w.drop_random_std, 4),
             round(w.rank_correlation, 3) if np.isfinite(w.rank_correlation) else None] for w in tests]
    stats = summary(tests)
    bg = ", ".join(f"{round(255 * c)}" for c in result.background)
    caption_text = " ".join(result.words) or "(empty)"
    if tests:
        wins = sum(w.drop_attended > w.drop_random for w in tests)
        note = (f"Caption: *{caption_text}*.  \nOver its {len(tests)} colour and class words: hiding the cells that "
                f"hold half of each word's attention costs it **{stats['drop_attended']:.3f}** nats of log-probability "
                f"on average, hiding as many random other cells **{stats['drop_random']:.3f}** (mean of {draws} "
                f"draws, seed {seed}); the attended cells cost more for {wins} of {len(tests)} words. Mean rank "
                f"correlation of gradient saliency with α: **{stats['rank_correlation']:.2f}**.  \n"
                f"Hidden cells are filled with the image's median border colour (RGB {bg}); the model keeps the same "
                f"caption (teacher forcing), so a drop is what the hidden pixels contributed to that word"
                + (" (hard attention decoding with its argmax cell: the one cell it chose, found again by argmax "
                   "on the hidden image)." if model.test_mode == ARGMAX
                   else f" (the fewest cells holding ≥ {MASS:.0%} of α)."))
    else:
        note = f"Caption: *{caption_text}*.  \n{NO_OBJECT_WORDS}"
    gh, gw = model.grid_hw
    per_word = [{"index": w.index, "word": w.word, "log_prob": w.log_prob, "hidden_cells": w.hidden_cells.tolist(),
                 "hidden_mass": w.hidden_mass, "log_prob_attended": w.log_prob_attended,
                 "drop_attended": w.drop_attended, "random_cells": w.random_cells.tolist(),
                 "log_prob_random": w.log_prob_random.tolist(), "drop_random": w.drop_random,
                 "drop_random_std": w.drop_random_std, "rank_correlation": w.rank_correlation,
                 "alpha": result.alphas[w.index].tolist(), "saliency": w.saliency.tolist()} for w in tests]
    raw = _finite_or_none({"model": MODEL_NAMES[kind], "attention": kind, "beam_size": beam, "draws": draws,
                           "seed": seed, "words": result.words, "grid_hw": [gh, gw],
                           "background": result.background.tolist(), "log_probs": result.log_probs.tolist(),
                           "object_words": per_word, "summary": stats})
    numbers = {"model": MODEL_NAMES[kind], "attention": kind, "beam_size": beam, "draws": draws, "seed": seed,
               "words": result.words, "grid_hw": [gh, gw], "background": result.background,
               "alphas": result.alphas, "log_probs": result.log_probs,
               "index": np.array([w.index for w in tests], np.int64),
               "log_prob": np.array([w.log_prob for w in tests]),
               "drop_attended": np.array([w.drop_attended for w in tests]),
               "drop_random": np.array([w.drop_random for w in tests]),
               "drop_random_std": np.array([w.drop_random_std for w in tests]),
               "log_prob_random": np.array([w.log_prob_random for w in tests]).reshape(len(tests), draws),
               "hidden_mass": np.array([w.hidden_mass for w in tests]),
               "rank_correlation": np.array([w.rank_correlation for w in tests]),
               "saliency": np.array([w.saliency for w in tests]).reshape(len(tests), gh, gw),
               # one entry per tested word (its position in the caption): the number of hidden cells differs
               "hidden_cells": {str(w.index): w.hidden_cells for w in tests},
               "random_cells": {str(w.index): w.random_cells for w in tests}}
    png = render.save_image(picture) if picture is not None else None
    return pd.DataFrame(rows, columns=FAITH_HEADERS), note, raw, png, *render.save_numbers(numbers)


# ---------------------------------------------------------------------------------------------
# Layout.

def build(device: str) -> None:
    common.set_device(device)
    gr.Markdown(ABOUT)
    with gr.Row():
        with gr.Column(scale=2, min_width=300):
            image_in = gr.Image(label="Image", type="filepath", sources=["upload", "clipboard"], height=300,
                                elem_id="cap-image")
            with gr.Row():
                run_btn = gr.Button("Caption", variant="primary", elem_id="cap-run")
                random_btn = gr.Button("New random scene", elem_id="cap-random")
            kind = gr.Radio(list(MODEL_NAMES), value="soft", label="Attention",
                            info="soft: the weighted average of the grid; hard: trained attending one sampled cell "
                                 "per word (REINFORCE), decoded with the expected context as the authors' code does "
                                 "(or the argmax cell: hard_context in its config.json)")
            beam = gr.Slider(1, MAX_BEAM, value=3, step=1, label="Beam size")
            smooth = gr.Checkbox(value=True, label="Smooth maps",
                                 info="bilinear upsampling; off shows the encoder's grid cells")
            examples = gr.Examples(example_paths(), inputs=[image_in], examples_per_page=12,
                                   label="Fashion-Scenes test scenes (not seen in training)")
        with gr.Column(scale=3, min_width=360):
            caption_out = gr.Textbox(label="Caption", interactive=False, elem_id="cap-caption")
            word_pick = gr.Radio(choices=[], label="Words: pick one (or click its map) to enlarge its map",
                                 elem_id="cap-words")
            with gr.Row():
                # No label badge on these two: it would cover the word written along the top of the map.
                with gr.Column(min_width=200):
                    gr.Markdown("**Selected word**")
                    large = gr.Image(label="Selected word", show_label=False, interactive=False, height=360,
                                     elem_id="cap-large")
                with gr.Column(min_width=200):
                    gr.Markdown("**Animation through the words**")
                    animation = gr.Image(label="Animation through the words", show_label=False, interactive=False,
                                         height=360, elem_id="cap-animation")
            sheet = gr.Image(label="Attention for each word (word and β under each map): click one",
                             interactive=False, elem_id="cap-sheet")
            correctness = gr.Dataframe(headers=CORRECTNESS_HEADERS, label="Attention correctness per object word",
                                       visible=False, interactive=False, elem_id="cap-correctness")
            correctness_note = gr.Markdown(label="Ground truth note", show_label=False, elem_id="cap-note")
            exports, raw = common.export_section(
                "every word's map (PNG), the animation (GIF, MP4), words, α maps with their grid shape and β "
                "(NPZ, JSON)", "cap-export", "Raw output (words, α maps, β)", "Model output")
    with gr.Accordion("Every beam · soft vs hard · does each word depend on where the model looked?", open=False,
                      elem_id="cap-more"):
        gr.Markdown(MORE_ABOUT)
        with gr.Tabs():
            with gr.Tab("Every beam", id="cap-beams-tab", elem_id="cap-beams-tab"):
                beams_btn = gr.Button("Show every hypothesis", variant="primary", elem_id="cap-beams-run")
                beams_table = gr.Dataframe(headers=BEAM_HEADERS, label="Hypotheses, best first", interactive=False,
                                           elem_id="cap-beams-table")
                # The PNG download, shown (common.show_downloads). No label badge: it would cover the first
                # hypothesis's header (rank, score, caption) along the top of the picture.
                beams_picture = gr.Image(label="Each hypothesis's words and maps, best first", show_label=False,
                                         interactive=False, elem_id="cap-beams-picture")
                beams_exports = common.export_buttons("cap-beams-export", NUMBER_EXPORTS)
                with gr.Accordion("Raw output (every hypothesis: words, score, log-prob, α maps, β)", open=False):
                    beams_raw = gr.JSON(label="Hypotheses", elem_id="cap-beams-raw")
            with gr.Tab("Soft vs hard", id="cap-compare-tab", elem_id="cap-compare-tab"):
                compare_btn = gr.Button("Caption with both soft and hard attention", variant="primary",
                                        elem_id="cap-compare-run")
                compare_note = gr.Markdown(label="The two captions", show_label=False, elem_id="cap-compare-note")
                # No label badge: it would cover the caption written along the top of the picture.
                compare_picture = gr.Image(label="Soft (top) and hard (bottom) attention, aligned by word",
                                           show_label=False, interactive=False, elem_id="cap-compare-picture")
                with gr.Accordion("Raw output (both captions, their α maps, the word columns)", open=False):
                    compare_raw = gr.JSON(label="Both captions", elem_id="cap-compare-raw")
            with gr.Tab("Faithfulness", id="cap-faith-tab", elem_id="cap-faith-tab"):
                with gr.Row():
                    draws = gr.Slider(1, MAX_DRAWS, value=5, step=1, label="Random draws",
                                      info="random cell sets per word, averaged", elem_id="cap-faith-draws")
                    seed = gr.Number(value=0, precision=0, minimum=0, maximum=MAX_SEED, label="Seed",
                                     info="of the random cells", elem_id="cap-faith-seed")
                faith_btn = gr.Button("Test each object word", variant="primary", elem_id="cap-faith-run")
                faith_note = gr.Markdown(label="Faithfulness summary", show_label=False, elem_id="cap-faith-note")
                # The PNG download, shown (common.show_downloads). No label badge: it would cover the first
                # word's header (its drops and ρ) along the top of the picture.
                faith_picture = gr.Image(
                    label="Per object word: attended cells hidden, random cells hidden, α, saliency",
                    show_label=False, interactive=False, elem_id="cap-faith-picture")
                faith_table = gr.Dataframe(
                    headers=FAITH_HEADERS, label="Per object word (drops in nats of log-probability)",
                    interactive=False, elem_id="cap-faith-table")
                faith_exports = common.export_buttons("cap-faith-export", NUMBER_EXPORTS)
                with gr.Accordion("Raw output (per word: cells hidden, log-probabilities, α, saliency)", open=False):
                    faith_raw = gr.JSON(label="Faithfulness numbers", elem_id="cap-faith-raw")
    state = gr.State()

    inputs = [image_in, kind, beam, smooth]
    outputs = [caption_out, large, word_pick, correctness, correctness_note, raw, *exports, state]
    shown = [sheet, animation]  # the PNG and GIF downloads

    def show_maps(event):
        common.show_downloads(event, exports[:2], shown)

    common.on_arrival(arrival, [image_in, *outputs, *shown])
    # preprocess=False: the handler decodes the upload itself so bad files give a clear message.
    show_maps(run_btn.click(caption, inputs, outputs, api_name="caption", preprocess=False,
                            api_description="Caption an image with Show, Attend and Tell and map where it looked for "
                                            "each word."))
    # Not image_in.change: the browser fires it twice when an upload replaces an image.
    show_maps(gr.on([image_in.upload, image_in.clear, kind.input, beam.release, smooth.input], caption_if_image,
                    inputs, outputs, preprocess=False, api_visibility="private"))
    show_maps(examples.load_input_event.then(caption_if_image, inputs, outputs, preprocess=False,
                                             api_visibility="private"))
    show_maps(random_btn.click(new_random_scene, None, image_in, api_visibility="private").then(
        caption_if_image, inputs, outputs, preprocess=False, api_visibility="private"))
    word_pick.input(enlarged_view, [state, word_pick], large, api_visibility="private")
    sheet.select(select_from_sheet, state, [large, word_pick], api_visibility="private")
    # The views below run only when asked (their buttons): the tab's arrival stays one caption.
    common.show_downloads(
        beams_btn.click(caption_beams, inputs, [beams_table, beams_raw, *beams_exports], api_name="caption_beams",
                        preprocess=False,
                        api_description="Every hypothesis of the beam search, best first: its score, log-prob, words "
                                        "and per-word attention maps."),
        beams_exports[:1], [beams_picture])
    compare_btn.click(compare_soft_hard, [image_in, beam, smooth], [compare_picture, compare_note, compare_raw],
                      preprocess=False, api_visibility="private")
    common.show_downloads(
        faith_btn.click(caption_faithfulness, [image_in, kind, beam, draws, seed],
                        [faith_table, faith_note, faith_raw, *faith_exports], api_name="caption_faithfulness",
                        preprocess=False,
                        api_description="Per object word: log-prob drop when its attended cells are hidden vs as "
                                        "many random cells, and gradient saliency beside its attention map."),
        faith_exports[:1], [faith_picture])
