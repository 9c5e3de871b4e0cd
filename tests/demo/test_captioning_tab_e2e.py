"""Captioning tab end to end: the launched app's ``caption`` endpoint, driven through gradio_client.

The words and maps the app returns must be the library's for the same image; bad inputs must come
back as clear errors, and the server must keep serving afterwards."""
from __future__ import annotations

import numpy as np
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from demo import captioning_tab as tab
from tests.demo.test_captioning_tab import bad_upload, png_header_only, tab_model  # noqa: F401  (fixture)

pytestmark = pytest.mark.e2e


def call(client, path, kind="soft", beam=3, smooth=True):
    """The endpoint's outputs up to the raw JSON, and the PNG and GIF downloads: the sheet and the animation the tab
    shows (the other downloads are tested in test_exports_e2e)."""
    return client.predict(handle_file(path), kind, beam, smooth, api_name="/caption")[:8]


def test_app_captions_a_test_scene_like_the_library(client, tab_model):  # noqa: F811
    path = tab.example_paths()[1]
    caption, large, words, table, note, raw, sheet, animation = call(client, path, beam=3)
    ref = tab_model["soft"].caption(Image.open(path).convert("RGB"), beam_size=3, max_len=tab.MAX_LEN)
    assert raw["words"] == ref.words and caption == " ".join(ref.words)
    np.testing.assert_allclose(np.asarray(raw["alphas"]), ref.alphas, atol=1e-6)
    np.testing.assert_allclose(np.asarray(raw["betas"]), ref.betas, atol=1e-6)
    assert raw["model"] == "sat-soft-fashion-scenes"
    assert words["choices"] == [[f"{t + 1}. {w}", t] for t, w in enumerate(ref.words)] and words["value"] == 0
    # the sheet's first panel is the tab's map of the first word with the word under it
    base = tab.display_image(np.asarray(Image.open(path).convert("RGB")), tab.VIEW_SIZE)
    expected = tab.panel(tab.render.overlay(base, ref.alphas[0]), tab.word_label(ref.words, 0, ref.betas))
    first = np.asarray(Image.open(sheet).convert("RGB"))[:expected.shape[0], :expected.shape[1]]
    np.testing.assert_array_equal(first, expected)
    assert np.asarray(Image.open(large)).shape[:2] == (tab.LARGE_SIZE, tab.LARGE_SIZE)
    assert Image.open(animation).n_frames == len(ref.words) + 1
    assert "Ground truth known" in note


def test_hard_model_through_the_app(client, tab_model):  # noqa: F811
    path = tab.example_paths()[0]
    raw = call(client, path, kind="hard", beam=1)[5]
    ref = tab_model["hard"].caption(Image.open(path).convert("RGB"), beam_size=1, max_len=tab.MAX_LEN)
    assert raw["words"] == ref.words and raw["attention"] == "hard"
    np.testing.assert_allclose(np.asarray(raw["alphas"]), ref.alphas, atol=1e-6)


@pytest.mark.parametrize("name, data, kw, message", [
    ("empty.png", b"", {}, "empty"),
    ("notes.png", b"definitely not an image", {}, "not an image"),
    ("bomb.png", png_header_only(20000, 20000), {}, "too large"),
    ("ok.png", None, {"beam": 1000}, "Beam size must be a whole number between 1 and 10, got 1000"),
    ("ok.png", None, {"beam": 0}, "Beam size must be a whole number between 1 and 10, got 0"),
    ("ok.png", None, {"kind": "medium"}, "Attention must be one of soft, hard"),
])
def test_bad_input_is_a_clear_error_and_the_server_keeps_serving(client, tab_model, tmp_path,  # noqa: F811
                                                                  name, data, kw, message):
    import re

    with pytest.raises(AppError) as err:
        call(client, bad_upload(tmp_path, name, data), **kw)
    assert re.search(message, str(err.value)), str(err.value)
    raw = call(client, tab.example_paths()[0], beam=1)[5]  # still serving
    assert isinstance(raw["words"], list) and len(raw["alphas"]) == len(raw["words"])


@pytest.mark.parametrize("mode", ["RGBA", "P", "I;16", "CMYK", "1x1"])
def test_odd_images_get_a_caption(client, tab_model, tmp_path, mode):  # noqa: F811
    if mode == "1x1":
        im, name = Image.new("RGB", (1, 1), (240, 40, 40)), "one.png"
    elif mode == "CMYK":
        im, name = Image.new("CMYK", (64, 48), (0, 200, 200, 0)), "c.jpg"
    elif mode == "I;16":
        im, name = Image.fromarray((np.arange(96 * 96, dtype=np.uint16).reshape(96, 96) * 7), "I;16"), "g.png"
    else:
        im, name = Image.new("RGBA", (70, 90), (0, 200, 60, 128)), "a.png"
        im = im.convert("P") if mode == "P" else im
    path = tmp_path / name
    im.save(path)
    caption, *_, raw, sheet, _animation = call(client, str(path), beam=2)
    assert caption == " ".join(raw["words"]) and (sheet is None) == (not raw["words"])
    assert np.allclose(np.asarray(raw["alphas"]).sum(axis=(1, 2)), 1, atol=1e-4)
