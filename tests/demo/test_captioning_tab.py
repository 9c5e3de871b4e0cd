"""Captioning tab, called directly (no server): input decoding and checking, rendering, ground truth.

The model is the bundled one when its weights are present, else an untrained ShowAttendTell (the
tab's behaviour does not depend on the caption being good)."""
from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import torch
from PIL import Image

from demo import captioning_tab as tab
from demo import common

WEIGHTS = Path(__file__).resolve().parents[2] / "weights"


def bundled(kind: str) -> bool:
    return (WEIGHTS / tab.MODEL_NAMES[kind] / "model.safetensors").is_file()


def untrained_model(kind: str):
    from attn_models.captioning.model import ShowAttendTell

    torch.manual_seed(0)
    return ShowAttendTell(attention=kind).eval()


@pytest.fixture
def tab_model():
    """The model the tab uses for each kind (the registry's when weights are bundled)."""
    from attn_models import load

    models = {kind: load(name, device="cpu") if bundled(kind) else untrained_model(kind)
              for kind, name in tab.MODEL_NAMES.items()}
    with common.override_model(tab.MODEL_NAMES["soft"], models["soft"]), \
            common.override_model(tab.MODEL_NAMES["hard"], models["hard"]):
        yield models


# ---- files of every kind ----------------------------------------------------------------------

def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height but holds almost no data: what a decompression bomb
    looks like before decoding."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def bad_upload(tmp_path: Path, name: str, data: bytes | None) -> str:
    """An upload for the bad-input tests: ``data`` as the file's bytes, or (None) a valid black 96x96 PNG, for the
    cases where the bad part is another argument."""
    path = tmp_path / name
    if data is None:
        Image.new("RGB", (96, 96)).save(path)
    else:
        path.write_bytes(data)
    return str(path)


def save(tmp_path: Path, name: str, image: Image.Image, **kw) -> str:
    path = tmp_path / name
    image.save(path, **kw)
    return str(path)


def write(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def scene_png() -> str:
    return tab.example_paths()[0]


# ---- decoding -----------------------------------------------------------------------------------

@pytest.mark.parametrize("maker, message", [
    (lambda p: write(p, "empty.png", b""), "empty"),
    (lambda p: write(p, "text.png", b"this is not an image at all"), "not an image"),
    (lambda p: write(p, "truncated.png", Path(scene_png()).read_bytes()[:200]), "damaged or truncated"),
    (lambda p: write(p, "bomb.png", png_header_only(20000, 20000)), "too large"),
    (lambda p: write(p, "big.png", png_header_only(10000, 5000)), "megapixel limit"),
])
def test_bad_files_give_clear_errors(tmp_path, maker, message):
    with pytest.raises(gr.Error, match=message):
        tab.read_image(maker(tmp_path))


def test_missing_input_is_a_clear_error():
    with pytest.raises(gr.Error, match="No image"):
        tab.read_image(None)
    with pytest.raises(gr.Error, match="could not be found"):
        tab.read_image({"path": "/nonexistent/upload.png"})
    with pytest.raises(gr.Error, match="Image must be an image file, got int"):
        tab.read_image(12)


def test_modes_decode_to_meaningful_rgb(tmp_path):
    grad = np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000  # 0..63000: clipping would make it white
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 200  # red everywhere, but only the left half opaque
    rgba[:, :4, 3] = 255
    cases = {
        "i16.png": Image.fromarray(grad, "I;16"),
        "rgba.png": Image.fromarray(rgba, "RGBA"),
        "p.gif": Image.fromarray(rgba, "RGBA").convert("P"),
        "cmyk.jpg": Image.new("CMYK", (8, 8), (0, 255, 255, 0)),
        "one.png": Image.new("1", (8, 8), 1),
        "f.tiff": Image.fromarray(grad.astype(np.float32), "F"),
        "tiny.png": Image.new("RGB", (1, 1), (10, 20, 30)),
    }
    out = {name: np.asarray(tab.read_image(save(tmp_path, name, im))) for name, im in cases.items()}
    for name, rgb in out.items():
        assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3, name
    for name in ("i16.png", "f.tiff"):  # stretched: darkest pixel black, brightest white, not all clipped
        assert out[name].min() == 0 and out[name].max() == 255 and (out[name] == 255).mean() < 0.05, name
    assert (out["rgba.png"][:, :4, 0] == 200).all() and (out["rgba.png"][:, 4:] == 0).all()  # transparent -> black
    assert out["cmyk.jpg"][..., 0].mean() > 200 and out["cmyk.jpg"][..., 1:].mean() < 60  # CMYK red is red
    assert out["tiny.png"].shape == (1, 1, 3) and tuple(out["tiny.png"][0, 0]) == (10, 20, 30)


def test_first_frame_of_an_animation_and_exif_rotation(tmp_path):
    frames = [Image.new("RGB", (6, 4), c) for c in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    assert tuple(np.asarray(tab.read_image(str(path)))[0, 0]) == (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° to display
    rotated = save(tmp_path, "rot.jpg", Image.new("RGB", (40, 20)), exif=exif)
    assert tab.read_image(rotated).size == (20, 40)


@pytest.mark.parametrize("beam", [0, 1000, -1, 2.5, "three", None, float("nan")])
def test_bad_beam_sizes_are_rejected(beam):
    with pytest.raises(gr.Error, match=f"Beam size must be a whole number between 1 and {tab.MAX_BEAM}, got"):
        tab.check_beam(beam)


def test_good_beam_sizes_pass():
    assert tab.check_beam(1) == 1 and tab.check_beam(3.0) == 3 and tab.check_beam(tab.MAX_BEAM) == tab.MAX_BEAM


def test_bad_attention_kind_is_rejected():
    with pytest.raises(gr.Error, match="Attention must be one of soft, hard, got 'medium'"):
        tab.check_kind("medium")


# ---- the handler -----------------------------------------------------------------------------------

def unpack(outputs):
    names = ["caption", "large", "words", "table", "note", "raw", "png", "gif", "mp4", "npz", "json", "state"]
    return dict(zip(names, outputs, strict=True))


def panels(out) -> list[np.ndarray]:
    """The sheet (the PNG download), cut into its words' panels (map, then the word under it)."""
    sheet = np.asarray(Image.open(out["png"]).convert("RGB"))
    (h, w), gap = out["state"].panel_hw, 4
    n = len(out["state"].words)
    return [sheet[(k // tab.SHEET_COLUMNS) * (h + gap):][:h, (k % tab.SHEET_COLUMNS) * (w + gap):][:, :w]
            for k in range(n)]


def test_caption_matches_the_library_and_renders_every_word(tab_model):
    path = scene_png()
    out = unpack(tab.caption(path, "soft", 2, True, device="cpu"))
    ref = tab_model["soft"].caption(Image.open(path).convert("RGB"), beam_size=2, max_len=tab.MAX_LEN)
    assert out["raw"]["words"] == ref.words and out["caption"] == " ".join(ref.words)
    np.testing.assert_allclose(np.asarray(out["raw"]["alphas"]), ref.alphas, atol=1e-6)
    n = len(ref.words)
    base = tab.display_image(np.asarray(Image.open(path).convert("RGB")), tab.VIEW_SIZE)
    for t, cell in enumerate(panels(out)):  # each word's map, its word and β under it
        label = tab.word_label(ref.words, t, ref.betas)
        assert label.startswith(f"{t + 1}. {ref.words[t]}") and "β=" in label
        np.testing.assert_array_equal(cell, tab.panel(tab.render.overlay(base, ref.alphas[t]), label))
    rows = -(-n // tab.SHEET_COLUMNS)
    h, w = out["state"].panel_hw
    assert Image.open(out["png"]).size == (min(n, tab.SHEET_COLUMNS) * (w + 4) - 4, rows * (h + 4) - 4)
    assert out["large"].shape[:2] == (tab.LARGE_SIZE, tab.LARGE_SIZE)
    gif = Image.open(out["gif"])
    assert gif.n_frames == n + 1  # the caption, then one frame per word
    assert out["words"]["choices"] == [(f"{t + 1}. {w}", t) for t, w in enumerate(ref.words)]


def test_overlay_follows_the_attention(tab_model, monkeypatch, tmp_path):
    """The brightest part of each word's overlay is where that word's map peaks."""
    from attn_models.captioning.model import Caption

    alphas = np.zeros((2, 12, 12), np.float32)
    alphas[0, 1, 1] = alphas[1, 10, 9] = 1.0
    fake = Caption(["red", "bag"], alphas, np.array([0.5, 0.9], np.float32))
    monkeypatch.setattr(tab, "_run_caption", lambda model, image, beam: fake)
    dark = Image.new("RGB", (96, 96))
    out = unpack(tab.caption(save(tmp_path, "dark.png", dark), "soft", 3, False, device="cpu"))
    for img, (gy, gx) in zip(panels(out), [(1, 1), (10, 9)], strict=True):
        img = img[:tab.VIEW_SIZE].astype(int)  # the map, above its word
        cell = tab.VIEW_SIZE // 12
        inside = img[gy * cell:(gy + 1) * cell, gx * cell:(gx + 1) * cell].sum(-1).mean()
        assert inside > 3 * img.sum(-1).mean()
    assert tab.word_label(out["raw"]["words"], 1, out["state"].betas) == "2. bag  β=0.90"


def test_example_scene_gets_attention_correctness(tab_model):
    from attn_models.captioning.metrics import attention_correctness

    meta = tab._example_meta()
    assert 4 <= len(meta) <= 12 and all((tab.EXAMPLES_DIR / m["file"]).stat().st_size < 20_000 for m in meta)
    path = str(tab.EXAMPLES_DIR / meta[-1]["file"])
    out = unpack(tab.caption(path, "soft", 3, True, device="cpu"))
    scene, origin = tab.find_scene(np.asarray(Image.open(path).convert("RGB")))
    assert f"#{meta[-1]['test_index']}" in origin and "Ground truth known" in out["note"]
    words = out["raw"]["words"]
    expected = attention_correctness(np.asarray(out["raw"]["alphas"]), words, scene)
    rows = out["table"]["value"]
    assert [r[:2] for r in rows] == [[t + 1, w] for t, w in enumerate(words) if expected[t] is not None]
    for r in rows:
        assert r[2] == pytest.approx(expected[r[0] - 1], abs=1e-3) and 0 < r[3] < 1


def test_example_scenes_are_the_fixed_test_set():
    from attn_models.data.scenes import fixed_test_set

    meta = tab._example_meta()
    scenes = fixed_test_set(max(m["test_index"] for m in meta) + 1)
    for m in meta:
        shipped = np.asarray(Image.open(tab.EXAMPLES_DIR / m["file"]).convert("RGB"))
        np.testing.assert_array_equal(shipped, scenes[m["test_index"]].image)


def test_uploaded_photo_has_no_ground_truth(tab_model, tmp_path):
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 255, (300, 500, 3), dtype=np.uint8))
    out = unpack(tab.caption(save(tmp_path, "photo.png", photo), "hard", 1, True, device="cpu"))
    assert out["note"] == tab.NO_GROUND_TRUTH and out["table"]["visible"] is False
    assert out["large"].shape[:2] == (288, 480)  # aspect ratio kept
    assert out["state"].panel_hw == (192 + tab.strip_height(320), 320)
    n = len(out["raw"]["words"])
    assert Image.open(out["png"]).size == (min(n, tab.SHEET_COLUMNS) * (320 + 4) - 4,
                                           -(-n // tab.SHEET_COLUMNS) * (out["state"].panel_hw[0] + 4) - 4)


def test_random_scene_is_a_test_scene_with_ground_truth(tab_model):
    path = tab.new_random_scene()
    rgb = np.asarray(Image.open(path).convert("RGB"))
    scene, origin = tab.find_scene(rgb)
    assert rgb.shape == (96, 96, 3) and "seed" in origin
    out = unpack(tab.caption(path, "soft", 1, True, device="cpu"))
    assert "Ground truth known" in out["note"]


def test_selecting_a_word_enlarges_its_map(tab_model):
    out = unpack(tab.caption(scene_png(), "soft", 1, True, device="cpu"))
    result = out["state"]
    last = len(result.words) - 1
    view = tab.enlarged_view(result, last)
    expected = tab.word_overlay(tab.display_image(result.image, tab.LARGE_SIZE), result.alphas[last],
                                tab.word_label(result.words, last, result.betas), True)
    np.testing.assert_array_equal(view, expected)
    assert tab.enlarged_view(result, 999) is None and tab.enlarged_view(None, 0) is None


def test_a_click_on_a_words_panel_enlarges_its_map(tab_model):
    out = unpack(tab.caption(scene_png(), "soft", 3, True, device="cpu"))
    result = out["state"]
    (h, w), last = result.panel_hw, len(result.words) - 1
    row, col = divmod(last, tab.SHEET_COLUMNS)
    at = gr.SelectData(None, {"index": [col * (w + 4) + w // 2, row * (h + 4) + h - 2], "value": None})  # its word
    view, choice = tab.select_from_sheet(result, at)
    np.testing.assert_array_equal(view, tab.enlarged_view(result, last))
    assert choice["value"] == last
    gap = gr.SelectData(None, {"index": [w + 1, 5], "value": None})
    assert all(isinstance(v, type(gr.skip())) for v in tab.select_from_sheet(result, gap))


def test_clearing_the_image_clears_outputs():
    out = unpack(tab.caption_if_image(None, "soft", 3, True))
    assert out["caption"] == "" and out["png"] is None and out["gif"] is None and out["state"] is None


def test_model_errors_become_gr_errors(monkeypatch, tab_model):
    def boom(model, image, beam):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(tab, "_run_caption", boom)
    with pytest.raises(gr.Error, match="could not caption this image: the computation failed .*out of memory"):
        tab.caption(scene_png(), "soft", 3, True, device="cpu")


def test_missing_weights_is_a_clear_error(monkeypatch):
    def missing(name, **_kwargs):
        raise ValueError(f"no bundled weights for {name!r}")

    monkeypatch.setattr(common, "load", missing)
    with pytest.raises(gr.Error, match="Could not load the model sat-soft-fashion-scenes: no bundled weights"):
        tab.caption(scene_png(), "soft", 3, True, device="cpu")


def test_building_the_tab_loads_no_model(monkeypatch):
    def forbidden(name, **_kwargs):
        raise AssertionError("model loaded at build time")

    monkeypatch.setattr(common, "load", forbidden)
    with gr.Blocks() as app:
        tab.build("cpu")
    api = {d.api_name for d in app.fns.values() if d.api_name}
    assert "caption" in api


def test_cmyk_jpeg_bytes_through_the_handler(tab_model, tmp_path):
    buf = io.BytesIO()
    Image.new("CMYK", (50, 30), (0, 0, 0, 128)).save(buf, "JPEG")
    out = unpack(tab.caption(write(tmp_path, "c.jpg", buf.getvalue()), "soft", 3, True, device="cpu"))
    assert len(panels(out)) == len(out["raw"]["words"]) > 0


def test_empty_caption_is_shown_not_crashed(tab_model, monkeypatch):
    from attn_models.captioning.model import Caption

    empty = Caption([], np.zeros((0, 12, 12), np.float32), np.zeros(0, np.float32))
    monkeypatch.setattr(tab, "_run_caption", lambda model, image, beam: empty)
    out = unpack(tab.caption(scene_png(), "soft", 3, True, device="cpu"))
    assert "empty caption" in out["caption"] and out["png"] is None and out["raw"]["words"] == []
    assert tab.enlarged_view(out["state"], 0) is None


def test_big_photos_are_reduced_keeping_their_aspect(tmp_path):
    path = save(tmp_path, "big.png", Image.new("L", (5000, 3000), 128), compress_level=1)
    im = tab.read_image(path)
    assert im.mode == "RGB" and tab.WORK_SIZE <= max(im.size) < 2 * tab.WORK_SIZE
    assert abs(im.size[0] / im.size[1] - 5000 / 3000) < 0.01


def test_correctness_table_scores_attention_on_the_named_item(tab_model, monkeypatch):
    """A caption naming an item of an example scene, looking at that item for its colour word and at
    the opposite corner for its class word: high then low correctness, and the mean in the note."""
    from attn_models.captioning.model import Caption
    from attn_models.data.scenes import CANVAS, CLASS_WORDS

    meta = tab._example_meta()[0]
    item = meta["items"][0]
    y0, x0, y1, x1 = item["box"]
    cell = CANVAS // 12
    alphas = np.zeros((2, 12, 12), np.float32)
    alphas[0, ((y0 + y1) // 2) // cell, ((x0 + x1) // 2) // cell] = 1.0  # on the item
    alphas[1, 11 if y0 < CANVAS // 2 else 0, 11 if x0 < CANVAS // 2 else 0] = 1.0  # far from it
    words = [item["colour"], CLASS_WORDS[item["label"]]]
    monkeypatch.setattr(tab, "_run_caption", lambda model, image, beam: Caption(words, alphas, np.ones(2)))
    out = unpack(tab.caption(str(tab.EXAMPLES_DIR / meta["file"]), "soft", 3, True, device="cpu"))
    rows = out["table"]["value"]
    assert [r[1] for r in rows] == words and out["table"]["visible"] is True
    assert rows[0][2] > 0.5 > rows[0][3] and rows[1][2] < rows[1][3]
    assert f"{(rows[0][2] + rows[1][2]) / 2:.2f}" in out["note"]
