"""SAGAN generation cost, measured side by side in one run.

    python bench/sagan.py [--batch 64] [--repeats 15] [--threads 1] [--device cpu]

Prints (medians over interleaved repeats):
- images/s of m.generate with the attention maps returned vs without (maps cost a (N, Q, K) copy);
- the self-attention block's time vs the rest of G (block timed alone on the real feature map it sees,
  captured with a forward hook), and G with the block skipped (attention_off) vs full G.
Uses the shipped sagan-fashion-mnist weights when present, else an untrained model of the same shape.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from attn_models.sagan.model import SAGAN  # noqa: E402


def timed(fn, repeats: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    try:
        from attn_models import load

        model, source = load("sagan-fashion-mnist", device=args.device), "shipped weights"
    except Exception as e:  # no weights: the architecture alone decides the cost
        model, source = SAGAN().to(args.device).eval(), f"untrained ({type(e).__name__})"
    g = model.generator
    labels = [k % 10 for k in range(args.batch)]
    z = model.latents(args.batch, 0).to(args.device)
    y = torch.tensor(labels, device=args.device)
    res = model.vis_layer
    block = g.attn[res]
    feats = {}
    hook = block.register_forward_hook(lambda m, inp, out: feats.setdefault("x", inp[0].detach()))
    with torch.inference_mode():
        g(z, y)
    hook.remove()
    x_attn = feats["x"]
    sync = torch.cuda.synchronize if str(args.device).startswith("cuda") else (lambda: None)

    def run(fn):
        def wrapped():
            with torch.inference_mode():
                fn()
            sync()
        return wrapped

    cases = {
        "generate, maps returned": run(lambda: model.generate(labels, seed=0, return_attention=True)),
        "generate, no maps": run(lambda: model.generate(labels, seed=0, return_attention=False)),
        "G forward (full)": run(lambda: g(z, y)),
        "G forward (attention skipped)": run(lambda: g(z, y, attention_off=True)),
        "attention block alone": run(lambda: block(x_attn)),
    }
    times = {k: [] for k in cases}
    for _ in range(args.repeats):  # interleaved so drifting machine load hits every case alike
        for k, fn in cases.items():
            times[k] += timed(fn, 1)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"SAGAN generator ({source}), batch {args.batch}, device {args.device}, threads {args.threads}, "
          f"attention at {res}x{res} -> keys {block.key_hw(int(res), int(res))}")
    for k, v in med.items():
        print(f"  {k:32s} {v * 1e3:9.2f} ms   {args.batch / v:9.1f} images/s")
    rest = med["G forward (full)"] - med["attention block alone"]
    print("ratios (same run):")
    ratio_maps = med["generate, maps returned"] / med["generate, no maps"]
    print(f"  images/s without maps / with maps:          {ratio_maps:.3f}")
    print(f"  attention block / rest of G:                {med['attention block alone'] / rest:.3f}")
    print(f"  attention block / full G:                   {med['attention block alone'] / med['G forward (full)']:.3f}")
    print(f"  full G / G with attention skipped:          "
          f"{med['G forward (full)'] / med['G forward (attention skipped)']:.3f}")


if __name__ == "__main__":
    main()
