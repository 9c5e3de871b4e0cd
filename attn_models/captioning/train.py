"""Train Show, Attend and Tell (Xu et al. 2015), in two stages as the paper does in spirit:

1. ``--stage encoder``: pretrain the small CNN on a supervised tag task built from the Fashion-Scenes
   training data: which colour and which class an item has, from per-cell tag logits max-pooled over
   the grid (so the evidence has to sit where the item is). To spend the CPU on items rather than on
   black canvas, the pretraining canvas is ``--pretrain-canvas`` px (default 40) holding one tinted
   training item at a random offset, drawn exactly as the scenes draw it. The paper used a frozen ImageNet VGG;
   we have no ImageNet for 96x96 tinted Fashion-MNIST, and joint training from scratch stalls at the
   language prior (issue 3), so this stands in for it.
2. ``--stage decoder`` (default): freeze that encoder and train the attention decoder, soft or hard.

    python -m attn_models.captioning.train --stage encoder --name sat-encoder --time-budget-min 12
    python -m attn_models.captioning.train --attention soft --data fashion-scenes --name sat-soft \
        --encoder-from checkpoints/sat-encoder/encoder.safetensors --time-budget-min 70 \
        --export weights/sat-soft-fashion-scenes
    python -m attn_models.captioning.train --attention soft --data karpathy --karpathy-json \
        dataset_flickr8k.json --image-root Flicker8k_Dataset --encoder vgg16 --image-size 224 --imagenet

Resumable (``--resume`` picks up checkpoints/<name>/state.pt), seeded (scene i and the caption chosen
for it depend only on the seed and the step), Accelerate-based (``accelerate launch`` for many GPUs).
The learning rate follows a cosine over the larger of step/--steps and elapsed/--time-budget-min, so a
run cut short by its time budget still anneals; that makes the schedule depend on wall time.
"""
from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm import tqdm

from attn_models.captioning.encoder import SmallCNN, TorchvisionEncoder
from attn_models.captioning.model import ReinforceState, ShowAttendTell
from attn_models.data.fashion_mnist import load_fashion_mnist
from attn_models.data.scenes import (
    CLASS_WORDS,
    COLOURS,
    ITEM,
    PALETTE,
    VOCAB,
    fashion_scenes,
    make_scene,
    object_recall,
    scene_rng,
)

VAL_SEED = 777  # validation scenes: train images, a seed the training stream never uses at these indices


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stage", choices=["encoder", "decoder"], default="decoder")
    p.add_argument("--attention", choices=["soft", "hard"], default="soft")
    p.add_argument("--data", choices=["fashion-scenes", "karpathy"], default="fashion-scenes")
    p.add_argument("--karpathy-json", help="dataset_coco.json / dataset_flickr8k.json (with --data karpathy)")
    p.add_argument("--image-root", help="folder the JSON's image paths are relative to")
    p.add_argument("--name", help="run name: checkpoints go to <checkpoint-dir>/<name>/")
    p.add_argument("--checkpoint-dir", default="checkpoints")
    p.add_argument("--encoder", default="small", help="small | vgg16 | resnet18/34/50/101")
    p.add_argument("--encoder-channels", type=int, default=96)
    p.add_argument("--encoder-widths", type=int, nargs=3, default=[24, 48, 64], metavar="W",
                   help="small encoder: widths of its first three conv blocks")
    p.add_argument("--image-size", type=int, default=None, help="default 96 (scenes) or 224 (photos)")
    p.add_argument("--encoder-from", help="encoder weights (safetensors) from --stage encoder")
    p.add_argument("--imagenet", action="store_true", help="torchvision encoder: load ImageNet weights (online)")
    p.add_argument("--init-from", help="warm start: a model.safetensors of the same architecture")
    p.add_argument("--embed-dim", type=int, default=64)
    p.add_argument("--hidden-dim", type=int, default=256)
    p.add_argument("--attn-dim", type=int, default=128)
    p.add_argument("--dropout", type=float, default=0.3)
    p.add_argument("--ds-lambda", type=float, default=0.0, help="doubly stochastic penalty weight")
    p.add_argument("--reinforce-weight", type=float, default=1.0)
    p.add_argument("--entropy-weight", type=float, default=0.01)
    p.add_argument("--reward", choices=["sentence", "to_go"], default="sentence",
                   help="hard: REINFORCE reward, the paper's whole-sentence log-likelihood or the reward to go")
    p.add_argument("--reward-discount", type=float, default=1.0,
                   help="hard, --reward to_go: weight of word t' in the reward of location t is discount^(t'-t)")
    p.add_argument("--expect-prob", type=float, default=0.5, help="hard: P(use expected context)")
    p.add_argument("--targets", choices=["canonical", "all"], default="canonical",
                   help="fashion-scenes: train on the reading-order caption, or on a random reference")
    p.add_argument("--eval-items", type=int, default=2000, help="encoder stage: validation items")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=None, help="default 1e-3 (decoder), 2e-3 (encoder)")
    p.add_argument("--steps", type=int, default=10000)
    p.add_argument("--time-budget-min", type=float, default=0.0, help="stop cleanly after this long (0: no limit)")
    p.add_argument("--pretrain-canvas", type=int, default=40, help="encoder stage: canvas side (>= 28)")
    p.add_argument("--flip", action="store_true",
                   help="encoder stage: mirror half the items left-right (clothes stay the same class)")
    p.add_argument("--weight-decay", type=float, default=0.0, help="encoder stage: AdamW weight decay")
    p.add_argument("--tag-loss", choices=["max", "cells"], default="max",
                   help="encoder stage: 'max' = one colour/class per canvas from logits max-pooled over the grid; "
                        "'cells' = every cell labelled: the item's colour/class where the cell's centre lies in "
                        "the item's box, 'background' elsewhere (keeps item evidence where the item is)")
    p.add_argument("--encoder-init", help="encoder stage: start from these encoder weights (safetensors)")
    p.add_argument("--feature-pool", type=int, default=0,
                   help="decoder on scenes: encode this many training scenes once and sample batches from "
                        "them (the encoder is frozen, so this only saves time); 0 = fresh scenes every step")
    p.add_argument("--pool-cache", help="safetensors file to reuse the encoded pool between runs "
                   "(same --encoder-from, --seed and --feature-pool)")
    p.add_argument("--pool-only", action="store_true", help="build --pool-cache and exit")
    p.add_argument("--min-count", type=int, default=5, help="karpathy: vocabulary min word count")
    p.add_argument("--max-words", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--checkpoint-every-min", type=float, default=4.0)
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--eval-scenes", type=int, default=150)
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave as is)")
    p.add_argument("--export", help="save_pretrained() the final model into this folder")
    args = p.parse_args(argv)
    if args.image_size is None:
        args.image_size = 96 if args.data == "fashion-scenes" else 224
    if args.lr is None:
        args.lr = 2e-3 if args.stage == "encoder" else 1e-3
    if args.name is None:
        args.name = "sat-encoder" if args.stage == "encoder" else f"sat-{args.attention}"
    if args.data == "karpathy" and not (args.karpathy_json and args.image_root):
        p.error("--data karpathy needs --karpathy-json and --image-root")
    return args


# ---- shared plumbing -------------------------------------------------------------------------------
class RunLog:
    def __init__(self, run_dir: Path, enabled: bool):
        self.path, self.enabled = run_dir / "log.jsonl", enabled

    def write(self, **rec) -> None:
        if self.enabled:
            with open(self.path, "a") as f:
                f.write(json.dumps(rec) + "\n")


def lr_at(args, step: int, elapsed: float) -> float:
    progress = step / max(1, args.steps)
    if args.time_budget_min > 0:
        progress = max(progress, elapsed / (60 * args.time_budget_min))
    warm = min(1.0, (step + 1) / 200)
    return args.lr * warm * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def images_tensor(scenes) -> torch.Tensor:
    return torch.from_numpy(np.stack([s.image for s in scenes])).permute(0, 3, 1, 2).float() / 255.0


def train_scenes(args, images, labels, step: int, rank: int = 0, world: int = 1):
    first = (step * world + rank) * args.batch_size
    return [make_scene(scene_rng("train", args.seed, i), images, labels)
            for i in range(first, first + args.batch_size)]


def save_state(path: Path, state: dict) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def load_state(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


# ---- stage 1: encoder pretraining on tags ----------------------------------------------------------
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
                  with_offsets: bool = False):
    """n canvases of size x size, each one tinted item at a random offset: (x, colour ids, class ids).
    With ``flip``, half the items are mirrored left-right (drawn after the other draws, so the
    canvases without ``flip`` stay as they were)."""
    if size < ITEM:
        raise ValueError(f"--pretrain-canvas must be >= {ITEM}")
    x = np.zeros((n, size, size, 3), np.uint8)
    cols = rng.integers(0, len(COLOURS), size=n)
    picks = rng.integers(0, len(images), size=n)
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
    outs = [net(x[i:i + 250]) for i in range(0, len(x), 250)]
    net.train()
    col_logits, cls_logits = torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])
    return {"val_colour_acc": float((col_logits.argmax(1) == cols).float().mean()),
            "val_class_acc": float((cls_logits.argmax(1) == cls).float().mean()),
            "val_class_ce": float(F.cross_entropy(cls_logits, cls))}


def train_encoder(args, accelerator: Accelerator, run_dir: Path, log: RunLog) -> None:
    images, labels = load_fashion_mnist("train")
    cells = args.tag_loss == "cells"
    net = TagNet(args.encoder_channels, args.encoder_widths, background=cells)
    if args.encoder_init:
        net.encoder.load_state_dict(load_file(args.encoder_init), strict=True)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    step, elapsed = 0, 0.0
    state_path = run_dir / "state.pt"
    if args.resume and state_path.exists():
        st = load_state(state_path)
        net.load_state_dict(st["model"])
        opt.load_state_dict(st["optim"])
        step, elapsed = st["step"], st["elapsed"]
    net, opt = accelerator.prepare(net, opt)
    # validation: Fashion-MNIST *test* images, so the accuracy says how well the features generalise
    # (only reported; nothing is selected on it)
    test_images, test_labels = load_fashion_mnist("test")
    val = item_canvases(np.random.default_rng(VAL_SEED), test_images, test_labels, args.eval_items,
                        args.pretrain_canvas)
    t0, last_ckpt = time.time() - elapsed, time.time()
    bar = tqdm(total=args.steps, initial=step, disable=not accelerator.is_main_process, desc="encoder",
               mininterval=5)

    def checkpoint():
        if accelerator.is_main_process:
            raw = accelerator.unwrap_model(net)
            save_state(state_path, {"model": raw.state_dict(), "optim": opt.state_dict(), "step": step,
                                    "elapsed": time.time() - t0})
            save_file({k: v.contiguous() for k, v in raw.encoder.state_dict().items()},
                      str(run_dir / "encoder.safetensors"))

    while step < args.steps:
        elapsed = time.time() - t0
        if args.time_budget_min and elapsed > 60 * args.time_budget_min:
            break
        for g in opt.param_groups:
            g["lr"] = lr_at(args, step, elapsed)
        rng = np.random.default_rng([args.seed, step, accelerator.process_index])
        x, cols, cls, offs = item_canvases(rng, images, labels, args.batch_size, args.pretrain_canvas, args.flip,
                                           with_offsets=True)
        if cells:  # per-cell targets replace the per-canvas labels
            grid = args.pretrain_canvas // 8  # the encoder's stride
            cols = cell_targets(offs, cols, len(COLOURS), grid)
            cls = cell_targets(offs, cls, len(CLASS_WORDS), grid)
        x, cols, cls = x.to(accelerator.device), cols.to(accelerator.device), cls.to(accelerator.device)
        if cells:
            col_logits, cls_logits = net(x, per_cell=True)
        else:
            col_logits, cls_logits = net(x)
        loss = F.cross_entropy(col_logits, cols) + F.cross_entropy(cls_logits, cls)
        opt.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        opt.step()
        step += 1
        bar.update(1)
        if step % 20 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")
        if step % args.eval_every == 0 and accelerator.is_main_process:
            m = tag_metrics(accelerator.unwrap_model(net), val)
            log.write(step=step, elapsed=round(time.time() - t0, 1), loss=loss.item(), **m)
            tqdm.write(f"step {step}: {m}")
        if time.time() - last_ckpt > 60 * args.checkpoint_every_min:
            checkpoint()
            last_ckpt = time.time()
    bar.close()
    checkpoint()
    if accelerator.is_main_process:
        m = tag_metrics(accelerator.unwrap_model(net), val)
        log.write(step=step, elapsed=round(time.time() - t0, 1), final=True, **m)
        print(f"encoder done: step {step}, {time.time() - t0:.0f}s, {m}")


# ---- stage 2: the decoder --------------------------------------------------------------------------
def build_model(args, vocab: list[str] | None) -> ShowAttendTell:
    if vocab is None:  # Fashion-Scenes: write the vocabulary into config.json so the weights stand alone
        vocab = list(VOCAB)
    model = ShowAttendTell(vocab=vocab, attention=args.attention, encoder=args.encoder,
                           encoder_channels=args.encoder_channels, encoder_widths=tuple(args.encoder_widths),
                           image_size=args.image_size,
                           embed_dim=args.embed_dim, hidden_dim=args.hidden_dim, attn_dim=args.attn_dim,
                           dropout=args.dropout)
    if args.encoder_from:
        model.encoder.load_state_dict(load_file(args.encoder_from), strict=True)
    elif args.imagenet and isinstance(model.encoder, TorchvisionEncoder):
        model.encoder.load_imagenet_weights()
    if args.init_from:
        model.load_state_dict(load_file(args.init_from), strict=True)
    # frozen encoder, as in the paper: eval-mode BatchNorm, no gradients
    for p_ in model.encoder.parameters():
        p_.requires_grad_(False)
    return model


def set_train_mode(model: ShowAttendTell) -> None:
    model.train()
    model.encoder.eval()


@torch.no_grad()
def validate(model: ShowAttendTell, scenes) -> dict[str, float]:
    from PIL import Image

    from attn_models.captioning.evaluate import attention_correctness

    model.eval()
    named = total = 0
    corr: list[float] = []
    for s in scenes:
        cap = model.caption(Image.fromarray(s.image), beam_size=1, max_len=20)
        n, t = object_recall(s, cap.words)
        named, total = named + n, total + t
        corr += [c for c in attention_correctness(cap.alphas, cap.words, s) if c is not None]
    set_train_mode(model)
    return {"val_recall": named / max(1, total), "val_att_correctness": float(np.mean(corr)) if corr else 0.0}


class ScenePool:
    """Training scenes encoded once by the frozen encoder; batches are drawn from them by seed+step."""

    def __init__(self, model: ShowAttendTell, args, device):
        scenes = fashion_scenes("train", args.feature_pool, args.seed)
        self.captions = [s.captions for s in scenes]
        cache = Path(args.pool_cache) if args.pool_cache else None
        if cache is not None and cache.exists():  # written by an earlier run with the same encoder
            self.features = load_file(str(cache))["features"]
            if self.features.shape[0] != len(scenes):
                raise SystemExit(f"{cache} holds {self.features.shape[0]} scenes, not --feature-pool {len(scenes)}")
            return
        chunks = []
        with torch.no_grad():
            for i in tqdm(range(0, len(scenes), 256), desc="encoding pool", mininterval=10):
                chunks.append(model.encode(images_tensor(scenes[i:i + 256]).to(device)).half().cpu())
        self.features = torch.cat(chunks)  # (N, L, D) float16
        if cache is not None:
            tmp = cache.with_suffix(".tmp")
            save_file({"features": self.features}, str(tmp))
            tmp.replace(cache)

    def batch(self, rng: np.random.Generator, size: int):
        idx = rng.integers(0, len(self.captions), size=size)
        return self.features[idx].float(), [self.captions[i] for i in idx]


def train_decoder(args, accelerator: Accelerator, run_dir: Path, log: RunLog) -> None:
    device = accelerator.device
    vocab = None
    loader_iter = None
    if args.data == "karpathy":
        from attn_models.data.captions import KarpathyCaptions, build_vocab, collate

        ds = KarpathyCaptions(args.karpathy_json, args.image_root, "train", args.image_size, args.max_words)
        vocab = build_vocab(ds.captions(), args.min_count)
        loader = torch.utils.data.DataLoader(ds, batch_size=args.batch_size, shuffle=True, collate_fn=collate,
                                             drop_last=len(ds) > args.batch_size,
                                             generator=torch.Generator().manual_seed(args.seed))
    model = build_model(args, vocab)
    params = [p_ for p_ in model.parameters() if p_.requires_grad]
    opt = torch.optim.Adam(params, lr=args.lr)
    step, elapsed, rstate = 0, 0.0, ReinforceState()
    state_path = run_dir / "state.pt"
    if args.resume and state_path.exists():
        st = load_state(state_path)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["optim"])
        step, elapsed = st["step"], st["elapsed"]
        rstate.baseline = st.get("baseline")
    model.to(device)
    set_train_mode(model)
    if args.data == "karpathy":
        model, opt, loader = accelerator.prepare(model, opt, loader)
    else:
        model, opt = accelerator.prepare(model, opt)
        images, labels = load_fashion_mnist("train")
    raw = accelerator.unwrap_model(model)
    pool = ScenePool(raw, args, device) if args.data == "fashion-scenes" and args.feature_pool > 0 else None
    if args.pool_only:
        return
    val = fashion_scenes("train", args.eval_scenes, VAL_SEED) if args.data == "fashion-scenes" else None
    t0, last_ckpt = time.time() - elapsed, time.time()
    bar = tqdm(total=args.steps, initial=step, disable=not accelerator.is_main_process, desc=args.name,
               mininterval=5)

    def checkpoint():
        if accelerator.is_main_process:
            save_state(state_path, {"model": raw.state_dict(), "optim": opt.state_dict(), "step": step,
                                    "elapsed": time.time() - t0, "baseline": rstate.baseline})

    while step < args.steps:
        elapsed = time.time() - t0
        if args.time_budget_min and elapsed > 60 * args.time_budget_min:
            break
        for g in opt.param_groups:
            g["lr"] = lr_at(args, step, elapsed)
        rng = np.random.default_rng([args.seed, step, accelerator.process_index])
        gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        torch.manual_seed(int(rng.integers(2**62)))  # dropout: reproducible per step, also after --resume
        feats = x = None
        if pool is not None:
            feats, refs = pool.batch(rng, args.batch_size)
            feats = feats.to(device)
        elif args.data == "fashion-scenes":
            scenes = train_scenes(args, images, labels, step, accelerator.process_index, accelerator.num_processes)
            refs, x = [s.captions for s in scenes], images_tensor(scenes).to(device)
        else:
            try:
                x, refs = next(loader_iter)
            except (StopIteration, TypeError):
                loader_iter = iter(loader)
                x, refs = next(loader_iter)
        if args.data == "fashion-scenes" and args.targets == "canonical":
            chosen = [r[0] for r in refs]  # the reading-order caption (scenes.py says why)
        else:
            chosen = [r[int(rng.integers(len(r)))] for r in refs]  # one reference per image per step
        tokens = raw.tokenize(chosen, args.max_words).to(device)
        loss, stats = model(tokens, images=x, annotations=feats, ds_lambda=args.ds_lambda, reinforce=rstate,
                            reinforce_weight=args.reinforce_weight, entropy_weight=args.entropy_weight,
                            expect_prob=args.expect_prob, reward=args.reward,
                            reward_discount=args.reward_discount, generator=gen)
        opt.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(params, 5.0)
        opt.step()
        step += 1
        bar.update(1)
        if step % 20 == 0:
            bar.set_postfix(nll=f"{stats['nll_per_word']:.3f}")
        if step % 50 == 0 and accelerator.is_main_process:
            log.write(step=step, elapsed=round(time.time() - t0, 1), lr=opt.param_groups[0]["lr"], **stats)
        if val is not None and step % args.eval_every == 0 and accelerator.is_main_process:
            m = validate(raw, val)
            log.write(step=step, elapsed=round(time.time() - t0, 1), **m)
            tqdm.write(f"step {step}: nll/word {stats['nll_per_word']:.3f} {m}")
        if time.time() - last_ckpt > 60 * args.checkpoint_every_min:
            checkpoint()
            last_ckpt = time.time()
    bar.close()
    checkpoint()
    if accelerator.is_main_process:
        info = {"command": "python -m attn_models.captioning.train " + shlex.join(args.argv),
                "steps": step, "wall_time_s": round(time.time() - t0, 1), "batch_size": args.batch_size}
        if val is not None:
            info.update(validate(raw, val))
        log.write(final=True, **info)
        (run_dir / "train_info.json").write_text(json.dumps(info, indent=2))
        if args.export:
            raw.eval()
            raw.save_pretrained(args.export)
        print(f"done: {info}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # for the logs: the command that made a run
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    accelerator = Accelerator()
    run_dir = Path(args.checkpoint_dir) / args.name
    run_dir.mkdir(parents=True, exist_ok=True)
    log = RunLog(run_dir, accelerator.is_main_process)
    log.write(start=True, argv=args.argv, resume=args.resume)
    if args.stage == "encoder":
        if args.encoder != "small":
            raise SystemExit("--stage encoder pretrains the small CNN; torchvision encoders use --imagenet")
        train_encoder(args, accelerator, run_dir, log)
    else:
        train_decoder(args, accelerator, run_dir, log)


if __name__ == "__main__":
    main()
