"""Entry point: ``python app.py [--device auto|cpu|cuda|mps] [--port N] [--host H] [--share]``."""
from __future__ import annotations

import argparse
import os

from attn_models.device import VALID_DEVICES, resolve_device


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Gradio app that shows attention in vision models.")
    p.add_argument("--device", default=os.environ.get("ATTN_DEVICE", "auto"), choices=VALID_DEVICES,
                   help="where models run: auto = cuda, then mps, then cpu (default: auto)")
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)),
                   help="port to serve on (default: 7860)")
    p.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                   help="interface to bind; 0.0.0.0 serves the local network (default: 127.0.0.1)")
    p.add_argument("--share", action="store_true", help="also create a public *.gradio.live link")
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    device = str(resolve_device(args.device))
    from demo.layout import build_app  # imported late so --help works without loading Gradio

    app = build_app(device)
    app.queue(default_concurrency_limit=2).launch(server_name=args.host, server_port=args.port, share=args.share)


if __name__ == "__main__":
    main()
