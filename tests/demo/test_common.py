"""The demo toolkit (demo/common.py): input checks that read the same in every tab, one way to get a model,
library errors as gr.Error, and output files that stay few and are removed at the end."""
from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from demo import captioning_tab, common, explorer_tab, image_transformer_tab, sagan_tab
from tests.demo.test_captioning_tab import tab_model  # noqa: F401  (fixture)
from tests.demo.test_image_transformer_tab import tiny_models  # noqa: F401  (fixture)

REPO = Path(__file__).resolve().parents[2]

# "<Field> must be <what>, got <value>." whichever tab says it.
MESSAGE = re.compile(r"^[A-Z][\w ()]* must be (a whole number (between -?\d+ and \d+|of at least \d+)"
                     r"|a number (between|above) \S+ and (at most )?\S+|one of .+), got .+\.$")


def error_of(call) -> str:
    with pytest.raises(gr.Error) as info:
        call()
    return info.value.message


# ---- input checks --------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [None, "three", 2.5, float("nan"), float("inf"), 0, 11, [3]])
def test_whole_refuses_anything_but_a_whole_number_in_range(value):
    message = error_of(lambda: common.whole("Beam size", value, 1, 10))
    assert message == f"Beam size must be a whole number between 1 and 10, got {value!r}."


def test_whole_accepts_what_sliders_and_the_api_send():
    assert common.whole("Seed", 3.0, 0, 9) == 3 and common.whole("Seed", "7", 0, 9) == 7
    assert common.whole("Row", 10**9, 0) == 10**9
    assert MESSAGE.match(error_of(lambda: common.whole("Row", -1, 0)))


def test_position_clamps_large_values_and_refuses_negative_ones():
    assert common.position("Row", 99, 12) == 11 and common.position("Row", 4, 12) == 4
    assert error_of(lambda: common.position("Row", -1, 12)) == "Row must be a whole number of at least 0, got -1."


@pytest.mark.parametrize("value", [0, -1, 10.5, "hot", None, float("nan")])
def test_number_refuses_out_of_range_values(value):
    message = error_of(lambda: common.number("Temperature", value, 0, 10, above_lo=True))
    assert message == f"Temperature must be a number above 0 and at most 10, got {value!r}."


def test_number_and_choice_accept_good_values():
    assert common.number("Temperature", "0.5", 0, 10, above_lo=True) == 0.5
    assert common.number("Speed", 1, 1, 60) == 1.0
    assert common.choice("Attention", "hard", {"soft": 1, "hard": 2}) == "hard"
    assert error_of(lambda: common.choice("Attention", "medium", {"soft": 1, "hard": 2})) == (
        "Attention must be one of soft, hard, got 'medium'.")


def test_every_tab_words_its_input_errors_the_same_way(tab_model, tiny_models):  # noqa: F811
    explorer = dict(h=12, w=10, c=1, kind="local2d", query_len=8, memory_len=8, block_h=3, block_w=4, flange_h=2,
                    flange_w=2, row=0, col=0, channel=0)
    imt = image_transformer_tab
    calls = {
        "captioning beam": lambda: captioning_tab.caption(captioning_tab.example_paths()[0], "soft", 0),
        "captioning kind": lambda: captioning_tab.caption(captioning_tab.example_paths()[0], "medium"),
        "sagan class": lambda: sagan_tab.generate("jacket", 0, 4, False),
        "sagan index": lambda: sagan_tab.attention("bag", 0, 4, False, 9, 0, 0),
        "sagan seed": lambda: sagan_tab.interpolate("bag", -1, 2, 4, False),
        "explorer size": lambda: explorer_tab.show_visibility(**{**explorer, "h": 0}),
        "explorer kind": lambda: explorer_tab.show_visibility(**{**explorer, "kind": "dilated"}),
        "imt temperature": lambda: next(imt.sample("local1d", 0, 0.0, 0, 1, progress=lambda *a, **k: None)),
        "imt rows": lambda: imt.complete("local1d", np.zeros((12, 12), np.uint8), -1, 1, 0, 1.0, 0),
        "imt model": lambda: imt.complete("local3d", None, 1, 1, 0, 1.0, 0),
    }
    for what, call in calls.items():
        message = error_of(call)
        assert MESSAGE.match(message), f"{what}: {message!r}"


def test_image_checks_missing_empty_and_absurd_pictures():
    assert error_of(lambda: common.image(None, "upload one")) == "No image given: upload one."
    assert error_of(lambda: common.image(np.zeros((0, 5, 3)), "upload one")) == "The image has no pixels (5×0)."
    for bad in (np.zeros((4, 4, 4, 4)), np.zeros((4, 4, 7)), np.array("a picture"), np.array([["a", "b"]])):
        assert error_of(lambda bad=bad: common.image(bad, "upload one")).startswith("Image must be an array")
    huge = Image.new("1", (10_000, 5_000))  # 50 megapixels: refused before it is turned into an array
    assert "over the 40 megapixel limit" in error_of(lambda: common.image(huge, "upload one"))
    picture = common.image(Image.new("RGB", (6, 4)), "upload one")
    assert picture.shape == (4, 6, 3)


# ---- errors ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("raised, message", [
    (ValueError("temperature must be > 0"), "Sampling: temperature must be > 0"),
    (FileNotFoundError("no Fashion-MNIST here"), "Sampling: no Fashion-MNIST here"),
    (RuntimeError("CUDA out of memory"), "Sampling: the computation failed (RuntimeError: CUDA out of memory)."),
    (gr.Error("Seed must be ..."), "Seed must be ..."),  # passes through untouched
])
def test_user_errors_turns_library_errors_into_messages(raised, message):
    def fail():
        with common.user_errors("Sampling"):
            raise raised

    assert error_of(fail) == message


def test_handler_keeps_what_gradio_reads_from_the_function():
    def stream(kind, count, progress=gr.Progress()):  # noqa: B008
        """Streams."""
        yield from range(int(count))
        raise ValueError("count must be small")

    wrapped = common.handler(stream)
    assert inspect.isgeneratorfunction(wrapped) and wrapped.__doc__ == "Streams."
    assert inspect.signature(wrapped) == inspect.signature(stream)
    steps = wrapped("local1d", 2)
    assert [next(steps), next(steps)] == [0, 1]
    assert error_of(lambda: next(steps)) == "Count must be small"
    assert not inspect.isgeneratorfunction(common.handler(lambda: 1)) and common.handler(lambda: 1)() == 1


# ---- models ---------------------------------------------------------------------------------------

def test_get_model_loads_through_the_registry_on_the_apps_device(monkeypatch):
    calls = []
    monkeypatch.setattr(common, "load", lambda name, **kwargs: calls.append((name, kwargs)) or "model")
    monkeypatch.setattr(common, "_default_device", "cpu")
    common.set_device("cuda:1")
    assert common.get_model("sagan-fashion-mnist") == "model"
    assert common.get_model("sagan-fashion-mnist", "cpu", source="hub", repo_id="me/it") == "model"
    assert calls == [("sagan-fashion-mnist", {"device": "cuda:1"}),
                     ("sagan-fashion-mnist", {"device": "cpu", "source": "hub", "repo_id": "me/it"})]


def test_get_model_says_which_model_could_not_be_loaded(monkeypatch):
    def missing(name, **_kwargs):
        raise ValueError(f"no bundled weights for {name!r}")

    monkeypatch.setattr(common, "load", missing)
    assert error_of(lambda: common.get_model("sagan-fashion-mnist")) == (
        "Could not load the model sagan-fashion-mnist: no bundled weights for 'sagan-fashion-mnist'")


def test_overrides_nest_and_restore(monkeypatch):
    monkeypatch.setattr(common, "load", lambda name, **_kwargs: "registry")
    with common.override_model("m", "outer"):
        with common.override_model("m", "inner"):
            assert common.get_model("m") == "inner"
        assert common.get_model("m") == "outer"
        with common.override_model("m", None):
            assert common.get_model("m") == "registry"
        assert common.get_model("m") == "outer"
    assert common.get_model("m") == "registry"


# ---- output files ---------------------------------------------------------------------------------

def files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


@pytest.fixture
def temp_folder(tmp_path, monkeypatch):
    """The system temp folder, redirected to an empty folder of this test; the toolkit starts afresh in it."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    common.remove_outputs()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    yield folder
    common.remove_outputs()


def write_every_kind_of_output_file(target) -> Iterator[str]:
    """One call of every handler that writes a file (random scene, caption animation, SAGAN sweep and
    interpolation, Image Transformer generation order), yielding each path as soon as it is returned."""
    yield (scene := captioning_tab.new_random_scene())
    yield captioning_tab.caption(scene, "soft", 1, True)[7]  # its animation (the GIF download)
    yield sagan_tab.sweep("coat", 1, 2, False, 1, 10)
    yield sagan_tab.interpolate("bag", 1, 2, 3, False)
    yield from image_transformer_tab.animate(target)  # GIF and MP4


def test_output_files_stay_few_and_go_at_cleanup(temp_folder, monkeypatch, fashion_mnist, tab_model,  # noqa: F811
                                                 tiny_models):  # noqa: F811
    monkeypatch.setattr(common, "KEEP_OUTPUT_FILES", 4)
    monkeypatch.setattr(common, "MIN_OUTPUT_AGE_S", 0)  # every file is old enough to go
    image = tiny_models["local2d"].sample(1, labels=[1], seed=0)[0]
    target = {"kind": "local2d", "image": image, "label": 1}
    counts = []
    for _ in range(4):
        for path in write_every_kind_of_output_file(target):
            assert Path(path).is_file() and Path(path).stat().st_size > 0  # still there for Gradio to copy
        counts.append(len(files_under(temp_folder)))
    assert counts == [4, 4, 4, 4], f"files left after each round of 5 output files: {counts}"
    common.remove_outputs()
    assert list(temp_folder.iterdir()) == []


def test_young_output_files_are_never_deleted(temp_folder, monkeypatch):
    """Under load, many files are written between a handler returning its file and Gradio copying it: a file
    younger than MIN_OUTPUT_AGE_S stays whatever the count, and older ones go, the oldest first."""
    monkeypatch.setattr(common, "KEEP_OUTPUT_FILES", 2)
    young = [common.output_path(".png") for _ in range(6)]
    assert all(Path(p).is_file() for p in young)
    monkeypatch.setattr(common, "MIN_OUTPUT_AGE_S", 0)
    newest = common.output_path(".png")
    left = sorted(str(p) for p in files_under(temp_folder))
    assert left == sorted([young[-1], newest])


def test_outputs_are_removed_when_the_process_exits(tmp_path):
    script = "from demo import common, render; import numpy as np; print(render.save_image(np.zeros((4, 4, 3))))"
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", script], env=env, cwd=REPO, capture_output=True, text=True,
                         timeout=300, check=True)
    written = Path(out.stdout.strip().splitlines()[-1])
    assert written.parent.parent == tmp_path  # it was written in a folder of the temp folder ...
    assert list(tmp_path.iterdir()) == []  # ... which the exit removed


@pytest.mark.e2e
def test_served_files_outlive_their_removal(client, monkeypatch):
    """Gradio copies a returned file into its cache as the handler returns, so the toolkit may delete the
    original as soon as the next file is written: every GIF still downloads whole."""
    monkeypatch.setattr(common, "KEEP_OUTPUT_FILES", 1)
    monkeypatch.setattr(common, "MIN_OUTPUT_AGE_S", 0)
    gifs = [client.predict("bag", seed, 2, False, 0, 20, api_name="/sagan_sweep") for seed in range(3)]
    for gif in gifs:
        with Image.open(gif) as im:
            assert im.n_frames == (16 // sagan_tab.SWEEP_STRIDE) ** 2
    assert len(os.listdir(common.output_folder())) <= 1


@pytest.mark.parametrize("fmt", ["webp", "png", "gif"])
def test_pictures_go_into_gradios_cache_whole_and_quickly_encoded(tmp_path, fmt):
    """Pictures handlers return are encoded by the toolkit's cache writer (Gradio's formats and metadata, the
    encoders' fastest settings) and renamed into place: the file there is complete, named by its content."""
    rng = np.random.default_rng(0)
    picture = Image.fromarray(np.repeat(rng.integers(0, 255, (24, 40, 1), dtype=np.uint8), 3, -1))
    path = gr.processing_utils.save_pil_to_cache(picture, str(tmp_path), format=fmt)
    assert path.endswith(f"image.{fmt}") and Path(path).parent.parent == tmp_path
    with Image.open(path) as im:
        assert im.format == fmt.upper() and im.size == (40, 24)
        back = np.asarray(im.convert("RGB")).astype(int)
    if fmt != "webp":  # PNG and GIF are lossless for these 256 greys
        np.testing.assert_array_equal(back, np.asarray(picture))
    else:
        assert np.abs(back - np.asarray(picture)).mean() < 40
    assert gr.processing_utils.save_pil_to_cache(picture, str(tmp_path), format=fmt) == path  # same content
    assert [p.name for p in Path(path).parent.iterdir()] == [f"image.{fmt}"]  # no staging file left
