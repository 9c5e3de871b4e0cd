"""The files handlers return (demo/render.py): every export opens as what it claims and holds what it was given,
written cheaply (one GIF palette for all frames, PNG at zlib level 1, the MP4 by an ffmpeg process encoding while
the other files are written) into the per-process output folder."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

from demo import common, render


@pytest.fixture
def outputs(tmp_path, monkeypatch):
    """The system temp folder redirected to an empty folder of this test: a fresh per-process output folder."""
    common.remove_outputs()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    yield tmp_path
    common.remove_outputs()


def gif_frames(path) -> list[np.ndarray]:
    with Image.open(path) as im:
        assert im.format == "GIF"
        out = []
        for k in range(im.n_frames):
            im.seek(k)
            out.append(np.asarray(im.convert("RGB")))
    return out


def few_colours(count: int = 5, size=(21, 34)) -> list[np.ndarray]:
    """Frames holding a handful of colours (like the Image Transformer's generation order): odd sides on purpose."""
    rng = np.random.default_rng(0)
    palette = rng.integers(0, 256, (12, 3), dtype=np.uint8)
    return [palette[rng.integers(0, len(palette), size)] for _ in range(count)]


def many_colours(count: int = 4, size=(40, 48)) -> list[np.ndarray]:
    """Heat maps over a picture, with thousands of colours (like the attention overlays)."""
    yy, xx = np.mgrid[0 : size[0], 0 : size[1]]
    picture = np.stack([xx * 5, yy * 6, (xx + yy) * 2], -1).astype(np.uint8)
    return [render.overlay(picture, np.exp(-((yy - 5 * k - 10) ** 2 + (xx - 8 * k - 10) ** 2) / 90.0), alpha=0.5)
            for k in range(count)]


def test_gif_frames_share_one_palette_and_keep_few_colours_exactly():
    frames = few_colours()
    images = render.paletted_frames(np.stack(frames))
    assert len(images) == len(frames) and all(im.mode == "P" for im in images)
    assert len({bytes(im.getpalette()) for im in images}) == 1  # one palette: frames compare without RGBA
    for im, frame in zip(images, frames, strict=True):
        np.testing.assert_array_equal(np.asarray(im.convert("RGB")), frame)


def test_gif_of_many_colours_stays_close(outputs):
    frames = many_colours()
    assert Image.fromarray(np.concatenate(frames)).getcolors(256) is None  # more than a palette holds
    path = render.save_animation(frames, fps=4, suffix=".gif")
    back = gif_frames(path)
    assert len(back) == len(frames)
    for got, frame in zip(back, frames, strict=True):
        diff = np.abs(got.astype(int) - frame.astype(int))
        assert diff.mean() < 6 and diff.max() < 48  # a 256-colour palette for thousands of colours


def test_gif_keeps_frame_timing_loop_and_merges_repeated_frames(outputs):
    frames = few_colours(3)
    path = render.save_animation([*frames, frames[-1], frames[-1]], fps=5, suffix=".gif")
    with Image.open(path) as im:
        assert im.n_frames == 3 and im.info["loop"] == 0
        durations = []
        for k in range(im.n_frames):
            im.seek(k)
            durations.append(im.info["duration"])
    assert durations == [200, 200, 600]  # the repeats held on the last frame
    np.testing.assert_array_equal(gif_frames(path)[-1], frames[-1])


def test_mp4_pads_odd_sides_and_holds_a_single_frame(outputs):
    frames = many_colours(4, (21, 34))
    video = iio.imread(render.save_animation(frames, fps=3, suffix=".mp4"), index=None)
    assert video.shape == (4, 22, 34, 3)  # a row of black below: H.264 in yuv420p needs even sides
    assert np.abs(video[:, :21].astype(int) - np.stack(frames).astype(int)).mean() < 12  # lossy, yet these frames
    one = iio.imread(render.save_animation(frames[:1], fps=3, suffix=".mp4"), index=None)
    assert len(one) == 2  # players show nothing of a one-frame video


def test_mp4_failure_is_an_os_error(outputs, monkeypatch):
    import imageio_ffmpeg

    monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", lambda: "false")  # exits 1 at once
    with pytest.raises(OSError, match="MP4"):
        render.save_animation(few_colours(2), fps=2, suffix=".mp4")
    with pytest.raises(OSError, match="MP4"):
        render.save_exports(few_colours(1)[0], few_colours(2), 2, {"x": 1})


def test_no_frames_is_refused(outputs):
    with pytest.raises(ValueError, match="no frames"):
        render.save_animation([], suffix=".gif")
    with pytest.raises(ValueError, match="no frames"):
        render.save_exports(np.zeros((4, 4, 3), np.uint8), [], 2, {})


def test_exports_hold_what_they_were_given(outputs):
    picture = many_colours(1, (30, 50))[0]
    frames = few_colours(6)
    data = {"name": "x", "weights": np.array([[0.25, np.nan], [np.inf, 1.0]], np.float32),
            "ints": np.arange(3), "nested": {"a": [1.5, 2.5]}, "nothing": None}
    paths = render.save_exports(picture, frames, 6, data)
    assert [Path(p).suffix for p in paths] == [f".{kind}" for kind in render.EXPORT_KINDS]
    folder = Path(common.output_folder())
    assert all(Path(p).parent == folder and Path(p).stat().st_size > 0 for p in paths)  # the managed folder
    png, gif, mp4, npz, js = paths
    with Image.open(png) as im:
        assert im.format == "PNG"
        np.testing.assert_array_equal(np.asarray(im), picture)  # lossless
    back = gif_frames(gif)
    assert len(back) == len(frames)
    for got, frame in zip(back, frames, strict=True):
        np.testing.assert_array_equal(got, frame)
    assert len(iio.imread(mp4, index=None)) == len(frames)
    with np.load(npz, allow_pickle=False) as f:
        assert str(f["name"]) == "x" and f["ints"].tolist() == [0, 1, 2] and f["nested/a"].tolist() == [1.5, 2.5]
        np.testing.assert_array_equal(f["weights"], data["weights"])
        assert "nothing" not in f.files
    text = Path(js).read_text()
    assert json.loads(text) == {"name": "x", "weights": [[0.25, None], [None, 1.0]], "ints": [0, 1, 2],
                                "nested": {"a": [1.5, 2.5]}, "nothing": None}
    assert text == json.dumps(json.loads(text))  # strict JSON, compact as before


def test_plain_numbers_match_the_arrays():
    values = np.random.default_rng(1).random((7, 9)).astype(np.float32)
    assert render._plain(values) == values.tolist()  # every float as Python reads it back from float32
    assert render._plain(np.array([1.0, np.nan, -np.inf])) == [1.0, None, None]
    assert render._plain({"k": (np.float64("nan"), np.int64(3))}) == {"k": [None, 3]}


def test_a_failing_export_reports_its_own_error_and_leaves_no_ffmpeg_running(outputs, monkeypatch):
    started = []
    start = render._start_mp4

    def recorded(*args):
        wait = start(*args)
        started.append(wait)
        return wait

    monkeypatch.setattr(render, "_start_mp4", recorded)
    with pytest.raises(ValueError, match="no plain array form"):
        render.save_exports(few_colours(1)[0], few_colours(2), 2, {"bad": np.array([object()])})
    assert len(started) == 1
    started[0]()  # already finished: waiting again returns at once, without error
