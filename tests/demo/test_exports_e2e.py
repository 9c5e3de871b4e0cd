"""Every tab's downloads through gradio_client: the picture (PNG), the animation (GIF and MP4) and the numbers
(NPZ readable without pickle, and JSON), each holding what the endpoint computed."""
from __future__ import annotations

import json

import imageio.v3 as iio
import numpy as np
import pytest
from gradio_client import handle_file
from PIL import Image

from attn_models.layers.local_attention import VIS_QUERY
from demo import captioning_tab
from tests.demo.test_captioning_tab import tab_model  # noqa: F401  (fixture)
from tests.demo.test_image_transformer_tab import SIZE, sheet_images, tiny_models  # noqa: F401  (fixture)

pytestmark = pytest.mark.e2e


def opened(png, gif, mp4, npz, js):
    """(picture, GIF frame count, MP4 frames, npz dict, json dict); every file must open as what it claims."""
    with Image.open(png) as im:
        assert im.format == "PNG"
        picture = np.asarray(im.convert("RGB"))
    with Image.open(gif) as im:
        assert im.format == "GIF"
        gif_frames = im.n_frames
    video = iio.imread(mp4, index=None)
    assert video.ndim == 4 and video.shape[-1] == 3
    with np.load(npz, allow_pickle=False) as f:  # plain arrays only: no pickle needed (nor allowed)
        numbers = {k: f[k] for k in f.files}
    with open(js) as f:
        data = json.load(f)
    return picture, gif_frames, video, numbers, data


def test_caption_downloads(client, tab_model):  # noqa: F811
    out = client.predict(handle_file(captioning_tab.example_paths()[-1]), "soft", 2, True, api_name="/caption")
    raw = out[5]
    picture, gif_frames, video, numbers, data = opened(*out[6:11])
    words = raw["words"]
    assert gif_frames == len(video) == len(words) + 1  # the caption, then one frame per word
    assert numbers["words"].tolist() == data["words"] == words
    assert numbers["alphas"].shape == (len(words), *raw["grid_hw"]) == tuple(np.shape(data["alphas"]))
    np.testing.assert_allclose(numbers["alphas"], raw["alphas"], atol=1e-6)
    np.testing.assert_allclose(numbers["alphas"].sum(axis=(1, 2)), 1, atol=1e-4)
    assert numbers["grid_hw"].tolist() == raw["grid_hw"] and str(numbers["model"]) == raw["model"]
    assert picture.shape[1] > picture.shape[0]  # the word maps side by side (the sheet the tab shows)


def test_sagan_attention_downloads(client):
    info, *files = client.predict("bag", 3, 4, False, 2, 10, 20, api_name="/sagan_attention")
    picture, gif_frames, video, numbers, data = opened(*files)
    qh, qw = info["query_hw"]
    kh, kw = info["key_hw"]
    assert numbers["attention"].shape == (qh * qw, kh * kw) and numbers["query_hw"].tolist() == [qh, qw]
    np.testing.assert_allclose(numbers["attention"].sum(axis=1), 1, atol=1e-4)
    np.testing.assert_allclose(numbers["query_attention"], info["attention"], atol=1e-5)
    qy, qx = info["query_cell"]
    np.testing.assert_allclose(numbers["attention"][qy * qw + qx].reshape(kh, kw), numbers["query_attention"])
    assert numbers["image"].shape == (32, 32, 1) or numbers["image"].shape[:2] == (32, 32)
    assert set(data["gammas"]) and all(f"gammas/{k}" in numbers for k in data["gammas"])
    assert data["query_pixel"] == [10, 20] and int(numbers["index"]) == 2 and str(numbers["class"]) == "bag"
    assert numbers["query_jsd_to_other_queries"].shape == (qh * qw - 1,)
    assert data["query_dependence"] == info["query_dependence"]
    assert gif_frames == len(video) == qw  # the query walking along its row
    assert picture.shape == (256, 256, 3)  # the overlay the tab shows


@pytest.mark.parametrize("endpoint", ["/imt_sample", "/imt_complete"])
def test_image_transformer_downloads(client, tiny_models, tmp_path, endpoint):  # noqa: F811
    if endpoint == "/imt_sample":
        out = client.submit("local2d", "coat", 1.0, 5, 3, api_name=endpoint).result(timeout=300)
        n = 3
    else:
        path = tmp_path / "in.png"
        Image.fromarray(np.random.default_rng(0).integers(0, 90, (SIZE, SIZE), dtype=np.uint8)).save(path)
        out = client.predict("local2d", handle_file(str(path)), 6, 2, "coat", 1.0, 5, api_name=endpoint)
        n = 2
    first = 3 if endpoint == "/imt_sample" else 2  # after the picture (sampling only), status and numbers
    picture, gif_frames, video, numbers, data = opened(*out[first : first + 5])
    assert numbers["images"].shape == (n, SIZE, SIZE, 1) and numbers["images"].dtype == np.uint8
    assert numbers["images"].tolist() == data["images"]
    assert numbers["class_names"].tolist() == ["coat"] * n and numbers["labels"].tolist() == [4] * n
    assert gif_frames >= 2 and len(video) >= gif_frames
    shown = sheet_images(picture, n if endpoint == "/imt_sample" else 2 + n)[-n:]  # completions after kept, original
    np.testing.assert_array_equal(np.stack(shown)[..., 0], numbers["images"][..., 0])  # the picture the tab shows
    if endpoint == "/imt_complete":
        known = numbers["known"]
        assert (numbers["images"][:, known] == numbers["original"][known]).all()  # the kept rows are kept


def test_explorer_downloads(client):
    pattern = (12, 10, "1", "local2d", 8, 8, 3, 4, 2, 2)
    files = client.predict(*pattern, 7, 5, 0, api_name="/explorer_export")
    picture, gif_frames, video, numbers, data = opened(*files)
    assert numbers["grid_hw"].tolist() == [12, 10] and numbers["visibility"].shape == (12, 10)
    assert numbers["visibility"][7, 5] == VIS_QUERY and (numbers["visibility"] == VIS_QUERY).sum() == 1
    assert sorted(numbers["generation_step"].ravel().tolist()) == list(range(120))
    assert data["query"] == [7, 5, 0] and data["kind"] == "local2d" and data["visibility_codes"][str(VIS_QUERY)]
    assert 2 <= gif_frames <= 16 and len(video) == gif_frames
    assert picture.shape[0] >= 12 * 2
