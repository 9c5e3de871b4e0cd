"""The one training scaffold: every model trains through ``run(task)``, on Accelerate.

    python -m attn_models.<model>.train [--run-dir runs/<name>] [--max-steps N] [--time-budget-min M]
        [--resume] [--seed S] [--threads T] [--checkpoint-every-min C] [--export weights/<name>] [model flags]
    accelerate launch --num_processes 2 --cpu -m attn_models.<model>.train ...   # several processes

A model's ``train.py`` supplies only what is its own, as a ``TrainTask``: its flags, how to build the model and
optimizers, one training step, the validation it logs, and how to export. The scaffold owns the rest:

- **Flags** shared by every model (``add_common_args``). ``--max-steps`` is the length of the run and of its
  learning-rate schedule (schedules go by step, never by wall clock). ``--time-budget-min`` and
  ``--steps-this-run`` only stop this invocation early (with a checkpoint); they never change the schedule.
- **Exact resume.** ``--resume`` reloads the checkpoint (Accelerate's ``save_state``/``load_state`` for models
  and optimizers, plus the task's own state: step, EMA weights, REINFORCE baselines, ...) and the run's saved
  flags (flags given again on the command line win). Every step's randomness is drawn from generators seeded by
  (seed, step, process), so k steps, stop, resume, k more steps equals 2k steps in one go.
- **One writer.** Under ``accelerate launch`` only the main process writes the log, checkpoints' extra state,
  ``train_info.json`` and the export; the others train their share of each batch.
- **Records.** ``runs/<name>/log.jsonl`` (losses every ``--log-every`` steps, validation every ``--eval-every``),
  ``train_info.json`` (the commands, versions, hardware, steps, epochs and wall time of every invocation, i.e.
  where each part of the training ran), read by ``attn_models.cards``.

Nothing is unpickled: Accelerate's files are read with ``weights_only=True``; the task's extra state is
safetensors plus JSON.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

CHECKPOINT = "checkpoint"  # runs/<name>/checkpoint/: the latest complete checkpoint
EXTRA_TENSORS = "task_state.safetensors"
EXTRA_META = "task_state.json"
# Flags that describe one invocation rather than the run: not carried over by --resume.
PER_INVOCATION = frozenset({"resume", "time_budget_min", "steps_this_run", "threads", "device", "export",
                            "no_validation", "no_progress", "checkpoint_every_min", "run_dir", "init_from",
                            "mixed_precision"})
SCHEDULES = ("constant", "cosine", "linear")


def add_common_args(p: argparse.ArgumentParser, name: str) -> None:
    g = p.add_argument_group("training scaffold (the same for every model)")
    g.add_argument("--run-dir", default=None, help=f"where checkpoints and logs go (default runs/{name})")
    g.add_argument("--max-steps", type=int, default=10_000, help="length of the run and of its LR schedule")
    g.add_argument("--time-budget-min", type=float, default=None,
                   help="stop this invocation after this many minutes (checkpointed; the schedule is unchanged)")
    g.add_argument("--steps-this-run", type=int, default=None,
                   help="stop this invocation after this many steps (checkpointed; the schedule is unchanged)")
    g.add_argument("--resume", action="store_true", help="continue the run in --run-dir exactly where it stopped")
    g.add_argument("--init-from", default=None,
                   help="start a new run from these weights (a weights/<name> folder or a model.safetensors)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--threads", type=int, default=1, help="torch CPU threads per process (0: torch's default)")
    g.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="auto: what Accelerate finds (a GPU when there is one)")
    g.add_argument("--mixed-precision", default="no", choices=("no", "bf16", "fp16"))
    g.add_argument("--batch-size", type=int, default=32, help="per process")
    g.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (of the first optimizer)")
    g.add_argument("--lr-schedule", default="cosine", choices=SCHEDULES, help="after warm-up, by step")
    g.add_argument("--warmup-steps", type=int, default=100)
    g.add_argument("--min-lr-factor", type=float, default=0.05, help="cosine/linear end at lr * this")
    g.add_argument("--checkpoint-every-min", type=float, default=10.0)
    g.add_argument("--log-every", type=int, default=50, help="steps between loss records in log.jsonl")
    g.add_argument("--eval-every", type=int, default=1000, help="steps between validations (0: only at the end)")
    g.add_argument("--no-validation", action="store_true",
                   help="no validation at all in this invocation (short GPU leases: their minutes are for training)")
    g.add_argument("--export", default=None, help="save the final model here (save_pretrained), e.g. weights/<name>")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")


def lr_factor(args: argparse.Namespace, step: int) -> float:
    """Multiplier of the peak LR at ``step``: linear warm-up, then constant, cosine or linear decay to
    ``min_lr_factor`` at ``max_steps``. A function of the step only, so resuming cannot change it."""
    warm = min(1.0, (step + 1) / max(1, args.warmup_steps))
    if args.lr_schedule == "constant":
        return warm
    span = max(1, args.max_steps - args.warmup_steps)
    progress = min(1.0, max(0.0, (step - args.warmup_steps) / span))
    decay = 0.5 * (1 + math.cos(math.pi * progress)) if args.lr_schedule == "cosine" else 1 - progress
    return warm * (args.min_lr_factor + (1 - args.min_lr_factor) * decay)


def step_seed(seed: int, step: int, rank: int) -> int:
    """A seed for everything random in one step of one process (dropout, noise, sampled data)."""
    return int(np.random.default_rng([seed, step, rank]).integers(2**62))


def epoch_indices(seed: int, step: int, batch: int, n: int, rank: int = 0, world: int = 1) -> np.ndarray:
    """Indices of this process's share of global batch ``step``, from an epoch-wise shuffle of ``n`` items keyed
    on (seed, epoch): every item once per epoch, and the same batches whether or not the run was resumed."""
    start = (step * world + rank) * batch
    out: list[int] = []
    while len(out) < batch:
        epoch, pos = divmod(start + len(out), n)
        perm = np.random.default_rng([seed, epoch]).permutation(n)
        out.extend(perm[pos:pos + batch - len(out)].tolist())
    return np.asarray(out)


def weights_file(path: Path) -> Path:
    """``--init-from`` accepts a weights folder (weights/<name>) or the model.safetensors in it."""
    path = Path(path)
    file = path / "model.safetensors" if path.is_dir() else path
    if not file.is_file():
        raise SystemExit(f"--init-from {path}: no model.safetensors there")
    return file


def holdout_split(n: int, val_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, validation indices) of ``n`` training examples: the last ``val_size`` (at most half) of a
    fixed shuffle are held out for validation, so the test set is never used to choose anything."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = min(val_size, n // 2)
    return order[: n - n_val], order[n - n_val:]


def load_fashion_mnist_split(args: argparse.Namespace, val_seed: int):
    """Fashion-MNIST training images and labels (the first ``args.limit`` only, for tests) split by
    ``holdout_split``: (train images, train labels, validation images, validation labels), uint8 / int64."""
    from attn_models.data import load_fashion_mnist

    x, y = load_fashion_mnist("train", getattr(args, "data_dir", None))
    if args.limit:
        x, y = x[: args.limit], y[: args.limit]
    train_idx, val_idx = holdout_split(len(x), args.val_size, val_seed)
    y = y.astype(np.int64)
    return x[train_idx], y[train_idx], x[val_idx], y[val_idx]


class TrainTask:
    """What one model's training supplies. Subclasses set ``name`` and override the methods below.

    ``setup`` builds the model(s) and optimizer(s) and passes them through ``self.acc.prepare`` (so Accelerate
    checkpoints them); ``self.export_model`` must name the module that ``export`` saves and ``init_from`` loads.
    """

    name: str = "model"
    description: str = __doc__ or ""
    examples_per_epoch: int | None = None  # for the epoch count in train_info.json

    def __init__(self) -> None:
        self.args: argparse.Namespace
        self.acc = None  # the Accelerator, set by run()
        self.optimizers: list[torch.optim.Optimizer] = []
        self.export_model: torch.nn.Module | None = None

    # ---- to override -------------------------------------------------------------------------------
    def add_args(self, p: argparse.ArgumentParser) -> None:
        """The model's own flags (and ``p.set_defaults`` for scaffold flags whose defaults differ)."""

    def setup(self) -> None:
        raise NotImplementedError

    def train_step(self, step: int, rng: np.random.Generator) -> dict[str, float]:
        """One optimisation step; ``rng`` (and torch's global generator) are seeded from (seed, step, process)."""
        raise NotImplementedError

    def evaluate(self, step: int) -> dict[str, float]:
        """Validation numbers to log (main process only; never the test set)."""
        return {}

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Extra tensors to checkpoint beside the models and optimizers (EMA weights, baselines, ...)."""
        return {}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        if tensors:
            raise ValueError(f"{self.name}: unexpected task state {sorted(tensors)}")

    def export(self, folder: Path) -> None:
        """Write config.json + model.safetensors (save_pretrained) of the model to ship."""
        model = self.acc.unwrap_model(self.export_model)
        training_mode = model.training
        model.eval().save_pretrained(folder)
        model.train(training_mode)

    def init_from(self, path: Path) -> None:
        """Start from exported weights (strict): a folder holding model.safetensors, or the file itself."""
        from safetensors.torch import load_model

        load_model(self.acc.unwrap_model(self.export_model), str(weights_file(path)), strict=True)

    def run_name(self, args: argparse.Namespace) -> str:
        """The run's name (default run directory runs/<name>); override when it depends on the flags."""
        return self.name

    # ---- helpers for subclasses -------------------------------------------------------------------
    def optimize(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer | None = None, params=None,
                 clip: float | None = None) -> None:
        """One optimizer update from ``loss``: zero the grads, backward through Accelerate (gradient sync,
        mixed precision), clip the norm of ``params`` to ``clip`` if given, step."""
        opt = optimizer or self.optimizers[0]
        opt.zero_grad(set_to_none=True)
        self.acc.backward(loss)
        if clip:
            self.acc.clip_grad_norm_(params, clip)
        opt.step()

    @property
    def device(self) -> torch.device:
        return self.acc.device

    @property
    def rank(self) -> int:
        return self.acc.process_index

    @property
    def world(self) -> int:
        return self.acc.num_processes


@dataclass
class _RunState:
    step: int = 0
    elapsed_s: float = 0.0  # training wall time over all invocations
    segments: list[dict] = field(default_factory=list)  # one per invocation: where and how long it ran


def _hardware(acc) -> str:
    if acc.device.type == "cuda":
        return f"{torch.cuda.get_device_name(acc.device)} (CUDA)"
    cpu = platform.processor() or platform.machine()
    return f"CPU {cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch thread(s) per process"


def _versions() -> dict[str, str]:
    import accelerate

    return {"python": platform.python_version(), "torch": torch.__version__, "accelerate": accelerate.__version__,
            "numpy": np.__version__}


def module_of(task: TrainTask) -> str:
    """The module to name in commands: the task's, also when it runs as ``python -m`` (then it is __main__)."""
    mod = type(task).__module__
    spec = getattr(sys.modules.get(mod), "__spec__", None)
    return spec.name if mod == "__main__" and spec is not None else mod


def parse(task: TrainTask, argv: list[str] | None) -> argparse.Namespace:
    """Parse the flags; with --resume, the run's saved flags are the defaults (flags given again win)."""
    p = argparse.ArgumentParser(prog=f"python -m {module_of(task)}", description=task.description,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p, task.name)
    task.add_args(p)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = p.parse_args(argv)
    run_dir = Path(args.run_dir or Path("runs") / task.run_name(args))
    saved = run_dir / "args.json"
    if args.resume and saved.is_file():
        known = {a.dest for a in p._actions}
        p.set_defaults(**{k: v for k, v in json.loads(saved.read_text()).items()
                          if k in known and k not in PER_INVOCATION})
        args = p.parse_args(argv)
    task.name = task.run_name(args)
    args.run_dir = run_dir
    args.argv = argv
    return args


def _agree(acc, flag: bool) -> bool:
    """The main process's decision, for every process (clocks differ; collective calls must not)."""
    if acc.num_processes == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=acc.device)
    from accelerate.utils import broadcast

    return bool(broadcast(t, from_process=0).item())


def _save(task: TrainTask, state: _RunState, run_dir: Path) -> None:
    """Write a complete checkpoint next to the old one, then swap, so a crash never leaves a torn one."""
    from safetensors.torch import save_file

    acc = task.acc
    new, final, old = run_dir / f"{CHECKPOINT}.new", run_dir / CHECKPOINT, run_dir / f"{CHECKPOINT}.old"
    if acc.is_main_process and new.exists():
        shutil.rmtree(new)
    acc.wait_for_everyone()
    acc.save_state(str(new), safe_serialization=True)
    acc.wait_for_everyone()  # every process has written its share (its RNG state file) before the folder moves
    if acc.is_main_process:
        tensors = {k: v.detach().contiguous().cpu() for k, v in task.state_tensors().items()}
        save_file(tensors, str(new / EXTRA_TENSORS))
        (new / EXTRA_META).write_text(json.dumps({"step": state.step, "elapsed_s": state.elapsed_s,
                                                  "segments": state.segments}, indent=1))
        if final.exists():
            final.replace(old)
        new.replace(final)
        if old.exists():
            shutil.rmtree(old)
    acc.wait_for_everyone()


def _load(task: TrainTask, run_dir: Path) -> _RunState:
    from safetensors.torch import load_file

    ckpt = run_dir / CHECKPOINT
    if not (ckpt / EXTRA_META).is_file() and (run_dir / f"{CHECKPOINT}.old" / EXTRA_META).is_file():
        ckpt = run_dir / f"{CHECKPOINT}.old"  # interrupted between the two renames of _save
    if not (ckpt / EXTRA_META).is_file():
        raise SystemExit(f"--resume: no checkpoint in {run_dir} (start without --resume, or --init-from weights)")
    task.acc.load_state(str(ckpt))
    meta = json.loads((ckpt / EXTRA_META).read_text())
    task.load_state_tensors({k: v.to(task.device) for k, v in load_file(str(ckpt / EXTRA_TENSORS)).items()})
    return _RunState(step=int(meta["step"]), elapsed_s=float(meta["elapsed_s"]), segments=list(meta["segments"]))


class _Log:
    def __init__(self, path: Path, enabled: bool):
        self.path, self.enabled = path, enabled

    def write(self, **rec) -> None:
        if self.enabled:
            with open(self.path, "a") as f:
                f.write(json.dumps(rec) + "\n")


def run(task: TrainTask, argv: list[str] | None = None) -> dict:
    """Train ``task`` as the flags say; returns the final train_info (also written to the run directory)."""
    from accelerate import Accelerator
    from tqdm import tqdm

    args = parse(task, argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device here")
    acc = Accelerator(cpu=args.device == "cpu", mixed_precision=args.mixed_precision)
    task.args, task.acc = args, acc
    run_dir: Path = args.run_dir
    if acc.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
    acc.wait_for_everyone()
    torch.manual_seed(args.seed)  # model initialisation
    task.setup()
    if not task.optimizers:
        raise TypeError(f"{type(task).__name__}.setup must fill self.optimizers")
    for opt in task.optimizers:
        for group in opt.param_groups:
            group.setdefault("peak_lr", group["lr"])
    if args.resume:
        state = _load(task, run_dir)
    else:
        if (run_dir / CHECKPOINT).exists():
            raise SystemExit(f"{run_dir} already holds a run: add --resume to continue it, or pick another --run-dir")
        if args.init_from:
            task.init_from(Path(args.init_from))
        state = _RunState()
    log = _Log(run_dir / "log.jsonl", acc.is_main_process)
    if acc.is_main_process:
        saved = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "argv"}
        (run_dir / "args.json").write_text(json.dumps(saved, indent=1))
    segment = {"command": f"python -m {module_of(task)} {shlex.join(args.argv)}".strip(),
               "num_processes": acc.num_processes, "device": acc.device.type, "hardware": _hardware(acc),
               "from_step": state.step, "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    log.write(event="start", **segment)
    if args.init_from and not args.resume:  # the starting point's validation: what the run has to beat
        _evaluate(task, state, log, time.time(), 0.0)

    stop_requested = []
    for sig in (signal.SIGTERM, signal.SIGINT):  # finish the step, checkpoint, exit
        try:
            signal.signal(sig, lambda *_: stop_requested.append(True))
        except ValueError:  # not the main thread (e.g. called from a test runner thread)
            pass
    t_start = time.time()
    elapsed0 = state.elapsed_s
    last_ckpt = time.time()
    budget_s = 60 * args.time_budget_min if args.time_budget_min else math.inf
    stop_at = args.max_steps if args.steps_this_run is None else min(args.max_steps, state.step + args.steps_this_run)
    bar = tqdm(total=args.max_steps, initial=state.step, desc=task.name, mininterval=5,
               disable=args.no_progress or not acc.is_main_process)
    window: dict[str, list[float]] = {}

    segments_before = list(state.segments)
    while state.step < stop_at:
        if _agree(acc, time.time() - t_start >= budget_s or bool(stop_requested)):
            break
        step = state.step
        for opt in task.optimizers:
            for group in opt.param_groups:
                group["lr"] = group["peak_lr"] * lr_factor(args, step)
        seed = step_seed(args.seed, step, acc.process_index)
        torch.manual_seed(seed)
        stats = task.train_step(step, np.random.default_rng(seed))
        state.step += 1
        bar.update(1)
        for k, v in stats.items():
            window.setdefault(k, []).append(float(v))
        if state.step % args.log_every == 0 or state.step == stop_at:
            means = {k: round(float(np.mean(v)), 6) for k, v in window.items()}
            log.write(step=state.step, lr=task.optimizers[0].param_groups[0]["lr"],
                      elapsed_s=round(elapsed0 + time.time() - t_start, 1), **means)
            bar.set_postfix({k: f"{v:.3g}" for k, v in list(means.items())[:3]})
            window = {}
        if args.eval_every and state.step % args.eval_every == 0 and state.step < stop_at:
            _evaluate(task, state, log, t_start, elapsed0)
        if _agree(acc, time.time() - last_ckpt > 60 * args.checkpoint_every_min):
            state.segments = segments_before + [_segment_end(segment, state, t_start)]
            state.elapsed_s = elapsed0 + time.time() - t_start
            _save(task, state, run_dir)
            last_ckpt = time.time()
    bar.close()
    state.elapsed_s = elapsed0 + time.time() - t_start
    state.segments = segments_before + [_segment_end(segment, state, t_start)]
    final_eval = _evaluate(task, state, log, t_start, elapsed0)
    _save(task, state, run_dir)
    info = {"name": task.name, "steps": state.step, "max_steps": args.max_steps,
            "epochs": (round(state.step * args.batch_size * acc.num_processes / task.examples_per_epoch, 3)
                       if task.examples_per_epoch else None),
            "batch_size_per_process": args.batch_size, "wall_time_s": round(state.elapsed_s, 1),
            "segments": state.segments, "versions": _versions(), "final_eval": final_eval,
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "argv"}}
    if acc.is_main_process:
        (run_dir / "train_info.json").write_text(json.dumps(info, indent=1))
        if args.export:
            task.export(Path(args.export))
            (Path(args.export) / "train_info.json").write_text(json.dumps(info, indent=1))
        log.write(event="end", step=state.step, elapsed_s=round(state.elapsed_s, 1),
                  exported=args.export)
    acc.wait_for_everyone()
    acc.end_training()
    return info


def _segment_end(segment: dict, state: _RunState, t_start: float) -> dict:
    return {**segment, "to_step": state.step, "wall_time_s": round(time.time() - t_start, 1)}


def _evaluate(task: TrainTask, state: _RunState, log: _Log, t_start: float, elapsed0: float) -> dict:
    metrics: dict = {}
    if task.acc.is_main_process and not task.args.no_validation:
        elapsed = elapsed0 + time.time() - t_start  # training time at this step (the validation's own excluded)
        metrics = task.evaluate(state.step)
        if metrics:
            log.write(step=state.step, elapsed_s=round(elapsed, 1),
                      eval={k: round(float(v), 6) for k, v in metrics.items()})
    task.acc.wait_for_everyone()
    return metrics
