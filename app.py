"""Entry point: ``python app.py [--device auto|cpu|cuda|mps] [--port N] [--host H] [--share]
[--max-upload-mb MB] [--max-queue N]``.

Also the Hugging Face Space entry (README front matter: ``app_file: app.py``); Spaces set
GRADIO_SERVER_NAME/GRADIO_SERVER_PORT, which the defaults below honour.

The limits a public server needs (upload size, queue length) live in ``launch_settings``, which the test
fixture uses too, so the tests exercise the settings the app is served with.
"""
from __future__ import annotations

import argparse
import os

# On ZeroGPU, `spaces` must be imported before torch touches CUDA; demo.gpu imports it when present.
import demo.gpu  # noqa: F401
from attn_models.device import VALID_DEVICES, resolve_device

# Safe defaults for a public Space. 10 MB holds any phone photo (the captioning tab reduces big images anyway);
# without a limit one visitor can fill the disk, because Gradio keeps every upload in its temp folder.
DEFAULT_MAX_UPLOAD_MB = 10.0
UPLOAD_ENV = "ATTN_MAX_UPLOAD_MB"
# Waiting requests beyond the running ones (CONCURRENCY per event). 20 waiting sampler runs is already
# minutes of wait on a CPU Space; beyond that visitors get "queue is full" at once instead of an endless spinner,
# and a flood of requests cannot grow the server's memory without bound.
DEFAULT_MAX_QUEUE = 20
QUEUE_ENV = "ATTN_MAX_QUEUE"
CONCURRENCY = 2  # events of one kind computed at once; more only slows each of them on a small CPU
MB = 1024 * 1024  # Gradio's own "mb" unit


def upload_mb(value) -> float:
    """A size in MB (decimals allowed) above 0 and finite, for --max-upload-mb / $ATTN_MAX_UPLOAD_MB."""
    try:
        mb = float(value)
    except (TypeError, ValueError):
        mb = float("nan")
    if not (0 < mb < float("inf")) or mb * MB < 1:
        raise argparse.ArgumentTypeError(
            f"the upload limit must be a number of megabytes above 0 (--max-upload-mb or ${UPLOAD_ENV}), got {value!r}")
    return mb


def queue_size(value) -> int:
    """A whole number >= 1, for --max-queue / $ATTN_MAX_QUEUE."""
    try:
        n = int(str(value).strip())
    except (TypeError, ValueError):
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(
            f"the queue bound must be a whole number of at least 1 (--max-queue or ${QUEUE_ENV}), got {value!r}")
    return n


def launch_settings(max_upload_mb: float | None = None, max_queue: int | None = None) -> tuple[dict, dict]:
    """``(queue kwargs, launch kwargs)`` holding the app's limits: ``app.queue(**q).launch(**l, server_name=...)``.

    None takes the environment variable, else the default. Raises argparse.ArgumentTypeError for a bad value, so
    a typo in a Space's variables stops the start instead of serving without limits."""
    mb = upload_mb(os.environ.get(UPLOAD_ENV, DEFAULT_MAX_UPLOAD_MB) if max_upload_mb is None else max_upload_mb)
    size = queue_size(os.environ.get(QUEUE_ENV, DEFAULT_MAX_QUEUE) if max_queue is None else max_queue)
    queue = {"default_concurrency_limit": CONCURRENCY, "max_size": size}
    # Gradio refuses a bigger upload while it streams in (HTTP 413 "File size exceeded maximum allowed size of
    # N bytes.") and deletes the part already written; the page is told the limit in its config.
    # show_error: an exception that is not a gr.Error (Gradio's own input checks refusing a wrongly typed API
    # value, a bug) reaches the caller as its message instead of a bare "Error"; the tabs' gr.Error messages are
    # shown either way.
    launch = {"max_file_size": round(mb * MB), "show_error": True}
    return queue, launch


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Gradio app that shows attention in vision models (Show, Attend and Tell; SAGAN; "
        "Image Transformer; an attention explorer). Serves the bundled weights in weights/, no network needed.",
    )
    p.add_argument("--device", default=os.environ.get("ATTN_DEVICE", "auto"), choices=VALID_DEVICES,
                   help="where models run: auto = cuda, then mps, then cpu (default: auto, or $ATTN_DEVICE)")
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)),
                   help="port to serve on (default: 7860, or $GRADIO_SERVER_PORT)")
    p.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                   help="interface to bind; 0.0.0.0 serves the local network "
                        "(default: 127.0.0.1, or $GRADIO_SERVER_NAME)")
    p.add_argument("--share", action="store_true",
                   help="also create a temporary public *.gradio.live link to share the app")
    # String defaults go through `type` too, so a bad environment value is reported like a bad flag.
    p.add_argument("--max-upload-mb", type=upload_mb, default=os.environ.get(UPLOAD_ENV, str(DEFAULT_MAX_UPLOAD_MB)),
                   metavar="MB", help=f"largest file a visitor may upload, in MB; bigger ones are refused "
                                      f"(default: {DEFAULT_MAX_UPLOAD_MB:g}, or ${UPLOAD_ENV})")
    p.add_argument("--max-queue", type=queue_size, default=os.environ.get(QUEUE_ENV, str(DEFAULT_MAX_QUEUE)),
                   metavar="N", help=f"requests that may wait for their turn; more are told the queue is full "
                                     f"(default: {DEFAULT_MAX_QUEUE}, or ${QUEUE_ENV})")
    return p


def parse_args(argv=None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def main(argv=None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        device = str(resolve_device(args.device))
    except ValueError as e:  # e.g. --device cuda on a machine without a GPU: a message, not a traceback
        parser.error(str(e))
    from demo.layout import build_app  # imported late so --help works without loading Gradio

    queue, launch = launch_settings(args.max_upload_mb, args.max_queue)
    app = build_app(device)
    app.queue(**queue).launch(server_name=args.host, server_port=args.port, share=args.share, **launch)


if __name__ == "__main__":
    main()
