"""Cost of one SAGAN training step with self-attention and without (``--attn-res none``), side by side in one run.

    python bench/sagan_train_step.py [--repeats 20] [--warmup 3] [--json runs/sagan-step-cost.json] [TRAIN FLAGS]

Both arms are built by the training task itself (``attn_models.sagan.train.SAGANTask``: its flags, its ``setup``,
its ``train_step``: one D update, one G update, the EMA update) with the same TRAIN FLAGS, which are those of
``python -m attn_models.sagan.train`` (defaults: the real runs' ``--ch 16 --batch-size 32 --img-size 32``,
attention at 16x16 in G and D, ``--threads 1``, Fashion-MNIST held in memory); the second arm adds
``--attn-res none``. After ``--warmup`` steps of each, the arms take turns (ABBA order, so neither always goes
first) for ``--repeats`` steps each, in one process with the same torch threads; each arm's median seconds per
step and their ratio are printed and, with ``--json``, written as

    {"attention_s_per_step", "none_s_per_step", "ratio" (attention / none), "repeats", "threads", "torch",
     "load_average" (1/5/15-min, before and after), "command", "warmup", "arms" (each arm's flags and
     attention resolutions), "times_s" (every timed step)}

The ratio converts steps into equal wall time: the attention arm at step S took as long as the no-attention arm
at step S * ratio (``python -m attn_models.cards ... --compare-run ... --step-cost JSON``). The runs' own
``elapsed_s`` cannot do this: they were paused, resumed and shared the CPU with different neighbours.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from attn_models import training  # noqa: E402
from attn_models.sagan.train import SAGANTask, parse_res  # noqa: E402

ARMS = {"attention": [], "none": ["--attn-res", "none"]}


def build(flags: list[str]) -> SAGANTask:
    """A task set up exactly as ``training.run`` sets it up (flags, threads, Accelerator, seed, ``setup``),
    without its run directory, log or checkpoints."""
    from accelerate import Accelerator

    task = SAGANTask()
    args = training.parse(task, flags)
    if args.threads:
        torch.set_num_threads(args.threads)
    task.args = args
    task.acc = Accelerator(cpu=args.device == "cpu", mixed_precision=args.mixed_precision)
    torch.manual_seed(args.seed)
    task.setup()
    return task


def step_once(task: SAGANTask, step: int) -> float:
    """Seconds of one ``task.train_step`` (seeded per step as the scaffold does; the seeding is not timed)."""
    seed = training.step_seed(task.args.seed, step, task.rank)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    sync = torch.cuda.synchronize if task.device.type == "cuda" else (lambda: None)
    sync()
    t = time.perf_counter()
    task.train_step(step, rng)  # ends in .item() calls and the EMA update, so the step has finished
    sync()
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)  # the rest of the flags are the training task's
    p.add_argument("--repeats", type=int, default=20, help="timed steps per arm, after the warm-up")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per arm first")
    p.add_argument("--json", default=None, metavar="PATH", help="write the numbers here")
    args, train_flags = p.parse_known_args(argv)
    if args.repeats < 1 or args.warmup < 0:
        p.error("--repeats must be at least 1 and --warmup at least 0")
    load_before = os.getloadavg()
    tasks = {arm: build([*train_flags, *extra]) for arm, extra in ARMS.items()}
    res = {arm: (parse_res(t.args.g_attn_res), parse_res(t.args.d_attn_res)) for arm, t in tasks.items()}
    if not any(res["attention"]) or any(res["none"]):
        raise SystemExit(f"the attention arm must have self-attention and the other none; got {res}")
    threads = torch.get_num_threads()
    for task in tasks.values():
        for step in range(args.warmup):
            step_once(task, step)
    times: dict[str, list[float]] = {arm: [] for arm in tasks}
    order = list(tasks)
    for r in range(args.repeats):  # interleaved so drifting machine load hits both arms alike
        for arm in (order if r % 2 == 0 else order[::-1]):
            times[arm].append(step_once(tasks[arm], args.warmup + r))
    load_after = os.getloadavg()
    med = {arm: statistics.median(v) for arm, v in times.items()}
    result = {
        "attention_s_per_step": med["attention"], "none_s_per_step": med["none"],
        "ratio": med["attention"] / med["none"], "repeats": args.repeats, "threads": threads,
        "torch": torch.__version__,
        "load_average": {"before": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in load_after]},
        "command": ("python bench/sagan_train_step.py " + shlex.join(argv)).strip(),
        "warmup": args.warmup,
        "device": tasks["attention"].device.type,
        "arms": {arm: {"flags": [*train_flags, *ARMS[arm]], "g_attn_res": res[arm][0], "d_attn_res": res[arm][1],
                       "batch_size": tasks[arm].args.batch_size, "ch": tasks[arm].args.ch,
                       "img_size": tasks[arm].args.img_size} for arm in tasks},
        "times_s": times,
    }
    a = tasks["attention"].args
    print(f"SAGAN training step (D + G + EMA), batch {a.batch_size}, ch {a.ch}, {a.img_size}x{a.img_size}, "
          f"{result['device']}, {threads} torch thread(s), {args.repeats} interleaved repeats after {args.warmup} "
          f"warm-up step(s); load average {load_before[0]:.2f} -> {load_after[0]:.2f}")
    for arm in tasks:
        print(f"  {arm:10s} attention G {res[arm][0] or 'none'}, D {res[arm][1] or 'none'}: "
              f"median {med[arm] * 1e3:8.2f} ms/step (min {min(times[arm]) * 1e3:.2f}, "
              f"max {max(times[arm]) * 1e3:.2f})")
    print(f"  ratio attention / none: {result['ratio']:.4f}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.json}")
    return result


if __name__ == "__main__":
    main()
