"""Rendering shared by the tabs: attention overlays, markers, enlargements and animations."""
from __future__ import annotations

import functools
import tempfile
from collections.abc import Sequence

import imageio.v3 as iio
import numpy as np
from matplotlib import colormaps
from PIL import Image, ImageDraw, ImageFont


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


def upsample_map(attn: np.ndarray, height: int, width: int, smooth: bool = True) -> np.ndarray:
    """Resize an attention map (gh, gw) to (height, width); bilinear when ``smooth``, else blocky."""
    attn = np.asarray(attn, dtype=np.float32)
    resample = Image.BILINEAR if smooth else Image.NEAREST
    return np.asarray(Image.fromarray(attn, mode="F").resize((width, height), resample), dtype=np.float32)


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
    heat = colorize(upsample_map(attn, h, w, smooth))
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


def save_animation(frames: Sequence[np.ndarray], fps: float = 2.0, suffix: str = ".gif") -> str:
    """Write frames (same-size uint8 RGB) to a temporary GIF (or MP4 if suffix='.mp4'); return its path."""
    if not frames:
        raise ValueError("no frames to animate")
    path = tempfile.NamedTemporaryFile(suffix=suffix, delete=False).name
    stack = np.stack([to_rgb(f) for f in frames])
    if suffix == ".gif":
        iio.imwrite(path, stack, duration=1000.0 / fps, loop=0)
    else:
        iio.imwrite(path, stack, fps=fps)
    return path
