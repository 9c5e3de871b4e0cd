"""Inductive biases tab end to end: the launched app's ``bias_shift`` endpoint through gradio_client gives the
tab's numbers for an upload, names the field of a bad input, and keeps serving."""
from __future__ import annotations

import numpy as np
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from demo import inductive_bias_tab as tab
from tests.demo.test_inductive_bias_tab import bias_models, item  # noqa: F401  (fixture)

pytestmark = pytest.mark.e2e


def test_the_endpoint_documents_its_outputs(client):
    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    # the sheet is returned once, as its PNG download (the tab copies it into the view in the browser)
    assert [r["label"] for r in api["/bias_shift"]["returns"]] == [
        "Predictions and equivariance error", "What these numbers say", "Numbers", "PNG picture", "GIF animation",
        "MP4 animation", "NPZ numbers", "JSON numbers"]


def test_bias_shift_through_the_api(client, bias_models, tmp_path):  # noqa: F811
    path = tmp_path / "item.png"
    Image.fromarray(item(4)).save(path)
    result = client.predict(handle_file(str(path)), 0, -1, 3, 3, api_name="/bias_shift")
    assert len(result) == 8  # the sheet is returned once: as the PNG download, which the tab shows
    table, words, info, png, gif, mp4, npz, js = result
    direct = tab.bias_shift(np.asarray(Image.open(path)), 0, -1, 3, 3)[2]
    assert info["shift"] == [-1, 3] and info["source"] == "your upload"
    for label in tab.MODELS:
        assert info["models"][label]["relative_equivariance_error"] == pytest.approx(
            direct["models"][label]["relative_equivariance_error"], rel=1e-5)
    assert [row[0] for row in table["data"]] == list(tab.MODELS) and "Shift (-1, +3)" in words
    assert all(isinstance(f, str) for f in (gif, mp4, npz, js))
    # the download is the sheet the tab shows: every model's maps of the item as the app decoded it, centred vs
    # moved (-1, +3), drawn by the tab
    x = tab.item_from(str(path), 0)[0]
    expected = tab.picture(x, -1, 3, tab.comparisons(x, -1, 3, 3))
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size == (expected.shape[1], expected.shape[0])
        assert im.size[0] > 6 * tab.CELL
        # the app's models agree with these calls to 1e-5 (its own torch threads): a colour level or two may differ
        assert np.abs(np.asarray(im.convert("RGB")).astype(int) - expected).max() <= 2


@pytest.mark.parametrize("args, message", [
    ((None, 0, 9, 0, 3), "Shift down (dy) must be a whole number between -6 and 6"),
    ((None, 0, 0, 0, 4), "Layer must be a whole number between 1 and 3"),
])
def test_bad_input_is_named_and_the_server_keeps_serving(client, bias_models, args, message, tmp_path):  # noqa: F811
    with pytest.raises(AppError) as e:
        client.predict(*args, api_name="/bias_shift")
    assert message in str(e.value)
    path = tmp_path / "item.png"
    Image.fromarray(item(5)).save(path)
    ok = client.predict(handle_file(str(path)), 0, 1, 1, 1, api_name="/bias_shift")
    assert ok[2]["shift"] == [1, 1]
