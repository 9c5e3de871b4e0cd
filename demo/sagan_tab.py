"""Self-attention GAN tab: SAGAN (Zhang et al. 2019) on Fashion-MNIST.

Generate a grid for a class and seed (one picture, each image with its class under it), click a pixel of one of
its images (or of the selected image, enlarged): the tab shows where that query
attends in the generator's self-attention layer (its softmax row over the key grid), the gamma of
every attention layer, an animation of the query sweeping the image, a latent interpolation
between two seeds, and a switch that sets gamma to 0 at inference to show what attention adds. A knock-out sets the
attention output of the clicked query alone to zero and shows how the image changes. The network switch shows the
discriminator's attention instead, on the selected generated image or on a real Fashion-MNIST test image, with D's
verdict (exports that predate the discriminator answer that they hold none).

Handlers are stateless: every request names (class, seed, count, gamma switch) and the images are
regenerated on demand. That is cheap (32x32, a few ms per image) and exact, because image k
depends only on (seed, k, class of k) — so the API endpoints (``sagan_attention``, ``sagan_knockout``,
``sagan_discriminator_attention``) need no session.
"""
from __future__ import annotations

import threading

import gradio as gr
import numpy as np
import torch

from attn_models.cards import ARM_ROWS, arms_verdict
from attn_models.data import CLASS_NAMES
from attn_models.sagan.model import MAX_SEED
from demo import common, render
from demo.common import choice, handler, whole
from demo.gpu import gpu_handler

MODEL_NAME = "sagan-fashion-mnist"
METRICS_FILE = "metrics.json"  # written beside the weights by ``python -m attn_models.sagan.evaluate --json``
MIXED = "mixed (one of each class)"
CLASS_CHOICES = [*CLASS_NAMES, MIXED]
MAX_COUNT = 16
IMAGE = 32  # side of the generated (and the padded Fashion-MNIST) images
VIEW = 256  # displayed size of the selected image (pixels); clicks come back in these coordinates
THUMB = 96  # side of each image in the grid
GRID_COLUMNS = 8
GRID_GAP = 4
TILE_LABEL = 20  # height of the strip under each image of the grid holding its index and class
SWEEP_STRIDE = 2  # query-grid step of the sweep animation (16x16 grid -> 64 frames)
WALK_FPS = 6  # the exported animation of a clicked query walking along its row


def labels_for(class_name: str, count) -> list[int]:
    count = whole("Number of images", count, 1, MAX_COUNT)
    if choice("Class", class_name, CLASS_CHOICES) == MIXED:
        return [k % len(CLASS_NAMES) for k in range(count)]
    return [CLASS_NAMES.index(class_name)] * count


def gamma_text(model, attention_off: bool) -> str:
    rows = [f"| {res}x{res} (generator) | {g:+.4f} |" for res, g in model.gammas.items()]
    note = ("\n\n**gamma forced to 0 for these images** (the attention output is dropped; maps are still computed)."
            if attention_off else "")
    return "| attention layer | gamma |\n|---|---|\n" + "\n".join(rows) + note


def ablation_text(name: str = MODEL_NAME) -> str:
    """Does attention help? The shipped model's evaluation (its ``metrics.json``): each ablation arm's mean ± spread
    over its seeds when the evaluation has arms, else one row per evaluated model."""
    ev = common.bundled_json(name, METRICS_FILE)
    if ev is None:
        return f"No evaluation of {name} is bundled ({METRICS_FILE} beside its weights)."
    head = (f"**Does attention help?** The trained models, measured by `{ev.get('command', 'evaluate')}` against "
            f"{ev.get('fid_reference', 'the test set')} (FID: lower is better; class consistency: the share of "
            "images the classifier gives the class they were asked for).")
    def cell(d: dict, k: str, over_seeds: bool) -> str:
        if k not in d:
            return "–"
        return f"{d[k]:.3f} ± {d[k + '_std']:.3f}" if over_seeds else f"{d[k]:.3f}"
    rows = ev.get("rows") or {}
    arms = {label: a for label, a in (ev.get("arms") or {}).items() if a.get("members")}
    if arms:  # the arms, mean ± spread over their seeds, beside real images for scale
        cols = [(label, r, False) for label, r in rows.items() if label.startswith("real")]
        cols += [(f"{label} ({len(a['members'])} seeds)", a, True) for label, a in arms.items()]
    else:
        cols = [(label, r, False) for label, r in rows.items()]
    if not cols:
        return head + "\n\nThe file holds no rows."
    lines = [head, "", "| | " + " | ".join(c[0] for c in cols) + " |", "|---|" + "---|" * len(cols)]
    for k, label in ARM_ROWS.items():
        if any(k in d for _, d, _ in cols):
            lines.append(f"| {label} | " + " | ".join(cell(d, k, arm) for _, d, arm in cols) + " |")
    if arms:
        lines += ["", "± is the spread (standard deviation) over the seeds of each arm.", "",
                  *arms_verdict(ev, arms)]
    lines += ["", "The *gamma = 0* switch above removes attention from *this* model at inference; the ablation is a "
                  "separate network trained without the attention block, for the same number of steps. The model "
                  "card has the spread, equal-wall-time comparison and training curves."]
    return "\n".join(lines)


def _generate(class_name, seed, count, attention_off, upto: int | None = None):
    labels = labels_for(class_name, count)
    seed = whole("Seed", seed, 0, MAX_SEED)
    if upto is not None:
        labels = labels[:upto + 1]  # image k depends only on (seed, k, labels[k]): no need for the rest
    model = common.get_model(MODEL_NAME)
    with torch.inference_mode():
        return model, model.generate(labels, seed=seed, attention_off=bool(attention_off))


def grid_picture(images: np.ndarray, labels) -> np.ndarray:
    """The generated images as one figure: in rows of GRID_COLUMNS, each with its index and class under it."""
    tiles = [np.concatenate([render.enlarge(img, THUMB),
                             render.text_cell(f"#{k} {CLASS_NAMES[label]}", TILE_LABEL, THUMB, font_size=12)])
             for k, (img, label) in enumerate(zip(images, labels, strict=True))]
    return render.sheet(tiles, columns=GRID_COLUMNS, gap=GRID_GAP)


@gpu_handler
@handler
def generate(class_name, seed, count, attention_off):
    """-> the grid picture, gamma table, the first image enlarged, its index, the grid as numbers."""
    model, out = _generate(class_name, seed, count, attention_off)
    numbers = {"class": class_name, "seed": whole("Seed", seed, 0, MAX_SEED), "count": len(out.labels),
               "attention_off": bool(attention_off), "labels": [int(k) for k in out.labels],
               "classes": [CLASS_NAMES[k] for k in out.labels],
               "gammas": {f"{res}x{res}": g for res, g in model.gammas.items()}}
    return (grid_picture(out.images, out.labels), gamma_text(model, attention_off),
            render.enlarge(out.images[0], VIEW), 0, numbers)


def query_map(out, index: int, y: int, x: int, size: int | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """Attention row of the query cell holding image pixel (y, x): (key_h, key_w) map, query cell. ``out`` is the
    generator's answer (Generated) or the discriminator's (Judged: then ``size``, the image's side, is given)."""
    size = size or out.images.shape[1]
    qh, qw = out.query_hw
    kh, kw = out.key_hw
    qy, qx = y * qh // size, x * qw // size
    return out.attention[index, qy * qw + qx].reshape(kh, kw), (qy, qx)


def ring(picture: np.ndarray, y: int, x: int) -> np.ndarray:
    """The cyan ring around pixel (y, x) of a 32x32 image shown VIEW pixels wide."""
    scale = VIEW / IMAGE
    return render.mark_point(picture, (y + 0.5) * scale, (x + 0.5) * scale, radius=6)


def draw(image: np.ndarray, attn: np.ndarray, y: int, x: int) -> np.ndarray:
    return ring(render.overlay(image, attn, alpha=0.55, size=VIEW), y, x)


MODEL_SAMPLE = 64  # generated images (one of each class in turn, seed 0) behind the model-level numbers
_dependence: dict[int, tuple] = {}  # id(model) -> (model, query_dependence numbers): computed once per model
_dependence_lock = threading.Lock()


def model_dependence(model) -> dict:
    """attn_models.sagan.evaluate.query_dependence over MODEL_SAMPLE images of ``model``, computed once."""
    from attn_models.sagan.metrics import query_dependence

    with _dependence_lock:
        cached = _dependence.get(id(model))
    if cached is not None and cached[0] is model:  # (an id can be reused by another model once one is gone)
        return cached[1]
    with torch.inference_mode():
        out = model.generate([k % len(CLASS_NAMES) for k in range(MODEL_SAMPLE)], seed=0)
    numbers = query_dependence(out.attention)
    with _dependence_lock:
        _dependence[id(model)] = (model, numbers)
    return numbers


def query_dependence_of(model, out, index: int, qy: int, qx: int) -> tuple[dict, np.ndarray]:
    """How far the clicked query's map is from the other queries' maps of its image (Jensen-Shannon divergence,
    bits), beside the model's numbers: two queries of one image vs one query in two images."""
    from attn_models.sagan.metrics import js_divergence

    maps = out.attention[index].astype(np.float64)  # (Q, K)
    q = qy * out.query_hw[1] + qx
    jsd = js_divergence(maps[q][None], np.delete(maps, q, axis=0))  # (Q - 1,)
    m = model_dependence(model)
    numbers = {"other_queries": len(jsd), "this_query_vs_others_mean": float(jsd.mean()),
               "this_query_vs_others_min": float(jsd.min()), "this_query_vs_others_max": float(jsd.max()),
               **{f"model_{k}": v for k, v in m.items()}}
    return numbers, jsd


@handler
def dependence_text(info) -> str:
    """The query-dependence numbers of an attention answer (its JSON), in words beside the map."""
    if not info or "query_dependence" not in info:
        return ""
    d = info["query_dependence"]
    return (f"**Query dependence** (Jensen-Shannon divergence in bits, 0 = same map): this query's map vs the other "
            f"{d['other_queries']} queries' maps of this image: mean **{d['this_query_vs_others_mean']:.3f}** "
            f"(from {d['this_query_vs_others_min']:.3f} to {d['this_query_vs_others_max']:.3f}).  \n"
            f"The model, over {d['model_images']} generated images: two queries of one image "
            f"**{d['model_within_image']:.3f}** ± {d['model_within_image_std']:.3f}; one query in two images "
            f"**{d['model_across_images']:.3f}** ± {d['model_across_images_std']:.3f}. Maps that ignore their query "
            "have the first near 0 (Cao et al. 2019).")


def image_index(index, count) -> int:
    return whole("Image index", index, 0, whole("Number of images", count, 1, MAX_COUNT) - 1)


@gpu_handler
@handler
def attention(class_name, seed, count, attention_off, index, y, x):
    """Image ``index`` of the grid, query pixel (y, x) on the 32x32 image -> map as JSON, downloads (the PNG is the
    overlay the tab shows)."""
    index = image_index(index, count)
    y, x = whole("Query row y", y, 0, 31), whole("Query column x", x, 0, 31)
    model, out = _generate(class_name, seed, count, attention_off, upto=index)
    return query_answer(model, out, class_name, seed, attention_off, index, y, x)


def query_answer(model, out, class_name, seed, attention_off, index: int, y: int, x: int) -> tuple:
    """attention's answer for generated images ``out`` (checked arguments)."""
    attn, (qy, qx) = query_map(out, index, y, x)
    dependence, jsd = query_dependence_of(model, out, index, qy, qx)
    info = {"index": index, "query_pixel": [y, x], "query_cell": [qy, qx], "query_hw": list(out.query_hw),
            "key_hw": list(out.key_hw), "gamma": out.gamma, "attention": attn.round(6).tolist(),
            "query_dependence": dependence}
    overlay = draw(out.images[index], attn, y, x)
    # The export's animation: the query walking along the clicked row (cheap, unlike the full sweep).
    cell = out.images.shape[1] // out.query_hw[1]
    walk = [draw(out.images[index], query_map(out, index, y, qx_ * cell + cell // 2)[0], y, qx_ * cell + cell // 2)
            for qx_ in range(out.query_hw[1])]
    data = {"class": class_name, "label": int(out.labels[index]), "seed": whole("Seed", seed, 0, MAX_SEED),
            "index": index, "attention_off": bool(attention_off), "image": out.images[index],
            "query_pixel": [y, x], "query_cell": [qy, qx], "query_hw": list(out.query_hw),
            "key_hw": list(out.key_hw), "query_attention": attn, "attention": out.attention[index],
            "gamma": out.gamma, "gammas": {f"{res}x{res}": g for res, g in model.gammas.items()},
            "query_jsd_to_other_queries": jsd, "query_dependence": dependence}
    return info, *render.save_exports(overlay, walk, WALK_FPS, data)


def clicked_pixel(evt: gr.SelectData | None) -> tuple[int, int]:
    """(y, x) on the 32x32 image of a click on its enlarged view: Gradio gives [x, y] in the displayed pixels."""
    if evt is None or not isinstance(evt.index, (list, tuple)) or len(evt.index) != 2:
        raise gr.Error("Click on a pixel of the enlarged image.")
    px, py = (int(np.clip(v * IMAGE // VIEW, 0, IMAGE - 1)) for v in evt.index)
    return py, px


@handler
def on_click(class_name, seed, count, attention_off, index, evt: gr.SelectData):
    """A click on the enlarged image: the generator's attention of that pixel."""
    py, px = clicked_pixel(evt)
    return *attention(class_name, seed, count, attention_off, index, py, px), py, px


GRID_CLICK_OUTPUTS = 10  # on_grid_click's: selected image, index, numbers, PNG, GIF, MP4, NPZ, JSON, y, x


@handler
def on_grid_click(class_name, seed, count, attention_off, y, x, evt: gr.SelectData):
    """A click on an image of the grid selects it and shows the map of the clicked pixel (a click on its label: of
    the query (y, x) already chosen). Nothing happens on a click between the images."""
    count = whole("Number of images", count, 1, MAX_COUNT)
    tile = None
    if evt is not None and isinstance(evt.index, (list, tuple)) and len(evt.index) == 2:
        tile = render.sheet_cell(evt.index[1], evt.index[0], (THUMB + TILE_LABEL, THUMB), count, GRID_COLUMNS,
                                 GRID_GAP)
    if tile is None:
        return tuple(gr.skip() for _ in range(GRID_CLICK_OUTPUTS))
    index, dy, dx = tile
    if dy < THUMB:
        y, x = dy * IMAGE // THUMB, dx * IMAGE // THUMB
    return *selected_answer(class_name, seed, count, attention_off, index, y, x), y, x


@gpu_handler
@handler
def selected_answer(class_name, seed, count, attention_off, index, y, x):
    """Image ``index`` enlarged, its index, and attention's answer for its query pixel (y, x)."""
    y, x = whole("Query row y", y, 0, IMAGE - 1), whole("Query column x", x, 0, IMAGE - 1)
    model, out = _generate(class_name, seed, count, attention_off, upto=index)
    return (render.enlarge(out.images[index], VIEW), index,
            *query_answer(model, out, class_name, seed, attention_off, index, y, x))


@gpu_handler
@handler
def sweep(class_name, seed, count, attention_off, index, fps):
    """GIF: the query walks the image in a snake path; its attention map follows."""
    index = image_index(index, count)
    fps = common.number("Sweep speed", fps, 1, 60)
    _, out = _generate(class_name, seed, count, attention_off, upto=index)
    qh, qw = out.query_hw
    cell = out.images.shape[1] // qh
    frames = []
    for r, qy in enumerate(range(0, qh, SWEEP_STRIDE)):
        cols = range(0, qw, SWEEP_STRIDE)
        for qx in (cols if r % 2 == 0 else reversed(cols)):
            y, x = qy * cell + cell // 2, qx * cell + cell // 2
            frames.append(draw(out.images[index], query_map(out, index, y, x)[0], y, x))
    return render.save_animation(frames, fps=fps, suffix=".gif")


@gpu_handler
@handler
def interpolate(class_name, seed_a, seed_b, steps, attention_off):
    """GIF: ``steps`` images of one class between the latents of two seeds, there and back."""
    class_name = choice("Class for the interpolation", class_name, CLASS_NAMES)
    seed_a, seed_b = whole("Seed A", seed_a, 0, MAX_SEED), whole("Seed B", seed_b, 0, MAX_SEED)
    steps = whole("Steps", steps, 2, 64)
    model = common.get_model(MODEL_NAME)
    with torch.inference_mode():
        out = model.interpolate(CLASS_NAMES.index(class_name), seed_a, seed_b, steps,
                                attention_off=bool(attention_off))
    frames = [render.enlarge(img, VIEW) for img in out.images]
    frames += frames[-2:0:-1]  # there and back, so the loop has no jump
    return render.save_animation(frames, fps=8.0, suffix=".gif")


# ---------------------------------------------------------------------------------------------
# Both networks. The discriminator's attention of a clicked pixel, on a generated image or a real Fashion-MNIST test
# image, beside D's verdict; and a knock-out: the generator's image made again with one query's attention output
# set to zero, against the image as generated (the difference and its size). Stateless like the rest: a request
# names the image (seed, index, class; or the test image's index) and the pixel.

GENERATOR, DISCRIMINATOR = "Generator", "Discriminator"
GENERATED, REAL = "generated image", "Fashion-MNIST test image"
SOURCES = [GENERATED, REAL]
TEST_IMAGES = common.TEST_IMAGES
PAD = (IMAGE - 28) // 2  # Fashion-MNIST's 28x28 images padded with black to 32x32, as in training
NO_DISCRIMINATOR = ("This SAGAN export holds no discriminator (it was exported before D was kept), so D's attention "
                    "and verdict cannot be shown; the generator's views still work.")
JUDGED_OUTPUTS = 6  # discriminator_attention's outputs: image, verdict, numbers, PNG (the overlay shown), NPZ, JSON
CHANGED = 1  # a pixel counts as changed by a knock-out when it moved by more than this many grey levels
DIFF_CMAP = "RdBu_r"  # diverging: blue = darker after the knock-out, white = unchanged, red = brighter


def real_image(index) -> tuple[np.ndarray, int, int]:
    """Fashion-MNIST test image ``index`` padded to 32x32 (uint8 (32, 32, 1)), its true label and the index."""
    image, label = common.test_image(index, "judge a generated image instead")
    return np.pad(image, PAD)[..., None], label, int(index)


def judged_image(class_name, seed, count, attention_off, index, source, test_index) -> tuple[np.ndarray, int, dict]:
    """The image the discriminator judges, the class it is judged as (its true label, or the class it was generated
    for), and where it comes from."""
    if choice("Image to judge", source, SOURCES) == REAL:
        image, label, test_index = real_image(test_index)
        return image, label, {"source": REAL, "test_index": test_index}
    index = image_index(index, count)
    _, out = _generate(class_name, seed, count, attention_off, upto=index)
    return out.images[index], int(out.labels[index]), {
        "source": GENERATED, "class": class_name, "seed": whole("Seed", seed, 0, MAX_SEED), "index": index,
        "attention_off": bool(attention_off)}


def leaning(score: float) -> str:
    return "real" if score > 0 else "generated" if score < 0 else "neither way"


def verdict_text(info: dict) -> str:
    """D's verdict in words: the score, which way it leans, for which class."""
    if info["source"] == REAL:
        what, why = f"Fashion-MNIST test image #{info['test_index']}", "its true label"
    else:
        what, why = f"generated image #{info['index']}", "the class it was generated for"
    return (f"**Discriminator's verdict** on {what} as a **{info['class_name']}** ({why}): score "
            f"**{info['score']:+.3f}**, it leans **{info['leans']}**. Under the hinge loss D was trained with, a score "
            f"above 0 leans real and below 0 generated; D judges the image together with its class. D's attention "
            f"layer ({info['query_hw'][0]}x{info['query_hw'][1]} queries, {info['key_hw'][0]}x{info['key_hw'][1]} "
            f"keys) has gamma {info['gamma']:+.4f}.")


@gpu_handler
@handler
def discriminator_attention(class_name, seed, count, attention_off, index, source, test_index, y, x):
    """The discriminator's attention of query pixel (y, x) on generated image ``index`` (source "generated image")
    or on Fashion-MNIST test image ``test_index`` (source "Fashion-MNIST test image"), and D's verdict: the image
    judged (enlarged), the verdict, its numbers, downloads (the PNG is the overlay the tab shows)."""
    model = common.get_model(MODEL_NAME)
    if not model.has_discriminator:
        raise gr.Error(NO_DISCRIMINATOR)
    y, x = whole("Query row y", y, 0, IMAGE - 1), whole("Query column x", x, 0, IMAGE - 1)
    image, label, origin = judged_image(class_name, seed, count, attention_off, index, source, test_index)
    with torch.inference_mode():
        judged = model.discriminate(image[None], [label])
    if not judged.query_hw[0]:
        raise gr.Error("This SAGAN's discriminator has no attention layer to show.")
    attn, (qy, qx) = query_map(judged, 0, y, x, size=IMAGE)
    score = float(judged.scores[0])
    info = {**origin, "label": label, "class_name": CLASS_NAMES[label], "score": score, "leans": leaning(score),
            "query_pixel": [y, x], "query_cell": [qy, qx], "query_hw": list(judged.query_hw),
            "key_hw": list(judged.key_hw), "gamma": judged.gamma,
            "gammas": {f"{res}x{res}": g for res, g in judged.gammas.items()}, "attention": attn.round(6).tolist()}
    overlay = draw(image, attn, y, x)
    data = {**info, "image": image, "query_attention": attn, "attention": judged.attention[0]}
    return render.enlarge(image, VIEW), verdict_text(info), info, render.save_image(overlay), *render.save_numbers(data)


@handler
def on_judged_click(class_name, seed, count, attention_off, index, source, test_index, evt: gr.SelectData):
    """A click on the image the discriminator judges: D's attention of that pixel."""
    py, px = clicked_pixel(evt)
    return *discriminator_attention(class_name, seed, count, attention_off, index, source, test_index, py, px), py, px


def show_network(network):
    """The network switch shows the generator's views or the discriminator's."""
    shows_d = network == DISCRIMINATOR
    return gr.Column(visible=not shows_d), gr.Column(visible=shows_d)


@handler
def judged_if_shown(network, *request):
    """The discriminator's view again while it is on screen (the switch, a new image, another test image)."""
    if network != DISCRIMINATOR:
        return tuple(gr.skip() for _ in range(JUDGED_OUTPUTS))
    return discriminator_attention(*request)


def difference_picture(diff: np.ndarray, scale: int, y: int, x: int) -> np.ndarray:
    """Signed difference (H, W) in grey levels on a diverging map with ±``scale`` at its ends, enlarged, the query
    ringed, with a colour bar and the scale written under it."""
    heat = render.colorize((diff / scale + 1) / 2, DIFF_CMAP, vmax=1.0)
    bar = render.colorize(np.tile(np.linspace(0, 1, VIEW), (10, 1)), DIFF_CMAP, vmax=1.0)
    words = render.text_cell(f"after − before, grey levels:\nblue −{scale} · white 0 · red +{scale}", 38, VIEW,
                             font_size=12)
    return np.concatenate([ring(render.enlarge(heat, VIEW), y, x), bar, words], axis=0)


def knockout_text(info: dict) -> str:
    """The size of the knock-out's difference in words."""
    (qy, qx), (qh, qw), (y, x) = info["query_cell"], info["query_hw"], info["query_pixel"]
    words = (f"Knocking out query ({qy}, {qx}) of the {qh}x{qw} grid (the cell holding pixel ({y}, {x})) changed "
             f"**{info['pixels_changed']} of {info['pixels']} pixels** by more than {CHANGED} grey level; mean "
             f"|difference| **{info['mean_abs_diff']:.3f}**, max **{info['max_abs_diff']}** grey levels (of 255). "
             f"The difference is after − before: blue darker, red brighter, full colour at ±{info['scale']} levels.")
    if info["gamma"] == 0:
        words += (" gamma is 0 for these images: the attention output is dropped anyway, so knocking it out changes "
                  "nothing.")
    return words


@gpu_handler
@handler
def knockout(class_name, seed, count, attention_off, index, y, x):
    """Image ``index`` generated again with the attention output of the query holding pixel (y, x) set to zero:
    the knocked-out image, the difference from the image as generated, and its size."""
    index = image_index(index, count)
    y, x = whole("Query row y", y, 0, IMAGE - 1), whole("Query column x", x, 0, IMAGE - 1)
    model, out = _generate(class_name, seed, count, attention_off, upto=index)
    seed = whole("Seed", seed, 0, MAX_SEED)
    qh, qw = out.query_hw
    qy, qx = y * qh // IMAGE, x * qw // IMAGE
    with torch.inference_mode():
        knocked = model.generate(out.labels, seed=seed, attention_off=bool(attention_off), knockout=qy * qw + qx)
    before, after = out.images[index], knocked.images[index]
    diff = after.astype(np.int16) - before.astype(np.int16)  # (H, W, C) grey levels
    size = np.abs(diff)
    signed = diff.mean(axis=-1)
    info = {"index": index, "query_pixel": [y, x], "query_cell": [qy, qx], "query_index": qy * qw + qx,
            "query_hw": [qh, qw], "gamma": out.gamma, "mean_abs_diff": float(size.mean()),
            "max_abs_diff": int(size.max()), "pixels_changed": int((size.max(axis=-1) > CHANGED).sum()),
            "pixels": int(size.shape[0] * size.shape[1]), "changed_by_more_than": CHANGED,
            "scale": max(1, int(size.max())), "difference": signed.round(3).tolist()}
    shown = ring(render.enlarge(after, VIEW), y, x)
    picture = difference_picture(signed, info["scale"], y, x)
    tall = picture.shape[0]
    cells = [np.pad(im, ((0, tall - VIEW), (0, 0), (0, 0)), constant_values=255)
             for im in (ring(render.enlarge(before, VIEW), y, x), shown)] + [picture]
    sheet = render.labelled_sheet([cells], [f"query ({qy}, {qx})\npixel ({y}, {x})"],
                                  ["as generated", "query knocked out", "difference"])
    data = {"class": class_name, "label": int(out.labels[index]), "seed": seed, "attention_off": bool(attention_off),
            **{k: v for k, v in info.items() if k != "difference"}, "image": before, "knocked_out": after,
            "difference": diff}
    return shown, picture, knockout_text(info), info, render.save_image(sheet), *render.save_numbers(data)


ARRIVAL = dict(class_name=MIXED, seed=0, count=8, attention_off=False)
ARRIVAL_QUERY = (16, 16)  # the centre pixel: on the item in every class


def arrival() -> tuple:
    """The tab's first view: a generated grid and the attention map of the centre pixel of its first image (the
    overlay is the PNG download)."""
    spec = ARRIVAL.values()
    grid, gammas, selected, index, numbers = generate(*spec)
    info, *exports = attention(*spec, index, *ARRIVAL_QUERY)
    return grid, gammas, selected, index, numbers, exports[0], info, *exports, dependence_text(info)


def build(device: str) -> None:
    common.set_device(device)
    gr.Markdown(
        "**Self-Attention GAN** (Zhang et al. 2019), class-conditional, trained on 32x32 Fashion-MNIST. "
        "Generate images, then **click a pixel** of one (or of the selected image, enlarged): the map shows the "
        "softmax weights of that query over the key grid of the generator's self-attention layer (16x16 queries, "
        "2x2-pooled 8x8 keys, as in the authors' code). The layer's output is scaled by the learnt **gamma** and "
        "added to its input; tick *gamma = 0* to see the images without what attention adds.")
    with gr.Row():
        class_name = gr.Dropdown(CLASS_CHOICES, value=ARRIVAL["class_name"], label="Class")
        seed = gr.Number(value=ARRIVAL["seed"], precision=0, minimum=0, maximum=MAX_SEED, label="Seed")
        count = gr.Slider(1, MAX_COUNT, value=ARRIVAL["count"], step=1, label="Number of images",
                          elem_id="sagan-count")
        attention_off = gr.Checkbox(value=ARRIVAL["attention_off"],
                                    label="gamma = 0 at inference (switch attention off)")
    gen_btn = gr.Button("Generate", variant="primary", elem_id="sagan-generate")
    with gr.Accordion("Does attention help? The trained ablation", open=False, elem_id="sagan-ablation"):
        gr.Markdown(ablation_text())
    grid = gr.Image(label="Generated images: click a pixel of one", interactive=False, format="png",
                    elem_id="sagan-grid")
    gammas = gr.Markdown(label="Gamma of each attention layer", show_label=False)
    with gr.Accordion("Generated images as numbers (classes, gammas)", open=False):
        grid_json = gr.JSON(label="Generated images")
    with gr.Row():
        network = gr.Radio([GENERATOR, DISCRIMINATOR], value=GENERATOR, label="Attention layer to show",
                           info="the generator's, or the discriminator's (on a generated or a real image) with its "
                                "verdict", elem_id="sagan-network")
        index = gr.Number(value=0, precision=0, label="Selected image index", minimum=0, maximum=MAX_COUNT - 1,
                          elem_id="sagan-index")
    with gr.Column(visible=True, elem_id="sagan-g-view") as g_view:
        with gr.Row():
            selected = gr.Image(label="Selected image: click a pixel", interactive=False, height=VIEW, width=VIEW,
                                format="png", elem_id="sagan-selected")
            overlay = gr.Image(label="Attention of the clicked query (cyan ring)", interactive=False, height=VIEW,
                               width=VIEW, format="png", elem_id="sagan-overlay")
        with gr.Row():
            qy = gr.Number(value=ARRIVAL_QUERY[0], precision=0, minimum=0, maximum=31, label="Query row y (0-31)",
                           elem_id="sagan-qy")
            qx = gr.Number(value=ARRIVAL_QUERY[1], precision=0, minimum=0, maximum=31,
                           label="Query column x (0-31)", elem_id="sagan-qx")
            show_btn = gr.Button("Show attention at (y, x)")
        gr.Markdown("**Download** the overlay (PNG), the query walking along its row (GIF, MP4), and the numbers: "
                    "this image's whole attention (queries × keys) with both grid shapes, the clicked row, gammas "
                    "(NPZ, JSON)")
        dependence = gr.Markdown(label="Query dependence", show_label=False, elem_id="sagan-dependence")
        exports = common.export_buttons("sagan-export")
        with gr.Accordion("Attention row as numbers (key grid)", open=False):
            attn_json = gr.JSON(label="Attention row (key grid)")
        gr.Markdown("### Knock out this query\nThe selected image made again with the attention output at the "
                    "query (y, x) above set to zero, for this image only: what that one position's attention adds.")
        ko_btn = gr.Button("Knock out the query at (y, x)", elem_id="sagan-ko-run")
        with gr.Row():
            ko_image = gr.Image(label="Query knocked out (cyan ring)", interactive=False, height=VIEW, width=VIEW,
                                format="png", elem_id="sagan-ko-image")
            ko_diff = gr.Image(label="Difference, after − before (scale below it)", interactive=False, height=VIEW,
                               width=VIEW, format="png", elem_id="sagan-ko-diff")
        ko_size = gr.Markdown(label="Size of the difference", show_label=False, elem_id="sagan-ko-size")
        ko_exports, ko_json = common.export_section(
            "the image as generated, knocked out and their difference (PNG); both images, the signed difference and "
            "its size (NPZ, JSON)", "sagan-ko-export", "Knock-out as numbers", "Knock-out numbers",
            labels=("PNG picture", "NPZ numbers", "JSON numbers"))
        with gr.Row():
            fps = gr.Slider(2, 20, value=8, step=1, label="Sweep speed (frames/s)")
            sweep_btn = gr.Button("Animate the query sweeping the image")
        sweep_out = gr.Image(label="Query sweep (GIF)", interactive=False, height=VIEW, width=VIEW,
                             elem_id="sagan-sweep")
    with gr.Column(visible=False, elem_id="sagan-d-view") as d_view:
        gr.Markdown(
            "The **discriminator** (D) was trained beside the generator to tell real images from generated ones, "
            "given their class; it has a self-attention layer of its own. Pick the image it judges, then **click a "
            "pixel**: the map is that query's softmax weights over D's key grid.")
        with gr.Row():
            source = gr.Radio(SOURCES, value=GENERATED, label="Image the discriminator judges",
                              info="the selected generated image, or a real one", elem_id="sagan-d-source")
            test_index = gr.Number(value=0, precision=0, minimum=0, maximum=TEST_IMAGES - 1,
                                   label=f"Fashion-MNIST test image index (0-{TEST_IMAGES - 1})",
                                   elem_id="sagan-d-test-index")
        with gr.Row():
            d_image = gr.Image(label="Image the discriminator judges: click a pixel", interactive=False, height=VIEW,
                               width=VIEW, format="png", elem_id="sagan-d-image")
            d_overlay = gr.Image(label="Discriminator's attention of the clicked query (cyan ring)",
                                 interactive=False, height=VIEW, width=VIEW, format="png", elem_id="sagan-d-overlay")
        verdict = gr.Markdown(label="Discriminator's verdict", show_label=False, elem_id="sagan-d-verdict")
        with gr.Row():
            d_qy = gr.Number(value=ARRIVAL_QUERY[0], precision=0, minimum=0, maximum=31, label="Query row y (0-31)",
                             elem_id="sagan-d-qy")
            d_qx = gr.Number(value=ARRIVAL_QUERY[1], precision=0, minimum=0, maximum=31,
                             label="Query column x (0-31)", elem_id="sagan-d-qx")
            d_show_btn = gr.Button("Show the discriminator's attention at (y, x)", elem_id="sagan-d-run")
        d_exports, d_json = common.export_section(
            "the overlay (PNG) and the numbers: D's whole attention of this image (queries × keys) with both grid "
            "shapes, the clicked row, D's score and gammas (NPZ, JSON)", "sagan-d-export",
            "Discriminator's attention and verdict as numbers", "Discriminator's answer",
            labels=("PNG picture", "NPZ numbers", "JSON numbers"))
    gr.Markdown("### Latent interpolation between two seeds (same class)")
    with gr.Row():
        # Its own class list: "mixed" has no single class to interpolate within.
        interp_class = gr.Dropdown(CLASS_NAMES, value=CLASS_NAMES[0], label="Class for the interpolation")
        seed_a = gr.Number(value=0, precision=0, minimum=0, maximum=MAX_SEED, label="Seed A")
        seed_b = gr.Number(value=1, precision=0, minimum=0, maximum=MAX_SEED, label="Seed B")
        steps = gr.Slider(2, 64, value=16, step=1, label="Steps")
        interp_btn = gr.Button("Interpolate")
    interp_out = gr.Image(label="Interpolation (GIF)", interactive=False, height=VIEW, width=VIEW)

    spec = [class_name, seed, count, attention_off]
    common.on_arrival(arrival, [grid, gammas, selected, index, grid_json, overlay, attn_json, *exports, dependence])
    # The discriminator's view follows the image it judges while it is on screen: a new grid, another pick.
    judging = [*spec, index, source, test_index]
    # D's overlay is its PNG download, shown by copying it in the browser (judged, below).
    judged_outputs = [d_image, verdict, d_json, *d_exports]

    def judged(event):
        """D's overlay (the PNG download) on screen after ``event``."""
        return common.show_downloads(event, d_exports[:1], [d_overlay])

    judged(gen_btn.click(
        generate, spec, [grid, gammas, selected, index, grid_json], api_name="sagan_generate",
        api_description="Generate images of a class with the SAGAN and list each attention layer's gamma.").then(
        judged_if_shown, [network, *judging, d_qy, d_qx], judged_outputs, api_visibility="private"))

    def shown(event):
        """The overlay (the PNG download) on screen and the numbers in words beside it, after ``event``."""
        common.show_downloads(event, exports[:1], [overlay])
        return event.then(dependence_text, attn_json, dependence, api_visibility="private")

    # The numbers travel in the answer's JSON (the API's outputs are what is shown, then files); the words
    # beside the map follow from them.
    shown(show_btn.click(attention, [*spec, index, qy, qx], [attn_json, *exports], api_name="sagan_attention",
                         api_description="Attention map of query pixel (y, x) of a generated image over the key "
                                         "grid."))
    shown(selected.select(on_click, [*spec, index], [attn_json, *exports, qy, qx], api_visibility="private"))
    judged(shown(grid.select(on_grid_click, [*spec, qy, qx], [selected, index, attn_json, *exports, qy, qx],
                             api_visibility="private")).then(
        judged_if_shown, [network, *judging, d_qy, d_qx], judged_outputs, api_visibility="private"))
    ko_btn.click(knockout, [*spec, index, qy, qx], [ko_image, ko_diff, ko_size, ko_json, *ko_exports],
                 api_name="sagan_knockout",
                 api_description="A generated image made again with one query's attention output set to zero, and "
                                 "the difference.")
    judged(network.change(show_network, network, [g_view, d_view], api_visibility="private").then(
        judged_if_shown, [network, *judging, d_qy, d_qx], judged_outputs, api_visibility="private"))
    judged(d_show_btn.click(discriminator_attention, [*judging, d_qy, d_qx], judged_outputs,
                            api_name="sagan_discriminator_attention",
                            api_description="The discriminator's attention map of query pixel (y, x) on a generated "
                                            "or a real image, and its verdict."))
    for changed in (source.input, test_index.submit):
        judged(changed(discriminator_attention, [*judging, d_qy, d_qx], judged_outputs, api_visibility="private"))
    judged(d_image.select(on_judged_click, judging, [*judged_outputs, d_qy, d_qx], api_visibility="private"))
    sweep_btn.click(sweep, [*spec, index, fps], sweep_out, api_name="sagan_sweep",
                    api_description="GIF of the query walking over a generated image, its attention map following.")
    interp_btn.click(interpolate, [interp_class, seed_a, seed_b, steps, attention_off], interp_out,
                     api_name="sagan_interpolate",
                     api_description="GIF of a latent interpolation between two seeds of one class, there and back.")
