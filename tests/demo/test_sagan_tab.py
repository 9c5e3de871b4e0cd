"""Self-attention GAN tab: handlers (unit) and the endpoints through the launched app (e2e)."""
from __future__ import annotations

import functools
import json

import gradio as gr
import numpy as np
import pytest
import torch
from PIL import Image

from attn_models import load
from attn_models.data import CLASS_NAMES
from attn_models.sagan.model import SAGAN
from demo import common
from demo import sagan_tab as tab


def library_row(labels, seed, index, y, x, attention_off=False):
    out = load(tab.MODEL_NAME, device="cpu").generate(labels, seed=seed, attention_off=attention_off)
    qh, qw = out.query_hw
    return out.attention[index, (y * qh // 32) * qw + x * qw // 32].reshape(out.key_hw)


def test_generate_handler_shows_every_image_and_gamma():
    grid, gammas, selected, index, numbers = tab.generate("sandal", 4, 5, False)
    out = load(tab.MODEL_NAME, device="cpu").generate([5] * 5, seed=4)
    tile = tab.THUMB + tab.TILE_LABEL
    assert grid.shape == (tile, 5 * tab.THUMB + 4 * tab.GRID_GAP, 3) and index == 0
    for k in range(5):  # each image in its tile, its label under it
        x = k * (tab.THUMB + tab.GRID_GAP)
        np.testing.assert_array_equal(grid[:tab.THUMB, x:x + tab.THUMB], tab.render.enlarge(out.images[k], tab.THUMB))
        assert (grid[tab.THUMB:tile, x:x + tab.THUMB] < 128).any()  # the words
    assert numbers["labels"] == [5] * 5 and numbers["classes"] == ["sandal"] * 5 and numbers["count"] == 5
    np.testing.assert_array_equal(selected, tab.render.enlarge(out.images[0], tab.VIEW))
    for res, g in load(tab.MODEL_NAME, device="cpu").gammas.items():
        assert f"{res}x{res}" in gammas and f"{g:+.4f}" in gammas and numbers["gammas"][f"{res}x{res}"] == g
    sixteen = tab.generate(tab.MIXED, 0, 16, False)[0]
    assert sixteen.shape == (2 * tile + tab.GRID_GAP, 8 * tab.THUMB + 7 * tab.GRID_GAP, 3)


def grid_click(x: int, y: int) -> gr.SelectData:
    return gr.SelectData(None, {"index": [x, y], "value": None})  # [x, y] in the grid picture's pixels


def test_a_click_on_the_grid_selects_that_image_and_shows_the_clicked_pixels_map():
    s = tab.THUMB // 32
    step = tab.THUMB + tab.GRID_GAP
    # image 10 of 16 (second row, third column), its pixel (y=7, x=21)
    selected, index, info, *files, y, x = tab.on_grid_click(tab.MIXED, 3, 16, False, 0, 0,
                                                            grid_click(2 * step + 21 * s + 1, 1 * step + 20 + 7 * s))
    assert index == 10 and (y, x) == (7, 21) and len(files) == len(tab.render.EXPORT_KINDS)
    assert 5 + len(files) == tab.GRID_CLICK_OUTPUTS
    labels = [k % 10 for k in range(16)]
    np.testing.assert_allclose(np.array(info["attention"]), library_row(labels, 3, 10, 7, 21), atol=1e-5)
    image = load(tab.MODEL_NAME, device="cpu").generate(labels, seed=3).images[10]
    np.testing.assert_array_equal(selected, tab.render.enlarge(image, tab.VIEW))
    # a click on an image's label: that image, the query already chosen
    _, index, info, *_files, y, x = tab.on_grid_click("bag", 3, 4, False, 12, 30, grid_click(step + 5, tab.THUMB + 3))
    assert index == 1 and (y, x) == (12, 30) and info["query_pixel"] == [12, 30]
    # between the images, or past the last one: nothing happens
    for where in (grid_click(tab.THUMB + 1, 5), grid_click(5 * step + 5, 5)):
        assert all(isinstance(v, type(gr.skip())) for v in tab.on_grid_click("bag", 3, 4, False, 0, 0, where))


def test_attention_handler_matches_library():
    info, png, *_exports = tab.attention(tab.MIXED, 9, 6, False, 4, 7, 21)
    labels = [k % 10 for k in range(6)]
    row = library_row(labels, 9, 4, 7, 21)
    np.testing.assert_allclose(np.array(info["attention"]), row, atol=1e-5)
    assert np.array(info["attention"]).sum() == pytest.approx(1.0, abs=1e-4)
    image = load(tab.MODEL_NAME, device="cpu").generate(labels, seed=9).images[4]
    with Image.open(png) as im:  # the overlay the tab shows
        np.testing.assert_array_equal(np.asarray(im.convert("RGB")), tab.draw(image, row, 7, 21))


def test_query_dependence_beside_the_map():
    """The clicked query's map against the other queries' maps of its image, and the model-level numbers, as the
    library's Jensen-Shannon divergence and query_dependence compute them."""
    from attn_models.sagan.metrics import js_divergence, query_dependence

    info, *_exports = tab.attention("coat", 3, 4, False, 2, 9, 26)
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
    grid, gammas, _selected, index, numbers = client.predict("trousers", 5, 4, False, api_name="/sagan_generate")
    assert index == 0 and "gamma" in gammas and numbers["classes"] == ["trousers"] * 4
    with Image.open(grid) as im:
        assert im.size == (4 * tab.THUMB + 3 * tab.GRID_GAP, tab.THUMB + tab.TILE_LABEL)
    info, *_exports = client.predict("trousers", 5, 4, False, 3, 12, 30, api_name="/sagan_attention")
    assert info["query_pixel"] == [12, 30] and info["query_cell"] == [6, 15]
    expected = library_row([CLASS_NAMES.index("trousers")] * 4, 5, 3, 12, 30)
    np.testing.assert_allclose(np.array(info["attention"]), expected, atol=1e-5)


def test_e2e_bad_input_errors_and_server_keeps_serving(client):
    for args in [("jacket", 0, 4, False, 0, 0, 0), ("tshirt", 0, 4, False, 9, 0, 0), ("tshirt", 0, 4, False, 0, 40, 3)]:
        with pytest.raises(Exception, match="must be|unknown class|not in the list of choices|maximum value"):
            client.predict(*args, api_name="/sagan_attention")
    with pytest.raises(Exception, match="Number of images|maximum value"):
        client.predict("tshirt", 0, 99, False, api_name="/sagan_generate")
    info, *_exports = client.predict("boot", 1, 2, True, 1, 0, 0, api_name="/sagan_attention")
    assert info["gamma"] == 0.0


# ---------------------------------------------------------------------------------------------
# Both networks: the discriminator's view and the knock-out. These run on a tiny SAGAN that has a discriminator (the
# shipped export has one too; the tiny one is fast, and untrained: the views do not depend on the verdict being
# right).


@functools.lru_cache(maxsize=1)
def tiny_sagan() -> SAGAN:
    """A tiny untrained SAGAN with a discriminator; its gammas are set away from their initial 0, so that attention
    adds something (a knock-out changes the image) in both networks."""
    torch.manual_seed(0)
    m = SAGAN(ch=8, d_attn_res=[16]).eval()
    with torch.no_grad():
        m.generator.attn["16"].gamma.fill_(0.5)
        m.discriminator.attn["16"].gamma.fill_(0.3)
    return m


@pytest.fixture
def sagan_with_d():
    """The tab (and the launched app, in-process) serves tiny_sagan() for the test."""
    with common.override_model(tab.MODEL_NAME, tiny_sagan()) as m:
        yield m


@pytest.fixture
def sagan_without_d():
    """The tab serves an export without a discriminator (as exports made before D was kept are)."""
    torch.manual_seed(0)
    with common.override_model(tab.MODEL_NAME, SAGAN(ch=8).eval()) as m:
        yield m


def numbers_of(npz_path, json_path) -> tuple[dict, dict]:
    with np.load(npz_path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    with open(json_path) as f:
        return arrays, json.load(f)


def padded_test_image(fashion_mnist, k: int) -> tuple[np.ndarray, int]:
    _, _, images, labels = fashion_mnist
    return np.pad(images[k], 2)[..., None], int(labels[k])


def test_discriminator_on_a_generated_image_is_the_librarys(sagan_with_d):
    image, verdict, info, png, npz, js = tab.discriminator_attention("coat", 4, 5, False, 3, tab.GENERATED, 0, 9, 26)
    generated = sagan_with_d.generate([4] * 4, seed=4)
    ref = sagan_with_d.discriminate(generated.images[3:4], [4])
    np.testing.assert_array_equal(image, tab.render.enlarge(generated.images[3], tab.VIEW))
    assert info["query_cell"] == [4, 13] and info["query_hw"] == [16, 16] and info["key_hw"] == [8, 8]
    row = ref.attention[0, 4 * 16 + 13].reshape(8, 8)
    np.testing.assert_allclose(np.array(info["attention"]), row, atol=1e-5)
    assert info["score"] == pytest.approx(float(ref.scores[0]), abs=1e-5) and info["label"] == 4
    assert info["leans"] == ("real" if ref.scores[0] > 0 else "generated")
    assert info["gamma"] == pytest.approx(0.3) and info["gammas"] == {"16x16": pytest.approx(0.3)}
    assert f"{ref.scores[0]:+.3f}" in verdict and f"leans **{info['leans']}**" in verdict
    assert "generated image #3" in verdict and "**coat**" in verdict
    arrays, data = numbers_of(npz, js)
    np.testing.assert_allclose(arrays["attention"], ref.attention[0], atol=1e-6)  # the whole image: (Q, K)
    np.testing.assert_allclose(arrays["query_attention"], row, atol=1e-6)
    assert arrays["query_hw"].tolist() == [16, 16] and arrays["key_hw"].tolist() == [8, 8]
    assert float(arrays["score"]) == pytest.approx(info["score"]) and "gammas/16x16" in arrays
    assert data["score"] == pytest.approx(info["score"]) and data["source"] == tab.GENERATED and data["seed"] == 4
    with Image.open(png) as im:  # the overlay the tab shows
        assert im.format == "PNG"
        np.testing.assert_array_equal(np.asarray(im.convert("RGB")), tab.draw(generated.images[3], row, 9, 26))


def test_discriminator_on_a_real_test_image(sagan_with_d, fashion_mnist):
    image, verdict, info, png, *_numbers = tab.discriminator_attention(tab.MIXED, 0, 1, False, 0, tab.REAL, 17, 31, 0)
    real, label = padded_test_image(fashion_mnist, 17)
    ref = sagan_with_d.discriminate(real[None], [label])
    np.testing.assert_array_equal(image, tab.render.enlarge(real, tab.VIEW))
    assert info["test_index"] == 17 and info["label"] == label and info["source"] == tab.REAL
    assert info["score"] == pytest.approx(float(ref.scores[0]), abs=1e-5)
    row = ref.attention[0, 15 * 16].reshape(8, 8)
    np.testing.assert_allclose(np.array(info["attention"]), row, atol=1e-5)
    with Image.open(png) as im:  # the overlay the tab shows
        np.testing.assert_array_equal(np.asarray(im.convert("RGB")), tab.draw(real, row, 31, 0))
    assert "test image #17" in verdict and f"**{CLASS_NAMES[label]}** (its true label)" in verdict


def test_a_click_on_the_judged_image_and_the_network_switch(sagan_with_d):
    s = tab.VIEW // 32
    evt = gr.SelectData(None, {"index": [20 * s + 1, 5 * s + 1], "value": None})  # [x, y] in displayed pixels
    *out, y, x = tab.on_judged_click("bag", 1, 2, False, 1, tab.GENERATED, 0, evt)
    assert (y, x) == (5, 20) and out[2]["query_pixel"] == [5, 20] and len(out) == tab.JUDGED_OUTPUTS
    assert all(isinstance(v, type(gr.skip())) for v in tab.judged_if_shown(tab.GENERATOR, "bag", 1, 2, False, 1,
                                                                          tab.GENERATED, 0, 5, 20))
    shown = tab.judged_if_shown(tab.DISCRIMINATOR, "bag", 1, 2, False, 1, tab.GENERATED, 0, 5, 20)
    assert len(shown) == tab.JUDGED_OUTPUTS and shown[2]["score"] == out[2]["score"]
    g_view, d_view = tab.show_network(tab.DISCRIMINATOR)
    assert not g_view.visible and d_view.visible


def test_knockout_changes_the_image_and_reports_the_difference(sagan_with_d):
    shown, picture, words, info, png, npz, js = tab.knockout("sandal", 2, 3, False, 1, 10, 21)
    q = 5 * 16 + 10
    base = sagan_with_d.generate([5] * 2, seed=2).images[1]
    knocked = sagan_with_d.generate([5] * 2, seed=2, knockout=q).images[1]
    diff = knocked.astype(int) - base.astype(int)
    assert np.abs(diff).max() > 0, "the tiny model's attention must add something for this test to mean anything"
    assert info["query_cell"] == [5, 10] and info["query_index"] == q and info["gamma"] == pytest.approx(0.5)
    assert info["max_abs_diff"] == np.abs(diff).max() and info["mean_abs_diff"] == pytest.approx(np.abs(diff).mean())
    assert info["pixels_changed"] == int((np.abs(diff[..., 0]) > 1).sum()) and info["pixels"] == 32 * 32
    np.testing.assert_allclose(np.array(info["difference"]), diff[..., 0])
    assert f"**{info['pixels_changed']} of 1024 pixels**" in words and f"max **{info['max_abs_diff']}**" in words
    assert f"±{info['scale']}" in words
    assert shown.shape == (tab.VIEW, tab.VIEW, 3) and picture.shape[1] == tab.VIEW and picture.shape[0] > tab.VIEW
    # the difference picture is diverging: unchanged pixels white-ish, the sign in the colour (red up, blue down)
    heat = picture[:tab.VIEW].astype(int)
    up, down = np.argwhere(diff[..., 0] == diff.max()), np.argwhere(diff[..., 0] == diff.min())
    s = tab.VIEW // 32
    if diff.max() > 0:
        y, x = up[0] * s + s // 2
        assert heat[y, x, 0] > heat[y, x, 2]
    if diff.min() < 0:
        y, x = down[0] * s + s // 2
        assert heat[y, x, 2] > heat[y, x, 0]
    arrays, data = numbers_of(npz, js)
    np.testing.assert_array_equal(arrays["image"], base)
    np.testing.assert_array_equal(arrays["knocked_out"], knocked)
    np.testing.assert_array_equal(arrays["difference"], diff)
    assert data["pixels_changed"] == info["pixels_changed"] and data["seed"] == 2
    with Image.open(png) as im:
        assert im.format == "PNG" and im.width > 3 * tab.VIEW


def test_knockout_with_gamma_zero_changes_nothing_and_says_why(sagan_with_d):
    _shown, _picture, words, info, *_files = tab.knockout("bag", 0, 1, True, 0, 16, 16)
    assert info["pixels_changed"] == 0 and info["max_abs_diff"] == 0 and "gamma is 0" in words


def test_the_shipped_export_has_a_discriminator():
    assert load(tab.MODEL_NAME, device="cpu").has_discriminator


def test_an_export_without_a_discriminator_is_a_clear_error_and_the_rest_works(sagan_without_d):
    with pytest.raises(gr.Error, match="This SAGAN export holds no discriminator"):
        tab.discriminator_attention("bag", 0, 2, False, 0, tab.GENERATED, 0, 16, 16)
    _shown, _picture, words, info, *_files = tab.knockout("bag", 0, 2, False, 1, 16, 16)  # the generator's
    assert "Knocking out" in words and info["query_index"] == 8 * 16 + 8


def test_missing_test_images_are_a_clear_error(sagan_with_d, monkeypatch):
    import attn_models.data

    def absent(*_a, **_k):
        raise FileNotFoundError("Fashion-MNIST test files not found in /nowhere")

    monkeypatch.setattr(attn_models.data, "load_fashion_mnist", absent)
    with pytest.raises(gr.Error, match="Fashion-MNIST test images are not available here.*not found"):
        tab.discriminator_attention("bag", 0, 1, False, 0, tab.REAL, 3, 16, 16)
    assert tab.discriminator_attention("bag", 0, 1, False, 0, tab.GENERATED, 3, 16, 16)[2]["source"] == tab.GENERATED


@pytest.mark.parametrize("args, message", [
    (("bag", 0, 4, False, 0, "real", 0, 0, 0), "Image to judge must be one of"),
    (("bag", 0, 4, False, 0, tab.REAL, 10_000, 0, 0), "Test image index must be a whole number between 0 and 9999"),
    (("bag", 0, 4, False, 0, tab.REAL, -1, 0, 0), "Test image index"),
    (("bag", 0, 4, False, 0, tab.REAL, 2.5, 0, 0), "Test image index"),
    (("bag", 0, 4, False, 4, tab.GENERATED, 0, 0, 0), "Image index"),
    (("jacket", 0, 4, False, 0, tab.GENERATED, 0, 0, 0), "Class must be one of"),
    (("bag", -1, 4, False, 0, tab.GENERATED, 0, 0, 0), "Seed"),
    (("bag", 0, 4, False, 0, tab.GENERATED, 0, 32, 0), "Query row y"),
    (("bag", 0, 4, False, 0, tab.REAL, 0, 0, "nan"), "Query column x"),
])
def test_bad_discriminator_input_is_a_clear_error(sagan_with_d, args, message):
    with pytest.raises(gr.Error, match=message):
        tab.discriminator_attention(*args)


@pytest.mark.parametrize("args, message", [
    (("bag", 0, 4, False, 4, 0, 0), "Image index"),
    (("bag", 0, 0, False, 0, 0, 0), "Number of images"),
    (("coats", 0, 4, False, 0, 0, 0), "Class must be one of"),
    (("bag", 2 ** 32, 4, False, 0, 0, 0), "Seed"),
    (("bag", 0, 4, False, 0, -1, 0), "Query row y"),
    (("bag", 0, 4, False, 0, 0, 31.5), "Query column x"),
])
def test_bad_knockout_input_is_a_clear_error(sagan_with_d, args, message):
    with pytest.raises(gr.Error, match=message):
        tab.knockout(*args)


def _ablation_in(tmp_path, monkeypatch, evaluation) -> str:
    """The tab's ablation text with ``evaluation`` as the bundled metrics.json (None: no file)."""
    from attn_models import registry

    folder = tmp_path / tab.MODEL_NAME
    folder.mkdir(exist_ok=True)
    if evaluation is not None:
        (folder / tab.METRICS_FILE).write_text(json.dumps(evaluation))
    monkeypatch.setattr(registry, "WEIGHTS_ROOT", tmp_path)
    return tab.ablation_text()


def test_the_ablation_shows_each_arms_mean_and_spread_over_seeds(tmp_path, monkeypatch):
    rows = {"real (Fashion-MNIST train)": {"fid": 0.05, "class_consistency": 0.96},
            "runs/a0/export": {"fid": 1.0, "class_consistency": 0.95}}
    arms = {"attention": {"members": ["runs/a0/export", "runs/a1/export"], "fid": 1.1, "fid_std": 0.1,
                          "class_consistency": 0.95, "class_consistency_std": 0.002,
                          "query_jsd_within_image": 0.14, "query_jsd_within_image_std": 0.01},
            "no attention": {"members": ["runs/n0/export", "runs/n1/export"], "fid": 1.25, "fid_std": 0.05,
                             "class_consistency": 0.937, "class_consistency_std": 0.001}}
    text = _ablation_in(tmp_path, monkeypatch, {"command": "evaluate --arm ...", "rows": rows, "arms": arms})
    table = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
             for line in text.splitlines() if line.startswith("| ") and "---" not in line}
    assert table[""] == ["real (Fashion-MNIST train)", "attention (2 seeds)", "no attention (2 seeds)"]
    assert table["FID (classifier features)"] == ["0.050", "1.100 ± 0.100", "1.250 ± 0.050"]
    assert table["class consistency"] == ["0.960", "0.950 ± 0.002", "0.937 ± 0.001"]
    assert table["JS divergence, two queries of one image (bits)"] == ["–", "0.140 ± 0.010", "–"]
    assert "runs/a0/export" not in text  # single runs are not shown when there are arms
    rows |= {"runs/a1/export": {"fid": 1.2, "class_consistency": 0.952},  # the verdict is run by run
             "runs/n0/export": {"fid": 1.25, "class_consistency": 0.936},
             "runs/n1/export": {"fid": 1.3, "class_consistency": 0.938}}
    text = _ablation_in(tmp_path, monkeypatch, {"command": "evaluate --arm ...", "rows": rows, "arms": arms})
    assert "**FID (classifier features)**: every *attention* run is better than every *no attention* run" in text
    assert "spread" in text


def test_the_ablation_without_arms_shows_one_row_per_model(tmp_path, monkeypatch):
    rows = {"sagan": {"fid": 1.06, "class_consistency": 0.95}, "ablation": {"fid": 1.16, "class_consistency": 0.94}}
    text = _ablation_in(tmp_path, monkeypatch, {"rows": rows, "arms": {}})
    assert "| FID (classifier features) | 1.060 | 1.160 |" in text and "±" not in text


def test_the_ablation_without_an_evaluation_says_so(tmp_path, monkeypatch):
    assert "No evaluation" in _ablation_in(tmp_path, monkeypatch, None)
    for garbled in ("{not json", "[1, 2]"):
        (tmp_path / tab.MODEL_NAME / tab.METRICS_FILE).write_text(garbled)
        assert "No evaluation" in tab.ablation_text()


def test_the_shipped_ablation_names_both_models():
    text = tab.ablation_text()
    assert "| FID (classifier features) |" in text and "| class consistency |" in text
