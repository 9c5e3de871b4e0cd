"""The Self-attention GAN tab's views of both networks, end to end: ``sagan_discriminator_attention`` (the
discriminator's map and verdict on a generated or a real image) and ``sagan_knockout`` (one query's attention output
set to zero) through gradio_client. The numbers are the library's for the same image; the downloads hold them; the
documented arguments; bad input as clear errors with the server still serving; and an export without a
discriminator (as those made before D was kept), answered in words while the generator's views keep working.

The app runs in this process, so ``sagan_with_d`` (a tiny SAGAN that has a discriminator) is what it serves."""
from __future__ import annotations

import re

import numpy as np
import pytest
from gradio_client.exceptions import AppError
from PIL import Image

from demo import sagan_tab as tab
from tests.demo.test_sagan_tab import numbers_of, padded_test_image, sagan_with_d, sagan_without_d  # noqa: F401  (fixtures)

pytestmark = pytest.mark.e2e

D_PARAMS = ["class_name", "seed", "count", "attention_off", "index", "source", "test_index", "y", "x"]
KO_PARAMS = ["class_name", "seed", "count", "attention_off", "index", "y", "x"]


def judge(client, *args):
    return client.predict(*args, api_name="/sagan_discriminator_attention")


def knock(client, *args):
    return client.predict(*args, api_name="/sagan_knockout")


def test_endpoints_are_documented_with_the_values_they_accept(client):
    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    for name, params in (("/sagan_discriminator_attention", D_PARAMS), ("/sagan_knockout", KO_PARAMS)):
        info = api[name]
        assert [p["parameter_name"] for p in info["parameters"]] == params
        assert info["description"].strip() and "\n" not in info["description"].strip()
        assert all(not re.fullmatch(r"value_\d+", r["label"]) for r in info["returns"])
        assert [r["label"] for r in info["returns"][-3:]] == ["PNG picture", "NPZ numbers", "JSON numbers"]
    # D's overlay is returned once, as its PNG download (the tab copies it into the view in the browser)
    assert [r["label"] for r in api["/sagan_discriminator_attention"]["returns"]] == [
        "Image the discriminator judges: click a pixel", "Discriminator's verdict", "Discriminator's answer",
        "PNG picture", "NPZ numbers", "JSON numbers"]
    source = api["/sagan_discriminator_attention"]["parameters"][5]
    assert source["type"].get("enum") == tab.SOURCES and source["parameter_default"] == tab.GENERATED


def test_discriminator_on_a_generated_image_through_the_app_is_the_librarys(client, sagan_with_d):  # noqa: F811
    image, verdict, info, png, npz, js = judge(client, "dress", 6, 4, False, 2, tab.GENERATED, 0, 12, 30)
    generated = sagan_with_d.generate([3] * 3, seed=6)
    ref = sagan_with_d.discriminate(generated.images[2:3], [3])
    row = ref.attention[0, 6 * 16 + 15].reshape(8, 8)
    assert info["query_cell"] == [6, 15] and info["label"] == 3 and info["source"] == tab.GENERATED
    np.testing.assert_allclose(np.array(info["attention"]), row, atol=1e-5)
    assert info["score"] == pytest.approx(float(ref.scores[0]), abs=1e-5)
    assert f"{info['score']:+.3f}" in verdict and info["leans"] in verdict and "generated image #2" in verdict
    with Image.open(image) as im:  # the image D judges, enlarged: the one to click
        np.testing.assert_array_equal(np.asarray(im.convert("RGB")),
                                      tab.render.enlarge(generated.images[2], tab.VIEW))
    with Image.open(png) as im:  # the overlay the tab shows (the answer holds it once: as this download)
        assert im.format == "PNG"
        np.testing.assert_array_equal(np.asarray(im.convert("RGB")), tab.draw(generated.images[2], row, 12, 30))
    arrays, data = numbers_of(npz, js)
    np.testing.assert_allclose(arrays["attention"], ref.attention[0], atol=1e-6)
    np.testing.assert_allclose(arrays["query_attention"], row, atol=1e-6)
    assert arrays["query_hw"].tolist() == [16, 16] and arrays["key_hw"].tolist() == [8, 8]
    np.testing.assert_array_equal(arrays["image"], generated.images[2])
    assert data["score"] == pytest.approx(info["score"]) and data["gammas"] == info["gammas"]


def test_discriminator_on_a_real_image_through_the_app(client, sagan_with_d, fashion_mnist):  # noqa: F811
    _image, verdict, info, _png, npz, _js = judge(client, "bag", 0, 8, False, 0, tab.REAL, 4321, 0, 31)
    real, label = padded_test_image(fashion_mnist, 4321)
    ref = sagan_with_d.discriminate(real[None], [label])
    assert info["test_index"] == 4321 and info["label"] == label and "test image #4321" in verdict
    assert info["score"] == pytest.approx(float(ref.scores[0]), abs=1e-5)
    np.testing.assert_allclose(np.array(info["attention"]), ref.attention[0, 15].reshape(8, 8), atol=1e-5)
    np.testing.assert_array_equal(numbers_of(npz, _js)[0]["image"], real)


def test_knockout_through_the_app_is_the_librarys(client, sagan_with_d):  # noqa: F811
    _shown, picture, words, info, png, npz, js = knock(client, tab.MIXED, 3, 6, False, 5, 20, 7)
    labels = [k % 10 for k in range(6)]
    q = 10 * 16 + 3
    base = sagan_with_d.generate(labels, seed=3).images[5]
    knocked = sagan_with_d.generate(labels, seed=3, knockout=q).images[5]
    diff = knocked.astype(int) - base.astype(int)
    assert info["query_index"] == q and info["max_abs_diff"] == np.abs(diff).max() > 0
    assert info["pixels_changed"] == int((np.abs(diff) > 1).sum())
    np.testing.assert_allclose(np.array(info["difference"]), diff[..., 0])
    assert f"**{info['pixels_changed']} of 1024 pixels**" in words
    with Image.open(picture) as im:
        assert im.width == tab.VIEW and im.height > tab.VIEW  # the map, then its colour bar and scale
    with Image.open(png) as im:
        assert im.format == "PNG"
    arrays, data = numbers_of(npz, js)
    np.testing.assert_array_equal(arrays["knocked_out"], knocked)
    np.testing.assert_array_equal(arrays["difference"], diff)
    assert data["mean_abs_diff"] == pytest.approx(np.abs(diff).mean())


def test_an_export_without_a_discriminator_answers_in_words(client, sagan_without_d):  # noqa: F811
    with pytest.raises(AppError, match="This SAGAN export holds no discriminator"):
        judge(client, "bag", 0, 2, False, 0, tab.GENERATED, 0, 16, 16)
    _shown, _picture, words, info, *_files = knock(client, "bag", 0, 2, False, 1, 16, 16)  # the generator's
    assert "Knocking out" in words and info["pixels"] == 1024
    *_, numbers = client.predict("bag", 0, 2, False, api_name="/sagan_generate")
    assert numbers["classes"] == ["bag", "bag"]


@pytest.mark.parametrize("args, message", [
    (("bag", 0, 4, False, 0, "real", 0, 0, 0), "Image to judge must be one of|not in the list of choices"),
    (("bag", 0, 4, False, 0, tab.REAL, 10_000, 0, 0), "maximum value 9999"),  # Gradio checks first
    (("bag", 0, 4, False, 0, tab.REAL, -3, 0, 0), "minimum value 0"),
    (("bag", 0, 4, False, 7, tab.GENERATED, 0, 0, 0), "Image index must be a whole number between 0 and 3"),
    (("bag", 0, 4, False, 0, tab.GENERATED, 0, 0, 40), "maximum value 31"),
])
def test_bad_discriminator_input_through_the_app(client, sagan_with_d, args, message):  # noqa: F811
    with pytest.raises(AppError) as err:
        judge(client, *args)
    assert re.search(message, str(err.value)), str(err.value)
    assert judge(client, "bag", 0, 1, False, 0, tab.GENERATED, 0, 16, 16)[2]["label"] == 8  # still serving


@pytest.mark.parametrize("args, message", [
    (("bag", 0, 4, False, 4, 0, 0), "Image index must be a whole number between 0 and 3"),
    (("jacket", 0, 4, False, 0, 0, 0), "Class must be one of|not in the list of choices"),
    (("bag", -1, 4, False, 0, 0, 0), "minimum value 0"),
    (("bag", 0, 4, False, 0, 32, 0), "maximum value 31"),
])
def test_bad_knockout_input_through_the_app(client, sagan_with_d, args, message):  # noqa: F811
    with pytest.raises(AppError) as err:
        knock(client, *args)
    assert re.search(message, str(err.value)), str(err.value)
    assert knock(client, "bag", 0, 1, False, 0, 16, 16)[3]["query_cell"] == [8, 8]  # still serving
