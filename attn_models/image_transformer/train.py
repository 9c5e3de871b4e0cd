"""Train the Image Transformer (local 1D, local 2D or full attention) on class-conditional Fashion-MNIST.

    python -m attn_models.image_transformer.train --attention local1d --time-budget-min 75
    python -m attn_models.image_transformer.train --attention local2d --time-budget-min 75
    python -m attn_models.image_transformer.train --attention local1d --resume --time-budget-min 30  # continue

Resumable: checkpoints/<name>/ holds model.safetensors, optimizer.pt (plain tensors, loaded with
weights_only=True), state.json (step, images seen, elapsed time) and log.jsonl; --resume continues from there
(same data order, the time budget adds to the elapsed time). Seeded (model init and data order from --seed).
Accelerate-based, so the same command runs on CPU, one GPU or several (``accelerate launch``).
Learning rate: linear warm-up, constant, then a linear cool-down over the last --cooldown fraction of the
time budget (a wall-clock schedule, because the budget is in minutes; resuming extends the budget).
--export DIR writes the final model with save_pretrained (config.json + model.safetensors).
RGB data: --data imagefolder --data-dir DIR (class = sub-folder) with --image-size / --channels.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from attn_models.image_transformer.model import ImageTransformer

NAMES = {"local1d": "image-transformer-1d-fashion-mnist", "local2d": "image-transformer-2d-fashion-mnist",
         "full": "image-transformer-full-fashion-mnist"}


def load_data(args):
    """(train images uint8 (N, H, W, C), labels int64 (N,), num classes)."""
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


def model_config(args, num_classes: int, image_size: int, channels: int) -> dict:
    return dict(image_size=image_size, channels=channels, num_classes=num_classes if args.conditional else 0,
                d_model=args.d_model, heads=args.heads, layers=args.layers, ffn=args.ffn, dropout=args.dropout,
                attention=args.attention, query_len=args.query_len, memory_len=args.memory_len,
                block_h=args.block_h, block_w=args.block_w, flange_h=args.flange_h, flange_w=args.flange_w)


def lr_at(args, step: int, elapsed_min: float) -> float:
    warm = min(1.0, (step + 1) / args.warmup)
    if not args.time_budget_min:
        return args.lr * warm
    left = 1.0 - elapsed_min / args.time_budget_min  # fraction of the budget still to go
    cool = min(1.0, max(0.1, left / args.cooldown)) if args.cooldown > 0 else 1.0
    return args.lr * warm * cool


def batch_indices(seed: int, step: int, batch: int, n: int) -> np.ndarray:
    """Epoch-wise shuffles keyed on (seed, epoch): resuming at a step gives the same batches."""
    start = step * batch
    out = []
    while len(out) < batch:
        epoch, pos = divmod(start + len(out), n)
        perm = np.random.default_rng([seed, epoch]).permutation(n)
        out.extend(perm[pos: pos + batch - len(out)].tolist())
    return np.asarray(out)


def save_checkpoint(ckpt: Path, model, opt, state: dict) -> None:
    ckpt.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(ckpt / "model.tmp"))
    torch.save(opt.state_dict(), ckpt / "optimizer.tmp")
    (ckpt / "state.tmp").write_text(json.dumps(state, indent=1))
    for name, final in (("model.tmp", "model.safetensors"), ("optimizer.tmp", "optimizer.pt"),
                        ("state.tmp", "state.json")):
        (ckpt / name).replace(ckpt / final)  # each file atomically; state.json last marks completion


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--attention", choices=("local1d", "local2d", "full"), default="local1d")
    p.add_argument("--name", default=None, help="run name (default from --attention)")
    p.add_argument("--ckpt-root", default="checkpoints")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (the machine is shared)")
    p.add_argument("--data", choices=("fashion-mnist", "imagefolder"), default="fashion-mnist")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--image-size", type=int, default=28, help="imagefolder only")
    p.add_argument("--channels", type=int, default=3, help="imagefolder only")
    p.add_argument("--limit", type=int, default=None, help="use only the first N training images (smoke tests)")
    p.add_argument("--no-conditional", dest="conditional", action="store_false")
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--ffn", type=int, default=512)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--query-len", type=int, default=56)
    p.add_argument("--memory-len", type=int, default=112)
    p.add_argument("--block-h", type=int, default=4)
    p.add_argument("--block-w", type=int, default=14)
    p.add_argument("--flange-h", type=int, default=4)
    p.add_argument("--flange-w", type=int, default=7)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=100, help="warm-up steps")
    p.add_argument("--cooldown", type=float, default=0.2, help="fraction of the time budget for LR cool-down")
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--time-budget-min", type=float, default=None, help="total training minutes (incl. resumed)")
    p.add_argument("--ckpt-every-min", type=float, default=5.0)
    p.add_argument("--export", default=None, help="save_pretrained the final model into this folder")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if args.max_steps is None and args.time_budget_min is None:
        p.error("give --time-budget-min or --max-steps")

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    name = args.name or NAMES[args.attention]
    ckpt = Path(args.ckpt_root) / name
    acc = Accelerator()
    x_np, y_np, num_classes = load_data(args)
    if args.limit:
        x_np, y_np = x_np[: args.limit], y_np[: args.limit]
    _, h, w, c = x_np.shape
    x_all = torch.from_numpy(np.ascontiguousarray(x_np)).reshape(len(x_np), -1).long()  # (N, H*W*C) raster
    y_all = torch.from_numpy(y_np)

    state = {"step": 0, "images": 0, "elapsed_s": 0.0}
    config = model_config(args, num_classes, h, c)
    if args.resume and (ckpt / "state.json").is_file():
        state = json.loads((ckpt / "state.json").read_text())
        config = json.loads((ckpt / "config.json").read_text())  # the run's own architecture wins
    model = ImageTransformer(**config)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.98), weight_decay=0.0)
    if state["step"]:
        model.load_state_dict(load_file(str(ckpt / "model.safetensors")), strict=True)
        opt.load_state_dict(torch.load(ckpt / "optimizer.pt", weights_only=True))
    ckpt.mkdir(parents=True, exist_ok=True)
    (ckpt / "config.json").write_text(json.dumps(config, indent=1))
    (ckpt / "args.json").write_text(json.dumps(vars(args), indent=1))
    model, opt = acc.prepare(model, opt)
    raw = acc.unwrap_model(model)
    model.train()
    log = (ckpt / "log.jsonl").open("a")
    t_start, elapsed0 = time.time(), state["elapsed_s"]
    last_ckpt = time.time()
    ema = state.get("bpd_ema")
    n_params = sum(p.numel() for p in raw.parameters())
    acc.print(f"{name}: {n_params / 1e6:.2f}M parameters, {len(x_all)} training images, from step {state['step']}")
    bar = tqdm(disable=args.no_progress or not acc.is_local_main_process, initial=state["step"],
               total=args.max_steps, unit="step")
    while True:
        elapsed_min = (elapsed0 + time.time() - t_start) / 60
        if args.max_steps is not None and state["step"] >= args.max_steps:
            break
        if args.time_budget_min is not None and elapsed_min >= args.time_budget_min:
            break
        idx = batch_indices(args.seed, state["step"], args.batch_size, len(x_all))
        xb, yb = x_all[idx].to(acc.device), y_all[idx].to(acc.device)
        lr = lr_at(args, state["step"], elapsed_min)
        for g in opt.param_groups:
            g["lr"] = lr
        logits = model(xb, yb if raw.class_conditional else None)
        loss = F.cross_entropy(logits.flatten(0, 1), xb.flatten())
        opt.zero_grad(set_to_none=True)
        acc.backward(loss)
        if args.grad_clip:
            acc.clip_grad_norm_(model.parameters(), args.grad_clip)
        opt.step()
        bpd = loss.item() / math.log(2)
        ema = bpd if ema is None else 0.98 * ema + 0.02 * bpd
        state["step"] += 1
        state["images"] += len(idx) * acc.num_processes
        bar.update(1)
        bar.set_postfix(bpd=f"{ema:.3f}", lr=f"{lr:.1e}", min=f"{elapsed_min:.1f}")
        if state["step"] % 20 == 0:
            log.write(json.dumps({"step": state["step"], "images": state["images"], "bpd": bpd, "bpd_ema": ema,
                                  "lr": lr, "elapsed_min": elapsed_min}) + "\n")
            log.flush()
        if time.time() - last_ckpt > args.ckpt_every_min * 60 and acc.is_main_process:
            state["elapsed_s"], state["bpd_ema"] = elapsed0 + time.time() - t_start, ema
            save_checkpoint(ckpt, raw, opt, state)
            last_ckpt = time.time()
    bar.close()
    state["elapsed_s"] = elapsed0 + time.time() - t_start
    state["bpd_ema"] = ema
    if acc.is_main_process:
        save_checkpoint(ckpt, raw, opt, state)
        if args.export:
            raw.save_pretrained(args.export)
    acc.print(f"done: step {state['step']}, {state['images']} images, {state['elapsed_s'] / 60:.1f} min, "
              f"train bits/dim (EMA) {ema}")
    log.close()
    return state


if __name__ == "__main__":
    main()
