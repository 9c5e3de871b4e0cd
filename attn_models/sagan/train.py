"""Train a class-conditional SAGAN (Zhang et al. 2019): hinge loss, TTUR (G 1e-4, D 4e-4, Adam betas
(0, 0.9)), one D step per G step, EMA of G for sampling.

    python -m attn_models.sagan.train --name sagan-fashion-mnist --time-budget-min 70
    python -m attn_models.sagan.train --name sagan-fashion-mnist-no-attention --attn-res none --time-budget-min 70
    python -m attn_models.sagan.train --name my-sagan --data imagefolder:/path/to/classes --img-size 64 --img-channels 3
    accelerate launch -m attn_models.sagan.train --name ... --data cifar10:/path --batch-size 256

Data: "fashion-mnist" (28x28 padded to 32x32), "imagefolder:DIR" (one sub-folder per class, resized and
centre-cropped to --img-size), "cifar10:DIR" (torchvision's CIFAR-10, checksum-verified download).
Resumable (--resume), seeded, stops cleanly at --time-budget-min; checkpoints, log.jsonl (losses,
gammas) and sample grids go to checkpoints/<name>/; --out exports the EMA generator with save_pretrained.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from PIL import Image
from tqdm import tqdm

from attn_models.sagan.networks import Discriminator, Generator
from attn_models.sagan.model import SAGAN
from attn_models.sagan.steps import EMA, make_optimizers, standing_stats, train_step


class TensorBatches:
    """In-memory uint8 images; epoch-seeded permutations so a resumed run sees the same batches."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, seed: int):
        self.images, self.labels, self.bs, self.seed = images, labels, batch_size, seed
        self.per_epoch = len(images) // batch_size

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, i = divmod(step, self.per_epoch)
        order = torch.randperm(len(self.images), generator=torch.Generator().manual_seed(self.seed * 7919 + epoch))
        idx = order[i * self.bs:(i + 1) * self.bs]
        return self.images[idx].float() / 127.5 - 1, self.labels[idx]


class LoaderBatches:
    """A DataLoader cycled forever (image folders too big to keep in memory)."""

    def __init__(self, loader):
        self.loader, self.it = loader, iter(loader)

    def batch(self, step: int):
        try:
            return next(self.it)
        except StopIteration:
            self.it = iter(self.loader)
            return next(self.it)


def fashion_mnist_tensors(data_dir=None):
    from attn_models.data import CLASS_NAMES, load_fashion_mnist

    x, y = load_fashion_mnist("train", data_dir)
    x = torch.nn.functional.pad(torch.from_numpy(x.copy()), (2, 2, 2, 2))[:, None]  # (N, 1, 32, 32)
    return x, torch.from_numpy(y.copy()), list(CLASS_NAMES)


def folder_loader(spec: str, img_size: int, img_channels: int, batch_size: int, workers: int):
    """imagefolder:DIR or cifar10:DIR -> (DataLoader of (x in [-1,1], y), class names)."""
    from torchvision import datasets, transforms

    kind, _, root = spec.partition(":")
    tf = [transforms.Resize(img_size), transforms.CenterCrop(img_size)]
    if img_channels == 1:
        tf.append(transforms.Grayscale(1))
    tf += [transforms.ToTensor(), transforms.Normalize([0.5] * img_channels, [0.5] * img_channels)]
    tf = transforms.Compose(tf if img_channels == 1 else [transforms.Lambda(lambda im: im.convert("RGB"))] + tf)
    if kind == "imagefolder":
        ds = datasets.ImageFolder(root, transform=tf)
    elif kind == "cifar10":
        ds = datasets.CIFAR10(root, train=True, transform=tf, download=True)
    else:
        raise ValueError(f"unknown data spec {spec!r}; use fashion-mnist, imagefolder:DIR or cifar10:DIR")
    if len(ds) < batch_size:
        raise ValueError(f"{spec}: {len(ds)} images, fewer than one batch of {batch_size}")
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=True, drop_last=True,
                                         num_workers=workers)
    return loader, list(ds.classes)


@torch.no_grad()
def sample_grid(g: Generator, z: torch.Tensor, path: Path, num_classes: int) -> None:
    """Rows = classes, columns = the fixed latents ``z``."""
    g.eval()
    n = z.shape[0]
    y = torch.arange(num_classes).repeat_interleave(n).to(z.device)
    x = g(z.repeat(num_classes, 1), y)  # (classes*n, C, S, S)
    x = ((x + 1) * 127.5).clamp(0, 255).to(torch.uint8).cpu()
    c, s = x.shape[1], x.shape[-1]
    grid = x.view(num_classes, n, c, s, s).permute(0, 3, 1, 4, 2).reshape(num_classes * s, n * s, c)
    Image.fromarray(grid.squeeze(-1).numpy() if c == 1 else grid.numpy()).save(path)


def parse_res(text: str) -> list[int]:
    return [] if text.strip().lower() in ("", "none") else [int(t) for t in text.split(",")]


def export(ema_g: Generator, cfg: dict, out: str, seed: int, standing_batches: int = 64) -> None:
    model = SAGAN(**cfg)
    model.generator.load_state_dict(ema_g.state_dict())
    standing_stats(model.generator, batches=standing_batches, seed=seed)
    model.eval().save_pretrained(out)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", default="sagan-fashion-mnist")
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--data-dir", default=None, help="Fashion-MNIST folder (default: the usual places)")
    p.add_argument("--img-size", type=int, default=32, choices=(32, 64, 128))
    p.add_argument("--img-channels", type=int, default=1, choices=(1, 3))
    p.add_argument("--ch", type=int, default=16, help="base width of G and D")
    p.add_argument("--z-dim", type=int, default=128)
    p.add_argument("--g-attn-res", default="16", help="comma list of G feature-map sizes with attention, or none")
    p.add_argument("--d-attn-res", default="16", help="same for D")
    p.add_argument("--attn-res", default=None, help="shortcut setting both --g-attn-res and --d-attn-res")
    p.add_argument("--attn-variant", default="official", choices=("official", "paper"))
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr-g", type=float, default=1e-4)
    p.add_argument("--lr-d", type=float, default=4e-4)
    p.add_argument("--ema-decay", type=float, default=0.999)
    p.add_argument("--steps", type=int, default=100_000)
    p.add_argument("--time-budget-min", type=float, default=None)
    p.add_argument("--ckpt-every-min", type=float, default=5.0)
    p.add_argument("--sample-every-min", type=float, default=5.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--ckpt-root", default="checkpoints")
    p.add_argument("--out", default=None, help="export folder for save_pretrained (default weights/<name>)")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--standing-batches", type=int, default=64,
                   help="generated batches used to re-estimate BN statistics of the EMA generator at export")
    p.add_argument("--export-only", action="store_true",
                   help="export the EMA generator of checkpoints/<name>/last.pt to --out and exit (no training)")
    args = p.parse_args(argv)
    if args.attn_res is not None:
        args.g_attn_res = args.d_attn_res = args.attn_res

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    acc = Accelerator()
    if args.data == "fashion-mnist":
        if (args.img_size, args.img_channels) != (32, 1):
            raise ValueError("fashion-mnist is 32x32 grayscale: use --img-size 32 --img-channels 1")
        x, y, class_names = fashion_mnist_tensors(args.data_dir)
        batches = TensorBatches(x, y, args.batch_size, args.seed)
    else:
        loader, class_names = folder_loader(args.data, args.img_size, args.img_channels, args.batch_size,
                                            args.workers)
        batches = LoaderBatches(acc.prepare(loader))
    num_classes = len(class_names)
    g_res, d_res = parse_res(args.g_attn_res), parse_res(args.d_attn_res)
    cfg = dict(img_size=args.img_size, img_channels=args.img_channels, num_classes=num_classes,
               z_dim=args.z_dim, ch=args.ch, attn_res=g_res, attn_variant=args.attn_variant,
               class_names=class_names)
    g = Generator(args.img_size, args.img_channels, num_classes, args.z_dim, args.ch, g_res, args.attn_variant)
    d = Discriminator(args.img_size, args.img_channels, num_classes, args.ch, d_res, args.attn_variant)
    ema = EMA(g, args.ema_decay)
    opt_g, opt_d = make_optimizers(g, d, args.lr_g, args.lr_d)
    g, d, opt_g, opt_d = acc.prepare(g, d, opt_g, opt_d)
    ema.model.to(acc.device)

    ckpt_dir = Path(args.ckpt_root) / args.name
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    step, elapsed = 0, 0.0
    if args.resume and (ckpt_dir / "last.pt").is_file():
        state = torch.load(ckpt_dir / "last.pt", weights_only=True, map_location="cpu")
        acc.unwrap_model(g).load_state_dict(state["g"])
        acc.unwrap_model(d).load_state_dict(state["d"])
        ema.model.load_state_dict(state["ema"])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        torch.set_rng_state(state["rng"])
        step, elapsed = int(state["step"]), float(state["elapsed"])
        acc.print(f"resumed {args.name} at step {step} ({elapsed / 60:.1f} min in)")
    if args.export_only:
        if not (ckpt_dir / "last.pt").is_file():
            raise SystemExit(f"no checkpoint at {ckpt_dir / 'last.pt'}")
        state = torch.load(ckpt_dir / "last.pt", weights_only=True, map_location="cpu")
        ema.model.load_state_dict(state["ema"])
        export(ema.model, cfg, args.out or f"weights/{args.name}", args.seed, args.standing_batches)
        print(json.dumps({"exported": args.out or f"weights/{args.name}", "step": int(state["step"])}))
        return
    (ckpt_dir / "config.json").write_text(json.dumps({"model": cfg, "args": vars(args)}, indent=1))

    def save_ckpt():
        if acc.is_main_process:
            torch.save({"g": acc.unwrap_model(g).state_dict(), "d": acc.unwrap_model(d).state_dict(),
                        "ema": ema.model.state_dict(), "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
                        "rng": torch.get_rng_state(), "step": step, "elapsed": time.time() - t0},
                       ckpt_dir / "last.pt.tmp")
            (ckpt_dir / "last.pt.tmp").replace(ckpt_dir / "last.pt")  # never leave a torn checkpoint

    fixed_z = torch.randn(10, args.z_dim, generator=torch.Generator().manual_seed(1234)).to(acc.device)
    t0 = time.time() - elapsed
    last_ckpt = last_sample = time.time()
    budget_s = 60 * args.time_budget_min if args.time_budget_min else math.inf
    log = open(ckpt_dir / "log.jsonl", "a")
    bar = tqdm(total=args.steps, initial=step, desc=args.name, disable=not acc.is_main_process)
    stats, images_seen, t_rate = {}, 0, time.time()
    while step < args.steps and time.time() - t0 < budget_s:
        real, labels = batches.batch(step)
        stats = train_step(g, d, opt_g, opt_d, real.to(acc.device), labels.to(acc.device), acc.backward)
        ema.update(acc.unwrap_model(g), step)
        step += 1
        images_seen += real.shape[0]
        bar.update(1)
        if step % 10 == 0:
            bar.set_postfix(ld=f"{stats['loss_d']:.2f}", lg=f"{stats['loss_g']:.2f}")
        now = time.time()
        if now - last_sample > 60 * args.sample_every_min or step == 1:
            gammas = {"g": {k: float(a.gamma.detach()) for k, a in ema.model.attn.items()},
                      "d": {k: float(a.gamma.detach()) for k, a in acc.unwrap_model(d).attn.items()}}
            rec = {"step": step, **{k: round(v, 4) for k, v in stats.items()}, "gamma": gammas,
                   "img_per_s": round(images_seen / (now - t_rate), 1), "wall_min": round((now - t0) / 60, 2)}
            log.write(json.dumps(rec) + "\n")
            log.flush()
            if acc.is_main_process:
                sample_grid(ema.model, fixed_z, ckpt_dir / f"samples_{step:06d}.png", num_classes)
            last_sample, images_seen, t_rate = now, 0, now
        if now - last_ckpt > 60 * args.ckpt_every_min:
            save_ckpt()
            last_ckpt = now
    bar.close()
    save_ckpt()
    if acc.is_main_process:
        sample_grid(ema.model, fixed_z, ckpt_dir / f"samples_{step:06d}.png", num_classes)
        out = args.out or f"weights/{args.name}"
        export(ema.model, cfg, out, args.seed, args.standing_batches)
        summary = {"done": step, "wall_min": round((time.time() - t0) / 60, 2), "exported": out, **stats}
        log.write(json.dumps(summary) + "\n")
        print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
