"""Self-attention GAN tab: SAGAN (Zhang et al. 2019) on Fashion-MNIST.

Generate a grid for a class and seed, pick an image, click a pixel: the tab shows where that query
attends in the generator's self-attention layer (its softmax row over the key grid), the gamma of
every attention layer, an animation of the query sweeping the image, a latent interpolation
between two seeds, and a switch that sets gamma to 0 at inference to show what attention adds.

Handlers are stateless: every request names (class, seed, count, gamma switch) and the images are
regenerated on demand. That is cheap (32x32, a few ms per image) and exact, because image k
depends only on (seed, k, class of k) — so the API endpoint ``sagan_attention`` needs no session.
"""
from __future__ import annotations

import threading

import gradio as gr
import numpy as np
import torch

from attn_models.data import CLASS_NAMES
from attn_models.sagan.model import MAX_SEED
from demo import common, render
from demo.common import choice, handler, whole
from demo.gpu import gpu_handler

MODEL_NAME = "sagan-fashion-mnist"
MIXED = "mixed (one of each class)"
CLASS_CHOICES = [*CLASS_NAMES, MIXED]
MAX_COUNT = 16
VIEW = 256  # displayed size of the selected image (pixels); clicks come back in these coordinates
THUMB = 96
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


def _generate(class_name, seed, count, attention_off, upto: int | None = None):
    labels = labels_for(class_name, count)
    seed = whole("Seed", seed, 0, MAX_SEED)
    if upto is not None:
        labels = labels[:upto + 1]  # image k depends only on (seed, k, labels[k]): no need for the rest
    model = common.get_model(MODEL_NAME)
    with torch.inference_mode():
        return model, model.generate(labels, seed=seed, attention_off=bool(attention_off))


@gpu_handler
@handler
def generate(class_name, seed, count, attention_off):
    """-> gallery of (image, caption), gamma table, the first image enlarged."""
    model, out = _generate(class_name, seed, count, attention_off)
    gallery = [(render.enlarge(img, THUMB), f"#{k} {CLASS_NAMES[out.labels[k]]}") for k, img in enumerate(out.images)]
    return gallery, gamma_text(model, attention_off), render.enlarge(out.images[0], VIEW), 0


def query_map(out, index: int, y: int, x: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Attention row of the query cell holding image pixel (y, x): (key_h, key_w) map, query cell."""
    size = out.images.shape[1]
    qh, qw = out.query_hw
    kh, kw = out.key_hw
    qy, qx = y * qh // size, x * qw // size
    return out.attention[index, qy * qw + qx].reshape(kh, kw), (qy, qx)


def draw(image: np.ndarray, attn: np.ndarray, y: int, x: int) -> np.ndarray:
    scale = VIEW / image.shape[0]
    return render.mark_point(render.overlay(image, attn, alpha=0.55, size=VIEW),
                             (y + 0.5) * scale, (x + 0.5) * scale, radius=6)


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
    """Image ``index`` of the grid, query pixel (y, x) on the 32x32 image -> overlay, map as JSON."""
    index = image_index(index, count)
    y, x = whole("Query row y", y, 0, 31), whole("Query column x", x, 0, 31)
    model, out = _generate(class_name, seed, count, attention_off, upto=index)
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
    return overlay, info, *render.save_exports(overlay, walk, WALK_FPS, data)


@handler
def on_click(class_name, seed, count, attention_off, index, evt: gr.SelectData):
    """A click on the enlarged image: Gradio gives [x, y] in the displayed image's pixels."""
    if evt is None or not isinstance(evt.index, (list, tuple)) or len(evt.index) != 2:
        raise gr.Error("Click on a pixel of the enlarged image.")
    px, py = (int(np.clip(v * 32 // VIEW, 0, 31)) for v in evt.index)
    return *attention(class_name, seed, count, attention_off, index, py, px), py, px


@handler
def on_pick(class_name, seed, count, attention_off, evt: gr.SelectData):
    """Choosing a gallery image makes it the one to click on."""
    index = int(evt.index) if evt is not None and isinstance(evt.index, int) else 0
    _, out = _generate(class_name, seed, count, attention_off, upto=index)
    return render.enlarge(out.images[index], VIEW), index


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


ARRIVAL = dict(class_name=MIXED, seed=0, count=8, attention_off=False)
ARRIVAL_QUERY = (16, 16)  # the centre pixel: on the item in every class


def arrival() -> tuple:
    """The tab's first view: a generated gallery and the attention map of the centre pixel of its first image."""
    spec = ARRIVAL.values()
    gallery, gammas, selected, index = generate(*spec)
    overlay, info, *exports = attention(*spec, index, *ARRIVAL_QUERY)
    return gallery, gammas, selected, index, overlay, info, *exports, dependence_text(info)


def build(device: str) -> None:
    common.set_device(device)
    gr.Markdown(
        "**Self-Attention GAN** (Zhang et al. 2019), class-conditional, trained on 32x32 Fashion-MNIST. "
        "Generate images, pick one, then **click a pixel**: the map shows the softmax weights of that query "
        "over the key grid of the generator's self-attention layer (16x16 queries, 2x2-pooled 8x8 keys, as in "
        "the authors' code). The layer's output is scaled by the learnt **gamma** and added to its input; tick "
        "*gamma = 0* to see the images without what attention adds.")
    with gr.Row():
        class_name = gr.Dropdown(CLASS_CHOICES, value=ARRIVAL["class_name"], label="Class")
        seed = gr.Number(value=ARRIVAL["seed"], precision=0, minimum=0, maximum=MAX_SEED, label="Seed")
        count = gr.Slider(1, MAX_COUNT, value=ARRIVAL["count"], step=1, label="Number of images")
        attention_off = gr.Checkbox(value=ARRIVAL["attention_off"],
                                    label="gamma = 0 at inference (switch attention off)")
    gen_btn = gr.Button("Generate", variant="primary", elem_id="sagan-generate")
    gallery = gr.Gallery(label="Generated images (pick one)", columns=8, height=250, allow_preview=False,
                         elem_id="sagan-gallery")
    gammas = gr.Markdown(label="Gamma of each attention layer", show_label=False)
    with gr.Row():
        selected = gr.Image(label="Selected image: click a pixel", interactive=False, height=VIEW, width=VIEW,
                            format="png", elem_id="sagan-selected")
        overlay = gr.Image(label="Attention of the clicked query (cyan ring)", interactive=False, height=VIEW,
                           width=VIEW, format="png", elem_id="sagan-overlay")
    with gr.Row():
        index = gr.Number(value=0, precision=0, label="Selected image index", minimum=0, maximum=MAX_COUNT - 1)
        qy = gr.Number(value=ARRIVAL_QUERY[0], precision=0, minimum=0, maximum=31, label="Query row y (0-31)",
                       elem_id="sagan-qy")
        qx = gr.Number(value=ARRIVAL_QUERY[1], precision=0, minimum=0, maximum=31, label="Query column x (0-31)",
                       elem_id="sagan-qx")
        show_btn = gr.Button("Show attention at (y, x)")
    gr.Markdown("**Download** the overlay (PNG), the query walking along its row (GIF, MP4), and the numbers: this "
                "image's whole attention (queries × keys) with both grid shapes, the clicked row, gammas (NPZ, JSON)")
    dependence = gr.Markdown(label="Query dependence", show_label=False, elem_id="sagan-dependence")
    exports = common.export_buttons("sagan-export")
    with gr.Accordion("Attention row as numbers (key grid)", open=False):
        attn_json = gr.JSON(label="Attention row (key grid)")
    with gr.Row():
        fps = gr.Slider(2, 20, value=8, step=1, label="Sweep speed (frames/s)")
        sweep_btn = gr.Button("Animate the query sweeping the image")
    sweep_out = gr.Image(label="Query sweep (GIF)", interactive=False, height=VIEW, width=VIEW,
                         elem_id="sagan-sweep")
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
    common.on_arrival(arrival, [gallery, gammas, selected, index, overlay, attn_json, *exports, dependence])
    gen_btn.click(generate, spec, [gallery, gammas, selected, index], api_name="sagan_generate",
                  api_description="Generate images of a class with the SAGAN and list each attention layer's gamma.")
    # The numbers travel in the answer's JSON (the API's outputs are what is shown, then files); the words
    # beside the map follow from them.
    show_btn.click(attention, [*spec, index, qy, qx], [overlay, attn_json, *exports],
                   api_name="sagan_attention",
                   api_description="Attention map of query pixel (y, x) of a generated image over the key grid.").then(
        dependence_text, attn_json, dependence, api_visibility="private")
    selected.select(on_click, [*spec, index], [overlay, attn_json, *exports, qy, qx], api_name=False).then(
        dependence_text, attn_json, dependence, api_visibility="private")
    gallery.select(on_pick, spec, [selected, index], api_name=False)
    sweep_btn.click(sweep, [*spec, index, fps], sweep_out, api_name="sagan_sweep",
                    api_description="GIF of the query walking over a generated image, its attention map following.")
    interp_btn.click(interpolate, [interp_class, seed_a, seed_b, steps, attention_off], interp_out,
                     api_name="sagan_interpolate",
                     api_description="GIF of a latent interpolation between two seeds of one class, there and back.")
