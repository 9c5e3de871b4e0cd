"""Inductive biases tab, called directly (no server): the comparison it shows is the library's, the CNN's
equivariance is exact where it must be, uploads and bad inputs are handled.

The models are the bundled ones when their weights are present, else small untrained nets of the same kinds (an
untrained CNN is exactly as equivariant as a trained one; the tab's behaviour does not depend on accuracy)."""
from __future__ import annotations

import json
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import torch

from attn_models.inductive_bias.model import InductiveBiasNet
from attn_models.inductive_bias.shift import compare
from demo import common
from demo import inductive_bias_tab as tab

WEIGHTS = Path(__file__).resolve().parent.parent.parent / "weights"


def stand_in(name: str) -> InductiveBiasNet:
    torch.manual_seed(0)
    if name.endswith("cnn"):
        return InductiveBiasNet(kind="cnn", widths=[8, 8, 8]).eval()
    return InductiveBiasNet(kind="attention", d_model=16, heads=2, layers=3, position=name.rsplit("-", 1)[1]).eval()


@pytest.fixture
def bias_models():
    """label -> the model the tab uses (bundled weights, else a stand-in served in their place)."""
    from contextlib import ExitStack

    from attn_models import load

    with ExitStack() as stack:
        models = {}
        for label, name in tab.MODELS.items():
            if (WEIGHTS / name / "model.safetensors").is_file():
                models[label] = load(name, device="cpu")
            else:
                models[label] = stack.enter_context(common.override_model(name, stand_in(name)))
        yield models


def item(seed: int = 0) -> np.ndarray:
    """A 28x28 item with a bright blob away from its border (nothing leaves the canvas when shifted)."""
    rng = np.random.default_rng(seed)
    out = np.zeros((28, 28), np.uint8)
    out[4:24, 6:22] = rng.integers(60, 255, (20, 16))
    return out


def test_the_tab_shows_the_librarys_comparison(bias_models):
    x = item()
    out = tab.bias_shift(x, 0, 2, -3, 2)
    assert len(out) == 8  # the sheet is returned once: as the PNG download, which the tab shows
    table, words, info, *exports = out
    assert list(table["model"]) == list(tab.MODELS) and len(exports) == 5
    for label, model in bias_models.items():
        ref = compare(model, x, 2, -3, layer=1)
        got = info["models"][label]
        assert got["relative_equivariance_error"] == pytest.approx(ref.relative_error, rel=1e-6)
        np.testing.assert_allclose(got["probs_shifted"], ref.probs[1], atol=1e-5)
    assert info["shift"] == [2, -3] and info["source"] == "your upload"
    assert "Shift (+2, -3)" in words and "not a whole number of patches" in words


def test_cnn_equivariance_is_exact_and_absolute_positions_are_not(bias_models):
    """The promise the tab makes: a CNN's maps move with the item (away from the border); a learned absolute
    position embedding does not move, even for a shift by a whole patch."""
    _, _, info, *_ = tab.bias_shift(item(1), 0, 4, 4, 3)
    errors = {k: v["relative_equivariance_error"] for k, v in info["models"].items()}
    assert errors["CNN"] < 1e-5
    assert errors["attention, absolute positions"] > 1e-3
    assert errors["attention, no positions"] < 1e-4  # a whole-patch shift permutes identical tokens


def test_exports_hold_the_numbers_shown(bias_models):
    x = item(2)
    _, _, info, png, gif, mp4, npz, js = tab.bias_shift(x, 0, -2, 0, 1)
    from PIL import Image

    # the PNG is the sheet the tab shows: every model's maps, centred vs shifted, as the tab draws them
    expected = tab.picture(x, -2, 0, tab.comparisons(x, -2, 0, 1))
    with Image.open(png) as im:
        assert im.format == "PNG"
        np.testing.assert_array_equal(np.asarray(im.convert("RGB")), expected)
    assert Image.open(gif).n_frames == 3  # shifts 0, -1, -2
    data = np.load(npz)
    assert data["shift"].tolist() == [-2, 0]
    key = f"{tab.MODELS['CNN']}/relative_error"
    assert float(data[key]) == pytest.approx(info["models"]["CNN"]["relative_equivariance_error"], rel=1e-6)
    assert json.loads(Path(js).read_text())["layer"] == 1


def test_a_light_background_upload_is_inverted(bias_models):
    light = 255 - item(3)
    _, _, info, *_ = tab.bias_shift(np.stack([light] * 3, -1), 0, 0, 0, 3)
    assert "inverted" in info["source"]


def test_a_test_set_image_by_index(bias_models, fashion_mnist):
    _, _, info, *_ = tab.bias_shift(None, 17, 1, 1, 3)
    from attn_models.data import CLASS_NAMES

    assert info["label"] == CLASS_NAMES[int(fashion_mnist[3][17])]
    assert info["source"] == "Fashion-MNIST test image #17"


def test_the_arrival_shows_its_sheet_first(bias_models, fashion_mnist):
    """The page load has no browser step to copy the download into the view: the arrival gives the view the PNG
    itself, then bias_shift's outputs (as build wires them: [sheet, table, words, raw, *exports])."""
    shown, table, words, info, png, *files = tab.arrival()
    a = tab.ARRIVAL
    assert shown == png and len(files) == 4
    assert info["shift"] == [a["dy"], a["dx"]] and info["layer"] == a["layer"]
    assert info["source"] == f"Fashion-MNIST test image #{a['index']}" and list(table["model"]) == list(tab.MODELS)


@pytest.mark.parametrize("args, message", [
    ((None, 0, 7, 0, 3), "Shift down (dy) must be a whole number between -6 and 6"),
    ((None, 0, 0, -6.5, 3), "Shift right (dx) must be a whole number between -6 and 6"),
    ((None, 10_000, 0, 0, 3), "Test image index must be a whole number between 0 and 9999"),
    ((None, "abc", 0, 0, 3), "Test image index must be a whole number"),
    ((None, 0, 0, 0, 0), "Layer must be a whole number between 1 and 3"),
    ((np.zeros((2, 2)), 0, 0, 0, 3), "too small"),
    ((np.array([["a"]]), 0, 0, 0, 3), "Image must be an array"),
])
def test_bad_inputs_are_clear_errors(bias_models, args, message):
    with pytest.raises(gr.Error) as e:
        tab.bias_shift(*args)
    assert message in str(e.value.message)


def test_curves_read_the_measured_files(tmp_path, monkeypatch):
    """The plots show what the evaluate JSON beside the weights says, and name what is not measured."""
    from attn_models import registry

    root = tmp_path / "weights"
    for name in tab.MODELS.values():
        (root / name).mkdir(parents=True)
    cnn = {"accuracy_vs_shift": {"mean": [0.9, 0.8, 0.7]}, "equivariance_error": {"0": {"1": 0.0}, "1": {"1": 0.01}},
           "shuffled_accuracy": 0.2, "test_images": 1000}
    (root / tab.MODELS["CNN"] / tab.METRICS_FILE).write_text(json.dumps(cnn))
    it = root / tab.IMAGE_TRANSFORMERS["Image Transformer 1D"]
    it.mkdir(parents=True)
    (it / tab.IT_SHIFT_FILE).write_text(json.dumps({"mean": [3.0, 2.9], "cropped_mean": [3.0, 2.8],
                                                     "position_penalty": [0.0, 0.1], "ink_lost": [0.0, 0.01],
                                                     "test_images": 100}))
    monkeypatch.setattr(registry, "WEIGHTS_ROOT", root)
    acc, err, bpd, text = tab.curves()
    assert bpd["bits/dim"].tolist() == [3.0, 2.9, 3.0, 2.8]
    assert set(bpd["model"]) == {"Image Transformer 1D, moved", "Image Transformer 1D, cropped in place"}
    assert "moving alone costs +0.100 bits/dim" in text
    assert acc["accuracy"].tolist() == [0.9, 0.8, 0.7] and set(acc["model"]) == {"CNN"}
    assert err["equivariance error"].tolist() == [0.01]  # the last layer's
    assert "accuracy 0.900 centred, 0.700 with the item moved 2 px" in text
    assert "Over the first 1,000 test images" in text  # as many as the evaluation used, read from its file
    assert "Not measured yet" in text and tab.MODELS["attention, no positions"] in text
