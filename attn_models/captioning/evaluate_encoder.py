"""How well a pretrained captioning encoder tells items apart: the colour and class accuracy of a ``pretrain``
export's tag net on single tinted items, each on its own canvas, drawn exactly as in pretraining.

Captioning's object recall is capped by this class accuracy (a caption cannot name an item the encoder confuses),
so it is the number to raise before retraining the decoders. Reported on every one of the 10,000 Fashion-MNIST
*test* items (each once, random colour and offset from ``--seed``), and on the validation canvases that
``pretrain`` logs (held-out *training* items), which is the one to select encoders on.

In scenes (``--scenes N``, default the 2,000 scenes of the fixed test set, and as many of the captioning
validation scenes): the same tag head read inside each item's box, its per-cell logits averaged over the cells
whose centre lies in the box (the cells its per-cell loss labels with that item). Items in a scene sit beside
others and near the canvas edge, so this is the nearer estimate of how many items a decoder on this encoder can
name (its object recall needs colour and class right); the decoder reads the features, not this head, so it is a
reference, not a hard cap.

    python -m attn_models.captioning.evaluate_encoder runs/sat-encoder-v5/export --json runs/sat-encoder-v5/eval.json

``--flip-average`` reads the features a decoder with ``encoder_flip_average`` reads: the mean of the encoder's grid
on the canvas and, mirrored back, on the canvas mirrored left-right (the head is a 1x1 convolution, so this is the
mean of the two views' per-cell logits). ``--held-out-items`` draws the validation scenes from the training items
the pretraining held out, as ``evaluate --validation --held-out-items`` does.
"""
from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_model

from attn_models.captioning.encoder import BothViews
from attn_models.captioning.metrics import box_cells
from attn_models.captioning.pretrain import TAG_NET_FILE, VAL_SEED, TagNet, item_canvases, split_items, tag_metrics
from attn_models.captioning.train import validation_scenes
from attn_models.data.fashion_mnist import load_fashion_mnist
from attn_models.data.scenes import COLOURS, Scene, fixed_test_set


def load_tag_net(folder: str | Path) -> tuple[TagNet, dict]:
    """The tag net of a ``pretrain`` export folder (config.json + tag_net.safetensors), in eval mode."""
    folder = Path(folder)
    if not (folder / TAG_NET_FILE).is_file() or not (folder / "config.json").is_file():
        raise SystemExit(f"{folder}: not a pretrain export (needs config.json and {TAG_NET_FILE})")
    config = json.loads((folder / "config.json").read_text())
    net = TagNet(config["encoder_channels"], config["encoder_widths"], background=config["background"])
    load_model(net, str(folder / TAG_NET_FILE), strict=True)
    return net.eval(), config


def flip_averaged(net: TagNet) -> TagNet:
    """A copy of ``net`` whose encoder reads both views (``encoder.both_views``), in eval mode: its per-cell logits
    are the mean of the two views' (the head is a 1x1 convolution), its pooled ones their max over the grid."""
    averaged = copy.deepcopy(net)
    averaged.encoder = BothViews(averaged.encoder)
    return averaged.eval()


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
    held = split_items(len(images), holdout)[1]
    return tag_metrics(net, item_canvases(np.random.default_rng(VAL_SEED), images[held], labels[held], items,
                                          canvas))


@torch.no_grad()
def scene_item_metrics(net: TagNet, scenes: list[Scene], prefix: str) -> dict[str, float]:
    """Colour, class and both-right accuracy of the tag head on every item of ``scenes``: per-cell logits
    (background left out) averaged over the cells whose centre lies in the item's box, then the argmax."""
    net.eval()
    right = {"colour": [], "class": [], "item": []}
    for i in range(0, len(scenes), 100):
        chunk = scenes[i:i + 100]
        x = torch.from_numpy(np.stack([s.image for s in chunk])).permute(0, 3, 1, 2).float() / 255.0
        col, cls = net(x, per_cell=True)
        for b, scene in enumerate(chunk):
            for item in scene.items:
                cells = torch.from_numpy(box_cells(item.box, tuple(col.shape[-2:])))
                colour_ok = int(col[b, :len(COLOURS)][:, cells].mean(1).argmax()) == COLOURS.index(item.colour)
                class_ok = int(cls[b, :cls.shape[1] - int(net.background)][:, cells].mean(1).argmax()) == item.label
                right["colour"].append(colour_ok)
                right["class"].append(class_ok)
                right["item"].append(colour_ok and class_ok)
    return {f"{prefix}_scene_{k}_acc": float(np.mean(v)) for k, v in right.items()} | {
        f"{prefix}_scene_items": len(right["item"]), f"{prefix}_scenes": len(scenes)}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("export", help="a pretrain export folder (--export of attn_models.captioning.pretrain)")
    p.add_argument("--seed", type=int, default=0, help="of the test canvases' colours and offsets")
    p.add_argument("--limit", type=int, help="only the first N test items")
    p.add_argument("--scenes", type=int, default=2000,
                   help="also read the tag head in the first N scenes of the fixed test set and of the captioning "
                        "validation scenes (0: skip)")
    p.add_argument("--held-out-items", action="store_true",
                   help="the validation scenes from the training items the pretraining held out")
    p.add_argument("--flip-average", action="store_true",
                   help="the mean of the canvas's and its mirror's per-cell logits (encoder_flip_average)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--json", help="also write the numbers here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    t = time.perf_counter()
    net, config = load_tag_net(args.export)
    if args.flip_average:
        net = flip_averaged(net)
    out = {"export": str(args.export), "flip_average": args.flip_average,
           **validation_metrics(net, config["pretrain_canvas"]),
           **test_item_metrics(net, config["pretrain_canvas"], args.seed, args.limit), "seed": args.seed}
    if args.scenes:
        out |= scene_item_metrics(net, validation_scenes(args.scenes, args.held_out_items), "val")
        out["val_scenes_held_out_items"] = args.held_out_items
        out |= scene_item_metrics(net, fixed_test_set(args.scenes), "test")
    out["seconds"] = round(time.perf_counter() - t, 1)
    print(json.dumps(out, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
