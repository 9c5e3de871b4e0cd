"""What every tab needs besides drawing: checking inputs, getting a model, turning the library's errors into
messages, and output files that do not pile up in the temp folder.

Every message about an input reads "<Field> must be <what it must be>, got <what came>." whichever tab
raises it, so the API and the UI speak one language.
"""
from __future__ import annotations

import atexit
import functools
import inspect
import math
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import gradio as gr
import numpy as np
from PIL import Image

from attn_models import load

# ---------------------------------------------------------------------------------------------
# Input checks. UI sliders send floats, the API sends whatever the caller typed: all are accepted when they
# mean the right thing (3.0 is the whole number 3), everything else is a gr.Error naming the field.


def _finite(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def whole(name: str, value, lo: int, hi: int | None = None) -> int:
    """``value`` as an int in [lo, hi] (no upper bound when ``hi`` is None)."""
    number = _finite(value)
    if number is None or not number.is_integer() or number < lo or (hi is not None and number > hi):
        limits = f"between {lo} and {hi}" if hi is not None else f"of at least {lo}"
        raise gr.Error(f"{name} must be a whole number {limits}, got {value!r}.")
    return int(number)


def position(name: str, value, size: int) -> int:
    """A row, column or channel index on an axis of ``size``: a whole number >= 0, moved inside the axis
    when too large (a value left over from a bigger model or grid is not the user's mistake)."""
    return min(whole(name, value, 0), size - 1)


def number(name: str, value, lo: float, hi: float, above_lo: bool = False) -> float:
    """``value`` as a float in [lo, hi], or in (lo, hi] when ``above_lo``."""
    x = _finite(value)
    if x is None or x > hi or x < lo or (above_lo and x == lo):
        limits = f"above {lo:g} and at most {hi:g}" if above_lo else f"between {lo:g} and {hi:g}"
        raise gr.Error(f"{name} must be a number {limits}, got {value!r}.")
    return x


def choice(name: str, value, options: Iterable):
    """``value`` if it is one of ``options`` (a dict's keys count as its options)."""
    options = list(options)
    if value not in options:
        raise gr.Error(f"{name} must be one of {', '.join(map(str, options))}, got {value!r}.")
    return value


# Refuse anything bigger before decoding it: 40 MP covers any camera photo, while a crafted 20000x20000 PNG
# (a few MB on disk) would need 1.2 GB once decoded.
MAX_PIXELS = 40_000_000


def no_image(hint: str) -> gr.Error:
    """The error for a missing image; ``hint`` says how this tab gets one."""
    return gr.Error(f"No image given: {hint}.")


def check_image_size(width: int, height: int) -> None:
    if width < 1 or height < 1:
        raise gr.Error(f"The image has no pixels ({width}×{height}).")
    if width * height > MAX_PIXELS:
        raise gr.Error(f"The image is {width}×{height} pixels, over the {MAX_PIXELS // 1_000_000} megapixel "
                       "limit; please downscale it.")


def image(value, hint: str) -> np.ndarray:
    """A picture given as a numpy array or PIL image -> array (H, W) or (H, W, 1 to 4 channels) of numbers."""
    if value is None:
        raise no_image(hint)
    if isinstance(value, Image.Image):
        check_image_size(*value.size)  # before np.asarray decodes a huge image
    array = np.asarray(value)
    shaped = array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (1, 2, 3, 4))
    if not shaped or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise gr.Error(f"Image must be an array of shape (H, W) or (H, W, 1 to 4) holding numbers, "
                       f"got shape {array.shape} of {array.dtype}.")
    check_image_size(array.shape[1], array.shape[0])
    return array


# ---------------------------------------------------------------------------------------------
# Errors. The library refuses bad inputs and missing weights with ValueError and fails with RuntimeError
# (out of memory), OSError (a file) or MemoryError; users get a gr.Error saying so instead of a bare "Error".


def _message(doing: str | None, text: str) -> str:
    return f"{doing}: {text}" if doing else text[:1].upper() + text[1:]


@contextmanager
def user_errors(doing: str | None = None) -> Iterator[None]:
    """Turn library errors raised in the block into gr.Error; ``doing`` (e.g. "Could not load X") leads the
    message. gr.Error is itself a ValueError, so it passes through untouched."""
    try:
        yield
    except gr.Error:
        raise
    except (ValueError, OSError) as e:  # they say what is wrong: a bad input, a missing file or weights
        raise gr.Error(_message(doing, str(e))) from e
    except (RuntimeError, MemoryError) as e:  # out of memory and the like: say so instead of a bare "Error"
        raise gr.Error(_message(doing, f"the computation failed ({type(e).__name__}: {e}).")) from e


def handler(fn: Callable) -> Callable:
    """Decorator for every Gradio handler: its library errors reach the user as gr.Error. Generators (streamed
    outputs) stay generators, because Gradio decides how to run a handler from what kind of function it is."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def stream(*args, **kwargs):
            with user_errors():
                yield from fn(*args, **kwargs)

        return stream

    @functools.wraps(fn)
    def call(*args, **kwargs):
        with user_errors():
            return fn(*args, **kwargs)

    return call


# ---------------------------------------------------------------------------------------------
# Models: one way for every tab. Loaded on first use through the registry (which caches them), never at
# import, so the app starts fast and serves its other tabs when some weights are missing.

_overrides: dict[str, Any] = {}
_overrides_lock = threading.Lock()
_default_device = "cpu"


def set_device(device: str) -> None:
    """Where get_model puts models when the caller names no device: the device the app was started with."""
    global _default_device
    _default_device = str(device)


def get_model(name: str, device: str | None = None, **load_kwargs):
    """Registry model ``name`` (``load_kwargs`` go to ``attn_models.load``), or the override in place."""
    with _overrides_lock:
        override = _overrides.get(name)
    if override is not None:
        return override
    with user_errors(f"Could not load the model {name}"):
        return load(name, device=device or _default_device, **load_kwargs)


@contextmanager
def override_model(name: str, model) -> Iterator[Any]:
    """Serve ``model`` as ``name`` instead of the registry's weights inside the block (tests, benchmarks,
    notebooks: tiny or untrained models); None serves the registry's weights again. Overrides nest; leaving the
    block restores what was there."""
    with _overrides_lock:
        had, previous = name in _overrides, _overrides.get(name)
        _overrides[name] = model
    try:
        yield model
    finally:
        with _overrides_lock:
            if had:
                _overrides[name] = previous
            else:
                _overrides.pop(name, None)


# ---------------------------------------------------------------------------------------------
# Output files (animations, generated scenes). Gradio copies each file a handler returns into its own cache
# before the next request is served, so the originals are only needed briefly: one folder per process under
# the temp folder keeps the latest few (a direct caller may still read a path it was just given) and goes at
# exit. Names start with a timestamp, so listing the folder gives the age order even when a forked GPU
# worker wrote some of the files.

KEEP_OUTPUT_FILES = 32
_outputs_lock = threading.Lock()
_outputs_dir: str | None = None
_outputs_owner: int | None = None  # the pid that created the folder: a forked child must not remove it


def output_folder() -> str:
    """This process's folder of output files, created on first use (again after remove_outputs)."""
    global _outputs_dir, _outputs_owner
    with _outputs_lock:
        if _outputs_dir is None or not os.path.isdir(_outputs_dir):
            _outputs_dir = tempfile.mkdtemp(prefix=f"attn-demo-{os.getpid()}-")
            _outputs_owner = os.getpid()
        return _outputs_dir


def output_path(suffix: str) -> str:
    """A new empty file for a handler to write, with ``suffix`` (".gif", ".png"); the oldest files beyond
    KEEP_OUTPUT_FILES are deleted."""
    folder = output_folder()
    fd, path = tempfile.mkstemp(prefix=f"{time.time_ns():020d}-", suffix=suffix, dir=folder)
    os.close(fd)
    with _outputs_lock:
        for old in sorted(os.listdir(folder))[:-KEEP_OUTPUT_FILES]:
            try:
                os.remove(os.path.join(folder, old))
            except OSError:  # another thread or process removed it first
                pass
    return path


@atexit.register
def remove_outputs() -> None:
    """Delete every output file of this process and their folder."""
    global _outputs_dir
    with _outputs_lock:
        if _outputs_dir is not None and _outputs_owner == os.getpid():
            shutil.rmtree(_outputs_dir, ignore_errors=True)
        _outputs_dir = None
