"""Captioning latency and throughput, as ratios against the bare model forward, side by side in one run.

    python bench/captioning.py [--model sat-soft-fashion-scenes] [--images 12] [--repeats 3]
                               [--beam 3] [--batch 32] [--threads 1] [--device cpu]

On the first ``--images`` scenes of the fixed Fashion-Scenes test set, per image (batch 1):
- forward:   the bare network: encoder + teacher-forced decoder over the scene's first reference
             caption (one pass, no search), i.e. the least work that produces every word's map;
- caption:   ``m.caption(image, beam_size=1)`` (greedy) and ``beam_size=--beam``;
- tab:       the Captioning tab's whole handler with ``--beam``: decode the PNG, caption, render one
             overlay per word, the enlarged first map and the GIF (what a user waits for);
- render:    tab minus caption(--beam): the rendering share.
Each is the median over ``--repeats`` rounds of all images (methods interleaved per round, so a busy
machine slows them alike); ratios are against forward. Throughput: forward on a batch of ``--batch``
images vs one at a time, and the per-image rates of caption and tab (they take one image at a time).
Uses the bundled weights when present, else an untrained model of the same shape (then captions run
to max_len, so caption and tab costs are upper bounds; the label says which).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from attn_models.captioning.decoder import ARGMAX, SOFT  # noqa: E402
from attn_models.data.scenes import fixed_test_set  # noqa: E402
from demo import captioning_tab as tab  # noqa: E402
from demo.common import override_model  # noqa: E402


def get_model(name: str, device: str):
    weights = Path(__file__).resolve().parent.parent / "weights" / name / "model.safetensors"
    if weights.is_file():
        from attn_models import load

        return load(name, device=device), "bundled weights"
    from attn_models.captioning.model import ShowAttendTell

    torch.manual_seed(0)
    kind = "hard" if "hard" in name else "soft"
    return ShowAttendTell(attention=kind).to(device).eval(), "UNTRAINED stand-in (no bundled weights yet)"


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="sat-soft-fashion-scenes", choices=sorted(tab.MODEL_NAMES.values()))
    p.add_argument("--images", type=int, default=12)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--beam", type=int, default=3)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, source = get_model(args.model, args.device)
    kind = model.attention_kind
    with override_model(args.model, model):  # the tab's handler runs this very model
        run(args, model, source, kind)


def run(args, model, source: str, kind: str) -> None:
    device = args.device
    scenes = fixed_test_set(max(args.images, args.batch))
    images = [Image.fromarray(s.image) for s in scenes]
    tmp = Path(tempfile.mkdtemp(prefix="bench_captioning_"))
    paths = []
    for i, im in enumerate(images[:args.images]):
        paths.append(str(tmp / f"{i}.png"))
        im.save(paths[-1])
    mode = SOFT if kind == "soft" else ARGMAX

    @torch.inference_mode()
    def forward(batch: list[int]):
        x = torch.cat([model.preprocess(images[i]) for i in batch])
        tokens = model.tokenize([scenes[i].captions[0] for i in batch]).to(x.device)
        out = model.decoder(model.encode(x), tokens[:, :-1], mode=mode)
        sync(device)
        return out

    def caption(i: int, beam: int):
        with torch.inference_mode():
            out = model.caption(images[i], beam_size=beam, max_len=tab.MAX_LEN)
        sync(device)
        return out

    methods = {
        "forward": lambda i: forward([i]),
        "caption (greedy)": lambda i: caption(i, 1),
        f"caption (beam {args.beam})": lambda i: caption(i, args.beam),
        f"tab (beam {args.beam})": lambda i: tab.caption(paths[i], kind, args.beam, True, device=device),
    }
    for fn in methods.values():  # warm-up: first calls allocate, load fonts, build colormaps
        fn(0)
    per_round: dict[str, list[float]] = {m: [] for m in methods}
    for _ in range(args.repeats):
        totals = dict.fromkeys(methods, 0.0)
        for i in range(args.images):
            for name, fn in methods.items():
                totals[name] += timed(lambda fn=fn, i=i: fn(i))
        for name in methods:
            per_round[name].append(totals[name] / args.images)
    ms = {m: statistics.median(v) * 1e3 for m, v in per_round.items()}
    words = statistics.mean(len(caption(i, args.beam).words) for i in range(args.images))
    ms["render (tab - caption)"] = ms[f"tab (beam {args.beam})"] - ms[f"caption (beam {args.beam})"]

    batch = list(range(args.batch))
    forward(batch)
    t_batch = statistics.median(timed(lambda: forward(batch)) for _ in range(args.repeats))

    print(f"# bench/captioning.py  {args.model} ({source}), attention={kind}, device={device}, "
          f"threads={torch.get_num_threads()}, torch {torch.__version__}, "
          f"{platform.processor() or platform.machine()}, load avg {os.getloadavg()[0]:.1f}")
    print(f"# {args.images} test scenes, median of {args.repeats} rounds; mean caption length {words:.1f} words "
          f"(beam {args.beam}); grid {model.grid_hw}")
    print(f"{'per image (batch 1)':<26} {'ms':>9} {'x forward':>10}")
    for name, v in ms.items():
        print(f"{name:<26} {v:>9.1f} {v / ms['forward']:>10.2f}")
    rates = {
        f"forward, batch {args.batch}": args.batch / t_batch,
        "forward, batch 1": 1e3 / ms["forward"],
        f"caption (beam {args.beam})": 1e3 / ms[f"caption (beam {args.beam})"],
        f"tab (beam {args.beam})": 1e3 / ms[f"tab (beam {args.beam})"],
    }
    top = rates[f"forward, batch {args.batch}"]
    print(f"{'throughput':<26} {'images/s':>9} {'x batched':>10}")
    for name, r in rates.items():
        print(f"{name:<26} {r:>9.1f} {r / top:>10.3f}")


if __name__ == "__main__":
    main()
