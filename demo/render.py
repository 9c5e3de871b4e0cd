"""Rendering shared by the tabs: attention heat maps and overlays, the Fig. 3 picture of what a query may
attend, markers, text, enlargements, and the image and animation files handlers return."""
from __future__ import annotations

import contextlib
import functools
import json
import subprocess
import tempfile
import threading
from collections.abc import Callable, Sequence
from fractions import Fraction

import numpy as np
from matplotlib import colormaps
from PIL import Image, ImageDraw, ImageFont

from attn_models.layers.local_attention import VIS_BLOCK, VIS_MASKED, VIS_MEMORY, VIS_OUTSIDE, VIS_QUERY
from attn_models.layers.maps import resize_map
from demo.common import output_path


def to_rgb(image: np.ndarray) -> np.ndarray:
    """(H, W), (H, W, 1) or (H, W, 3) uint8 -> (H, W, 3) uint8."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    return image.astype(np.uint8)


def enlarge(image: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour upscale so small images (28x28) stay crisp; the longer side becomes ``size``."""
    image = to_rgb(image)
    h, w = image.shape[:2]
    scale = size / max(h, w)
    return np.asarray(Image.fromarray(image).resize((max(1, round(w * scale)), max(1, round(h * scale))),
                                                     Image.NEAREST))


def repeat_pixels(image: np.ndarray, factor: int) -> np.ndarray:
    """Each pixel (or grid cell) becomes a ``factor`` x ``factor`` block: exact positions stay readable."""
    return np.asarray(image).repeat(factor, 0).repeat(factor, 1)


def upsample_attention(attn: np.ndarray, height: int, width: int, smooth: bool = True) -> np.ndarray:
    """Resize an attention map (gh, gw) to (height, width); bilinear when ``smooth``, else blocky."""
    return resize_map(attn, height, width, smooth).astype(np.float32)


def colorize(values: np.ndarray, cmap: str = "inferno", vmax: float | None = None) -> np.ndarray:
    """(H, W) float -> (H, W, 3) uint8 through a matplotlib colormap, scaled to [0, vmax or max]."""
    values = np.asarray(values, dtype=np.float32)
    top = float(vmax if vmax is not None else values.max())
    normed = values / top if top > 0 else np.zeros_like(values)
    return (colormaps[cmap](np.clip(normed, 0, 1))[..., :3] * 255).astype(np.uint8)


def overlay(image: np.ndarray, attn: np.ndarray, alpha: float = 0.6, cmap: str = "inferno",
            smooth: bool = True, size: int | None = None) -> np.ndarray:
    """Blend an attention map over ``image`` (optionally enlarged to ``size`` first). Returns uint8 RGB."""
    base = enlarge(image, size) if size else to_rgb(image)
    h, w = base.shape[:2]
    heat = colorize(upsample_attention(attn, h, w, smooth))
    return (base.astype(np.float32) * (1 - alpha) + heat.astype(np.float32) * alpha).round().astype(np.uint8)


def mark_point(image: np.ndarray, y: float, x: float, radius: int = 4, color=(0, 255, 255)) -> np.ndarray:
    """Draw a ring at (y, x) pixel coordinates of ``image``."""
    pil = Image.fromarray(to_rgb(image))
    draw = ImageDraw.Draw(pil)
    draw.ellipse([x - radius, y - radius, x + radius, y + radius], outline=tuple(color), width=2)
    return np.asarray(pil)


@functools.lru_cache(maxsize=8)
def text_font(size: int) -> ImageFont.FreeTypeFont:
    # DejaVu Sans ships with matplotlib, so it is always there, and unlike Pillow's default font it has
    # Greek letters (the captioning tab writes β on its maps).
    from matplotlib import font_manager

    return ImageFont.truetype(font_manager.findfont("DejaVu Sans"), size)


def caption_text(image: np.ndarray, text: str, color=(255, 255, 255), font_size: int | None = None) -> np.ndarray:
    """Write ``text`` in a dark strip along the top of ``image``; ``font_size`` (pixels) scales the
    text for large images (default: Pillow's small bitmap font)."""
    pil = Image.fromarray(to_rgb(image))
    draw = ImageDraw.Draw(pil)
    font = text_font(font_size) if font_size else None
    strip = 14 if font_size is None else font_size + 6
    draw.rectangle([0, 0, pil.width, strip], fill=(0, 0, 0))
    draw.text((3, 1) if font_size is None else (4, 2), text, fill=tuple(color), font=font)
    return np.asarray(pil)


# Writing the files a handler returns is on every request's path (an export writes five), so each is made cheaply:
# PNGs with zlib's fastest level (these pictures are small; level 1 writes them ~3x faster for ~30% more bytes), GIFs
# with one palette for all frames (exact when the frames hold at most 256 colours, else one fast-octree palette; Pillow
# would otherwise run a median cut per frame, most of an export's time), MP4s by an ffmpeg process of their own
# started without forking the app (subprocess uses vfork unless a preexec_fn is given, as imageio's writer does) and
# left to encode while the other files are written.
PNG_COMPRESS_LEVEL = 1
MP4_PRESET = "veryfast"  # x264: about half medium's CPU time, files of the same size at these picture sizes


def _write_png(path: str, image: np.ndarray) -> None:
    Image.fromarray(to_rgb(image)).save(path, format="PNG", compress_level=PNG_COMPRESS_LEVEL)


def save_image(image: np.ndarray) -> str:
    """Write ``image`` to a new PNG among the demo's managed output files; return its path."""
    path = output_path(".png")
    _write_png(path, image)
    return path


def _stack(frames: Sequence[np.ndarray]) -> np.ndarray:
    if not len(frames):
        raise ValueError("no frames to animate")
    return np.stack([to_rgb(f) for f in frames])


def _rgb_codes(rgb: np.ndarray) -> np.ndarray:
    """uint8 (..., 3) -> uint32 (...): one number per colour (the three bytes and a zero read as one word)."""
    padded = np.zeros(rgb.shape[:-1] + (4,), np.uint8)
    padded[..., :3] = rgb
    return padded.view(np.uint32)[..., 0]


def paletted_frames(stack: np.ndarray) -> list[Image.Image]:
    """Frames (T, H, W, 3) uint8 -> T "P" images sharing one palette: every colour exact when all the frames hold at
    most 256 colours together, else a palette of 256 found by Pillow's fast octree over all the frames at once."""
    t, h, w, _ = stack.shape
    stack = np.ascontiguousarray(stack).reshape(t * h, w, 3)
    mosaic = Image.fromarray(stack)
    colors = mosaic.getcolors(256)
    if colors is None:
        quantized = mosaic.quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    else:
        table = np.array([rgb for _, rgb in colors], np.uint8).reshape(-1, 3)
        codes = _rgb_codes(table)
        # colour code -> palette index through a table over every code (untouched pages of it cost nothing)
        lookup = np.zeros(int(codes.max()) + 1, np.uint8)
        lookup[codes] = np.arange(len(codes))
        quantized = Image.fromarray(np.take(lookup, _rgb_codes(stack)), "P")
        quantized.putpalette(table.tobytes())
    return [quantized.crop((0, k * h, w, (k + 1) * h)) for k in range(t)]


def _write_gif(path: str, stack: np.ndarray, fps: float) -> None:
    first, *rest = paletted_frames(stack)
    # optimize=False: Pillow's optimize gives each frame a palette of its own colours, so every frame would be
    # compared to the previous one in RGBA; with the shared palette frames are compared as they are.
    first.save(path, format="GIF", save_all=True, append_images=rest, duration=1000.0 / fps, loop=0, optimize=False)


def _start_mp4(path: str, stack: np.ndarray, fps: float) -> Callable[[], None]:
    """Start encoding ``stack`` to an H.264 MP4 at ``path`` in an ffmpeg process; returns the function that waits for
    it to finish (and raises OSError if it failed)."""
    from imageio_ffmpeg import get_ffmpeg_exe

    # H.264 in yuv420p (what every player plays) needs even sides: pad with black rather than let the encoder
    # rescale (blurring the maps' cells). Players show nothing of a one-frame video, so hold it.
    h, w = stack.shape[1:3]
    stack = np.pad(stack, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)))
    if len(stack) == 1:
        stack = np.repeat(stack, 2, axis=0)
    cmd = [get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
           "-s", f"{stack.shape[2]}x{stack.shape[1]}", "-r", str(Fraction(fps).limit_denominator()), "-i", "pipe:0",
           "-an", "-c:v", "libx264", "-preset", MP4_PRESET, "-pix_fmt", "yuv420p", "-y", path]
    # ffmpeg's messages go to a file: a pipe nobody reads while the frames are written could fill and stall it.
    log = tempfile.TemporaryFile()
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log)
    except BaseException:
        log.close()
        raise

    messages: list[str] = []

    def feed() -> None:
        # One write of all the frames (Popen.communicate would hand them over 4 KiB at a time), then EOF.
        with log:
            try:
                proc.stdin.write(memoryview(np.ascontiguousarray(stack)).cast("B"))
            except BrokenPipeError:  # ffmpeg stopped reading: its exit status and messages say why
                pass
            finally:
                with contextlib.suppress(BrokenPipeError):
                    proc.stdin.close()
                proc.wait()
            log.seek(0)
            messages.append(log.read().decode(errors="replace").strip()[-500:])

    feeder = threading.Thread(target=feed, daemon=True, name="mp4-writer")
    feeder.start()

    def wait() -> None:
        feeder.join()
        if proc.returncode != 0:
            text = messages[0] if messages else ""
            raise OSError(f"ffmpeg could not write the MP4 animation (exit status {proc.returncode}): {text}")

    return wait


def save_animation(frames: Sequence[np.ndarray], fps: float = 2.0, suffix: str = ".gif") -> str:
    """Write frames (same-size uint8 RGB) to a new GIF (or MP4 if suffix='.mp4') among the demo's managed
    output files; return its path."""
    stack = _stack(frames)
    path = output_path(suffix)
    if suffix == ".gif":
        _write_gif(path, stack, fps)
    else:
        _start_mp4(path, stack, fps)()
    return path


def sheet(images: Sequence[np.ndarray], columns: int = 8, gap: int = 4) -> np.ndarray:
    """Images (any sizes) tiled in rows of ``columns`` on white, each cell as large as the largest image."""
    images = [to_rgb(im) for im in images]
    cell_h, cell_w = max(im.shape[0] for im in images), max(im.shape[1] for im in images)
    cols = min(columns, len(images))
    rows = -(-len(images) // cols)
    out = np.full((rows * cell_h + (rows - 1) * gap, cols * cell_w + (cols - 1) * gap, 3), 255, np.uint8)
    for k, im in enumerate(images):
        y, x = (k // cols) * (cell_h + gap), (k % cols) * (cell_w + gap)
        out[y : y + im.shape[0], x : x + im.shape[1]] = im
    return out


def sheet_cell(y: int, x: int, cell_hw: tuple[int, int], count: int, columns: int = 8,
               gap: int = 4) -> tuple[int, int, int] | None:
    """Where pixel (y, x) of a ``sheet`` of ``count`` images of size ``cell_hw`` falls: (the image's index, y and x
    within it), or None on a gap or past the last image."""
    cell_h, cell_w = cell_hw
    row, dy = divmod(int(y), cell_h + gap)
    col, dx = divmod(int(x), cell_w + gap)
    k = row * min(columns, count) + col
    if min(y, x) < 0 or col >= min(columns, count) or dy >= cell_h or dx >= cell_w or k >= count:
        return None
    return k, dy, dx


def text_cell(text: str, height: int, width: int, font_size: int = 14) -> np.ndarray:
    """``text`` (lines split on newlines) in dark grey on white, centred in a height x width cell."""
    pil = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(pil)
    font = text_font(font_size)
    box = draw.multiline_textbbox((0, 0), text, font=font, align="center")
    x, y = (width - (box[2] - box[0])) / 2 - box[0], (height - (box[3] - box[1])) / 2 - box[1]
    draw.multiline_text((x, y), text, fill=(40, 40, 40), font=font, align="center")
    return np.asarray(pil)


def labelled_sheet(cells: Sequence[Sequence[np.ndarray]], row_labels: Sequence[str], col_labels: Sequence[str],
                   label_width: int = 150, header: int = 40, gap: int = 4) -> np.ndarray:
    """A table of same-size pictures with a title over each column and a label left of each row (on white)."""
    cell_h, cell_w = to_rgb(cells[0][0]).shape[:2]
    rows = [[text_cell("", header, label_width), *(text_cell(t, header, cell_w) for t in col_labels)]]
    rows += [[text_cell(label, cell_h, label_width), *row] for label, row in zip(row_labels, cells, strict=True)]
    lines = [np.concatenate(sum(([to_rgb(c), np.full((c.shape[0], gap, 3), 255, np.uint8)] for c in row), [])[:-1],
                            axis=1) for row in rows]
    width = lines[0].shape[1]
    return np.concatenate(sum(([ln, np.full((gap, width, 3), 255, np.uint8)] for ln in lines), [])[:-1], axis=0)


def _plain(value):
    """numpy values -> JSON's lists and numbers; NaN and infinities (a rank correlation of a constant map) -> null,
    since strict JSON has no such numbers."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "fc" and not np.isfinite(value).all():
            return _plain(value.tolist())
        return value.tolist()
    if isinstance(value, np.generic):
        return _plain(value.item())
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def save_numbers(data: dict) -> tuple[str, str]:
    """``data`` (names -> arrays, lists, numbers, strings) as a new .npz and a new .json; return both paths.

    The .npz holds only plain dtypes, so ``np.load(path, allow_pickle=False)`` reads it: entries that are None
    are left out, strings become unicode arrays, and a dict becomes one entry per key (``gammas/32``)."""
    arrays = {}
    for name, value in data.items():
        items = value.items() if isinstance(value, dict) else [(None, value)]
        for key, v in items:
            if v is None:
                continue
            array = np.asarray(v)
            if array.dtype == object:
                raise ValueError(f"{name} has no plain array form")
            arrays[name if key is None else f"{name}/{key}"] = array
    npz, js = output_path(".npz"), output_path(".json")
    np.savez_compressed(npz, **arrays)
    # dumps, not dump: only the one-shot encoder is json's C encoder (dump writes through the pure-Python one).
    text = json.dumps(_plain(data), allow_nan=False)
    with open(js, "w") as f:
        f.write(text)
    return npz, js


EXPORT_KINDS = ("png", "gif", "mp4", "npz", "json")


def save_exports(picture: np.ndarray, frames: Sequence[np.ndarray], fps: float, data: dict) -> list[str]:
    """What a tab offers for download: the picture (PNG), the animation (GIF and MP4) and the numbers (NPZ and
    JSON), as paths in EXPORT_KINDS order. ffmpeg encodes the MP4 while the other four are written."""
    stack = _stack(frames)
    png, gif, mp4 = (output_path(suffix) for suffix in (".png", ".gif", ".mp4"))  # in age order, as returned
    mp4_done = _start_mp4(mp4, stack, fps)
    try:
        _write_png(png, picture)
        _write_gif(gif, stack, fps)
        numbers = save_numbers(data)
    except BaseException:
        with contextlib.suppress(OSError):  # the error that stopped us is the one to report
            mp4_done()
        raise
    mp4_done()
    return [png, gif, mp4, *numbers]


# ---------------------------------------------------------------------------------------------
# Fig. 3 of Parmar et al. (2018): which positions one query may attend under local attention, drawn from
# the VIS_* codes of attn_models.layers.local_attention.visibility. The explorer paints it on an abstract
# grid, the Image Transformer tab over a real image; both use this palette, hatching and legend.

FIG3_COLORS = {
    VIS_OUTSIDE: (236, 236, 236),
    VIS_MEMORY: (158, 202, 225),
    VIS_BLOCK: (49, 130, 189),
    VIS_QUERY: (222, 45, 38),
    VIS_MASKED: (255, 255, 255),
}
HATCH = (190, 190, 190)
FIG3_LABELS = {
    VIS_QUERY: "query",
    VIS_BLOCK: "query block (generated so far)",
    VIS_MEMORY: "memory (may attend)",
    VIS_MASKED: "masked: in the window but generated later",
    VIS_OUTSIDE: "outside the window",
}
# How much of the image shows through each tint: the block less than the memory, so the two stand apart.
_IMAGE_SHARE = {VIS_MEMORY: 0.45, VIS_BLOCK: 0.25, VIS_QUERY: 0.0}


def _tinted(picture: np.ndarray, codes: np.ndarray) -> np.ndarray:
    pic = to_rgb(picture).astype(np.float32)
    out = pic * 0.3  # outside the window: dimmed
    for code, share in _IMAGE_SHARE.items():
        sel = codes == code
        out[sel] = pic[sel] * share + np.array(FIG3_COLORS[code], np.float32) * (1 - share)
    masked = codes == VIS_MASKED
    out[masked] = pic[masked] * 0.5 + 60  # lighter, so the hatching reads as "in the window"
    return out.round().clip(0, 255).astype(np.uint8)


def paint_visibility(codes: np.ndarray, scale: int, picture: np.ndarray | None = None) -> np.ndarray:
    """VIS_* codes (rows, cols) -> RGB (rows*scale, cols*scale, 3) with masked cells hatched. Without
    ``picture``: the flat palette; with one (RGB on the same grid): its pixels tinted by the palette."""
    codes = np.asarray(codes).astype(np.int64)
    if picture is None:
        lut = np.array([FIG3_COLORS[k] for k in sorted(FIG3_COLORS)], dtype=np.uint8)
        cells = lut[codes]
    else:
        cells = _tinted(picture, codes)
    big = repeat_pixels(cells, scale)
    yy, xx = np.mgrid[0 : big.shape[0], 0 : big.shape[1]]
    stripes = ((xx + yy) // max(2, scale // 3)) % 2 == 0
    big[repeat_pixels(codes == VIS_MASKED, scale) & stripes] = HATCH
    return big


def fig3_legend_html(elem_id: str) -> str:
    """The palette as an HTML legend (in the order a reader looks for the colours)."""
    def swatch(code: int) -> str:
        r, g, b = FIG3_COLORS[code]
        style = f"background:rgb({r},{g},{b});"
        if code == VIS_MASKED:
            stripe = "#{:02x}{:02x}{:02x}".format(*HATCH)
            style = f"background:repeating-linear-gradient(45deg,{stripe} 0 3px,#fff 3px 6px);"
        return (f'<span class="fig3-legend-item" style="display:inline-flex;align-items:center;'
                f'margin-right:14px"><span style="{style}display:inline-block;width:16px;height:16px;'
                f'border:1px solid #888;margin-right:5px"></span>{FIG3_LABELS[code]}</span>')

    items = "".join(swatch(k) for k in (VIS_QUERY, VIS_BLOCK, VIS_MEMORY, VIS_MASKED, VIS_OUTSIDE))
    return f'<div id="{elem_id}" style="font-size:0.9em;line-height:2">{items}</div>'
