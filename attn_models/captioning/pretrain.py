"""Stage 1 of Show, Attend and Tell here: pretrain the small CNN encoder on a tag task, through the training scaffold.

The task, built from the Fashion-Scenes training data: which colour and which class an item has, from per-cell
tag logits max-pooled over the grid (``--tag-loss max``, so the evidence has to sit where the item is), or with
every cell labelled by the item whose box holds its centre, else "background" (``--tag-loss cells``). To spend
the CPU on items rather than on black canvas, each example is a ``--pretrain-canvas`` px canvas (default 40)
holding one tinted training item at a random offset, drawn exactly as the scenes draw it. The paper used a frozen
ImageNet VGG; we have no ImageNet for 96x96 tinted Fashion-MNIST, and joint training from scratch stalls at the
language prior (issue 3), so this stands in for it. Stage 2 (``attn_models.captioning.train``) freezes the
encoder and trains the decoder on it.

The shipped models' encoder: two runs, the second fine-tuning the first with per-cell tags
(``--export`` writes ``encoder.safetensors``, what stage 2's ``--encoder-from`` reads, and ``tag_net.safetensors``,
the whole tag net):

    python -m attn_models.captioning.pretrain --run-dir runs/sat-encoder-v3 --encoder-channels 128 \\
        --encoder-widths 32 64 96 --flip --weight-decay 0.02 --max-steps 14133 --eval-every 1000 --seed 0 \\
        --export runs/sat-encoder-v3/export
    python -m attn_models.captioning.pretrain --run-dir runs/sat-encoder-v4 --encoder-channels 128 \\
        --encoder-widths 32 64 96 --encoder-init runs/sat-encoder-v3/export --tag-loss cells --flip \\
        --weight-decay 0.02 --lr 1e-3 --max-steps 3875 --eval-every 1000 --seed 1 --export runs/sat-encoder-v4/export

Validation: ``--eval-items`` canvases of ``--val-holdout`` Fashion-MNIST *training* items that are held out from
pretraining, so the accuracy says how well the features generalise to items the encoder never saw without
touching the test set (``python -m attn_models.captioning.evaluate_encoder EXPORT`` reports the accuracy on every
Fashion-MNIST *test* item).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, load_model, save_file
from torch import nn

from attn_models import training
from attn_models.captioning.encoder import SmallCNN
from attn_models.data.fashion_mnist import load_fashion_mnist
from attn_models.data.scenes import CLASS_WORDS, COLOURS, ITEM, PALETTE

VAL_SEED = 777  # the validation canvases' draw
HOLDOUT = 5000  # training items held out from the pretraining (--val-holdout's default)
ENCODER_FILE = "encoder.safetensors"  # in an export: the encoder's weights, read by stage 2 (--encoder-from)
TAG_NET_FILE = "tag_net.safetensors"  # in an export: the whole tag net (encoder + tag head)


class TagNet(nn.Module):
    """SmallCNN + per-cell colour and class logits, max-pooled over the grid (multiple-instance learning).
    With ``background``, two more per-cell logits (colour and class "background") for the 'cells' loss."""

    def __init__(self, channels: int, widths=(24, 48, 64), background: bool = False):
        super().__init__()
        self.encoder = SmallCNN(channels, tuple(widths))
        self.background = background
        self.head = nn.Conv2d(channels, len(COLOURS) + len(CLASS_WORDS) + (2 if background else 0), 1)

    def forward(self, x: torch.Tensor, per_cell: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """per_cell: (colour, class) logits per cell, (B, 8[+1], g, g) and (B, 10[+1], g, g), background last."""
        out = self.head(self.encoder(x))
        nc = len(COLOURS) + (1 if self.background else 0)
        col, cls = out[:, :nc], out[:, nc:]
        if per_cell:
            return col, cls
        # the object logits, max-pooled over the grid: (B, 8), (B, 10)
        return col[:, :len(COLOURS)].amax(dim=(2, 3)), cls[:, :len(CLASS_WORDS)].amax(dim=(2, 3))


def cell_targets(offsets: torch.Tensor, labels: torch.Tensor, background: int, grid: int) -> torch.Tensor:
    """(B, grid, grid) targets: ``labels[b]`` where cell centre (8i+4, 8j+4) is inside item b's 28x28 box
    at ``offsets[b]`` = (y, x), else ``background``."""
    centres = torch.arange(grid) * 8 + 4  # the encoder's stride is 8
    inside_y = (centres[None] >= offsets[:, :1]) & (centres[None] < offsets[:, :1] + ITEM)  # (B, g)
    inside_x = (centres[None] >= offsets[:, 1:]) & (centres[None] < offsets[:, 1:] + ITEM)
    inside = inside_y[:, :, None] & inside_x[:, None, :]  # (B, g, g)
    return torch.where(inside, labels[:, None, None], torch.full_like(inside, background, dtype=torch.long))


def item_canvases(rng: np.random.Generator, images, labels, n: int, size: int, flip: bool = False,
                  with_offsets: bool = False, every_item: bool = False):
    """n canvases of size x size, each one tinted item at a random offset: (x, colour ids, class ids).
    With ``flip``, half the items are mirrored left-right (drawn after the other draws, so the
    canvases without ``flip`` stay as they were). ``every_item``: each of ``images`` once, in order (n is ignored),
    instead of n drawn with replacement."""
    if size < ITEM:
        raise ValueError(f"--pretrain-canvas must be >= {ITEM}")
    n = len(images) if every_item else n
    x = np.zeros((n, size, size, 3), np.uint8)
    cols = rng.integers(0, len(COLOURS), size=n)
    picks = np.arange(n) if every_item else rng.integers(0, len(images), size=n)
    offs = rng.integers(0, size - ITEM + 1, size=(n, 2))
    mirror = rng.random(n) < 0.5 if flip else np.zeros(n, bool)
    for i in range(n):
        colour = np.asarray(PALETTE[COLOURS[cols[i]]], np.float32)
        item = images[picks[i]][:, ::-1] if mirror[i] else images[picks[i]]
        tint = item.astype(np.float32)[:, :, None] / 255.0 * colour
        x[i, offs[i, 0]:offs[i, 0] + ITEM, offs[i, 1]:offs[i, 1] + ITEM] = np.rint(tint).astype(np.uint8)
    xt = torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255.0
    out = (xt, torch.from_numpy(cols).long(), torch.from_numpy(labels[picks]).long())
    return (*out, torch.from_numpy(offs).long()) if with_offsets else out


@torch.no_grad()
def tag_metrics(net: TagNet, batch) -> dict[str, float]:
    x, cols, cls = batch
    net.eval()
    dev = next(net.parameters()).device
    outs = [net(x[i:i + 250].to(dev)) for i in range(0, len(x), 250)]
    net.train()
    col_logits, cls_logits = torch.cat([o[0] for o in outs]).cpu(), torch.cat([o[1] for o in outs]).cpu()
    return {"val_colour_acc": float((col_logits.argmax(1) == cols).float().mean()),
            "val_class_acc": float((cls_logits.argmax(1) == cls).float().mean()),
            "val_class_ce": float(F.cross_entropy(cls_logits, cls))}


def split_items(n_items: int, holdout: int = HOLDOUT) -> tuple[np.ndarray, np.ndarray]:
    """The training items the pretraining trains on and the ``holdout`` it keeps for validation (a fixed draw)."""
    order = np.random.default_rng(VAL_SEED).permutation(n_items)
    return order[holdout:], order[:holdout]


def encoder_file(path: str | Path) -> Path:
    """An exported encoder: a pretrain export folder (its encoder.safetensors) or the file itself."""
    path = Path(path)
    file = path / ENCODER_FILE if path.is_dir() else path
    if not file.is_file():
        raise SystemExit(f"{path}: no {ENCODER_FILE} there (export one with attn_models.captioning.pretrain)")
    return file


class PretrainTask(training.TrainTask):
    name = "sat-encoder"
    description = __doc__

    def add_args(self, p):
        g = p.add_argument_group("encoder pretraining on tags")
        g.add_argument("--encoder-channels", type=int, default=96)
        g.add_argument("--encoder-widths", type=int, nargs=3, default=[24, 48, 64], metavar="W",
                       help="widths of the small encoder's first three conv blocks")
        g.add_argument("--pretrain-canvas", type=int, default=40, help=f"canvas side (>= {ITEM})")
        g.add_argument("--flip", action="store_true", help="mirror half the items left-right (same class)")
        g.add_argument("--weight-decay", type=float, default=0.0, help="AdamW weight decay")
        g.add_argument("--tag-loss", choices=["max", "cells"], default="max",
                       help="'max' = one colour/class per canvas from logits max-pooled over the grid; "
                            "'cells' = every cell labelled: the item's colour/class where the cell's centre lies "
                            "in the item's box, 'background' elsewhere (keeps item evidence where the item is)")
        g.add_argument("--encoder-init", help="start the encoder from these weights (an export folder of this "
                       "stage or its encoder.safetensors); --init-from loads a whole tag net instead")
        g.add_argument("--eval-items", type=int, default=2000, help="validation canvases (held-out train items)")
        g.add_argument("--val-holdout", type=int, default=HOLDOUT, help="training items held out for validation")
        p.set_defaults(batch_size=64, lr=2e-3, warmup_steps=200, eval_every=500, checkpoint_every_min=4.0)

    def setup(self):
        a = self.args
        if a.pretrain_canvas < ITEM:
            raise SystemExit(f"--pretrain-canvas must be >= {ITEM}")
        images, labels = load_fashion_mnist("train")
        train_idx, val_idx = split_items(len(images), a.val_holdout)
        self.images, self.labels = images[train_idx], labels[train_idx]
        self.val_images, self.val_labels = images[val_idx], labels[val_idx]
        self.examples_per_epoch = len(self.images)
        self.val = None
        net = TagNet(a.encoder_channels, a.encoder_widths, background=a.tag_loss == "cells")
        if a.encoder_init and not a.resume:
            net.encoder.load_state_dict(load_file(str(encoder_file(a.encoder_init))), strict=True)
        opt = torch.optim.AdamW(net.parameters(), lr=a.lr, weight_decay=a.weight_decay)
        self.net, opt = self.acc.prepare(net, opt)
        self.optimizers, self.export_model = [opt], self.net

    def train_step(self, step, rng):
        a = self.args
        x, cols, cls, offs = item_canvases(rng, self.images, self.labels, a.batch_size, a.pretrain_canvas, a.flip,
                                           with_offsets=True)
        if a.tag_loss == "cells":  # per-cell targets replace the per-canvas labels
            grid = a.pretrain_canvas // 8  # the encoder's stride
            cols = cell_targets(offs, cols, len(COLOURS), grid)
            cls = cell_targets(offs, cls, len(CLASS_WORDS), grid)
        x, cols, cls = x.to(self.device), cols.to(self.device), cls.to(self.device)
        col_logits, cls_logits = self.net(x, per_cell=a.tag_loss == "cells")
        loss = F.cross_entropy(col_logits, cols) + F.cross_entropy(cls_logits, cls)
        self.optimize(loss)
        return {"loss": loss.item()}

    def evaluate(self, step):
        if self.val is None:  # drawn once, on the process that validates
            self.val = item_canvases(np.random.default_rng(VAL_SEED), self.val_images, self.val_labels,
                                     self.args.eval_items, self.args.pretrain_canvas)
        return tag_metrics(self.acc.unwrap_model(self.net), self.val)

    def export(self, folder: Path) -> None:
        """encoder.safetensors (for stage 2), tag_net.safetensors (the whole net) and config.json (its shape)."""
        a, net = self.args, self.acc.unwrap_model(self.net)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().contiguous().cpu() for k, v in net.encoder.state_dict().items()},
                  str(folder / ENCODER_FILE))
        save_file({k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()}, str(folder / TAG_NET_FILE))
        config = {"encoder": "small", "encoder_channels": a.encoder_channels, "encoder_widths": list(a.encoder_widths),
                  "tag_loss": a.tag_loss, "background": net.background, "pretrain_canvas": a.pretrain_canvas}
        (folder / "config.json").write_text(json.dumps(config, indent=1))

    def init_from(self, path: Path) -> None:
        """--init-from: a whole tag net (an export folder of this stage or its tag_net.safetensors), strict."""
        file = path / TAG_NET_FILE if path.is_dir() else path
        if not file.is_file():
            raise SystemExit(f"--init-from {path}: no {TAG_NET_FILE} there")
        load_model(self.acc.unwrap_model(self.net), str(file), strict=True)


def main(argv: list[str] | None = None) -> dict:
    return training.run(PretrainTask(), argv)


if __name__ == "__main__":
    main()
