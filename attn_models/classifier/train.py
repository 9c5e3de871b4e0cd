"""Train the Fashion-MNIST classifier used as the GAN-metric feature extractor.

    python -m attn_models.classifier.train --epochs 8 --out weights/fashion-mnist-classifier

Resumable (--resume reads checkpoints/fashion-mnist-classifier/last.pt), seeded, Accelerate-based.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from torch.nn import functional as F
from tqdm import tqdm

from attn_models.data import load_fashion_mnist
from attn_models.classifier.model import FashionMNISTClassifier


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random horizontal flip and +-2 px shift: label-preserving for clothing silhouettes."""
    n = x.shape[0]
    flip = torch.rand(n, generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    padded = F.pad(x, (2, 2, 2, 2))
    dy, dx = torch.randint(0, 5, (2,), generator=gen).tolist()  # one shift per batch keeps it cheap
    return padded[..., dy:dy + 28, dx:dx + 28]


@torch.inference_mode()
def accuracy(model, images: np.ndarray, labels: np.ndarray, batch_size: int = 1000) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(images), batch_size):
        pred = model(images[i:i + batch_size]).argmax(-1).cpu().numpy()
        correct += int((pred == labels[i:i + batch_size]).sum())
    return correct / len(images)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (machine is shared)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--ckpt-dir", default="checkpoints/fashion-mnist-classifier")
    p.add_argument("--out", default="weights/fashion-mnist-classifier")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--time-budget-min", type=float, default=None)
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    acc = Accelerator()
    train_x, train_y = load_fashion_mnist("train", args.data_dir)
    test_x, test_y = load_fashion_mnist("test", args.data_dir)
    x_all = torch.from_numpy(train_x.copy()).float().div(255)[:, None]  # (60000, 1, 28, 28)
    y_all = torch.from_numpy(train_y.copy())

    model = FashionMNISTClassifier()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=5e-4)
    steps_per_epoch = len(x_all) // args.batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch)
    model, opt = acc.prepare(model, opt)
    ckpt_dir = Path(args.ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    start_epoch, elapsed = 0, 0.0
    if args.resume and (ckpt_dir / "last.pt").is_file():
        state = torch.load(ckpt_dir / "last.pt", weights_only=True)
        acc.unwrap_model(model).load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        start_epoch, elapsed = state["epoch"], state["elapsed"]
    t0 = time.time() - elapsed
    log = open(ckpt_dir / "log.jsonl", "a")
    for epoch in range(start_epoch, args.epochs):
        gen = torch.Generator().manual_seed(args.seed * 1000 + epoch)  # epoch-seeded: resume is exact
        order = torch.randperm(len(x_all), generator=gen)
        model.train()
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{args.epochs}", disable=not acc.is_main_process)
        for step in bar:
            idx = order[step * args.batch_size:(step + 1) * args.batch_size]
            x = augment(x_all[idx], gen).to(acc.device)
            loss = F.cross_entropy(model(x), y_all[idx].to(acc.device), label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            acc.backward(loss)
            opt.step()
            sched.step()
            if step % 50 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}")
        test_acc = accuracy(acc.unwrap_model(model), test_x, test_y)
        rec = {"epoch": epoch + 1, "loss": loss.item(), "test_acc": test_acc, "wall_s": round(time.time() - t0, 1)}
        print(json.dumps(rec), flush=True)
        log.write(json.dumps(rec) + "\n")
        log.flush()
        torch.save({"model": acc.unwrap_model(model).state_dict(), "opt": opt.state_dict(),
                    "sched": sched.state_dict(), "epoch": epoch + 1, "elapsed": time.time() - t0},
                   ckpt_dir / "last.pt")
        if args.time_budget_min and time.time() - t0 > 60 * args.time_budget_min:
            print("time budget reached; stopping", flush=True)
            break
    final = acc.unwrap_model(model).eval()
    if acc.is_main_process:
        final.save_pretrained(args.out)
        print(json.dumps({"saved": args.out, "test_acc": accuracy(final, test_x, test_y),
                          "wall_s": round(time.time() - t0, 1)}), flush=True)


if __name__ == "__main__":
    main()
