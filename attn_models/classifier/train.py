"""Train the Fashion-MNIST classifier used as the GAN-metric feature extractor, through the training scaffold.

    python -m attn_models.classifier.train --max-steps 20000 --export weights/fashion-mnist-classifier
    python -m attn_models.classifier.train --resume --time-budget-min 30      # continue runs/fashion-mnist-classifier

Validation: the last ``--val-size`` images of a fixed shuffle of the *training* set, held out from training
(the test set is only for ``evaluate``). Augmentation: random mirror and a +-2 px shift, both label-preserving.
"""
from __future__ import annotations

import torch
from torch.nn import functional as F

from attn_models import training
from attn_models.classifier.model import FashionMNISTClassifier

VAL_SEED = 4242  # the held-out validation split's shuffle


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random horizontal flip per image and one +-2 px shift per batch (cheap; clothing stays the same class)."""
    flip = torch.rand(x.shape[0], generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    dy, dx = torch.randint(0, 5, (2,), generator=gen).tolist()
    return F.pad(x, (2, 2, 2, 2))[..., dy:dy + 28, dx:dx + 28]


class ClassifierTask(training.TrainTask):
    name = "fashion-mnist-classifier"
    description = __doc__

    def add_args(self, p):
        p.add_argument("--data-dir", default=None, help="folder of the Fashion-MNIST idx .gz files")
        p.add_argument("--limit", type=int, default=None, help="use only the first N training images (tests)")
        p.add_argument("--val-size", type=int, default=5000)
        p.add_argument("--weight-decay", type=float, default=5e-4)
        p.add_argument("--label-smoothing", type=float, default=0.05)
        p.add_argument("--widths", type=int, nargs=3, default=[32, 48, 96])
        p.add_argument("--convs-per-block", type=int, nargs=3, default=[1, 2, 2])
        p.add_argument("--hidden", type=int, default=256)
        p.add_argument("--dropout", type=float, default=0.3)
        p.set_defaults(batch_size=128, lr=2e-3, max_steps=20_000, warmup_steps=300, eval_every=2000)

    def setup(self):
        a = self.args
        x, y, self.val_x, self.val_y = training.load_fashion_mnist_split(a, VAL_SEED)
        self.x = torch.from_numpy(x).float().div(255)[:, None]  # (N, 1, 28, 28)
        self.y = torch.from_numpy(y)
        self.examples_per_epoch = len(self.x)
        model = FashionMNISTClassifier(widths=a.widths, convs_per_block=a.convs_per_block, hidden=a.hidden,
                                       dropout=a.dropout)
        opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=a.weight_decay)
        self.model, opt = self.acc.prepare(model, opt)
        self.optimizers, self.export_model = [opt], self.model

    def train_step(self, step, rng):
        idx = training.epoch_indices(self.args.seed, step, self.args.batch_size, len(self.x), self.rank, self.world)
        gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        x = augment(self.x[idx], gen).to(self.device)
        self.model.train()
        loss = F.cross_entropy(self.model(x), self.y[idx].to(self.device), label_smoothing=self.args.label_smoothing)
        self.optimize(loss)
        return {"loss": loss.item()}

    def evaluate(self, step):
        model = self.acc.unwrap_model(self.model).eval()
        acc = float((model.predict_proba(self.val_x).argmax(1) == self.val_y).mean())
        return {"val_accuracy": acc}


def main(argv=None) -> dict:
    return training.run(ClassifierTask(), argv)


if __name__ == "__main__":
    main()
