"""Image Transformer tab: sample with the image streamed while it is generated, complete a partly hidden
image (the top rows, or any region painted over in an ImageEditor), and inspect a generated pixel's query block,
memory block and real attention weights (Fig. 3 of Parmar et al. 2018), every head of every layer at once, plus
an animation of the generation order."""
from __future__ import annotations

import io
from contextlib import contextmanager

import gradio as gr
import numpy as np
import PIL.Image
import PIL.ImageDraw
import torch
from gradio.data_classes import FileData

from attn_models.data import CLASS_NAMES
from attn_models.image_transformer.attention_stats import model_head_stats, query_grid
from attn_models.image_transformer.completion import check_known, unseen_counts
from attn_models.image_transformer.completion import complete as complete_from_mask
from attn_models.layers.local_attention import VIS_MASKED, VIS_OUTSIDE, generation_rank, visibility
from demo import common
from demo.common import handler, number, position, user_errors, whole
from demo.gpu import gpu_handler
from demo.render import (
    EXPORT_KINDS,
    FIG3_LABELS,
    caption_text,
    colorize,
    fig3_legend_html,
    paint_visibility,
    repeat_pixels,
    save_animation,
    save_exports,
    save_image,
    save_numbers,
    sheet,
    sheet_cell,
    text_cell,
)

MODEL_NAMES = {"local1d": "image-transformer-1d-fashion-mnist", "local2d": "image-transformer-2d-fashion-mnist"}
MODEL_CHOICES = [("Local 1D attention", "local1d"), ("Local 2D attention", "local2d")]
EACH_CLASS = -1
EACH_CLASS_NAME = "one of each class"
# String values: Gradio documents a Dropdown's choices as strings (Literal['...']) whatever their Python type, and
# refuses any value not among them, so int values were documented as '3' and then refused as '3'. Names are what
# the API now takes; the handlers still accept class ids (-1 to 9) from Python callers.
CLASS_CHOICES = [(EACH_CLASS_NAME, EACH_CLASS_NAME)] + [(name, name) for name in CLASS_NAMES]
MAX_COUNT = 16          # samples per request in the UI (the model allows more; the CPU does not)
MAX_COMPLETIONS = 8
SAMPLE_PX = 168         # displayed size of a 28x28 sample (6x, nearest neighbour)
INSPECT_PX = 448
UNKNOWN = np.array([72, 60, 110], np.uint8)   # not generated yet / hidden: a muted violet, unlike black
ANIMATION_FRAMES = 40
# Pictures streamed while sampling, the finished one included. Each update's picture is a file that the browser or
# client then fetches (gradio_client: ~50 ms each on a busy CPU, mostly a new connection per file), so one update per
# image row (28) cost more than the sampling itself; 4 show the image growing by quarters.
STREAM_UPDATES = 4
# Samples and completions are shown as one picture (one file per answer or streamed update, not one per image): in
# rows of SHEET_COLUMNS, each image with its caption under it; a click finds its image again.
SHEET_COLUMNS = 8
SHEET_GAP = 4
CELL_LABEL = 20  # height of the strip under each image holding its caption
MAX_SEED = 2**31 - 1
NO_UPLOAD = "upload one, paste one or pick a Fashion-MNIST test image"
NO_TARGET = "Pick an image first: click one of the samples or completions above."


@contextmanager
def single_thread():
    """Run the enclosed sampling steps with one intra-op thread, then restore the setting.

    The cached sampler makes hundreds of tiny steps; OpenMP hand-offs between threads cost far more than they
    save, worst on a busy CPU (measured here under load: sample(4) of the 28x28 local-1D model took 2.3 s with
    one thread, 21-225 s with two). Set in the thread that runs the step. In the app the count is pinned for
    the whole process (common.pin_threads): changing it here would change it for concurrent requests too."""
    if common.threads_pinned():
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def get_model(kind: str):
    return common.get_model(MODEL_NAMES[common.choice("Model", kind, MODEL_NAMES)])


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------

def _temperature(value) -> float:
    return number("Temperature", value, 0, 10, above_lo=True)


def class_id(cls) -> int:
    """A class as the Dropdown sends it (a name, or "one of each class") or as Python callers give it (an id,
    -1 for one of each class) -> the id."""
    if cls is None or cls == EACH_CLASS_NAME:
        return EACH_CLASS
    if isinstance(cls, str) and not cls.strip().lstrip("-").isdigit():
        return CLASS_NAMES.index(common.choice("Class", cls, [*CLASS_NAMES, EACH_CLASS_NAME]))
    return whole("Class", cls, EACH_CLASS, len(CLASS_NAMES) - 1)


def _labels(model, cls, n: int):
    if not model.class_conditional:
        return None
    cls = class_id(cls)
    if cls == EACH_CLASS:
        return np.arange(n) % model.num_classes
    return np.full(n, cls)


def _caption(labels, k: int, prefix: str = "") -> str:
    name = "" if labels is None else CLASS_NAMES[int(labels[k])]
    return f"{prefix}{name}".strip()


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------

def grid_picture(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W, C) -> RGB (H, W*C, 3) on the model's position grid: each channel is its own cell, drawn
    in its colour (C=3) or grey (C=1)."""
    h, w, c = image.shape
    if c == 1:
        return np.repeat(image, 3, axis=-1)
    cells = image.reshape(h, w * c)
    out = np.zeros((h, w * c, 3), np.uint8)
    for ch in range(c):
        out[:, ch::c, ch % 3] = cells[:, ch::c]
    return out


def partial_picture(image: np.ndarray, done: np.ndarray) -> np.ndarray:
    """Grid picture with the positions not generated yet (``done`` False) in the UNKNOWN colour."""
    pic = grid_picture(image)
    h, w, c = image.shape
    pic[~np.broadcast_to(done, image.shape).reshape(h, w * c)] = UNKNOWN
    return pic


def scale_of(grid_hw: tuple[int, int], size: int) -> int:
    """Whole pixels per grid cell that fit the grid's longer side in ``size``."""
    return max(1, size // max(grid_hw))


def enlarge_to(pic: np.ndarray, size: int) -> np.ndarray:
    return repeat_pixels(pic, scale_of(pic.shape[:2], size))


def fig3_picture(image: np.ndarray, codes: np.ndarray, size: int = INSPECT_PX) -> np.ndarray:
    """The paper's Fig. 3 over the real image: what the query may attend, tinted on its pixels."""
    return paint_visibility(codes, scale_of(codes.shape, size), grid_picture(image))


def attention_picture(image: np.ndarray, weights: np.ndarray, row: int, gcol: int, size: int = INSPECT_PX
                      ) -> np.ndarray:
    """Attention weights (H, W*C) as a heat map over the grid picture; cells stay blocky (exact positions)."""
    base = grid_picture(image).astype(np.float32)
    heat = colorize(weights, cmap="inferno").astype(np.float32)
    seen = (weights > 0)[..., None]
    out = np.where(seen, base * 0.25 + heat * 0.75, base * 0.2)
    out = out.round().astype(np.uint8)
    out[row, gcol] = (0, 255, 255)  # the query, in a colour the colormap does not use
    return enlarge_to(out, size)


def heads_strip(image: np.ndarray, weights: np.ndarray, size: int = 160) -> np.ndarray:
    """One small heat map per head, side by side with a gap."""
    tiles = [enlarge_to(colorize(w, cmap="inferno"), size) for w in weights]
    gap = np.full((tiles[0].shape[0], 6, 3), 255, np.uint8)
    parts = []
    for t in tiles:
        parts += [t, gap]
    return np.concatenate(parts[:-1], axis=1)


def order_frames(image: np.ndarray, pattern, frames: int = ANIMATION_FRAMES, size: int = 224) -> list[np.ndarray]:
    """Frames revealing ``image`` in the model's generation order (block-raster for local 2D)."""
    h, w, c = image.shape
    rank = generation_rank(h, w, c, pattern).numpy().reshape(h, w * c)
    n = h * w * c
    out = []
    for k in np.linspace(0, n, frames + 1)[1:]:
        done = (rank < k).reshape(h, w, c)
        out.append(enlarge_to(partial_picture(image, done), size))
    return out + [out[-1]] * 5  # hold the finished image


def results_sheet(pictures: list[np.ndarray], captions: list[str]) -> np.ndarray:
    """Same-size pictures as one figure, in rows of SHEET_COLUMNS, each with its caption under it."""
    tiles = [np.concatenate([pic, text_cell(text, CELL_LABEL, pic.shape[1], font_size=12)])
             for pic, text in zip(pictures, captions, strict=True)]
    return sheet(tiles, columns=SHEET_COLUMNS, gap=SHEET_GAP)


def cell_hw(pictures: list[np.ndarray]) -> tuple[int, int]:
    """Size of each image's cell (picture and caption) on results_sheet(pictures, ...): where a click finds it."""
    return pictures[0].shape[0] + CELL_LABEL, pictures[0].shape[1]


# ---------------------------------------------------------------------------------------------
# Sample (streamed) and complete
# ---------------------------------------------------------------------------------------------

NOT_YET = (gr.skip(),) * len(EXPORT_KINDS)  # while sampling streams, the downloads keep what they hold


def stream_every(m) -> int:
    """Positions generated between two streamed pictures: whole units of the model's own streaming (an image row,
    or a query block for local 2D), about STREAM_UPDATES pictures in all (one per unit when there are fewer units)."""
    h, w, c = m.image_shape
    p = m.pattern
    unit = p.block_h * p.block_w if p.kind == "local2d" else w * c
    units = -(-m.num_positions // unit)
    return unit * max(1, round(units / STREAM_UPDATES))


def results_info(kind: str, labels, data: dict) -> dict:
    """What a sampling or completion made, in numbers small enough for every answer: the model, each image's class,
    the settings (the images themselves are in the NPZ and JSON downloads)."""
    return {"model": MODEL_NAMES[kind], "labels": None if labels is None else [int(k) for k in labels],
            "class_names": None if labels is None else [CLASS_NAMES[int(k)] for k in labels], **data}


def result_exports(kind: str, images: np.ndarray, labels, picture: np.ndarray, data: dict) -> list[str]:
    """Downloads of a sampling or completion: ``picture`` (the sheet the tab shows), the generation order of the
    first image (GIF, MP4), and the images with their labels and settings (NPZ, JSON)."""
    m = get_model(kind)
    names = None if labels is None else [CLASS_NAMES[int(k)] for k in labels]
    numbers = {"model": MODEL_NAMES[kind], "image_shape": list(m.image_shape), "images": images,
               "labels": labels, "class_names": names, **data}
    return save_exports(picture, order_frames(images[0], m.pattern), 12, numbers)


@gpu_handler
@handler
def sample(kind, label, temperature, seed, count, progress=gr.Progress()):  # noqa: B008 (Gradio injects it)
    """Stream the samples while they are generated, as one growing picture; the last yield holds the finished
    samples: their numbers and the downloads, the picture only as the PNG download (the tab shows that file).
    ``label``: a Fashion-MNIST class id, or -1 for one of each class in turn."""
    m = get_model(kind)
    t = _temperature(temperature)
    seed = whole("Seed", seed, 0, MAX_SEED)
    n = whole("Number of samples", count, 1, MAX_COUNT)
    labels = _labels(m, label, n)
    captions = [_caption(labels, i) for i in range(n)]
    total = m.num_positions
    stream = m.sample_stream(n, labels=labels, temperature=t, seed=seed, every=stream_every(m))
    while True:
        with single_thread():  # per step: Gradio may run each step of a generator in another thread
            step = next(stream, None)
        if step is None:
            return
        images, done = step
        k = int(np.broadcast_to(done, m.image_shape).sum())
        progress(k / total, desc=f"generated {k} of {total} positions")
        pictures = [enlarge_to(partial_picture(images[i], done), SAMPLE_PX) for i in range(n)]
        if k < total:
            yield (results_sheet(pictures, captions), f"Generating… {k}/{total} positions ({MODEL_NAMES[kind]})",
                   gr.skip(), gr.skip(), *NOT_YET)
            continue
        status = (f"Done: {n} sample(s) from **{MODEL_NAMES[kind]}**, temperature {t:g}, seed {seed}. "
                  "Click an image to inspect its attention.")
        settings = {"temperature": t, "seed": seed}
        state = {"kind": kind, "images": images, "labels": labels, "cell_hw": cell_hw(pictures)}
        exports = result_exports(kind, images, labels, results_sheet(pictures, captions), settings)
        # Gradio sends the last yield twice (the last streamed update, then the answer) and gradio_client fetches its
        # files each time: the finished picture travels once, as the PNG download.
        yield None, status, results_info(kind, labels, settings), state, *exports


@gpu_handler
@handler
def complete(kind, image, rows, count, label, temperature, seed):
    """Keep the first rows of ``image`` and sample the rest, ``count`` times. The picture of the kept rows, the
    original and the completions is the PNG download (the tab shows that file)."""
    m = get_model(kind)
    h, w, c = m.image_shape
    rows = whole("Rows to keep", rows, 0, h - 1)
    n = whole("Number of completions", count, 1, MAX_COMPLETIONS)
    t = _temperature(temperature)
    seed = whole("Seed", seed, 0, MAX_SEED)
    labels = _labels(m, label, n)
    with user_errors("Cannot complete this image"):
        prefix, note = m.preprocess(common.image(image, NO_UPLOAD))
    known = m.prefix_mask(rows)
    with torch.inference_mode(), single_thread():
        images = m.sample(n, labels=labels, temperature=t, seed=seed,
                          prefix=np.broadcast_to(prefix, (n, h, w, c)).copy(), known=known)
    kept = int(known.any(axis=(1, 2)).sum()) if known.any() else 0
    pictures = [enlarge_to(partial_picture(prefix, known), SAMPLE_PX), enlarge_to(grid_picture(prefix), SAMPLE_PX)]
    pictures += [enlarge_to(grid_picture(images[i]), SAMPLE_PX) for i in range(n)]
    captions = ["kept", "original", *(_caption(labels, i, "completion: ") for i in range(n))]
    status = (f"Kept {int(known.sum())} of {known.size} positions (rows 0–{kept - 1 if kept else 0})"
              + (f"; {note}" if note else "") + f". {n} completion(s), temperature {t:g}, seed {seed}.")
    if m.pattern.kind == "local2d" and int(known.sum()) != rows * w * c:
        status += (" Local 2D generates block by block, so only whole block rows "
                   f"({m.pattern.block_h} rows each) form a prefix in generation order.")
    # Aligned with the picture: kept prefix, original, completions (the first two both inspect the original).
    state = {"kind": kind, "images": np.concatenate([prefix[None], prefix[None], images]),
             "labels": None if labels is None else np.concatenate([labels[:1], labels[:1], labels]),
             "cell_hw": cell_hw(pictures)}
    settings = {"rows": rows, "temperature": t, "seed": seed}
    info = results_info(kind, labels, {**settings, "kept_positions": int(known.sum()), "note": note})
    exports = result_exports(kind, images, labels, results_sheet(pictures, captions),
                             {"original": prefix, "known": known, **settings})
    return status, info, state, *exports


@handler
def rows_for_model(kind, rows):
    """The rows slider follows the chosen model's height."""
    h = get_model(kind).image_shape[0]
    return gr.update(maximum=h - 1, value=min(int(rows or 0), h - 1))


@handler
def pick_test_image(index):
    image, label = common.test_image(index, "upload or paste a picture instead")
    # Shown enlarged (exactly, nearest neighbour) so it is visible; the model's preprocess undoes that losslessly.
    return enlarge_to(np.repeat(image[..., None], 3, axis=-1), SAMPLE_PX), CLASS_NAMES[label]


# ---------------------------------------------------------------------------------------------
# Your own drawing: complete any painted region, not only the bottom rows
# ---------------------------------------------------------------------------------------------

MASK_HINT = ("put a picture in the editor (upload, paste, or pick a Fashion-MNIST test image) and paint over "
             "the part the model should fill in")
NO_MASK = ("No mask painted: paint over the part of the image the model should fill in (through the API: a "
           "'layers' image the size of the background, painted = not transparent and not black).")
MASK_COLOR = "#ff5a1f"          # the one brush colour: bright on the dark Fashion-MNIST pictures
MASK_COVER = 0.5                # a model pixel is hidden when at least this share of it is painted
EXAMPLE_PX = SAMPLE_PX
COULD_NOT_SEE_CMAP = "magma"


def mask_editor(**kwargs) -> gr.ImageEditor:
    """A stock ImageEditor (same front end, same API types) whose files are checked before they are decoded: an
    unreadable file or a huge picture is a gr.Error naming the problem, not a Gradio processing error.

    The check wraps this instance's reader rather than living in a subclass: Gradio writes a .pyi stub next to
    every module that defines a component class, each time the module is imported."""
    editor = gr.ImageEditor(**kwargs)
    read = editor.convert_and_format_image

    def checked(file, flatten_on_white: bool = False):
        return read_checked(read, file, flatten_on_white)

    editor.convert_and_format_image = checked
    return editor


def read_checked(read, file, flatten_on_white: bool = False):
    """``read(file, flatten_on_white)`` (the editor's own reader) once the file's header says it is a picture of
    a size the app accepts; gr.Error otherwise."""
    if file is None:
        return None
    try:
        source = file.path if isinstance(file, FileData) else io.BytesIO(file)
        with PIL.Image.open(source) as im:  # lazy: reads the header only
            common.check_image_size(*im.size)
        return read(file, flatten_on_white)
    except gr.Error:
        raise
    except Exception as e:  # PIL's UnidentifiedImageError, truncated files, decompression bombs
        raise gr.Error(f"Cannot read the image or mask: it is not a picture this app can open "
                       f"(PNG, JPEG, WebP, ...): {type(e).__name__}.") from e


def example_drawing() -> dict:
    """A plain drawn top (28 x 28, shown 6x) with a painted band over its middle: the editor's value, hence the
    API's documented default, a call that works as it is. Pages show the picture alone (see ``build``)."""
    small = PIL.Image.new("L", (28, 28), 0)
    outline = [(11, 4), (7, 5), (2, 11), (5, 14), (8, 11), (8, 25), (19, 25), (19, 11), (22, 14), (25, 11), (20, 5),
               (16, 4), (13.5, 7)]  # a T-shirt: collar, shoulder, sleeve, body, and back up the other side
    PIL.ImageDraw.Draw(small).polygon(outline, fill=170)
    yy, xx = np.mgrid[0:28, 0:28]
    shade = np.where(np.asarray(small) > 0, np.asarray(small) + 25 * np.cos(xx * 0.8) - 2 * (yy - 14), 0)
    background = np.repeat(enlarge_to(shade.clip(0, 255).round().astype(np.uint8)[..., None], EXAMPLE_PX), 3, -1)
    layer = np.zeros((*background.shape[:2], 4), np.uint8)
    s = EXAMPLE_PX // 28
    rgb = [int(MASK_COLOR[i:i + 2], 16) for i in (1, 3, 5)]
    layer[12 * s:19 * s, 5 * s:23 * s] = [*rgb, 255]
    composite = background.copy()
    composite[layer[..., 3] > 0] = rgb
    return {"background": background, "layers": [layer], "composite": composite}


EXAMPLE_NOTE = ("Paint over the part of the picture the model should fill in, any shape, then press the button "
                "(or first pick a Fashion-MNIST test image, or upload a picture).")


def painted_pixels(layer: np.ndarray) -> np.ndarray:
    """bool (h, w): where a layer is painted, i.e. not transparent and not black. Covers the editor's strokes
    (coloured, on a transparent layer) and masks sent through the API as RGBA or as black-and-white pictures."""
    arr = np.asarray(layer)
    if arr.ndim == 2:
        return arr > 0
    alpha = arr[..., -1] > 0 if arr.shape[-1] in (2, 4) else np.ones(arr.shape[:2], bool)
    colour = arr[..., : max(1, arr.shape[-1] - 1)] if arr.shape[-1] in (2, 4) else arr
    return alpha & (colour > 0).any(-1)


def editor_parts(value) -> tuple[np.ndarray, np.ndarray]:
    """The editor's value -> (the background picture, bool (h, w) painted on any layer). gr.Error when the
    picture or the mask is missing, a layer's size differs from the picture's, or nothing is painted."""
    if not isinstance(value, dict) or value.get("background") is None:
        raise common.no_image(MASK_HINT)
    background = common.image(value["background"], MASK_HINT)
    h, w = background.shape[:2]
    layers = [layer for layer in value.get("layers") or [] if layer is not None]
    if not layers:
        raise gr.Error(NO_MASK)
    painted = np.zeros((h, w), bool)
    for i, layer in enumerate(layers):
        arr = common.image(layer, MASK_HINT)
        if arr.shape[:2] != (h, w):
            raise gr.Error(f"Mask layer {i + 1} is {arr.shape[1]}×{arr.shape[0]} pixels but the image is {w}×{h}: "
                           "the mask must be painted on the image itself (the same size).")
        painted |= painted_pixels(arr)
    if not painted.any():
        raise gr.Error(NO_MASK)
    return background, painted


def mask_on_grid(painted: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """bool (h, w) painted at any size -> bool (H, W) on the model's grid: a pixel is hidden when at least
    MASK_COVER of its area is painted. The whole picture maps onto the whole grid, as the image's resize does."""
    h, w = hw
    share = PIL.Image.fromarray(painted.astype(np.float32), "F").resize((w, h), PIL.Image.Resampling.BOX)
    return np.asarray(share) >= MASK_COVER - 1e-6


def unseen_picture(image: np.ndarray, known: np.ndarray, counts: np.ndarray, size: int = SAMPLE_PX
                   ) -> np.ndarray:
    """The "could not see" map on the grid: visible pixels in grey, each hidden one coloured by the share of the
    visible pixels it could not see (black: saw them all, bright yellow: saw none)."""
    h, w, c = image.shape
    total = max(1, int(known.sum()))
    pic = grid_picture(image) // 2 + 40  # visible: the picture, toned down under the colours
    heat = colorize(counts.reshape(h, w * c).astype(np.float32), cmap=COULD_NOT_SEE_CMAP, vmax=total)
    hidden = ~known.reshape(h, w * c)
    pic[hidden] = heat[hidden]
    return enlarge_to(pic, size)


def mask_frames(image: np.ndarray, known: np.ndarray, pattern, frames: int = ANIMATION_FRAMES, size: int = 224
                ) -> list[np.ndarray]:
    """Frames of a completion: the visible pixels from the start, the hidden ones appearing in generation order."""
    h, w, c = image.shape
    rank = generation_rank(h, w, c, pattern).numpy().reshape(h, w, c)
    out = [enlarge_to(partial_picture(image, known | (rank < k)), size)
           for k in np.linspace(0, h * w * c, frames + 1)]
    return out + [out[-1]] * 5


HEAD_STATS_HEADERS = ["layer", "head", "mean distance (px)", "entropy (bits)", "max entropy (bits)"]


@gpu_handler
@handler
def complete_mask(editor, kind, label, temperature, seed, count):
    """Complete the painted region of the editor's picture ``count`` times; also the "could not see" map and
    every head's mean attention distance and entropy over the completions. The picture of the drawing, the original
    and the completions is the PNG download (the tab shows that file)."""
    m = get_model(kind)
    h, w, c = m.image_shape
    n = whole("Number of completions", count, 1, MAX_COMPLETIONS)
    t = _temperature(temperature)
    seed = whole("Seed", seed, 0, MAX_SEED)
    labels = _labels(m, label, n)
    background, painted = editor_parts(editor)
    with user_errors("Cannot complete this image"):
        picture, note = m.preprocess(background)
    hidden = mask_on_grid(painted, (h, w))
    if not hidden.any():
        raise gr.Error(f"The painted mask covers no pixel of the model's {w}×{h} grid (a pixel is hidden when at "
                       f"least {MASK_COVER:.0%} of it is painted): paint over a larger region.")
    known = check_known(m, ~hidden)  # (H, W, C)
    with torch.inference_mode(), single_thread():
        images = complete_from_mask(m, picture, known, n, labels, t, seed)
        stats = model_head_stats(m, images, labels)
    counts = unseen_counts(m, known)  # (H, W, C)
    hidden_counts = counts[~known]
    n_visible, n_hidden = int(known.sum()), int((~known).sum())
    saw_none = int((hidden_counts == n_visible).sum()) if n_visible else 0
    saw_all = int((hidden_counts == 0).sum())
    pictures = [enlarge_to(partial_picture(picture, known), SAMPLE_PX), enlarge_to(grid_picture(picture), SAMPLE_PX)]
    pictures += [enlarge_to(grid_picture(images[i]), SAMPLE_PX) for i in range(n)]
    captions = ["your drawing", "original", *(_caption(labels, i, "completion: ") for i in range(n))]
    order = "block by block (local 2D)" if m.pattern.kind == "local2d" else "in raster order (local 1D)"
    status = (f"Hid {n_hidden} of {known.size} positions (a pixel is hidden when at least {MASK_COVER:.0%} of it "
              f"is painted)" + (f"; {note}" if note else "") + f". {n} completion(s), temperature {t:g}, seed "
              f"{seed}. The model generates {order}: a hidden pixel sees only what was generated before it. Of the "
              f"{n_hidden} hidden positions, {saw_all} saw every visible pixel (generated after all of them) and "
              f"{saw_none} saw none (generated before all of them); the map shows each one's share of the visible "
              "pixels it could not see. Click an image to inspect its attention.")
    if not n_visible:
        status += " Everything is hidden: these are plain samples."
    state = {"kind": kind, "images": np.concatenate([picture[None], picture[None], images]),
             "labels": None if labels is None else np.concatenate([labels[:1], labels[:1], labels]),
             "known": known, "completions_from": 2, "cell_hw": cell_hw(pictures)}
    head_rows = [[l, hd, round(d, 3), round(e, 3), round(u, 3)] for l, hd, d, e, u in stats.rows()]
    names = None if labels is None else [CLASS_NAMES[int(k)] for k in labels]
    raw = {"model": MODEL_NAMES[kind], "image_shape": [h, w, c], "labels": None if labels is None else labels.tolist(),
           "class_names": names, "temperature": t, "seed": seed, "note": note,
           "visible": n_visible, "hidden": n_hidden, "hidden_saw_every_visible": saw_all,
           "hidden_saw_no_visible": saw_none,
           "known": known.reshape(h, w * c).astype(int).tolist(),
           "could_not_see": counts.reshape(h, w * c).tolist(),
           "head_stats": {"columns": HEAD_STATS_HEADERS, "rows": head_rows, "images": stats.images,
                          "queries_per_image": stats.queries},
           "images": images.reshape(n, h, w * c).tolist()}
    numbers = {"model": MODEL_NAMES[kind], "image_shape": [h, w, c], "images": images, "labels": labels,
               "class_names": names, "original": picture, "known": known, "could_not_see": counts,
               "temperature": t, "seed": seed, "head_mean_distance_px": stats.mean_distance,
               "head_entropy_bits": stats.entropy, "head_max_entropy_bits": stats.uniform_entropy}
    exports = save_exports(results_sheet(pictures, captions), mask_frames(images[0], known, m.pattern), 12, numbers)
    table = {"headers": HEAD_STATS_HEADERS, "data": head_rows}
    return status, unseen_picture(picture, known, counts), table, raw, state, *exports


@handler
def pick_for_editor(index):
    """A Fashion-MNIST test image as the editor's picture (no mask yet) and its class."""
    picture, name = pick_test_image(index)
    return {"background": picture, "layers": [], "composite": picture}, name


# ---------------------------------------------------------------------------------------------
# Inspect
# ---------------------------------------------------------------------------------------------

def chosen(target) -> tuple[torch.nn.Module, np.ndarray]:
    """The model and the (H, W, C) image the user picked for inspection."""
    if not target:
        raise gr.Error(NO_TARGET)
    m = get_model(target["kind"])
    return m, np.asarray(target["image"], dtype=np.uint8).reshape(m.image_shape)


@handler
def choose(results, evt: gr.SelectData):
    """A click on an image of a results picture makes it the one to inspect (the state's images are in the picture's
    order); a click between the images changes nothing."""
    if not results:
        raise gr.Error("Generate or complete images first.")
    cell = None
    if evt is not None and isinstance(evt.index, (list, tuple)) and len(evt.index) == 2:
        cell = sheet_cell(evt.index[1], evt.index[0], results["cell_hw"], len(results["images"]), SHEET_COLUMNS,
                          SHEET_GAP)
    if cell is None:
        return gr.skip()
    k = cell[0]
    label = None if results["labels"] is None else int(results["labels"][k])
    target = {"kind": results["kind"], "image": results["images"][k], "label": label}
    if results.get("known") is not None and k >= results.get("completions_from", 0):
        target["known"] = results["known"]  # a completion of a drawing: the inspection says what it could not see
    return target


@handler
def inspect(target, row, col, channel, layer, head):
    """Fig. 3 of the query (row, col, channel) on the chosen image, and its attention weights."""
    m, image = chosen(target)
    h, w, c = m.image_shape
    row, col, channel = position("Row", row, h), position("Column", col, w), position("Channel", channel, c)
    layer = whole("Layer", layer, 1, m.num_layers) - 1
    q = (row * w + col) * c + channel
    codes = visibility(h, w, c, m.pattern, q)
    with torch.inference_mode():
        weights = m.query_attention(image, target["label"], row, col, channel, layer)  # (heads, H, W*C)
    if head in (None, "mean"):
        shown, which = weights.mean(0), "mean over heads"
    else:
        hd = whole("Head", head, 0, m.num_heads - 1)
        shown, which = weights[hd], f"head {hd}"
    gcol = col * c + channel
    n_vis = int((codes != VIS_OUTSIDE).sum() - (codes == VIS_MASKED).sum())
    top = np.unravel_index(np.argmax(shown), shown.shape)
    text = (f"Query row {row}, column {col}" + (f", channel {channel}" if c > 1 else "")
            + f" — may attend **{n_vis}** positions ({m.pattern.kind}). Layer {layer + 1} of {m.num_layers}, "
            f"{which}: largest weight {shown.max():.3f} at row {top[0]}, column {top[1] // c}; weight inside "
            f"the visible window {shown[(codes != VIS_OUTSIDE) & (codes != VIS_MASKED)].sum():.3f}. "
            "Keys carry the value of the position generated just before them (the input is shifted).")
    fig3 = fig3_picture(image, codes)
    picture = attention_picture(image, shown, row, gcol)
    numbers = {"model": MODEL_NAMES[target["kind"]], "image": image, "label": target["label"],
               "query": [row, col, channel], "layer": layer + 1, "grid_hw": list(codes.shape),
               "attention": weights, "visibility": codes,
               "visibility_codes": {str(k): v for k, v in FIG3_LABELS.items()}}
    gap = np.full((fig3.shape[0], 8, 3), 255, np.uint8)
    exports = [save_image(np.concatenate([fig3, gap, picture], axis=1)), *save_numbers(numbers)]
    return (fig3, picture, heads_strip(image, weights), text, row, col, channel, *exports)


@handler
def inspect_click(target, channel, layer, head, evt: gr.SelectData):
    m, _ = chosen(target)
    h, w, c = m.image_shape
    s = scale_of((h, w * c), INSPECT_PX)
    x, y = evt.index
    row, gcol = min(int(y) // s, h - 1), min(int(x) // s, w * c - 1)
    col, channel = gcol // c, gcol % c
    return inspect(target, row, col, channel, layer, head)


GRID_TILE = 120


def layer_head_grid(image: np.ndarray, grid: np.ndarray, row: int, gcol: int, tile: int = GRID_TILE) -> np.ndarray:
    """grid (layers, heads, H, W*C) -> one picture: a row per layer, a column per head, each tile the query's
    weights over the image (scaled to that head's largest weight), the query in cyan."""
    tiles = []
    for layer in range(grid.shape[0]):
        for hd in range(grid.shape[1]):
            pic = attention_picture(image, grid[layer, hd], row, gcol, tile)
            title = caption_text(np.zeros((15, pic.shape[1], 3), np.uint8), f"layer {layer + 1}, head {hd}")
            tiles.append(np.concatenate([title, pic]))  # above the tile: no pixel hidden under the label
    return sheet(tiles, columns=grid.shape[1], gap=4)


def query_note(m, target, row: int, col: int, channel: int) -> str:
    """What the query saw of a drawing it completes: nothing to say for samples."""
    known = target.get("known")
    if known is None:
        return ""
    known = np.asarray(known, dtype=bool).reshape(m.image_shape)
    h, w, c = m.image_shape
    rank = generation_rank(h, w, c, m.pattern).numpy().reshape(h, w, c)
    step = int(rank[row, col, channel])
    later = int((known & (rank > step)).sum())
    where = f"Row {row}, column {col}" + (f", channel {channel}" if c > 1 else "")
    if known[row, col, channel]:
        return (f"{where} was **visible** in your drawing: kept, not sampled (generation step {step + 1} of "
                f"{known.size}). Every position generated after it conditions on it.")
    return (f"{where} was **hidden** and sampled at generation step {step + 1} of {known.size}. It could not see "
            f"**{later}** of the {int(known.sum())} visible pixels: they come later in generation order, so nothing "
            "it was drawn from depends on them.")


@handler
def inspect_more(target, row, col, channel):
    """Every head of every layer for the query at once, and (for a completed drawing) what it could not see."""
    m, image = chosen(target)
    h, w, c = m.image_shape
    row, col, channel = position("Row", row, h), position("Column", col, w), position("Channel", channel, c)
    with torch.inference_mode():
        grid = query_grid(m, image, target["label"], row, col, channel)
    return layer_head_grid(image, grid, row, col * c + channel), query_note(m, target, row, col, channel)


@handler
def inspect_view(target, row, col, channel, layer, head):
    """``inspect`` and ``inspect_more`` in one event (what the UI shows after every change of the query)."""
    out = inspect(target, row, col, channel, layer, head)
    return (*out, *inspect_more(target, *out[4:7]))


@handler
def inspect_click_view(target, channel, layer, head, evt: gr.SelectData):
    out = inspect_click(target, channel, layer, head, evt)
    return (*out, *inspect_more(target, *out[4:7]))


@handler
def animate(target):
    m, image = chosen(target)
    frames = order_frames(image, m.pattern)
    return save_animation(frames, fps=12, suffix=".gif"), save_animation(frames, fps=12, suffix=".mp4")


@handler
def refresh_inspect_controls(target):
    """Layer/head/channel choices follow the model of the chosen image."""
    if not target:
        return gr.skip(), gr.skip(), gr.skip()
    m = get_model(target["kind"])
    heads = ["mean"] + [str(i) for i in range(m.num_heads)]
    # Gradio refuses a slider whose minimum equals its maximum: a one-layer model gets 1..2, fixed at 1.
    layers = gr.update(maximum=max(2, m.num_layers), interactive=m.num_layers > 1)
    return (layers, gr.update(choices=heads),
            gr.update(maximum=m.image_shape[2] - 1))


# ---------------------------------------------------------------------------------------------
# On arrival
# ---------------------------------------------------------------------------------------------

ARRIVAL = dict(kind="local1d", label=EACH_CLASS_NAME, temperature=1.0, seed=0, count=4)
ARRIVAL_QUERY = dict(row=14, col=14, channel=0, layer=1, head="mean")


def arrival() -> tuple:
    """The tab's first view: finished samples, the first one chosen, and the Fig. 3 inspection of one of its
    pixels (outputs as arrival_outputs in build lists them; the samples shown are the PNG download)."""
    *_, (_, status, info, results, *exports) = sample(**ARRIVAL, progress=lambda *_a, **_k: None)
    target = {"kind": results["kind"], "image": results["images"][0],
              "label": None if results["labels"] is None else int(results["labels"][0])}
    layer, head, channel_max = refresh_inspect_controls(target)
    q = ARRIVAL_QUERY
    fig3, attn, heads, text, row, col, channel, *inspect_exports = inspect(target, q["row"], q["col"], q["channel"],
                                                                           q["layer"], q["head"])
    channel_max["value"] = channel
    grid, note = inspect_more(target, row, col, channel)
    return (exports[0], status, info, results, *exports, target, layer, head, fig3, attn, heads, text, row, col,
            channel_max, *inspect_exports, grid, note)


# ---------------------------------------------------------------------------------------------
# Layout
# ---------------------------------------------------------------------------------------------

def build(device: str) -> None:
    common.set_device(device)
    gr.Markdown(
        "### Image Transformer (Parmar et al. 2018)\n"
        "An autoregressive transformer that generates an image one channel of one pixel at a time. Each "
        "position attends only a local window of earlier positions: **local 1D** uses the previous positions "
        "in raster order, **local 2D** generates block by block and attends a flange of rows above and "
        "columns left/right. Pixels appear below while they are generated; violet = not generated yet."
    )
    with gr.Row():
        kind = gr.Radio(MODEL_CHOICES, value="local1d", label="Model")
        cls = gr.Dropdown(CLASS_CHOICES, value=EACH_CLASS_NAME, label="Class")
        temperature = gr.Slider(0.05, 2.0, value=1.0, step=0.05, label="Temperature")
        seed = gr.Number(0, precision=0, minimum=0, label="Seed")
    sample_results = gr.State(None)
    complete_results = gr.State(None)
    target = gr.State(None)
    with gr.Tab("Sample"):
        with gr.Row():
            count = gr.Slider(1, MAX_COUNT, value=4, step=1, label="How many")
            sample_btn = gr.Button("Sample", variant="primary", elem_id="imt-sample-btn")
        # No label badge on the results pictures: it would cover the top of the first image.
        gr.Markdown("**Samples**, growing while they are generated: click one to inspect it")
        sample_view = gr.Image(label="Samples, growing while they are generated (click one to inspect)",
                               show_label=False, interactive=False, format="png", elem_id="imt-samples")
        sample_status = gr.Markdown(label="Sampling status", show_label=False, elem_id="imt-sample-status")
        with gr.Accordion("Samples as numbers (classes, settings)", open=False):
            sample_info = gr.JSON(label="Samples as numbers", elem_id="imt-sample-info")
        sample_exports = common.export_buttons("imt-sample-export")
    with gr.Tab("Complete"):
        with gr.Row():
            with gr.Column(scale=1):
                upload = gr.Image(label="Image to complete (upload, paste, or pick below)", type="numpy",
                                  sources=["upload", "clipboard"], height=240, elem_id="imt-upload",
                                  format="png")  # lossless: the kept rows must be the picked pixels
                with gr.Row():
                    test_index = gr.Number(0, precision=0, minimum=0, maximum=9999,
                                           label="Fashion-MNIST test image #")
                    pick_btn = gr.Button("Use test image", elem_id="imt-pick-btn")
            with gr.Column(scale=1):
                rows = gr.Slider(0, 27, value=14, step=1, label="Rows to keep", elem_id="imt-rows")
                n_complete = gr.Slider(1, MAX_COMPLETIONS, value=4, step=1, label="Completions")
                complete_btn = gr.Button("Complete", variant="primary", elem_id="imt-complete-btn")
        gr.Markdown("**Kept rows, the original and its completions**: click one to inspect it")
        complete_view = gr.Image(label="Kept rows, the original and its completions (click one to inspect)",
                                 show_label=False, interactive=False, format="png", elem_id="imt-completions")
        complete_status = gr.Markdown(label="Completion status", show_label=False, elem_id="imt-complete-status")
        with gr.Accordion("Completions as numbers (classes, settings)", open=False):
            complete_info = gr.JSON(label="Completions as numbers", elem_id="imt-complete-info")
        complete_exports = common.export_buttons("imt-complete-export")
    with gr.Tab("Your own drawing"):
        gr.Markdown(
            "Paint over **any part** of the picture (brush tool) and the model fills it in. It still writes the "
            "pixels in its own order, and keeps each visible pixel when it gets there, so a hidden pixel sees the "
            "visible pixels generated before it, never those after it (the map shows how many it missed). "
            "Not in the paper, which completes only from the top rows.")
        with gr.Row():
            with gr.Column(scale=1):
                editor = mask_editor(value=example_drawing(), type="numpy", image_mode="RGBA",
                                     label="Picture, with the region to fill in painted over",
                                     sources=["upload", "clipboard"], transforms=(), layers=False,
                                     brush=gr.Brush(colors=[MASK_COLOR], default_color=MASK_COLOR,
                                                    color_mode="fixed", default_size=12),
                                     eraser=gr.Eraser(default_size=12), format="png", height=360,
                                     elem_id="imt-editor")
                with gr.Row():
                    mask_index = gr.Number(0, precision=0, minimum=0, maximum=9999,
                                           label="Fashion-MNIST test image #")
                    mask_pick_btn = gr.Button("Use test image", elem_id="imt-mask-pick-btn")
            with gr.Column(scale=1):
                n_mask = gr.Slider(1, MAX_COMPLETIONS, value=4, step=1, label="Completions")
                mask_btn = gr.Button("Complete the painted region", variant="primary", elem_id="imt-mask-btn")
                unseen = gr.Image(label="Could not see (hidden pixels)", format="png", interactive=False,
                                  height=240, elem_id="imt-unseen")
                gr.Markdown("**Could not see**: each hidden pixel coloured by the share of the visible pixels "
                            "generated after it, which it could not see (black: none, yellow: all of them); "
                            "visible pixels in grey.")
        gr.Markdown("**Your drawing, the original and its completions**: click one to inspect it")
        mask_view = gr.Image(label="Your drawing, the original and its completions (click one to inspect)",
                             show_label=False, interactive=False, format="png", elem_id="imt-mask-completions")
        mask_status = gr.Markdown(label="Completion status", show_label=False, elem_id="imt-mask-status")
        head_stats = gr.Dataframe(headers=HEAD_STATS_HEADERS, label="Every head over the completions (every "
                                  "position as a query): mean attention distance and entropy",
                                  interactive=False, elem_id="imt-head-stats")
        with gr.Accordion("Raw numbers", open=False):
            mask_raw = gr.JSON(label="Raw numbers", elem_id="imt-mask-raw")
        mask_exports = common.export_buttons("imt-mask-export")
    mask_results = gr.State(None)
    gr.Markdown("### Inspect a pixel\nClick an image above (a sample or a completion), then click a pixel of it "
                "below.")
    with gr.Row():
        with gr.Column(scale=1, min_width=240):
            layer = gr.Slider(1, 8, value=1, step=1, label="Layer")
            head = gr.Dropdown(["mean"], value="mean", label="Head", allow_custom_value=True)
            with gr.Row():
                q_row = gr.Number(14, precision=0, minimum=0, label="Row")
                q_col = gr.Number(14, precision=0, minimum=0, label="Column")
                q_channel = gr.Number(0, precision=0, minimum=0, maximum=0, label="Channel")
            anim_btn = gr.Button("Animate the generation order")
            animation = gr.Image(label="Generation order (GIF)", type="filepath", height=240,
                                 elem_id="imt-animation", interactive=False)
            animation_mp4 = gr.DownloadButton("Generation order (MP4)", size="sm", elem_id="imt-animation-mp4")
        with gr.Column(scale=3):
            with gr.Row():
                fig3 = gr.Image(label="Query block, memory and masked positions (click a pixel)", format="png",
                                interactive=False, elem_id="imt-fig3")
                attn = gr.Image(label="Attention weights of the query", format="png", interactive=False,
                                elem_id="imt-attention")
            gr.HTML(fig3_legend_html("imt-legend"))
            heads_img = gr.Image(label="Every head of this layer", format="png", interactive=False, height=180)
            inspect_text = gr.Markdown(elem_id="imt-inspect-text")
            query_info = gr.Markdown(elem_id="imt-query-note")
            gr.Markdown("**Every head of every layer** for this query (rows: layers, columns: heads; each map "
                        "scaled to its own largest weight, the query in cyan)")
            head_grid = gr.Image(label="Every head of every layer", show_label=False, format="png",
                                 interactive=False, elem_id="imt-head-grid")
            inspect_exports = common.export_buttons("imt-inspect-export",
                                                    [common.EXPORT_LABELS[0], *common.EXPORT_LABELS[3:]])

    # The finished pictures are the PNG downloads, shown by copying them in the browser (common.show_downloads).
    common.show_downloads(
        sample_btn.click(sample, [kind, cls, temperature, seed, count],
                         [sample_view, sample_status, sample_info, sample_results, *sample_exports],
                         api_name="imt_sample", concurrency_limit=1, concurrency_id="imt",
                         api_description="Sample images from an Image Transformer (streamed while they are "
                                         "generated)."),
        sample_exports[:1], [sample_view])
    common.show_downloads(
        complete_btn.click(complete, [kind, upload, rows, n_complete, cls, temperature, seed],
                           [complete_status, complete_info, complete_results, *complete_exports],
                           api_name="imt_complete", concurrency_limit=1, concurrency_id="imt",
                           api_description="Keep the top rows of an image and let an Image Transformer complete the "
                                           "rest."),
        complete_exports[:1], [complete_view])
    pick_btn.click(pick_test_image, test_index, [upload, cls], api_visibility="private")
    kind.change(rows_for_model, [kind, rows], rows, api_visibility="private")
    common.show_downloads(
        mask_btn.click(complete_mask, [editor, kind, cls, temperature, seed, n_mask],
                       [mask_status, unseen, head_stats, mask_raw, mask_results, *mask_exports],
                       api_name="imt_complete_mask", concurrency_limit=1, concurrency_id="imt",
                       api_description="Complete the painted region of a picture (any shape) with an Image "
                                       "Transformer."),
        mask_exports[:1], [mask_view])
    mask_pick_btn.click(pick_for_editor, mask_index, [editor, cls], api_visibility="private")
    # The editor's value (the example with its painted band) is the API's documented default. Gradio 6.31's editor
    # front end does not show an initial value's layers yet sends them, and merged them into the background once
    # the visitor painted (seen in Chromium): so each page starts from the picture alone, sent by this load event
    # with the hint (which also tells tests the editor is ready).
    example = example_drawing()
    bare = {"background": example["background"], "layers": [], "composite": example["background"]}
    gr.on(None, lambda: (bare, EXAMPLE_NOTE), None, [editor, mask_status], api_visibility="private",
          show_progress="hidden")

    common.on_arrival(arrival, [sample_view, sample_status, sample_info, sample_results, *sample_exports, target,
                                layer, head, fig3, attn, heads_img, inspect_text, q_row, q_col, q_channel,
                                *inspect_exports, head_grid, query_info])

    inspect_inputs = [target, q_row, q_col, q_channel, layer, head]
    inspect_outputs = [fig3, attn, heads_img, inspect_text, q_row, q_col, q_channel, *inspect_exports, head_grid,
                       query_info]

    for view, results in ((sample_view, sample_results), (complete_view, complete_results),
                          (mask_view, mask_results)):
        view.select(choose, results, target, api_visibility="private").then(
            refresh_inspect_controls, target, [layer, head, q_channel], api_visibility="private").then(
            inspect_view, inspect_inputs, inspect_outputs, api_visibility="private")
    fig3.select(inspect_click_view, [target, q_channel, layer, head], inspect_outputs, api_visibility="private")
    gr.on([layer.release, head.change, q_row.submit, q_col.submit, q_channel.submit], inspect_view, inspect_inputs,
          inspect_outputs, api_visibility="private", trigger_mode="always_last")
    anim_btn.click(animate, target, [animation, animation_mp4], api_visibility="private")
