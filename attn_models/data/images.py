"""Pictures from outside (uploads, arrays) turned into what the Fashion-MNIST models take: light items on black,
at the model's size. Not part of any paper; shared by every model that accepts uploads of single items."""
from __future__ import annotations

import numpy as np
from PIL import Image


def to_fashion_mnist_style(image, shape: tuple[int, int, int] = (28, 28, 1)) -> tuple[np.ndarray, str]:
    """Any picture (PIL image or numpy array) -> (uint8 (H, W, C) of ``shape``, a note of what changed, "" if
    nothing did): how uploads become inputs of the Fashion-MNIST models (the Image Transformer's prefixes, the
    inductive-bias classifiers' items).

    - 16-bit grey (PIL "I;16*", or integer data above 255) is scaled by 1/257, keeping its brightness;
      float data in [0, 1] is scaled by 255; anything else is clipped to [0, 255].
    - Transparency is composited onto black, Fashion-MNIST's background.
    - An exact k-times nearest-neighbour enlargement of an H x W image (a picture saved from the demo) is
      undone losslessly; otherwise the image is resized with LANCZOS.
    - For grey models, a light-background picture (mean border > 127) is inverted: Fashion-MNIST items are
      light on black.
    Raises ValueError for None, an empty or non-image array, a side under 4 pixels, or an aspect ratio more
    than 4x further from square than the model's."""
    if image is None:
        raise ValueError("upload an image or pick a Fashion-MNIST test image first")
    if isinstance(image, Image.Image):
        arr = _pil_to_array(image)
    else:
        arr = np.asarray(image)
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
            raise ValueError(f"expected an image, got an array of {arr.dtype}")
    if arr.ndim not in (2, 3) or arr.size == 0 or (arr.ndim == 3 and arr.shape[-1] not in (1, 2, 3, 4)):
        raise ValueError(f"expected an image, got an array of shape {arr.shape}")
    h, w, c = shape
    ih, iw = arr.shape[:2]
    if min(ih, iw) < 4:
        raise ValueError(f"image is {iw}x{ih} pixels: too small to resize to {w}x{h}")
    if max(ih / iw, iw / ih) > 4 * max(h / w, w / h):
        raise ValueError(f"image is {iw}x{ih} pixels: too far from the model's {w}x{h} shape to resize")
    arr = _to_uint8(arr)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    pil = Image.fromarray(arr) if arr.ndim == 2 or arr.shape[-1] == 3 else _flatten_alpha(arr)
    pil = pil.convert("L" if c == 1 else "RGB")
    notes = []
    k = ih // h
    if k > 1 and (ih, iw) == (k * h, k * w):
        small = np.asarray(pil)[k // 2 :: k, k // 2 :: k]
        if (small.repeat(k, 0).repeat(k, 1) == np.asarray(pil)).all():
            # An exact nearest-neighbour enlargement (a picture saved from the demo): undo it losslessly.
            pil = Image.fromarray(small)
            notes.append(f"reduced {k}x (an enlarged {w}x{h} image)")
    if pil.size != (w, h):
        pil = pil.resize((w, h), Image.Resampling.LANCZOS)
        notes.append(f"resized from {iw}x{ih} to {w}x{h}")
    out = np.asarray(pil, dtype=np.uint8).reshape(h, w, c).copy()
    if c == 1:
        border = np.concatenate([out[0], out[-1], out[:, 0], out[:, -1]])
        if border.mean() > 127:  # Fashion-MNIST items are light on black: flip dark-on-light pictures
            out = 255 - out
            notes.append("inverted (light background) to match Fashion-MNIST")
    return out, "; ".join(notes)


def _pil_to_array(image: Image.Image) -> np.ndarray:
    """A PIL image -> an array ``to_fashion_mnist_style`` understands: (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA."""
    if image.mode.startswith("I;16"):  # 16-bit grey: keep the brightness, not the low byte
        return (np.asarray(image, dtype=np.float64) / 257).round().astype(np.uint8)
    if image.mode in ("I", "F", "L", "1"):  # I and F: clipped / scaled by _to_uint8 like arrays
        return np.asarray(image.convert("L") if image.mode == "1" else image)
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info:
        return np.asarray(image.convert("RGBA"))
    return np.asarray(image.convert("RGB"))


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    """Any numeric image array -> uint8 with the same shape (see ``to_fashion_mnist_style``)."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if np.issubdtype(arr.dtype, np.floating):
        arr = np.nan_to_num(arr.astype(np.float64), nan=0.0, posinf=255.0, neginf=0.0)
        if arr.min() >= 0 and arr.max() <= 1:  # a [0, 1] float image
            arr = arr * 255
        return np.clip(arr.round(), 0, 255).astype(np.uint8)
    if arr.max() > 255:  # integer data past 8 bits: taken as 16-bit
        return (np.clip(arr, 0, 65535) / 257).round().astype(np.uint8)
    return np.clip(arr, 0, 255).astype(np.uint8)


def _flatten_alpha(arr: np.ndarray) -> Image.Image:
    """uint8 (H, W, 2) grey+alpha or (H, W, 4) RGBA -> an RGB PIL image over black (transparent = background)."""
    rgba = Image.fromarray(arr[..., [0, 0, 0, 1]] if arr.shape[-1] == 2 else arr, "RGBA")
    return Image.alpha_composite(Image.new("RGBA", rgba.size, (0, 0, 0, 255)), rgba).convert("RGB")
