"""Train the Image Transformer (Parmar et al. 2018; local 1D, local 2D or full attention) through the training
scaffold, class-conditional on Fashion-MNIST by default.

    python -m attn_models.image_transformer.train --attention local1d --max-steps 60000 \\
        --export weights/image-transformer-1d-fashion-mnist
    python -m attn_models.image_transformer.train --attention local2d --max-steps 60000 \\
        --export weights/image-transformer-2d-fashion-mnist
    python -m attn_models.image_transformer.train --attention local1d --resume --time-budget-min 60   # continue

The run directory defaults to runs/<name> with the name from --attention (image-transformer-1d-fashion-mnist,
...). Loss: cross-entropy of every pixel value (256-way) given the pixels before it in generation order, i.e.
bits/dim once divided by ln 2. Validation: bits/dim on ``--val-size`` training images held out from training
(the test set is for ``evaluate``). RGB data: ``--data imagefolder --data-dir DIR`` (class = sub-folder) with
``--image-size`` / ``--channels``.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from attn_models import training
from attn_models.image_transformer.model import ImageTransformer

NAMES = {"local1d": "image-transformer-1d-fashion-mnist", "local2d": "image-transformer-2d-fashion-mnist",
         "full": "image-transformer-full-fashion-mnist"}
VAL_SEED = 2018  # the held-out validation split's shuffle
# Constructor arguments of ImageTransformer set by flags, with the defaults of the shipped models: width, depth,
# and the local attention's query block / memory (1D: lengths in raster order; 2D: block and flange sizes).
ARCHITECTURE = dict(d_model=128, heads=4, layers=4, ffn=256, dropout=0.0, query_len=56, memory_len=112,
                    block_h=4, block_w=14, flange_h=4, flange_w=7)


def load_data(args) -> tuple[np.ndarray, np.ndarray, int]:
    """(train images uint8 (N, H, W, C), labels int64 (N,), number of classes)."""
    if args.data == "fashion-mnist":
        from attn_models.data import load_fashion_mnist

        x, y = load_fashion_mnist("train", args.data_dir)
        return x[..., None], y.astype(np.int64), 10
    from PIL import Image
    from torchvision.datasets import ImageFolder

    mode = "L" if args.channels == 1 else "RGB"
    ds = ImageFolder(args.data_dir, loader=lambda p: Image.open(p).convert(mode).resize((args.image_size,) * 2))
    x = np.stack([np.asarray(img).reshape(args.image_size, args.image_size, args.channels) for img, _ in ds])
    return x.astype(np.uint8), np.asarray(ds.targets, dtype=np.int64), len(ds.classes)


class ImageTransformerTask(training.TrainTask):
    description = __doc__

    name = NAMES["local1d"]

    def run_name(self, args):
        return NAMES[args.attention]

    def add_args(self, p):
        p.add_argument("--attention", choices=tuple(NAMES), default="local1d")
        p.add_argument("--data", choices=("fashion-mnist", "imagefolder"), default="fashion-mnist")
        p.add_argument("--data-dir", default=None)
        p.add_argument("--image-size", type=int, default=28, help="imagefolder only")
        p.add_argument("--channels", type=int, default=3, help="imagefolder only")
        p.add_argument("--limit", type=int, default=None, help="use only the first N training images (tests)")
        p.add_argument("--val-size", type=int, default=2000)
        p.add_argument("--val-batch-size", type=int, default=100)
        p.add_argument("--no-conditional", dest="conditional", action="store_false")
        for key, default in ARCHITECTURE.items():  # one flag per constructor argument, e.g. --d-model
            p.add_argument("--" + key.replace("_", "-"), type=type(default), default=default)
        p.add_argument("--weight-decay", type=float, default=0.0)
        p.add_argument("--grad-clip", type=float, default=1.0)
        p.set_defaults(batch_size=16, lr=1e-3, max_steps=60_000, warmup_steps=100, eval_every=5000)

    def setup(self):
        a = self.args
        x, y, num_classes = load_data(a)
        if a.limit:
            x, y = x[: a.limit], y[: a.limit]
        train_idx, val_idx = training.holdout_split(len(x), a.val_size, VAL_SEED)
        self.val_x, self.val_y = x[val_idx], y[val_idx]
        _, h, w, c = x.shape
        self.x = torch.from_numpy(np.ascontiguousarray(x[train_idx])).reshape(len(train_idx), -1).long()  # raster
        self.y = torch.from_numpy(y[train_idx])
        self.examples_per_epoch = len(self.x)
        self.num_classes = num_classes if a.conditional else 0
        model = ImageTransformer(image_size=h, channels=c, num_classes=self.num_classes, attention=a.attention,
                                 **{key: getattr(a, key) for key in ARCHITECTURE})
        opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.98), weight_decay=a.weight_decay)
        self.model, opt = self.acc.prepare(model, opt)
        self.optimizers, self.export_model = [opt], self.model

    def train_step(self, step, rng):
        a = self.args
        idx = training.epoch_indices(a.seed, step, a.batch_size, len(self.x), self.rank, self.world)
        xb, yb = self.x[idx].to(self.device), self.y[idx].to(self.device)
        self.model.train()
        logits = self.model(xb, yb if self.num_classes else None)  # (B, N, 256)
        loss = F.cross_entropy(logits.flatten(0, 1), xb.flatten())
        self.optimize(loss, params=self.model.parameters(), clip=a.grad_clip)
        return {"bpd": loss.item() / math.log(2)}

    def evaluate(self, step):
        model = self.acc.unwrap_model(self.model).eval()
        labels = self.val_y if self.num_classes else None
        return {"val_bpd": model.bits_per_dim(self.val_x, labels, batch_size=self.args.val_batch_size)}


def main(argv=None) -> dict:
    return training.run(ImageTransformerTask(), argv)


if __name__ == "__main__":
    main()
