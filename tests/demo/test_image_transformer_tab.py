"""Image Transformer tab: handlers in-process on tiny random models, then the endpoints through gradio_client
(streamed sampling, completion, errors). Tiny models keep this fast; the shipped weights get one test of their own."""
from __future__ import annotations

import json
import math
from contextlib import ExitStack
from pathlib import Path

import gradio as gr
import imageio.v3 as iio
import numpy as np
import pytest
import torch
from PIL import Image

from attn_models.image_transformer.model import ImageTransformer
from attn_models.layers.local_attention import VIS_QUERY, generation_order, visibility
from attn_models.registry import get_spec
from demo import common
from demo import image_transformer_tab as tab
from demo.render import FIG3_COLORS

SIZE = 12


def tiny(kind: str, channels: int = 1, seed: int = 0) -> ImageTransformer:
    torch.manual_seed(seed)
    return ImageTransformer(image_size=SIZE, channels=channels, num_classes=10, d_model=16, heads=2, layers=2,
                            ffn=32, attention=kind, query_len=12, memory_len=24, block_h=3, block_w=6,
                            flange_h=3, flange_w=3).eval()


@pytest.fixture(scope="module")
def tiny_models():
    models = {kind: tiny(kind) for kind in tab.MODEL_NAMES}
    with ExitStack() as stack:
        for kind, m in models.items():
            stack.enter_context(common.override_model(tab.MODEL_NAMES[kind], m))
        yield models


def no_progress(*_a, **_k):
    return None


def sample_fast(m, *args, **kwargs):
    """m.sample with one intra-op thread, as the tab runs it (many times faster on a busy CPU)."""
    with tab.single_thread():
        return m.sample(*args, **kwargs)


def shrink(picture: np.ndarray, grid_hw) -> np.ndarray:
    """Undo the nearest-neighbour enlargement: one colour per grid cell."""
    s = picture.shape[0] // grid_hw[0]
    return picture[s // 2 :: s, s // 2 :: s][: grid_hw[0], : grid_hw[1]]


def is_unknown(cells: np.ndarray) -> np.ndarray:
    return (cells == tab.UNKNOWN).all(-1)


def sheet_images(picture, count: int) -> list[np.ndarray]:
    """The ``count`` images of a results picture (tab.results_sheet; a path or an array), one colour per grid cell."""
    if isinstance(picture, (str, Path)):
        with Image.open(picture) as im:
            picture = np.asarray(im.convert("RGB"))
    side = tab.scale_of((SIZE, SIZE), tab.SAMPLE_PX) * SIZE
    images = []
    for k in range(count):
        row, col = divmod(k, tab.SHEET_COLUMNS)
        y, x = row * (side + tab.CELL_LABEL + tab.SHEET_GAP), col * (side + tab.SHEET_GAP)
        images.append(shrink(np.asarray(picture)[y : y + side, x : x + side], (SIZE, SIZE)))
    return images


def click_on(results: dict, k: int, dy: int = 5, dx: int = 5) -> gr.SelectData:
    """A click on pixel (dy, dx) of cell ``k`` of the results picture whose state is ``results``."""
    cell_h, cell_w = results["cell_hw"]
    row, col = divmod(k, tab.SHEET_COLUMNS)
    x, y = col * (cell_w + tab.SHEET_GAP) + dx, row * (cell_h + tab.SHEET_GAP) + dy
    return gr.SelectData(None, {"index": [x, y], "value": None})


# ---------------------------------------------------------------------------------------------
# In-process
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", list(tab.MODEL_NAMES))
def test_sample_streams_partial_images_then_the_samples(tiny_models, kind):
    m = tiny_models[kind]
    threads = torch.get_num_threads()
    steps = list(tab.sample(kind, tab.EACH_CLASS, 1.0, 3, 2, progress=no_progress))
    assert len(steps) >= 3
    expected = sample_fast(m, 2, labels=np.arange(2), temperature=1.0, seed=3)
    order = generation_order(SIZE, SIZE, 1, m.pattern).numpy()
    seen_before = 0
    for picture, status, info, state, *exports in steps[:-1]:
        first, second = sheet_images(picture, 2)  # one picture holds every sample
        unknown = is_unknown(first).reshape(-1)
        assert 0 < unknown.sum() < SIZE * SIZE
        generated = int((~unknown).sum())
        assert generated > seen_before and not unknown[order[:generated]].any()  # a prefix in generation order
        np.testing.assert_array_equal(is_unknown(second), is_unknown(first))
        seen_before = generated
        assert all(isinstance(x, type(gr.skip())) for x in (info, state, *exports))  # left as they are until done
        assert "Generating" in status
    assert torch.get_num_threads() == threads  # the one-thread setting was restored
    picture, status, info, state, *exports = steps[-1]
    assert len(exports) == 5 and all(Path(p).is_file() for p in exports)
    assert picture is None  # the finished picture is the PNG download, returned once
    assert "Done" in status and info["class_names"] == ["tshirt", "trousers"] and info["labels"] == [0, 1]
    assert info["model"] == tab.MODEL_NAMES[kind] and info["seed"] == 3
    np.testing.assert_array_equal(state["images"], expected)
    for i, cells in enumerate(sheet_images(exports[0], 2)):
        np.testing.assert_array_equal(cells[..., 0], expected[i, ..., 0])


@pytest.mark.parametrize("kind", list(tab.MODEL_NAMES))
def test_sample_streams_a_few_pictures_in_whole_rows_or_blocks(tiny_models, kind):
    """Each streamed picture is files to fetch, so about STREAM_UPDATES of them, not one per row."""
    m = tiny_models[kind]
    every = tab.stream_every(m)
    unit = m.pattern.block_h * m.pattern.block_w if kind == "local2d" else SIZE
    assert every % unit == 0
    steps = list(tab.sample(kind, tab.EACH_CLASS, 1.0, 3, 1, progress=no_progress))
    assert len(steps) == -(-m.num_positions // every) <= tab.STREAM_UPDATES + 1
    # The shipped 28x28 models (28 rows, or 14 blocks of 4x14): STREAM_UPDATES pictures, the finished one included.
    for attention in tab.MODEL_NAMES:
        config = get_spec(tab.MODEL_NAMES[attention]).local_dir / "config.json"
        if config.is_file():
            shipped = ImageTransformer(**json.loads(config.read_text()))
            assert -(-shipped.num_positions // tab.stream_every(shipped)) == tab.STREAM_UPDATES


@pytest.mark.parametrize("kind", list(tab.MODEL_NAMES))
def test_complete_keeps_the_prefix(tiny_models, kind):
    m = tiny_models[kind]
    rng = np.random.default_rng(0)
    image = rng.integers(0, 100, (SIZE, SIZE, 3), dtype=np.uint8)  # dark: not inverted
    status, info, state, *exports = tab.complete(kind, image, 6, 3, 2, 0.8, 5)
    assert len(state["images"]) == 2 + 3 and "Kept" in status
    assert info["class_names"] == ["pullover"] * 3 and info["rows"] == 6 and len(exports) == 5
    prefix = np.asarray(Image.fromarray(image).convert("L"))  # Pillow's luma conversion
    known = m.prefix_mask(6)[..., 0]
    completions = state["images"][2:, ..., 0]
    assert completions.shape == (3, SIZE, SIZE)
    for comp in completions:
        np.testing.assert_array_equal(comp[known], prefix[known])
    assert (completions[:, ~known] != completions[:1, ~known]).any()  # different seeds per completion
    kept, original, *shown = sheet_images(exports[0], 2 + 3)  # the PNG download: the picture the tab shows
    np.testing.assert_array_equal(is_unknown(kept), ~known)
    np.testing.assert_array_equal(original[..., 0], state["images"][1, ..., 0])
    np.testing.assert_array_equal(np.stack(shown)[..., 0], completions)


def test_a_click_on_the_results_picture_picks_its_image(tiny_models):
    m = tiny_models["local1d"]
    images = sample_fast(m, 10, labels=np.arange(10), seed=0)
    pictures = [tab.enlarge_to(tab.grid_picture(im), tab.SAMPLE_PX) for im in images]
    results = {"kind": "local1d", "images": images, "labels": np.arange(10), "cell_hw": tab.cell_hw(pictures)}
    cell_h, cell_w = results["cell_hw"]
    for k, dy, dx in ((0, 0, 0), (3, cell_h - 1, cell_w - 1), (9, 7, 100)):  # the second row holds 8 and 9
        target = tab.choose(results, click_on(results, k, dy, dx))
        assert target["label"] == k and target["kind"] == "local1d"
        np.testing.assert_array_equal(target["image"], images[k])
    gap = click_on(results, 1, 0, cell_w)  # between images 1 and 2
    past = click_on(results, 10)  # where an eleventh image would be
    for evt in (gap, past):
        assert isinstance(tab.choose(results, evt), type(gr.skip()))
    with pytest.raises(gr.Error, match="Generate or complete images first"):
        tab.choose(None, click_on(results, 0))


def test_complete_uses_the_models_preprocessing_and_says_what_it_changed(tiny_models):
    """A dark object on a light page is resized and inverted like the library's preprocess does it, and the
    status line tells the user."""
    m = tiny_models["local1d"]
    page = np.full((40, 36, 3), 250, np.uint8)
    page[10:30, 10:26] = 20
    status, _info, state, *_exports = tab.complete("local1d", page, 4, 1, 0, 1.0, 0)
    expected, note = m.preprocess(page)
    assert "resized" in note and "inverted" in note and note in status
    np.testing.assert_array_equal(state["images"][1], expected)  # the "original" the completions start from


@pytest.mark.parametrize("image, message", [
    (None, "No image given: upload one"),
    (np.zeros((4, 4, 4, 4)), r"Image must be an array of shape \(H, W\)"),
    (np.array("not a picture"), "Image must be an array"),
    (np.zeros((2, 2, 3), np.uint8), "Cannot complete this image: .*too small"),
    (np.zeros((300, 10, 3), np.uint8), "Cannot complete this image: .*too far"),
])
def test_unusable_uploads_are_clear_errors(tiny_models, image, message):
    with pytest.raises(gr.Error, match=message):
        tab.complete("local1d", image, 4, 1, 0, 1.0, 0)


@pytest.mark.parametrize("change", [dict(temperature=0), dict(temperature=-1), dict(temperature=math.nan),
                                    dict(count=0), dict(count=10_000), dict(seed=-1), dict(kind="local3d"),
                                    dict(label=10), dict(label="jacket")])
def test_bad_sampling_inputs_raise_gr_error(tiny_models, change):
    args = dict(kind="local1d", label=tab.EACH_CLASS, temperature=1.0, seed=0, count=1) | change
    with pytest.raises(gr.Error):
        next(tab.sample(**args, progress=no_progress))


@pytest.mark.parametrize("change", [dict(rows=SIZE), dict(rows=-1), dict(count=0), dict(temperature=0),
                                    dict(image=np.zeros((1, 1, 3), np.uint8))])
def test_bad_completion_inputs_raise_gr_error(tiny_models, change):
    args = dict(kind="local2d", image=np.zeros((SIZE, SIZE, 3), np.uint8), rows=3, count=1, label=0,
                temperature=1.0, seed=0) | change
    with pytest.raises(gr.Error):
        tab.complete(**args)


def test_inspect_draws_fig3_and_real_weights(tiny_models):
    m = tiny_models["local2d"]
    image = sample_fast(m, 1, labels=[4], seed=1)[0]
    target = {"kind": "local2d", "image": image, "label": 4}
    fig3, attn, heads, text, *rcc, _png, _npz, _json = tab.inspect(target, 7, 8, 0, 2, "mean")
    assert rcc == [7, 8, 0]
    s = tab.scale_of((SIZE, SIZE), tab.INSPECT_PX)
    assert tuple(fig3[7 * s + s // 2, 8 * s + s // 2]) == FIG3_COLORS[VIS_QUERY]  # the query, red
    weights = m.query_attention(image, 4, 7, 8, 0, 1)
    assert heads.shape[1] > heads.shape[0]  # one tile per head, side by side
    codes = visibility(SIZE, SIZE, 1, m.pattern, 7 * SIZE + 8)
    assert (codes == VIS_QUERY).sum() == 1
    assert "weight inside the visible window 1.000" in text
    top = np.unravel_index(weights.mean(0).argmax(), (SIZE, SIZE))
    assert f"at row {top[0]}, column {top[1]}" in text
    _, _, _, text0, *_ = tab.inspect(target, 7, 8, 0, 2, "0")
    assert "head 0" in text0
    _, _, _, _, row, col, channel, *_ = tab.inspect(target, 99, 5, 3, 1, "mean")  # clamped to the image
    assert (row, col, channel) == (SIZE - 1, 5, 0)
    with pytest.raises(gr.Error):
        tab.inspect(target, -1, 0, 0, 1, "mean")
    with pytest.raises(gr.Error):
        tab.inspect(target, 1, 0, 0, 1, "7")  # no head 7
    with pytest.raises(gr.Error):
        tab.inspect(None, 0, 0, 0, 1, "mean")


def test_click_on_an_rgb_image_picks_row_column_and_channel():
    m = tiny("local1d", channels=3)
    with common.override_model(tab.MODEL_NAMES["local1d"], m):
        image = sample_fast(m, 1, labels=[0], seed=0)[0]
        target = {"kind": "local1d", "image": image, "label": 0}
        s = tab.scale_of((SIZE, SIZE * 3), tab.INSPECT_PX)
        evt = gr.SelectData(None, {"index": [(4 * 3 + 2) * s + 1, 9 * s + 1], "value": None})
        _, _, _, _, row, col, channel, *_ = tab.inspect_click(target, 0, 1, "mean", evt)
    assert (row, col, channel) == (9, 4, 2)


def test_animation_reveals_in_generation_order(tiny_models, tmp_path):
    m = tiny_models["local2d"]
    image = sample_fast(m, 1, labels=[1], seed=2)[0]
    path, mp4 = tab.animate({"kind": "local2d", "image": image, "label": 1})
    assert len(iio.imread(mp4, index=None)) == tab.ANIMATION_FRAMES + 5  # the video keeps every frame
    frames = iio.imread(path, index=None)
    # The held final frames may be merged into one longer GIF frame by the writer.
    assert tab.ANIMATION_FRAMES <= len(frames) <= tab.ANIMATION_FRAMES + 5
    first = shrink(frames[0][..., :3], (SIZE, SIZE))
    last = shrink(frames[-1][..., :3], (SIZE, SIZE))
    assert is_unknown(first).mean() > 0.9 and not is_unknown(last).any()
    np.testing.assert_allclose(last[..., 0].astype(int), image[..., 0].astype(int), atol=8)  # GIF palette


def test_unknown_model_kind_is_a_clear_error():
    with pytest.raises(gr.Error, match="Model must be one of local1d, local2d, got 'local3d'"):
        tab.get_model("local3d")


def bundled(kind: str) -> bool:
    spec = get_spec(tab.MODEL_NAMES[kind])
    return (spec.local_dir / "model.safetensors").is_file()


@pytest.mark.parametrize("kind", list(tab.MODEL_NAMES))
def test_shipped_model_samples_in_the_tab(kind):
    if not bundled(kind):
        pytest.skip(f"{tab.MODEL_NAMES[kind]} weights not bundled yet")
    with common.override_model(tab.MODEL_NAMES[kind], None):  # the registry's, even while tiny_models is active
        *_, (_picture, status, _info, state, *_exports) = tab.sample(kind, 7, 1.0, 0, 1, progress=no_progress)
    assert state["images"].shape == (1, 28, 28, 1) and "Done" in status


# ---------------------------------------------------------------------------------------------
# End to end through gradio_client
# ---------------------------------------------------------------------------------------------

def files_in(answer) -> int:
    return sum(isinstance(v, str) and Path(v).is_file() for v in answer)


@pytest.mark.e2e
def test_imt_sample_endpoint_streams(client, tiny_models):
    job = client.submit("local2d", tab.EACH_CLASS_NAME, 1.0, 0, 2, api_name="/imt_sample")
    final = job.result(timeout=300)
    outputs = job.outputs()
    assert len(outputs) >= 3, "expected intermediate images and the final ones"
    # The client fetches every file of every update: one growing picture per update, then only the five downloads.
    assert [files_in(out) for out in outputs] == [1] * (len(outputs) - 1) + [5]
    first = sheet_images(outputs[0][0], 2)
    assert is_unknown(first[0]).any()
    picture, status, info, png, *_ = final
    assert picture is None and "Done" in status and info["class_names"] == ["tshirt", "trousers"]
    last = sheet_images(png, 2)
    assert not is_unknown(last[0]).any()
    expected = sample_fast(tiny_models["local2d"], 2, labels=np.arange(2), seed=0)
    np.testing.assert_array_equal(last[1][..., 0], expected[1, ..., 0])


@pytest.mark.e2e
def test_imt_complete_endpoint(client, tiny_models, tmp_path):
    from gradio_client import handle_file

    path = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 90, (24, 24), dtype=np.uint8)).save(path)
    status, info, png, *exports = client.predict("local1d", handle_file(str(path)), 4, 2, "dress", 1.0, 0,
                                                 api_name="/imt_complete")
    assert "resized from 24x24" in status and info["class_names"] == ["dress"] * 2 and len(exports) == 4
    kept = is_unknown(sheet_images(png, 2 + 2)[0])
    assert not kept[:4].any() and kept[4:].all()


@pytest.mark.e2e
@pytest.mark.parametrize("endpoint,args", [
    ("/imt_sample", ("local1d", "tshirt", 0.0, 0, 1)),
    ("/imt_sample", ("local1d", "tshirt", 1.0, 0, 0)),
    ("/imt_sample", ("local1d", "tshirt", 1.0, 0, 10_000)),
    ("/imt_sample", ("local1d", 0, 1.0, 0, 1)),  # a class id: the API takes the names it documents
    ("/imt_complete", ("local1d", None, 4, 1, "tshirt", 1.0, 0)),
    ("/imt_complete", ("local1d", "BAD_IMAGE", 40, 1, "tshirt", 1.0, 0)),
])
# (NaN cannot travel as JSON, so the client refuses it before sending; the handler's NaN check is tested
# in-process above.)
def test_imt_bad_inputs_give_errors_and_server_keeps_serving(client, tiny_models, tmp_path, endpoint, args):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    if "BAD_IMAGE" in args:
        path = tmp_path / "x.png"
        Image.fromarray(np.zeros((SIZE, SIZE), np.uint8)).save(path)
        args = tuple(handle_file(str(path)) if a == "BAD_IMAGE" else a for a in args)
    with pytest.raises(AppError):
        if endpoint == "/imt_sample":
            client.submit(*args, api_name=endpoint).result(timeout=120)
        else:
            client.predict(*args, api_name=endpoint)
    final = client.submit("local1d", "tshirt", 1.0, 0, 1, api_name="/imt_sample").result(timeout=300)
    assert final[2]["class_names"] == ["tshirt"]
