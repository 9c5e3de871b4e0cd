"""Self-attention GAN tab: handlers (unit) and the endpoints through the launched app (e2e)."""
from __future__ import annotations

import gradio as gr
import numpy as np
import pytest

from attn_models import load
from attn_models.data import CLASS_NAMES
from demo import sagan_tab as tab


def library_row(labels, seed, index, y, x, attention_off=False):
    out = load(tab.MODEL_NAME, device="cpu").generate(labels, seed=seed, attention_off=attention_off)
    qh, qw = out.query_hw
    return out.attention[index, (y * qh // 32) * qw + x * qw // 32].reshape(out.key_hw)


def test_generate_handler_shows_every_image_and_gamma():
    gallery, gammas, selected, index = tab.generate("sandal", 4, 5, False)
    assert len(gallery) == 5 and index == 0
    assert all("sandal" in caption for _, caption in gallery)
    assert selected.shape == (tab.VIEW, tab.VIEW, 3)
    for res, g in load(tab.MODEL_NAME, device="cpu").gammas.items():
        assert f"{res}x{res}" in gammas and f"{g:+.4f}" in gammas


def test_attention_handler_matches_library():
    overlay, info, *_exports = tab.attention(tab.MIXED, 9, 6, False, 4, 7, 21)
    labels = [k % 10 for k in range(6)]
    np.testing.assert_allclose(np.array(info["attention"]), library_row(labels, 9, 4, 7, 21), atol=1e-5)
    assert np.array(info["attention"]).sum() == pytest.approx(1.0, abs=1e-4)
    assert overlay.shape == (tab.VIEW, tab.VIEW, 3)


def test_query_dependence_beside_the_map():
    """The clicked query's map against the other queries' maps of its image, and the model-level numbers, as the
    library's Jensen-Shannon divergence and query_dependence compute them."""
    from attn_models.sagan.metrics import js_divergence, query_dependence

    _overlay, info, *_exports = tab.attention("coat", 3, 4, False, 2, 9, 26)
    text = tab.dependence_text(info)
    out = load(tab.MODEL_NAME, device="cpu").generate([4] * 3, seed=3)
    maps = out.attention[2].astype(np.float64)
    q = info["query_cell"][0] * out.query_hw[1] + info["query_cell"][1]
    jsd = js_divergence(maps[q][None], np.delete(maps, q, axis=0))
    dep = info["query_dependence"]
    assert dep["this_query_vs_others_mean"] == pytest.approx(jsd.mean(), abs=1e-6)
    assert dep["this_query_vs_others_max"] == pytest.approx(jsd.max(), abs=1e-6)
    model = load(tab.MODEL_NAME, device="cpu")
    expected = query_dependence(model.generate([k % 10 for k in range(tab.MODEL_SAMPLE)], seed=0).attention)
    assert dep["model_within_image"] == pytest.approx(expected["within_image"], abs=1e-6)
    assert dep["model_across_images"] == pytest.approx(expected["across_images"], abs=1e-6)
    assert f"{jsd.mean():.3f}" in text and f"{expected['across_images']:.3f}" in text


def test_sweep_and_interpolation_write_gifs():
    from PIL import Image

    with Image.open(tab.sweep("coat", 2, 3, False, 2, 10)) as gif:
        assert gif.n_frames == (16 // tab.SWEEP_STRIDE) ** 2
    with Image.open(tab.interpolate("bag", 3, 4, 5, True)) as gif:
        assert gif.n_frames == 5 + 3  # there and back


@pytest.mark.parametrize("args", [
    ("jacket", 0, 4, False, 0, 0, 0),  # unknown class
    ("tshirt", -1, 4, False, 0, 0, 0),  # negative seed
    ("tshirt", 2 ** 32, 4, False, 0, 0, 0),  # seed too large
    ("tshirt", 0, 0, False, 0, 0, 0),  # count too small
    ("tshirt", 0, tab.MAX_COUNT + 1, False, 0, 0, 0),  # count too large
    ("tshirt", 0, 4, False, 4, 0, 0),  # index past the grid
    ("tshirt", 0, 4, False, 0, 32, 0),  # pixel outside the image
    ("tshirt", 0, 4, False, 0, 0, -1),
    ("tshirt", 0, 4, False, 0, "nan", 0),
])
def test_bad_input_is_a_clear_error(args):
    with pytest.raises(gr.Error):
        tab.attention(*args)


def test_e2e_generate_then_attention_of_a_pixel(client):
    gallery, gammas, _selected, index = client.predict("trousers", 5, 4, False, api_name="/sagan_generate")
    assert len(gallery) == 4 and index == 0 and "gamma" in gammas
    _overlay, info, *_exports = client.predict("trousers", 5, 4, False, 3, 12, 30, api_name="/sagan_attention")
    assert info["query_pixel"] == [12, 30] and info["query_cell"] == [6, 15]
    expected = library_row([CLASS_NAMES.index("trousers")] * 4, 5, 3, 12, 30)
    np.testing.assert_allclose(np.array(info["attention"]), expected, atol=1e-5)


def test_e2e_bad_input_errors_and_server_keeps_serving(client):
    for args in [("jacket", 0, 4, False, 0, 0, 0), ("tshirt", 0, 4, False, 9, 0, 0), ("tshirt", 0, 4, False, 0, 40, 3)]:
        with pytest.raises(Exception, match="must be|unknown class|not in the list of choices|maximum value"):
            client.predict(*args, api_name="/sagan_attention")
    with pytest.raises(Exception, match="Number of images|maximum value"):
        client.predict("tshirt", 0, 99, False, api_name="/sagan_generate")
    _overlay, info, *_exports = client.predict("boot", 1, 2, True, 1, 0, 0, api_name="/sagan_attention")
    assert info["gamma"] == 0.0
