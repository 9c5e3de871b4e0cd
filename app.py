"""Entry point: ``python app.py [--device auto|cpu|cuda|mps] [--port N] [--host H] [--share]``.

Also the Hugging Face Space entry (README front matter: ``app_file: app.py``); Spaces set
GRADIO_SERVER_NAME/GRADIO_SERVER_PORT, which the defaults below honour.
"""
from __future__ import annotations

import argparse
import os

# On ZeroGPU, `spaces` must be imported before torch touches CUDA; demo.gpu imports it when present.
import demo.gpu  # noqa: F401
from attn_models.device import VALID_DEVICES, resolve_device


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

    app = build_app(device)
    app.queue(default_concurrency_limit=2).launch(server_name=args.host, server_port=args.port, share=args.share)


if __name__ == "__main__":
    main()
