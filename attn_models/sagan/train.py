"""Train a class-conditional SAGAN (Zhang et al. 2019) through the training scaffold: hinge loss, TTUR
(G 1e-4, D 4e-4, Adam betas (0, 0.9)), one D step per G step, an EMA of G for sampling, constant learning rates.

    python -m attn_models.sagan.train --max-steps 60000 --export weights/sagan-fashion-mnist
    python -m attn_models.sagan.train --run-dir runs/sagan-fashion-mnist-no-attention --attn-res none \
        --max-steps 60000 --export weights/sagan-fashion-mnist-no-attention          # the ablation
    python -m attn_models.sagan.train --resume --time-budget-min 60            # continue runs/sagan-fashion-mnist
    python -m attn_models.sagan.train --data imagefolder:/path/to/classes --img-size 64 --img-channels 3 ...

Data: "fashion-mnist" (28x28 padded to 32x32), "imagefolder:DIR" (one sub-folder per class) or "cifar10:DIR"
(torchvision's checksum-verified download), resized and centre-cropped to --img-size and held in memory as
uint8, so batches come from an epoch-wise shuffle keyed on (seed, epoch) like every other model.
Validation (fashion-mnist, every --eval-every steps): class consistency and classifier-feature FID of
``--eval-images`` EMA samples against held-out *training* images (the test set is for ``evaluate``); the gammas.
``--init-from weights/<name>`` starts G and its EMA from shipped weights (and D too when the export holds it;
exports made before D was kept start D fresh). Export: the EMA generator with BatchNorm statistics re-estimated
for its weights, and the discriminator as trained (the app shows its attention and verdicts).
"""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F

from attn_models import training
from attn_models.sagan.model import SAGAN
from attn_models.sagan.networks import Discriminator, Generator

VAL_SEED = 99  # which training images the validation FID compares against


def d_hinge(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    return F.relu(1.0 - real_scores).mean() + F.relu(1.0 + fake_scores).mean()


def g_hinge(fake_scores: torch.Tensor) -> torch.Tensor:
    return -fake_scores.mean()


def make_optimizers(g: nn.Module, d: nn.Module, lr_g: float = 1e-4, lr_d: float = 4e-4,
                    betas: tuple[float, float] = (0.0, 0.9)):
    """Two time-scale update rule (Heusel et al. 2017) with SAGAN's settings."""
    return (torch.optim.Adam(g.parameters(), lr=lr_g, betas=betas),
            torch.optim.Adam(d.parameters(), lr=lr_d, betas=betas))


def train_step(g: Generator, d: Discriminator, opt_g, opt_d, real: torch.Tensor, labels: torch.Tensor,
               backward=None) -> dict[str, float]:
    """One D update on (real, fake) then one G update. real: (B, C, S, S) in [-1, 1]; labels: (B,).

    Fake labels are drawn uniformly, independent of the real batch. ``backward`` lets Accelerate
    handle the backward pass (mixed precision, gradient sync); default is loss.backward().
    """
    backward = backward or (lambda loss: loss.backward())
    core = getattr(g, "module", g)  # under several processes G is wrapped in DistributedDataParallel
    b, device = real.shape[0], real.device
    g.train()
    d.train()
    z = torch.randn(b, core.z_dim, device=device)
    y_fake = torch.randint(0, core.num_classes, (b,), device=device)
    with torch.no_grad():
        fake = g(z, y_fake)
    real_scores, fake_scores = d(real, labels), d(fake, y_fake)
    loss_d = d_hinge(real_scores, fake_scores)
    opt_d.zero_grad(set_to_none=True)
    backward(loss_d)
    opt_d.step()

    z = torch.randn(b, core.z_dim, device=device)
    y_fake = torch.randint(0, core.num_classes, (b,), device=device)
    for p in d.parameters():  # D's grads are not needed for G's step
        p.requires_grad_(False)
    loss_g = g_hinge(d(g(z, y_fake), y_fake))
    opt_g.zero_grad(set_to_none=True)
    backward(loss_g)
    opt_g.step()
    for p in d.parameters():
        p.requires_grad_(True)
    return {"loss_d": loss_d.item(), "loss_g": loss_g.item(),
            "d_real": real_scores.mean().item(), "d_fake": fake_scores.mean().item()}


class EMA:
    """Exponential moving average of G's parameters, used for sampling (as in the SAGAN/BigGAN code).

    Buffers (BatchNorm statistics, spectral-norm vectors) are copied; ``standing_stats`` re-estimates
    them for the averaged weights before export.
    """

    def __init__(self, g: nn.Module, decay: float = 0.999):
        self.decay = decay
        self.model = copy.deepcopy(g).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, g: nn.Module, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))  # warm-up: early averages track G closely
        for pe, p in zip(self.model.parameters(), g.parameters(), strict=True):
            pe.lerp_(p.detach(), 1 - decay)
        for be, b in zip(self.model.buffers(), g.buffers(), strict=True):
            be.copy_(b)


@torch.no_grad()
def standing_stats(g: Generator, batches: int = 64, batch_size: int = 64, seed: int = 0) -> None:
    """Recompute BatchNorm running statistics (and settle the spectral-norm power iteration) for the
    weights ``g`` has now, by averaging over generated batches in train mode."""
    bns = [m for m in g.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over all batches
    device = next(g.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    g.train()
    for _ in range(batches):
        z = torch.randn(batch_size, g.z_dim, generator=gen).to(device)
        y = torch.randint(0, g.num_classes, (batch_size,), generator=gen).to(device)
        g(z, y)
    g.eval()
    for m, mom in zip(bns, saved, strict=True):
        m.momentum = mom

def load_images(spec: str, img_size: int, img_channels: int, data_dir=None):
    """-> (uint8 images (N, C, S, S), labels (N,), class names)."""
    if spec == "fashion-mnist":
        from attn_models.data import CLASS_NAMES, load_fashion_mnist

        if (img_size, img_channels) != (32, 1):
            raise SystemExit("fashion-mnist is 32x32 grayscale: use --img-size 32 --img-channels 1")
        x, y = load_fashion_mnist("train", data_dir)
        x = torch.nn.functional.pad(torch.from_numpy(x.copy()), (2, 2, 2, 2))[:, None]  # (N, 1, 32, 32)
        return x, torch.from_numpy(y.astype(np.int64)), list(CLASS_NAMES)
    from torchvision import datasets, transforms

    kind, _, root = spec.partition(":")
    mode = "L" if img_channels == 1 else "RGB"
    tf = transforms.Compose([transforms.Lambda(lambda im: im.convert(mode)), transforms.Resize(img_size),
                             transforms.CenterCrop(img_size), transforms.PILToTensor()])
    if kind == "imagefolder":
        ds = datasets.ImageFolder(root, transform=tf)
    elif kind == "cifar10":
        ds = datasets.CIFAR10(root, train=True, transform=tf, download=True)
    else:
        raise SystemExit(f"unknown --data {spec!r}; use fashion-mnist, imagefolder:DIR or cifar10:DIR")
    x = torch.stack([img for img, _ in ds])  # (N, C, S, S) uint8
    return x, torch.as_tensor(ds.targets, dtype=torch.int64), list(ds.classes)


def parse_res(text: str) -> list[int]:
    return [] if str(text).strip().lower() in ("", "none") else [int(t) for t in str(text).split(",")]


@torch.no_grad()
def sample_grid(g: Generator, z: torch.Tensor, path: Path, num_classes: int) -> None:
    """Rows = classes, columns = the fixed latents ``z``."""
    g.eval()
    n = z.shape[0]
    y = torch.arange(num_classes).repeat_interleave(n).to(z.device)
    x = ((g(z.repeat(num_classes, 1), y) + 1) * 127.5).clamp(0, 255).to(torch.uint8).cpu()  # (classes*n, C, S, S)
    c, s = x.shape[1], x.shape[-1]
    grid = x.view(num_classes, n, c, s, s).permute(0, 3, 1, 4, 2).reshape(num_classes * s, n * s, c)
    Image.fromarray(grid.squeeze(-1).numpy() if c == 1 else grid.numpy()).save(path)


class SAGANTask(training.TrainTask):
    name = "sagan-fashion-mnist"
    description = __doc__

    def add_args(self, p):
        p.add_argument("--data", default="fashion-mnist")
        p.add_argument("--data-dir", default=None, help="Fashion-MNIST folder (default: the usual places)")
        p.add_argument("--limit", type=int, default=None, help="use only the first N training images (tests)")
        p.add_argument("--img-size", type=int, default=32, choices=(32, 64, 128))
        p.add_argument("--img-channels", type=int, default=1, choices=(1, 3))
        p.add_argument("--ch", type=int, default=16, help="base width of G and D")
        p.add_argument("--z-dim", type=int, default=128)
        p.add_argument("--g-attn-res", default="16", help="comma list of G feature-map sizes with attention, or none")
        p.add_argument("--d-attn-res", default="16", help="same for D")
        p.add_argument("--attn-res", default=None, help="shortcut setting both --g-attn-res and --d-attn-res")
        p.add_argument("--attn-variant", default="official", choices=("official", "paper"))
        p.add_argument("--lr-d", type=float, default=4e-4, help="D's learning rate (--lr is G's)")
        p.add_argument("--ema-decay", type=float, default=0.999)
        p.add_argument("--standing-batches", type=int, default=64,
                       help="generated batches used to re-estimate BatchNorm statistics of the EMA G at export")
        p.add_argument("--eval-images", type=int, default=2000, help="EMA samples per validation")
        p.set_defaults(lr=1e-4, batch_size=32, max_steps=60_000, lr_schedule="constant", warmup_steps=0,
                       eval_every=5000)

    def setup(self):
        a = self.args
        if a.attn_res is not None:
            a.g_attn_res = a.d_attn_res = a.attn_res
        x, y, class_names = load_images(a.data, a.img_size, a.img_channels, a.data_dir)
        if a.limit:
            x, y = x[: a.limit], y[: a.limit]
        self.x, self.y, self.examples_per_epoch = x, y, len(x)
        g_res, d_res = parse_res(a.g_attn_res), parse_res(a.d_attn_res)
        self.config = dict(img_size=a.img_size, img_channels=a.img_channels, num_classes=len(class_names),
                           z_dim=a.z_dim, ch=a.ch, attn_res=g_res, attn_variant=a.attn_variant,
                           class_names=class_names, d_ch=a.ch, d_attn_res=d_res)
        g = Generator(a.img_size, a.img_channels, len(class_names), a.z_dim, a.ch, g_res, a.attn_variant)
        d = Discriminator(a.img_size, a.img_channels, len(class_names), a.ch, d_res, a.attn_variant)
        self.ema = EMA(g, a.ema_decay)
        opt_g, opt_d = make_optimizers(g, d, a.lr, a.lr_d)
        self.g, self.d, opt_g, opt_d = self.acc.prepare(g, d, opt_g, opt_d)
        self.ema.model.to(self.device)
        self.optimizers = [opt_g, opt_d]
        self.fixed_z = torch.randn(10, a.z_dim, generator=torch.Generator().manual_seed(1234)).to(self.device)
        self._scorer = None

    def train_step(self, step, rng):
        idx = training.epoch_indices(self.args.seed, step, self.args.batch_size, len(self.x), self.rank, self.world)
        real = (self.x[idx].float() / 127.5 - 1).to(self.device)
        stats = train_step(self.g, self.d, *self.optimizers, real, self.y[idx].to(self.device), self.acc.backward)
        self.ema.update(self.acc.unwrap_model(self.g), step)
        return stats

    def state_tensors(self):
        return {f"ema.{k}": v for k, v in self.ema.model.state_dict().items()}

    def load_state_tensors(self, tensors):
        self.ema.model.load_state_dict({k[len("ema."):]: v for k, v in tensors.items()}, strict=True)

    def init_from(self, path):
        from attn_models.registry import load_name_or_folder

        # By its own config: exports made before D was kept have none.
        shipped = load_name_or_folder(str(training.weights_file(path).parent), "sagan", device="cpu")
        self.acc.unwrap_model(self.g).load_state_dict(shipped.generator.state_dict())
        self.ema.model.load_state_dict(shipped.generator.state_dict())
        if shipped.has_discriminator:
            self.acc.unwrap_model(self.d).load_state_dict(shipped.discriminator.state_dict())

    def shipped_model(self, standing_batches: int) -> SAGAN:
        model = SAGAN(**self.config)
        model.generator.load_state_dict(self.ema.model.state_dict())
        model.discriminator.load_state_dict(self.acc.unwrap_model(self.d).state_dict())
        standing_stats(model.generator, batches=standing_batches, seed=self.args.seed)
        return model.eval()

    def evaluate(self, step):
        sample_grid(self.ema.model, self.fixed_z, self.args.run_dir / f"samples_{step:06d}.png",
                    self.config["num_classes"])
        d = self.acc.unwrap_model(self.d)
        out = {f"gamma_g{k}": a.gamma.item() for k, a in self.ema.model.attn.items()}
        out.update({f"gamma_d{k}": a.gamma.item() for k, a in d.attn.items()})
        if self.args.data != "fashion-mnist" or not self.args.eval_images:
            return out
        from attn_models.sagan.evaluate import Scorer, generate_balanced

        model = self.shipped_model(standing_batches=8)
        if self._scorer is None:  # held-out reference: training images, never the test set
            from attn_models import load

            pick = np.random.default_rng(VAL_SEED).choice(len(self.x), min(len(self.x), 5000), replace=False)
            self._scorer = Scorer(load("fashion-mnist-classifier", device="cpu"), self.x[pick, 0, 2:30, 2:30].numpy())
        scores = self._scorer.score(*generate_balanced(model.cpu(), max(1, self.args.eval_images // 10), seed=1))
        return {**out, "val_fid": scores["fid"], "val_class_consistency": scores["class_consistency"]}

    def export(self, folder):
        self.shipped_model(self.args.standing_batches).save_pretrained(folder)


def main(argv=None) -> dict:
    return training.run(SAGANTask(), argv)


if __name__ == "__main__":
    main()
