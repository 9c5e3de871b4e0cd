"""Train one of the inductive-bias classifiers through the training scaffold: centred Fashion-MNIST items on a
40x40 black canvas, the same data, budget and optimiser for every model (only ``--kind``/``--position`` differ).

    python -m attn_models.inductive_bias.train --kind cnn --max-steps 6000 --export weights/inductive-bias-cnn
    python -m attn_models.inductive_bias.train --kind attention --position absolute --max-steps 6000 \\
        --export weights/inductive-bias-attention-absolute
    python -m attn_models.inductive_bias.train --kind attention --position relative ...
    python -m attn_models.inductive_bias.train --kind attention --position none ...

Items are never shifted in training: how a model copes with shifted items is what its inductive bias gives it.
Validation: centred items of ``--val-size`` training images held out from training.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from attn_models import training
from attn_models.inductive_bias.model import POSITIONS, InductiveBiasNet, place

VAL_SEED = 1337


def run_name(kind: str, position: str) -> str:
    return "inductive-bias-cnn" if kind == "cnn" else f"inductive-bias-attention-{position}"


class InductiveBiasTask(training.TrainTask):
    name = "inductive-bias-cnn"
    description = __doc__

    def run_name(self, args):
        return run_name(args.kind, args.position)

    def add_args(self, p):
        p.add_argument("--kind", choices=("cnn", "attention"), default="cnn")
        p.add_argument("--position", choices=POSITIONS, default="absolute", help="attention nets only")
        p.add_argument("--widths", type=int, nargs="+", default=[32, 64, 64], help="cnn: channels per conv layer")
        p.add_argument("--d-model", type=int, default=64)
        p.add_argument("--heads", type=int, default=4)
        p.add_argument("--layers", type=int, default=3)
        p.add_argument("--patch", type=int, default=4)
        p.add_argument("--weight-decay", type=float, default=0.05)
        p.add_argument("--data-dir", default=None)
        p.add_argument("--limit", type=int, default=None, help="use only the first N training images (tests)")
        p.add_argument("--val-size", type=int, default=5000)
        p.set_defaults(batch_size=64, lr=2e-3, max_steps=6000, warmup_steps=200, eval_every=1000)

    def setup(self):
        a = self.args
        x, y, val_x, val_y = training.load_fashion_mnist_split(a, VAL_SEED)
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y)  # uint8 (N, 28, 28), int64 (N,)
        self.val_x, self.val_y = torch.from_numpy(val_x), torch.from_numpy(val_y)
        self.examples_per_epoch = len(self.x)
        model = InductiveBiasNet(kind=a.kind, widths=a.widths, d_model=a.d_model, heads=a.heads, layers=a.layers,
                                 patch=a.patch, position=a.position)
        opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=a.weight_decay)
        self.model, opt = self.acc.prepare(model, opt)
        self.optimizers, self.export_model = [opt], self.model

    def train_step(self, step, rng):
        a = self.args
        idx = training.epoch_indices(a.seed, step, a.batch_size, len(self.x), self.rank, self.world)
        self.model.train()
        loss = F.cross_entropy(self.model(place(self.x[idx]).to(self.device)), self.y[idx].to(self.device))
        self.optimize(loss)
        return {"loss": loss.item()}

    @torch.no_grad()
    def evaluate(self, step):
        model = self.acc.unwrap_model(self.model).eval()
        pred = torch.cat([model(place(self.val_x[i:i + 500]).to(self.device)).argmax(1).cpu()
                          for i in range(0, len(self.val_x), 500)])
        return {"val_accuracy": float((pred == self.val_y).float().mean())}


def main(argv=None) -> dict:
    return training.run(InductiveBiasTask(), argv)


if __name__ == "__main__":
    main()
