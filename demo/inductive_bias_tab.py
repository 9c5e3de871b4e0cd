"""Inductive biases tab: what translation equivariance and the relative position of pixels give a vision model.

Four small Fashion-MNIST classifiers trained on equal terms (centred items on a 40x40 canvas): a CNN, and one
self-attention net over 4x4 patches with absolute, relative or no position information. Pick a test image (or
upload one) and a shift: the tab shows each model's feature map of the centred and the shifted canvas, the map an
equivariant model would give (the centred map, shifted), the difference, and the predictions. The curves come
from the evaluate script's measurements over the whole test set, stored beside each model's weights.
"""
from __future__ import annotations

import gradio as gr
import numpy as np
import pandas as pd
import torch
from PIL import Image

from attn_models.data import CLASS_NAMES
from attn_models.data.images import to_fashion_mnist_style
from attn_models.inductive_bias.model import CANVAS, place
from attn_models.inductive_bias.shift import MAX_SHIFT, compare, shift_map
from demo import common, render
from demo.common import handler, user_errors, whole
from demo.gpu import gpu_handler

MODELS = {  # label -> registry name, in the order of the article's argument
    "CNN": "inductive-bias-cnn",
    "attention, absolute positions": "inductive-bias-attention-absolute",
    "attention, relative positions": "inductive-bias-attention-relative",
    "attention, no positions": "inductive-bias-attention-none",
}
IMAGE_TRANSFORMERS = {"Image Transformer 1D": "image-transformer-1d-fashion-mnist",
                      "Image Transformer 2D": "image-transformer-2d-fashion-mnist"}
METRICS_FILE = "metrics.json"  # the evaluate JSON's entry for the model, beside its weights
IT_SHIFT_FILE = "shift_bpd.json"  # the Image Transformer's bits/dim against shift, beside its weights
TEST_IMAGES = common.TEST_IMAGES
CELL = 160  # displayed size of each 40x40 canvas or map
FPS = 3.0
ARRIVAL = dict(index=0, dy=3, dx=4, layer=3)
HINT = "upload an image or give a test image index"


# ---------------------------------------------------------------------------------------------
# Inputs.


def test_image(index) -> tuple[np.ndarray, int]:
    """Fashion-MNIST test image ``index`` (28x28 uint8) and its label."""
    return common.test_image(index, "upload an image instead")


def item_from(upload, index) -> tuple[np.ndarray, int | None, str]:
    """(28x28 uint8 item, its true label or None, where it comes from) from an upload, else the test set."""
    if upload is not None:
        # A file from the app or the API (decoded here: bad files get a clear message), or an array or PIL image
        # from Python.
        if isinstance(upload, (np.ndarray, Image.Image)):
            picture = common.image(upload, HINT)
        else:
            picture = common.read_upload(upload, HINT, draft=(112, 112))
        with user_errors("The upload could not be used"):
            item, note = to_fashion_mnist_style(picture, (28, 28, 1))
        return item[..., 0], None, "your upload" + (f" ({note})" if note else "")
    item, label = test_image(index)
    return item.copy(), label, f"Fashion-MNIST test image #{int(index)}"


def shift(name: str, value) -> int:
    return whole(name, value, -MAX_SHIFT, MAX_SHIFT)


# ---------------------------------------------------------------------------------------------
# One image, one shift, every model.

def models() -> dict[str, object]:
    return {label: common.get_model(name) for label, name in MODELS.items()}


@torch.no_grad()
def comparisons(item: np.ndarray, dy: int, dx: int, layer: int) -> dict:
    """label -> (ShiftComparison, the layer used: ``layer`` or the model's last when it has fewer)."""
    out = {}
    for label, model in models().items():
        used = min(layer, model.num_layers)
        out[label] = (compare(model, item, dy, dx, layer=used - 1), used)
    return out


GREY = np.array([150, 150, 150], np.uint8)  # pixels a map has no value for, or left out of the comparison


def _painted(values: np.ndarray, cmap: str, vmax: float, known: np.ndarray | None = None) -> np.ndarray:
    rgb = render.colorize(values, cmap, vmax=vmax)
    if known is not None:
        rgb[~known] = GREY
    return render.enlarge(rgb, CELL)


def picture(item: np.ndarray, dy: int, dx: int, results: dict) -> np.ndarray:
    """Rows: models. Columns: the two canvases, their feature maps, the centred map shifted (what an equivariant
    model gives; grey where the shift brings in nothing known), and the error map (grey outside the pixels compared:
    the shift's and the CNN padding's reach). Maps share one colour scale per row; errors one scale for all rows."""
    canvases = [place(torch.from_numpy(item)[None], *s)[0, 0].numpy() for s in ((0, 0), (dy, dx))]
    inputs = [render.enlarge((c * 255).round().astype(np.uint8), CELL) for c in canvases]
    err_top = max(max(float(r.error[r.compared].max(initial=0.0)) for r, _ in results.values()), 1e-6)
    arrived = shift_map(torch.ones(1, CANVAS, CANVAS), dy, dx)[0].numpy() > 0  # pixels shift f(x) has a value for
    cells, labels = [], []
    for label, (r, used) in results.items():
        moved = shift_map(torch.from_numpy(r.energy[0]), dy, dx).numpy()
        top = max(float(r.energy.max()), 1e-6)
        cells.append([*inputs, _painted(r.energy[0], "viridis", top), _painted(r.energy[1], "viridis", top),
                      _painted(moved, "viridis", top, arrived), _painted(r.error, "inferno", err_top, r.compared)])
        labels.append(f"{label.replace(', ', chr(10))}\nlayer {used}\nerror {r.relative_error:.3f}")
    cols = ["centred x", f"shifted ({dy:+d}, {dx:+d})", "f(x)", "f(shift x)", "shift f(x)", "|f(shift x) − shift f(x)|"]
    return render.labelled_sheet(cells, labels, cols)


def predictions_table(results: dict, label: int | None) -> pd.DataFrame:
    rows = []
    for name, (r, used) in results.items():
        p0, p1 = r.probs
        rows.append({"model": name, "centred": f"{CLASS_NAMES[int(p0.argmax())]} ({p0.max():.2f})",
                     "shifted": f"{CLASS_NAMES[int(p1.argmax())]} ({p1.max():.2f})",
                     **({"p(true class) centred → shifted": f"{p0[label]:.2f} → {p1[label]:.2f}"}
                        if label is not None else {}),
                     f"equivariance error, layer {used}": round(r.relative_error, 4)})
    return pd.DataFrame(rows)


def reading(results: dict, dy: int, dx: int, label: int | None) -> str:
    """This image's numbers in words (what the measured values say, computed, never assumed)."""
    whole_patches = dy % 4 == 0 and dx % 4 == 0
    errs = {k: r.relative_error for k, (r, _) in results.items()}
    lowest = min(errs, key=errs.get)
    changed = [k for k, (r, _) in results.items() if r.probs[0].argmax() != r.probs[1].argmax()]
    text = [f"Shift ({dy:+d}, {dx:+d}) pixels. Smallest equivariance error here: **{lowest}** ({errs[lowest]:.3f}); "
            + ", ".join(f"{k} {v:.3f}" for k, v in errs.items() if k != lowest) + "."]
    if not whole_patches:
        text.append("The attention nets read 4x4 patches: a shift that is not a whole number of patches changes "
                    "what every patch holds, so none of them can be equivariant to it, whatever its positions.")
    text.append("Prediction changed by the shift: " + (", ".join(f"**{k}**" for k in changed) if changed else "none")
                + "." + ("" if label is None else f" True class: {CLASS_NAMES[label]}."))
    return "  \n".join(text)


@gpu_handler
@handler
def bias_shift(upload, index, dy, dx, layer):
    """An image (upload, else Fashion-MNIST test image ``index``) moved by (dy, dx): every model's feature maps,
    equivariance error and predictions: the predictions table, the reading in words, the raw numbers, downloads (the
    PNG is the table of maps the tab shows, the GIF and MP4 the item moving step by step)."""
    dy, dx = shift("Shift down (dy)", dy), shift("Shift right (dx)", dx)
    layer = whole("Layer", layer, 1, 3)
    item, label, origin = item_from(upload, index)
    results = comparisons(item, dy, dx, layer)
    sheet = picture(item, dy, dx, results)
    steps = max(abs(dy), abs(dx))
    walk = [(round(dy * k / steps), round(dx * k / steps)) for k in range(steps)]  # the last frame is `sheet`
    frames = [picture(item, y, x, comparisons(item, y, x, layer)) for y, x in walk] + [sheet]
    info = {"source": origin, "label": None if label is None else CLASS_NAMES[label], "shift": [dy, dx],
            "layer": layer, "models": {
                k: {"layer": used, "relative_equivariance_error": r.relative_error, "margin_px": r.margin,
                    "prediction_centred": CLASS_NAMES[int(r.probs[0].argmax())],
                    "prediction_shifted": CLASS_NAMES[int(r.probs[1].argmax())],
                    "probs_centred": r.probs[0].round(5).tolist(), "probs_shifted": r.probs[1].round(5).tolist()}
                for k, (r, used) in results.items()}}
    data = {"item": item, "shift": [dy, dx], "layer": layer, "classes": list(CLASS_NAMES),
            **{f"{MODELS[k]}/{field}": v for k, (r, _) in results.items()
               for field, v in (("probs", r.probs), ("feature_norm", r.energy), ("error_map", r.error),
                                ("relative_error", r.relative_error))}}
    # The sheet the tab shows is the PNG download (common.show_downloads): returned once.
    return (predictions_table(results, label), reading(results, dy, dx, label), info,
            *render.save_exports(sheet, frames, FPS, data))


# ---------------------------------------------------------------------------------------------
# The curves: measured over the test set by `python -m attn_models.inductive_bias.evaluate`, read from the files
# beside the weights (a model without them is left out, and the note says so).

def curves() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, str]:
    acc, err, bpd, missing = [], [], [], []
    for label, name in MODELS.items():
        m = common.bundled_json(name, METRICS_FILE)
        if m is None:
            missing.append(name)
            continue
        acc += [{"shift (pixels)": s, "accuracy": a, "model": label}
                for s, a in enumerate(m["accuracy_vs_shift"]["mean"])]
        last = m["equivariance_error"][str(len(m["equivariance_error"]) - 1)]
        err += [{"shift (pixels)": int(s), "equivariance error": e, "model": label} for s, e in last.items()]
    for label, name in IMAGE_TRANSFORMERS.items():
        m = common.bundled_json(name, IT_SHIFT_FILE)
        if m is None:
            missing.append(f"{name} ({IT_SHIFT_FILE})")
            continue
        bpd += [{"shift (pixels)": s, "bits/dim": b, "model": f"{label}, moved"} for s, b in enumerate(m["mean"])]
        if "cropped_mean" in m:  # the control: the same pixels lost, the item not moved
            bpd += [{"shift (pixels)": s, "bits/dim": b, "model": f"{label}, cropped in place"}
                    for s, b in enumerate(m["cropped_mean"])]
    return pd.DataFrame(acc), pd.DataFrame(err), pd.DataFrame(bpd), summary(missing)


def summary(missing: list[str]) -> str:
    """The measured curves in plain words."""
    lines = []
    ms = {label: common.bundled_json(name, METRICS_FILE) for label, name in MODELS.items()}
    ms = {k: v for k, v in ms.items() if v is not None}
    if ms:
        counts = sorted({m["test_images"] for m in ms.values()})
        lines.append(f"**Over the first {' / '.join(f'{n:,}' for n in counts)} test images** (from each model's "
                     "`metrics.json`, written by `python -m attn_models.inductive_bias.evaluate`):")
        for label, m in ms.items():
            a = m["accuracy_vs_shift"]["mean"]
            last = m["equivariance_error"][str(len(m["equivariance_error"]) - 1)]
            eq = ", ".join(f"{e:.3f} at {s} px" for s, e in last.items())
            lines.append(f"- **{label}**: accuracy {a[0]:.3f} centred, {a[-1]:.3f} with the item moved "
                         f"{len(a) - 1} px; equivariance error of the last layer {eq}; accuracy with the patches "
                         f"shuffled {m['shuffled_accuracy']:.3f}.")
    its = {label: common.bundled_json(name, IT_SHIFT_FILE) for label, name in IMAGE_TRANSFORMERS.items()}
    for label, m in its.items():
        if m is not None:
            line = (f"- **{label}** (absolute positions, a density model): {m['mean'][0]:.3f} bits/dim on test "
                    f"images as they are, {m['mean'][-1]:.3f} moved {len(m['mean']) - 1} px ({m['test_images']} "
                    f"images, mean of four directions; {100 * m['ink_lost'][-1]:.1f}% of the ink leaves the 28x28 "
                    "frame at that shift, and a cropped image is simpler to score)")
            if "cropped_mean" in m:
                line += (f"; with the same pixels cropped but the item left in place {m['cropped_mean'][-1]:.3f}, so "
                         f"moving alone costs {m['position_penalty'][-1]:+.3f} bits/dim")
            lines.append(line + ".")
    if missing:
        lines.append(f"\nNot measured yet: {', '.join(missing)}.")
    return "\n".join(lines)


ABOUT = (
    "**Inductive biases.** The article ends its case for attention with two biases a vision model needs: "
    "**translation equivariance** (an item moved a few pixels is the same item, moved) and the **relative "
    "position** of pixels. A convolution has the first by construction; self-attention sees a *set* of patches "
    "and must be given positions: **absolute** ones (a learned vector per place, ViT) tie what it learns to where "
    "it saw it, a **relative** bias (a learned number per offset and head, Swin/T5) depends only on where pixels are "
    "relative to each other, and **no** positions makes the net blind to how the patches are arranged. Four small "
    "classifiers, trained on equal terms on *centred* items (40x40 canvas, 28x28 item), show what each gets: move "
    "the item and compare each layer's feature map with the centred map moved the same way.")


def arrival() -> tuple:
    """The tab's first view, ARRIVAL's comparison: the sheet shown (the PNG download; common.on_arrival has no
    browser step to copy it), then bias_shift's outputs."""
    a = ARRIVAL
    out = bias_shift(None, a["index"], a["dy"], a["dx"], a["layer"])
    return out[3], *out  # the PNG: after the table, the reading and the raw numbers


def build(device: str) -> None:
    common.set_device(device)
    gr.Markdown(ABOUT)
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            index = gr.Number(value=ARRIVAL["index"], precision=0, minimum=0, maximum=TEST_IMAGES - 1,
                              label="Fashion-MNIST test image index", elem_id="bias-index")
            upload = gr.Image(label="... or upload an item (replaces the test image)", type="filepath",
                              sources=["upload", "clipboard"], height=160, elem_id="bias-upload")
            dy = gr.Slider(-MAX_SHIFT, MAX_SHIFT, value=ARRIVAL["dy"], step=1, label="Shift down (dy, pixels)",
                           elem_id="bias-dy")
            dx = gr.Slider(-MAX_SHIFT, MAX_SHIFT, value=ARRIVAL["dx"], step=1, label="Shift right (dx, pixels)",
                           elem_id="bias-dx")
            layer = gr.Slider(1, 3, value=ARRIVAL["layer"], step=1, label="Layer", elem_id="bias-layer",
                              info="the feature map compared: conv layer or transformer block")
            run = gr.Button("Shift and compare", variant="primary", elem_id="bias-run")
        with gr.Column(scale=3, min_width=480):
            # The PNG download, shown (common.show_downloads).
            sheet = gr.Image(label="Feature maps (norm over channels) of each model, centred vs shifted",
                             interactive=False, elem_id="bias-sheet")
            table = gr.Dataframe(label="Predictions and equivariance error", interactive=False,
                                 elem_id="bias-table")
            words = gr.Markdown(label="What these numbers say", show_label=False, elem_id="bias-reading")
            exports, raw = common.export_section(
                "the table of maps (PNG), the item moving step by step (GIF, MP4), every model's probabilities, "
                "feature norms and error maps (NPZ, JSON)", "bias-export", "Raw output", "Numbers")
    gr.Markdown("### Measured over the test set")
    acc_df, err_df, bpd_df, text = curves()
    with gr.Row():
        gr.LinePlot(acc_df, x="shift (pixels)", y="accuracy", color="model", title="Accuracy vs shift",
                    elem_id="bias-accuracy-plot", height=300)
        gr.LinePlot(err_df, x="shift (pixels)", y="equivariance error", color="model",
                    title="Equivariance error of the last layer vs shift", elem_id="bias-error-plot", height=300)
        gr.LinePlot(bpd_df, x="shift (pixels)", y="bits/dim", color="model",
                    title="Image Transformer: bits/dim of shifted test images", elem_id="bias-bpd-plot", height=300)
    gr.Markdown(text, elem_id="bias-summary")

    inputs = [upload, index, dy, dx, layer]
    outputs = [table, words, raw, *exports]
    common.on_arrival(arrival, [sheet, *outputs])
    # preprocess=False: the handler decodes the upload itself, and checks the numbers itself, so that a bad file or
    # number gets a message naming the field (Gradio's own slider check does not name it).
    common.show_downloads(
        run.click(bias_shift, inputs, outputs, api_name="bias_shift", preprocess=False,
                  api_description="Move an item (upload, else a Fashion-MNIST test image) by (dy, dx) pixels: each "
                                  "inductive-bias model's feature maps, equivariance error and predictions."),
        exports[:1], [sheet])
