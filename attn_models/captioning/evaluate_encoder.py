"""How well a pretrained captioning encoder tells items apart: the colour and class accuracy of a ``pretrain``
export's tag net on single tinted items, each on its own canvas, drawn exactly as in pretraining.

Captioning's object recall is capped by this class accuracy (a caption cannot name an item the encoder confuses),
so it is the number to raise before retraining the decoders. Reported on every one of the 10,000 Fashion-MNIST
*test* items (each once, random colour and offset from ``--seed``), and on the validation canvases that
``pretrain`` logs (held-out *training* items), which is the one to select encoders on.

    python -m attn_models.captioning.evaluate_encoder runs/sat-encoder-v5/export --json runs/sat-encoder-v5/eval.json
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_model

from attn_models.captioning.pretrain import TAG_NET_FILE, VAL_SEED, TagNet, item_canvases, tag_metrics
from attn_models.data.fashion_mnist import load_fashion_mnist


def load_tag_net(folder: str | Path) -> tuple[TagNet, dict]:
    """The tag net of a ``pretrain`` export folder (config.json + tag_net.safetensors), in eval mode."""
    folder = Path(folder)
    if not (folder / TAG_NET_FILE).is_file() or not (folder / "config.json").is_file():
        raise SystemExit(f"{folder}: not a pretrain export (needs config.json and {TAG_NET_FILE})")
    config = json.loads((folder / "config.json").read_text())
    net = TagNet(config["encoder_channels"], config["encoder_widths"], background=config["background"])
    load_model(net, str(folder / TAG_NET_FILE), strict=True)
    return net.eval(), config


def test_item_metrics(net: TagNet, canvas: int, seed: int = 0, limit: int | None = None) -> dict[str, float]:
    """Colour and class accuracy on every Fashion-MNIST test item (the first ``limit`` with a limit)."""
    images, labels = load_fashion_mnist("test")
    images, labels = images[:limit], labels[:limit]
    batch = item_canvases(np.random.default_rng(seed), images, labels, 0, canvas, every_item=True)
    m = tag_metrics(net, batch)
    return {"test_colour_acc": m["val_colour_acc"], "test_class_acc": m["val_class_acc"],
            "test_class_ce": m["val_class_ce"], "test_items": len(images)}


def validation_metrics(net: TagNet, canvas: int, items: int = 2000, holdout: int = 5000) -> dict[str, float]:
    """The validation ``pretrain`` logs (same held-out training items, same draw, its defaults)."""
    images, labels = load_fashion_mnist("train")
    held = np.random.default_rng(VAL_SEED).permutation(len(images))[:holdout]
    return tag_metrics(net, item_canvases(np.random.default_rng(VAL_SEED), images[held], labels[held], items,
                                          canvas))


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("export", help="a pretrain export folder (--export of attn_models.captioning.pretrain)")
    p.add_argument("--seed", type=int, default=0, help="of the test canvases' colours and offsets")
    p.add_argument("--limit", type=int, help="only the first N test items")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--json", help="also write the numbers here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    t = time.perf_counter()
    net, config = load_tag_net(args.export)
    out = {"export": str(args.export), **validation_metrics(net, config["pretrain_canvas"]),
           **test_item_metrics(net, config["pretrain_canvas"], args.seed, args.limit), "seed": args.seed}
    out["seconds"] = round(time.perf_counter() - t, 1)
    print(json.dumps(out, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
