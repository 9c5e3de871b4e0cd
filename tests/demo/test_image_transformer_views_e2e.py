"""The Image Transformer's "Your own drawing" view and the every-head views: the handlers in-process on tiny random
models, then ``imt_complete_mask`` through gradio_client with good and bad input (the server keeps serving)."""
from __future__ import annotations

import io
import json
from collections import Counter

import gradio as gr
import numpy as np
import pytest
from gradio.data_classes import FileData
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from attn_models.image_transformer.attention_stats import model_head_stats, query_grid
from attn_models.image_transformer.completion import complete, unseen_counts
from demo import common
from demo import image_transformer_tab as tab
from tests.demo.test_fuzz import WILD, Arg, arrays, calls, extra_files, fuzz_settings, is_picture, num, pick, run
from tests.demo.test_image_transformer_tab import (  # noqa: F401  (tiny_models: fixture)
    SIZE,
    click_on,
    is_unknown,
    sheet_images,
    shrink,
    tiny_models,
)

SCALE = 6  # the pictures below are the 12x12 grid enlarged 6x (72 px): the model reduces them exactly
PX = SIZE * SCALE
ORANGE = (255, 90, 31)


def picture(seed: int = 0) -> np.ndarray:
    """A dark 12x12 picture (not inverted by the preprocessing) enlarged exactly to 72x72 RGB."""
    small = np.random.default_rng(seed).integers(0, 110, (SIZE, SIZE), dtype=np.uint8)
    return np.repeat(small.repeat(SCALE, 0).repeat(SCALE, 1)[..., None], 3, axis=-1)


def stroke(rows: slice, cols: slice, size: int = PX) -> np.ndarray:
    """An RGBA layer painted (orange, opaque) over rows x cols of the grid, transparent elsewhere."""
    layer = np.zeros((size, size, 4), np.uint8)
    k = size // SIZE
    layer[rows.start * k : rows.stop * k, cols.start * k : cols.stop * k] = [*ORANGE, 255]
    return layer


def editor(background, *layers) -> dict:
    return {"background": background, "layers": list(layers), "composite": None}


HIDE = (slice(3, 8), slice(2, 9))  # grid rows 3..7, columns 2..8


def expected_known() -> np.ndarray:
    known = np.ones((SIZE, SIZE, 1), bool)
    known[HIDE[0], HIDE[1]] = False
    return known


# ---------------------------------------------------------------------------------------------
# In-process
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", list(tab.MODEL_NAMES))
def test_complete_mask_keeps_the_visible_pixels_and_fills_the_painted_ones(tiny_models, kind):
    m = tiny_models[kind]
    bg = picture(1)
    status, unseen, table, raw, state, *exports = tab.complete_mask(
        editor(bg, stroke(*HIDE)), kind, "dress", 1.0, 3, 2)
    known = expected_known()
    original = bg[::SCALE, ::SCALE, :1]
    assert len(state["images"]) == 2 + 2 and "Hid 35 of 144 positions" in status and "reduced 6x" in status
    completions = state["images"][2:]
    np.testing.assert_array_equal(state["images"][1], original)
    assert (completions[:, known] == original[known]).all()  # visible pixels kept
    assert (completions[:, ~known] != original[~known]).mean() > 0.5  # hidden pixels sampled
    # exactly the library's completion, with the tab's labels and seed
    with tab.single_thread():
        want = complete(m, original, known, 2, [3, 3], 1.0, 3)
    np.testing.assert_array_equal(completions, want)
    drawing, shown_original, *shown = sheet_images(exports[0], 2 + 2)  # the PNG download: the picture shown
    np.testing.assert_array_equal((drawing == tab.UNKNOWN).all(-1), ~known[..., 0])  # hidden shown in violet
    np.testing.assert_array_equal(shown_original[..., 0], original[..., 0])
    np.testing.assert_array_equal(np.stack(shown)[..., 0], completions[..., 0])
    # the "could not see" map and the raw numbers agree with the library
    counts = unseen_counts(m, known)
    assert raw["could_not_see"] == counts[..., 0].tolist() and raw["known"] == known[..., 0].astype(int).tolist()
    assert raw["hidden"] == 35 and raw["visible"] == SIZE * SIZE - 35 and raw["class_names"] == ["dress"] * 2
    assert raw["images"] == completions[..., 0].tolist()
    assert unseen.shape[:2] == (tab.SAMPLE_PX // SIZE * SIZE,) * 2
    cells = shrink(unseen, (SIZE, SIZE))
    top = counts[..., 0] == known.sum()  # saw no visible pixel: the top of the colour map
    if top.any():
        assert (cells[top] == tab.colorize(np.ones((1, 1)), cmap=tab.COULD_NOT_SEE_CMAP)[0, 0]).all()
    # every head of every layer, over the completions
    stats = model_head_stats(m, completions, [3, 3])
    assert table["headers"] == tab.HEAD_STATS_HEADERS and len(table["data"]) == m.num_layers * m.num_heads
    np.testing.assert_allclose([row[2] for row in table["data"]], stats.mean_distance.ravel(), atol=1e-3)
    np.testing.assert_allclose([row[3] for row in table["data"]], stats.entropy.ravel(), atol=1e-3)
    assert len(exports) == 5
    with np.load(exports[3], allow_pickle=False) as f:
        np.testing.assert_array_equal(f["images"], completions)
        np.testing.assert_array_equal(f["known"], known)
        np.testing.assert_array_equal(f["could_not_see"], counts)
        assert f["head_entropy_bits"].shape == (m.num_layers, m.num_heads)
    with open(exports[4]) as f:
        assert json.load(f)["seed"] == 3


def test_masks_of_other_sizes_are_resized_with_the_picture(tiny_models):
    """A 40x40 picture painted over its left half: the left 6 columns of the 12x12 grid are hidden."""
    bg = np.random.default_rng(0).integers(0, 100, (40, 40, 3), dtype=np.uint8)
    layer = np.zeros((40, 40, 4), np.uint8)
    layer[:, :20] = [*ORANGE, 255]
    *_, raw, state, _png, _gif, _mp4, _npz, _js = tab.complete_mask(editor(bg, layer), "local1d", "tshirt", 1.0, 0, 1)
    known = np.array(raw["known"], bool)
    assert not known[:, :6].any() and known[:, 6:].all()
    assert "resized from 40x40" in raw["note"]


def test_a_black_and_white_mask_and_several_layers_count():
    """Through the API a mask may come as a plain picture (white = hide) or as several layers."""
    white = np.zeros((PX, PX, 4), np.uint8)
    white[..., 3] = 255  # an opaque black picture: nothing painted ...
    white[: PX // 2, : PX // 2, :3] = 255  # ... but its white corner
    _bg, painted = tab.editor_parts(editor(picture(), white, stroke(slice(10, 12), slice(10, 12))))
    hidden = tab.mask_on_grid(painted, (SIZE, SIZE))
    assert hidden[:6, :6].all() and hidden[10:, 10:].all() and hidden.sum() == 36 + 4
    assert tab.painted_pixels(np.array([[0, 9]], np.uint8)).tolist() == [[False, True]]


def test_a_pixel_is_hidden_when_at_least_half_of_it_is_painted():
    painted = np.zeros((PX, PX), bool)
    painted[:SCALE, : SCALE // 2] = True  # half of pixel (0, 0)
    painted[SCALE : SCALE + 2, :SCALE] = True  # a third of pixel (1, 0)
    hidden = tab.mask_on_grid(painted, (SIZE, SIZE))
    assert hidden[0, 0] and not hidden[1, 0] and hidden.sum() == 1


def garbage_file(tmp_path) -> str:
    path = tmp_path / "garbage.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n this is not a picture " * 20)
    return str(path)


@pytest.mark.parametrize("value, message", [
    (None, "No image given: put a picture in the editor"),
    (editor(None, stroke(*HIDE)), "No image given"),
    (editor(picture()), "No mask painted"),
    (editor(picture(), np.zeros((PX, PX, 4), np.uint8)), "No mask painted"),  # a transparent layer
    (editor(picture(), np.dstack([np.zeros((PX, PX, 3), np.uint8), np.full((PX, PX), 255, np.uint8)])),
     "No mask painted"),  # painted black: the rule says not transparent and not black
    (editor(picture(), stroke(*HIDE, size=PX + SCALE)), r"Mask layer 1 is 78×78 pixels but the image is 72×72"),
    (editor(picture(), np.pad(stroke(slice(0, 1), slice(0, 1))[:2, :2], ((0, PX - 2), (0, PX - 2), (0, 0)))),
     "covers no pixel of the model's 12×12 grid"),
    (editor(np.zeros((2, 2, 3), np.uint8), np.full((2, 2, 4), 255, np.uint8)), "Cannot complete this image"),
    (editor(np.zeros((4, 4, 4, 4)), stroke(*HIDE)), r"Image must be an array of shape"),
])
def test_bad_drawings_are_clear_errors(tiny_models, value, message):
    with pytest.raises(gr.Error, match=message):
        tab.complete_mask(value, "local2d", "coat", 1.0, 0, 1)


@pytest.mark.parametrize("change", [dict(count=0), dict(count=tab.MAX_COMPLETIONS + 1), dict(temperature=0),
                                    dict(seed=-1), dict(kind="local3d"), dict(label="jacket")])
def test_bad_settings_are_clear_errors(tiny_models, change):
    args = dict(editor=editor(picture(), stroke(*HIDE)), kind="local1d", label="coat", temperature=1.0, seed=0,
                count=1) | change
    with pytest.raises(gr.Error):
        tab.complete_mask(**args)


def test_the_editor_refuses_unreadable_and_huge_files_before_decoding(tmp_path):
    ed = tab.mask_editor()
    with pytest.raises(gr.Error, match="Cannot read the image or mask"):
        ed.convert_and_format_image(FileData(path=garbage_file(tmp_path)))
    with pytest.raises(gr.Error, match="Cannot read the image or mask"):
        ed.convert_and_format_image(b"not an image at all")
    huge = io.BytesIO()
    Image.new("1", (8000, 6000)).save(huge, format="PNG")  # 48 MP, a few kB on disk
    with pytest.raises(gr.Error, match="megapixel limit"):
        ed.convert_and_format_image(huge.getvalue())
    ok = io.BytesIO()
    Image.fromarray(picture()).save(ok, format="PNG")
    assert ed.convert_and_format_image(ok.getvalue()).shape == (PX, PX, 4)  # RGBA, as the editor sends it


def test_the_example_drawing_completes_as_it_is(tiny_models):
    status, *_, state, _png, _gif, _mp4, _npz, _js = tab.complete_mask(tab.example_drawing(), "local1d",
                                                                       tab.EACH_CLASS_NAME, 1.0, 0, 1)
    assert len(state["images"]) == 3 and "Hid" in status


def test_inspecting_a_completion_says_what_the_pixel_could_not_see(tiny_models):
    m = tiny_models["local1d"]
    *_, state, _png, _gif, _mp4, _npz, _js = tab.complete_mask(editor(picture(2), stroke(*HIDE)), "local1d",
                                                               "bag", 1.0, 0, 2)
    target = tab.choose(state, click_on(state, 3))
    assert target["known"] is state["known"] and target["label"] == 8
    np.testing.assert_array_equal(target["image"], state["images"][3])
    assert "known" not in tab.choose(state, click_on(state, 1))  # the original
    out = tab.inspect_view(target, 5, 4, 0, 1, "mean")
    grid, note = out[-2:]
    assert len(out) == 10 + 2  # inspect's outputs, then the grid and the note
    # raster order: visible pixels after row 5, column 4 are columns 9..11 of row 5, columns 0..1 and 9..11 of
    # rows 6 and 7, and all of rows 8..11
    later = 3 + 2 * (2 + 3) + 4 * SIZE
    assert "**hidden**" in note and f"could not see **{later}** of the {SIZE * SIZE - 35}" in note
    _, note = tab.inspect_more(target, 0, 0, 0)
    assert "**visible**" in note
    tile = tab.scale_of((SIZE, SIZE), tab.GRID_TILE) * SIZE
    assert grid.shape == (m.num_layers * (tile + 15) + (m.num_layers - 1) * 4,
                          m.num_heads * tile + (m.num_heads - 1) * 4, 3)
    # each tile is that layer and head's real weights (query_grid), drawn as the single-head picture is
    weights = query_grid(m, target["image"], 8, 5, 4, 0)
    last_y, last_x = (m.num_layers - 1) * (tile + 15 + 4) + 15, (m.num_heads - 1) * (tile + 4)
    np.testing.assert_array_equal(grid[15 : 15 + tile, :tile],
                                  tab.attention_picture(target["image"], weights[0, 0], 5, 4, tile))
    np.testing.assert_array_equal(grid[last_y : last_y + tile, last_x : last_x + tile],
                                  tab.attention_picture(target["image"], weights[-1, -1], 5, 4, tile))
    _, note = tab.inspect_more({"kind": "local1d", "image": state["images"][1], "label": 8}, 5, 4, 0)
    assert note == ""  # a sample or the original: nothing was hidden


@st.composite
def drawings(draw, valid: bool):
    """Editor values: a picture with a painted RGBA layer of its size (``valid``), or odd values, arrays and
    layers of other sizes and kinds."""
    if not valid and draw(st.integers(0, 3)) == 0:
        return draw(st.one_of(WILD, st.just({}), st.just({"background": None, "layers": []}),
                              st.just({"background": picture(), "layers": None})))
    h, w = draw(st.integers(4, 90)), draw(st.integers(4, 90))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    background = rng.integers(0, 256, (h, w, draw(st.sampled_from([3, 4]))), dtype=np.uint8)
    layer = np.zeros((h, w, 4), np.uint8)
    y0, x0 = draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))
    layer[y0 : y0 + draw(st.integers(1, h)), x0 : x0 + draw(st.integers(1, w))] = [*ORANGE, 255]
    value = {"background": background, "layers": [layer], "composite": None}
    if not valid:
        which = draw(st.sampled_from(["background", "layer", "layers"]))
        if which == "layers":
            value["layers"] = draw(st.one_of(st.just([]), st.lists(arrays(False), max_size=2)))
        else:
            value[which if which == "background" else "layers"] = (
                draw(arrays(False)) if which == "background" else [draw(arrays(draw(st.booleans())))])
    return value


def test_complete_mask_keeps_its_contract_under_fuzzing(tiny_models):
    """Hypothesis, as tests/demo/test_fuzz.py does for the other endpoints: a result of the documented shape or
    a gr.Error in words, never another exception."""
    seen = Counter()

    @fuzz_settings(0.7)
    @given(calls((Arg(drawings(True), drawings(False)), pick(tab.MODEL_NAMES), pick([n for n, _ in tab.CLASS_CHOICES]),
                  num(0, 3, whole=False), num(0, tab.MAX_SEED), num(1, 3))))
    def fuzz(args):
        out = run(tab.complete_mask, args)
        seen["gr.Error" if isinstance(out, gr.Error) else "result"] += 1
        if isinstance(out, gr.Error):
            return
        status, unseen, table, raw, state, *files = out
        assert "Hid" in status and is_picture(unseen)
        assert len(state["images"]) == 2 + len(raw["images"])
        assert len(table["data"]) == 4 and raw["hidden"] > 0
        extra_files(files)

    fuzz()
    assert seen["result"] > 0 and seen["gr.Error"] > 0, dict(seen)


# ---------------------------------------------------------------------------------------------
# End to end through gradio_client
# ---------------------------------------------------------------------------------------------

def save(tmp_path, name: str, array: np.ndarray) -> str:
    path = tmp_path / name
    Image.fromarray(array).save(path)
    return str(path)


@pytest.mark.e2e
def test_imt_complete_mask_is_documented_with_the_types_it_takes(client):
    info = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/imt_complete_mask"]
    params = {p["parameter_name"]: p for p in info["parameters"]}
    assert list(params) == ["editor", "kind", "label", "temperature", "seed", "count"]
    assert params["editor"]["component"] == "Imageeditor"
    assert set(params["editor"]["type"]["properties"]) >= {"background", "layers", "composite"}
    assert params["kind"]["type"]["enum"] == ["local1d", "local2d"]
    assert [r["label"] for r in info["returns"]] == [
        "Completion status", "Could not see (hidden pixels)", "Every head over the completions (every position as "
        "a query): mean attention distance and entropy", "Raw numbers", *common.EXPORT_LABELS]


@pytest.mark.e2e
def test_imt_complete_mask_endpoint(client, tiny_models, tmp_path):
    from gradio_client import handle_file

    bg = picture(4)
    value = {"background": handle_file(save(tmp_path, "bg.png", bg)),
             "layers": [handle_file(save(tmp_path, "mask.png", stroke(*HIDE)))], "composite": None}
    status, unseen, table, raw, png, gif, mp4, npz, js = client.predict(
        value, "local2d", "sneaker", 0.9, 5, 3, api_name="/imt_complete_mask")
    assert "Hid 35 of 144" in status
    known = expected_known()
    assert raw["known"] == known[..., 0].astype(int).tolist() and raw["class_names"] == ["sneaker"] * 3
    with np.load(npz, allow_pickle=False) as f:
        images, original = f["images"], f["original"]
    np.testing.assert_array_equal(original, bg[::SCALE, ::SCALE, :1])
    assert (images[:, known] == original[known]).all()
    with tab.single_thread():
        want = complete(tiny_models["local2d"], original, known, 3, [7, 7, 7], 0.9, 5)
    np.testing.assert_array_equal(images, want)
    assert raw["images"] == images[..., 0].tolist()
    drawing, _original, *shown = sheet_images(png, 2 + 3)
    np.testing.assert_array_equal(is_unknown(drawing), ~known[..., 0])
    np.testing.assert_array_equal(np.stack(shown)[..., 0], images[..., 0])
    assert raw["could_not_see"] == unseen_counts(tiny_models["local2d"], known)[..., 0].tolist()
    assert len(table["data"]) == 2 * 2 and table["headers"] == tab.HEAD_STATS_HEADERS
    assert np.asarray(Image.open(unseen)).shape[:2] == (tab.SAMPLE_PX // SIZE * SIZE,) * 2
    with Image.open(gif) as im:
        assert im.format == "GIF" and im.n_frames >= 2
    with open(js) as f:
        assert json.load(f)["temperature"] == 0.9


@pytest.mark.e2e
def test_imt_complete_mask_accepts_its_documented_default(client, tiny_models):
    """The editor's documented default (the example drawing) is a valid call: every argument left out."""
    status, *_, raw, _png, _gif, _mp4, _npz, _js = client.predict(api_name="/imt_complete_mask")
    assert "Hid" in status and len(raw["images"]) == 4


@pytest.mark.e2e
@pytest.mark.parametrize("case, message", [
    ("no mask", "No mask painted"),
    ("empty mask", "No mask painted"),
    ("covers nothing", "covers no pixel"),
    ("wrong size", "Mask layer 1 is 78×78 pixels but the image is 72×72"),
    ("garbage image", "Cannot read the image or mask"),
    ("garbage mask", "Cannot read the image or mask"),
    ("no image", "No image given"),
])
def test_imt_complete_mask_bad_input_is_a_clear_error_and_the_server_keeps_serving(client, tiny_models, tmp_path,
                                                                                   case, message):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    bg = handle_file(save(tmp_path, "bg.png", picture()))
    mask = handle_file(save(tmp_path, "mask.png", stroke(*HIDE)))
    dot = np.zeros((PX, PX, 4), np.uint8)
    dot[:2, :2] = [*ORANGE, 255]
    layers = {"no mask": [], "empty mask": [handle_file(save(tmp_path, "empty.png", np.zeros((PX, PX, 4), np.uint8)))],
              "covers nothing": [handle_file(save(tmp_path, "dot.png", dot))],
              "wrong size": [handle_file(save(tmp_path, "big.png", stroke(*HIDE, size=PX + SCALE)))],
              "garbage mask": [handle_file(garbage_file(tmp_path))]}.get(case, [mask])
    background = {"garbage image": handle_file(garbage_file(tmp_path)), "no image": None}.get(case, bg)
    with pytest.raises(AppError, match=message):
        client.predict({"background": background, "layers": layers, "composite": None}, "local1d", "coat", 1.0, 0, 1,
                       api_name="/imt_complete_mask")
    status, *_, raw, _png, _gif, _mp4, _npz, _js = client.predict(
        {"background": bg, "layers": [mask], "composite": None}, "local1d", "coat", 1.0, 0, 1,
        api_name="/imt_complete_mask")
    assert len(raw["images"]) == 1 and "Hid 35" in status
