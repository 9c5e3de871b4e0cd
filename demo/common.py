"""What every tab needs besides drawing: checking inputs, getting a model, turning the library's errors into
messages, and output files that do not pile up in the temp folder.

Every message about an input reads "<Field> must be <what it must be>, got <what came>." whichever tab
raises it, so the API and the UI speak one language.
"""
from __future__ import annotations

import atexit
import contextlib
import copy
import functools
import inspect
import io
import json
import logging
import math
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import gradio as gr
import numpy as np
import torch
from PIL import Image

from attn_models import load
from attn_models.registry import get_spec

_log = logging.getLogger(__name__)

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


def upload_path(value) -> str | None:
    """The local path of an upload as Gradio passes it without preprocessing (a FileData dict), or as a plain
    path string (direct Python calls)."""
    if value is None:
        return None
    if isinstance(value, dict):
        return value.get("path")
    if isinstance(value, (str, os.PathLike)):
        return str(value)
    raise gr.Error(f"Image must be an image file, got {type(value).__name__}.")


def read_upload(value, hint: str, draft: tuple[int, int] | None = None) -> Image.Image:
    """Decode an uploaded file (a handler with ``preprocess=False`` gets it as a FileData dict) into a loaded PIL
    image: its first frame, upright (EXIF), in the file's own mode; or raise gr.Error saying what is wrong with it.
    ``draft``: JPEGs may be decoded at a reduced scale no smaller than this (big photos, fast)."""
    from PIL import ImageOps, UnidentifiedImageError

    path = upload_path(value)
    if not path:
        raise no_image(hint)
    try:
        size = os.path.getsize(path)
    except OSError:
        raise gr.Error("The uploaded file could not be found on the server; please upload it again.") from None
    if size == 0:
        raise gr.Error("The uploaded file is empty (0 bytes).")
    try:
        with Image.open(path) as im:  # reads the header only: the size is known before decoding
            check_image_size(*im.size)
            im.seek(0)  # first frame of animations and multi-page files
            if draft:
                im.draft(im.mode if im.mode in ("L", "RGB") else "RGB", draft)
            out = ImageOps.exif_transpose(im)
            out.load()
            return out
    except gr.Error:
        raise
    except Image.DecompressionBombError:
        raise gr.Error(f"The image is too large (over {MAX_PIXELS // 1_000_000} megapixels); "
                       "please downscale it.") from None
    except UnidentifiedImageError:
        raise gr.Error("This file is not an image format Pillow can read (try PNG or JPEG).") from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as e:
        raise gr.Error(f"The image file is damaged or truncated and could not be decoded ({e}).") from None


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
    except Exception as e:  # a bug (KeyError, TypeError, ...): words for the user, the traceback for the log
        logging.getLogger(__name__).exception("unexpected error in a handler")
        raise gr.Error(_message(doing, f"something went wrong in the app ({type(e).__name__}: {e}); "
                                       "other inputs and tabs still work.")) from e


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


def bundled_json(name: str, file: str) -> dict | None:
    """A measurement stored beside model ``name``'s bundled weights (an evaluate script's JSON object), or None when
    the file is missing, not JSON or not an object: the tabs then say that nothing is measured instead of failing."""
    try:
        data = json.loads((get_spec(name).local_dir / file).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


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
# Intra-op threads. torch.set_num_threads is process-wide (PyTorch's pool size, MKL's threads), so a handler that
# changed it for its own steps changed it for every request running at that moment, and their floats with it
# (SAGAN attention maps differed in the 7th digit from the same call made alone, under 64 clients). The app sets
# it once, before serving; handlers then leave it alone (see threads_pinned).

_threads_pinned = False


SERVED_THREADS = 1  # intra-op threads per request in the served app (layout.build_app pins them)


def pin_threads(count: int = SERVED_THREADS) -> None:
    """Run every request with ``count`` intra-op threads, from now on. One suits a server: requests already run
    side by side, and the Image Transformer's hundreds of tiny sampling steps are many times slower with more."""
    global _threads_pinned
    torch.set_num_threads(count)
    _threads_pinned = True


def threads_pinned() -> bool:
    return _threads_pinned


# ---------------------------------------------------------------------------------------------
# Output files (animations, exports, generated scenes). Gradio copies each file a handler returns into its own
# cache as the request finishes, so the originals are only needed briefly: one folder per process under the temp
# folder keeps the latest few and goes at exit. "Briefly" is a time, not a count: under load many requests
# write files between one handler returning and Gradio copying its file (each export writes five), and deleting
# by count alone removed files still waiting to be copied (failed answers, broken downloads under 64 clients).
# So only files older than MIN_OUTPUT_AGE_S are deleted, the oldest first, down to KEEP_OUTPUT_FILES. Names start
# with a timestamp, so listing the folder gives the age order even when a forked GPU worker wrote some files.

KEEP_OUTPUT_FILES = 32
MIN_OUTPUT_AGE_S = 300.0
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


# Files of the results shown on arrival are served to every visitor for the life of the process, so they live in
# a folder of their own that the rotation above never touches (remove_outputs neither: only the exit).
_kept = threading.local()
_kept_dir: str | None = None


def kept_folder() -> str:
    """This process's folder of output files kept until exit (the results shown on arrival)."""
    global _kept_dir
    with _outputs_lock:
        if _kept_dir is None or not os.path.isdir(_kept_dir):
            _kept_dir = tempfile.mkdtemp(prefix=f"attn-demo-{os.getpid()}-kept-")
            atexit.register(shutil.rmtree, _kept_dir, True)
        return _kept_dir


@contextmanager
def keep_outputs() -> Iterator[None]:
    """Inside the block, output files of this thread go to kept_folder() and are never rotated away."""
    folder = kept_folder()
    previous = getattr(_kept, "folder", None)
    _kept.folder = folder
    try:
        yield
    finally:
        _kept.folder = previous


def output_path(suffix: str) -> str:
    """A new empty file for a handler to write, with ``suffix`` (".gif", ".png"); the oldest files beyond
    KEEP_OUTPUT_FILES are deleted once they are MIN_OUTPUT_AGE_S old."""
    kept = getattr(_kept, "folder", None)
    if kept is not None:
        fd, path = tempfile.mkstemp(suffix=suffix, dir=kept)
        os.close(fd)
        return path
    folder = output_folder()
    fd, path = tempfile.mkstemp(prefix=f"{time.time_ns():020d}-", suffix=suffix, dir=folder)
    os.close(fd)
    oldest_kept = time.time_ns() - int(MIN_OUTPUT_AGE_S * 1e9)
    with _outputs_lock:
        for old in sorted(os.listdir(folder))[:-KEEP_OUTPUT_FILES]:
            written = old.split("-", 1)[0]
            if not written.isdigit() or int(written) > oldest_kept:
                break  # sorted by age: every file after this one is younger still
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


# ---------------------------------------------------------------------------------------------
# Gradio 6.31 caches an image a handler returns as an array under a name made of its content's hash, and writes
# it there in place (processing_utils.save_pil_to_cache: write_bytes). Two requests returning the same picture (a
# popular default, every page load's results on arrival) write the same file at once, and a browser or client
# reading it meanwhile gets a truncated file (seen under 64 clients: "peer closed connection", "cannot identify
# image file"). Its own copy of returned files (save_file_to_cache) writes a staging file and renames it into
# place; pictures get the same here. Remove once Gradio writes them atomically.
#
# Every picture a handler returns is encoded here, on the request's path (a caption returns a dozen), so with the
# encoders' fastest settings: WebP's method 0 (its least search; same quality setting, a quarter of the time of the
# default method 4, files ~20% larger) and zlib's level 1 for PNG (what render.save_image uses).
CACHE_ENCODER_OPTIONS = {"webp": {"method": 0}, "png": {"compress_level": 1}}


def _encode_picture(img, format: str) -> bytes:
    """Gradio's processing_utils.encode_pil_to_bytes (same metadata and formats) with CACHE_ENCODER_OPTIONS."""
    options = CACHE_ENCODER_OPTIONS.get(format.lower())
    if options is None:  # GIF and anything else: Gradio's own
        return gr.processing_utils.encode_pil_to_bytes(img, format)
    if format.lower() == "png":
        params = {"pnginfo": gr.processing_utils.get_pil_metadata(img)}
    else:
        exif = gr.processing_utils.get_pil_exif_bytes(img)
        params = {"exif": exif} if exif else {}
    with io.BytesIO() as out:
        img.save(out, format, **params, **options)
        return out.getvalue()


def _save_pil_to_cache_atomically(img, cache_dir: str, name: str = "image", format: str = "webp") -> str:
    data = _encode_picture(img, format)
    folder = os.path.join(cache_dir, gr.processing_utils.hash_bytes(data))
    os.makedirs(folder, exist_ok=True)
    target = os.path.realpath(os.path.join(folder, f"{name}.{format}"))
    if not os.path.exists(target):  # the same content: the file in place is complete (renamed into place)
        fd, staging = tempfile.mkstemp(dir=folder, prefix=f".{name}.")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(staging, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.remove(staging)
            raise
    return target


gr.processing_utils.save_pil_to_cache = _save_pil_to_cache_atomically


# ---------------------------------------------------------------------------------------------
# Results on arrival: every tab opens showing a finished example. It is computed once, in one background thread
# started while the app is built (start-up does not wait for it; the tabs compute one after another, which keeps
# the start light on a shared CPU), and each page load receives it.

_arrivals: ThreadPoolExecutor | None = None
ARRIVAL_WAIT = 120  # seconds a page load waits for a result still being computed (a busy CPU, a slow disk)


def on_arrival(compute: Callable[[], tuple], outputs: list) -> None:
    """Show ``compute()`` (one value per output component) in ``outputs`` whenever a page loads. If it fails
    (e.g. missing weights) the tab simply opens empty and the log says why."""
    global _arrivals
    kept_folder()  # now, before any test or request moves the temp folder
    with _outputs_lock:
        if _arrivals is None:
            _arrivals = ThreadPoolExecutor(max_workers=1, thread_name_prefix="arrival")

    def run():
        with keep_outputs():
            return compute()

    future = _arrivals.submit(run)

    def show():
        try:
            values = future.result(timeout=ARRIVAL_WAIT)
        except Exception as e:  # whatever it was, the tab still opens (empty)
            _log.warning("No result on arrival from %s: %s", getattr(compute, "__qualname__", compute), e)
            return tuple(gr.skip() for _ in outputs)
        # A copy for each page: Gradio's postprocessing takes "value" out of gr.update dicts in place, so the second
        # page load would get the arrival's updates without their values (no word selected, an empty table).
        values = copy.deepcopy(values)
        return values if len(outputs) > 1 else values[0]

    # triggers=None and no inputs: runs on page load only. Private: not part of the API.
    gr.on(None, show, None, outputs, api_visibility="private", show_progress="hidden")


# ---------------------------------------------------------------------------------------------
# Exports: every tab offers what it shows as files, through one row of download buttons that are also outputs of
# its API endpoints (render.save_exports writes them, in EXPORT_LABELS order).

EXPORT_LABELS = ("PNG picture", "GIF animation", "MP4 animation", "NPZ numbers", "JSON numbers")


TEST_IMAGES = 10_000  # Fashion-MNIST's test set


def test_image(index, instead: str) -> tuple[np.ndarray, int]:
    """Fashion-MNIST test image ``index`` (a whole number, checked; 28x28 uint8) and its label. Never downloads (a
    Space without the files answers at once); when they are missing the message says what to do ``instead``."""
    from attn_models.data import load_fashion_mnist

    index = whole("Test image index", index, 0, TEST_IMAGES - 1)
    with user_errors(f"The Fashion-MNIST test images are not available here ({instead})"):
        images, labels = load_fashion_mnist("test", download=False)  # cached by the library after the first call
    return images[index], int(labels[index])


def export_buttons(elem_prefix: str, labels: Iterable[str] = EXPORT_LABELS,
                   values: Iterable[str | None] | None = None) -> list[gr.DownloadButton]:
    """A row of download buttons holding ``values`` (files), else empty until a result fills them; elem_ids
    ``<elem_prefix>-png`` etc."""
    labels = list(labels)
    values = list(values) if values is not None else [None] * len(labels)
    with gr.Row():
        return [gr.DownloadButton(label, value=value, size="sm", elem_id=f"{elem_prefix}-{label.split()[0].lower()}")
                for label, value in zip(labels, values, strict=True)]


# A picture that is also a download (a tab's view and its PNG or GIF export) is one file, and an endpoint returns it
# once, as the download: gradio_client fetches every file of an answer, each over a new connection (tens of ms
# apiece), the same file as often as it is returned. The view then shows the download's file, copied in the browser
# (no request to the server).
SHOW_DOWNLOADS_JS = "(...files) => files"


def show_downloads(event, buttons: list, views: list):
    """After ``event``, each of ``views`` (Image components) shows the file of the download button at the same place
    in ``buttons``."""
    return event.then(None, buttons, views, js=SHOW_DOWNLOADS_JS, show_progress="hidden")


def export_section(what: str, elem_prefix: str, raw_title: str, raw_label: str,
                   labels: Iterable[str] = EXPORT_LABELS) -> tuple[list[gr.DownloadButton], gr.JSON]:
    """"**Download**: <what>", the row of download buttons (see export_buttons) and a closed accordion
    ``raw_title`` with the raw numbers as JSON; returns (buttons, the JSON component)."""
    gr.Markdown(f"**Download**: {what}")
    buttons = export_buttons(elem_prefix, labels)
    with gr.Accordion(raw_title, open=False):
        raw = gr.JSON(label=raw_label)
    return buttons, raw
