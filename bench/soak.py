"""Soak test: serve the app for a while under a steady mixed load and watch for anything that keeps growing.

    python bench/soak.py [--minutes 30] [--every-s 60] [--clients 2] [--out runs/soak]

Launches ``python app.py --device cpu --port N`` (a subprocess with its own TMPDIR and GRADIO_TEMP_DIR, so the
folders measured hold only this server's files), warms every endpoint once (models load on first use), then
keeps ``--clients`` threads calling a mix of endpoints (captions of uploaded images, SAGAN, Image Transformer,
explorer, and bad inputs that must come back as errors). Every ``--every-s`` it samples the server process
(resident memory, open file descriptors, threads), the size of its temp and Gradio cache folders and the
latency percentiles of the calls since the previous sample; prints a table, writes soak.csv and soak.png to
``--out``, and exits 1 if a measure keeps growing (see ``keeps_growing``), 2 if the server died or never started.

Gradio's cache is emptied of files older than an hour (demo/layout.py CACHE_CLEANUP), so in a shorter run it
grows by design: it is judged by the size it would reach at that age (``--max-cache-mb``), not by its slope.
"""
from __future__ import annotations

import argparse
import csv
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CACHE_MAX_AGE_S = 3600.0  # demo/layout.py CACHE_CLEANUP[1]; read from there when Gradio imports here
try:
    from demo.layout import CACHE_CLEANUP

    CACHE_MAX_AGE_S = float(CACHE_CLEANUP[1])
except Exception:  # noqa: BLE001 - the soak still runs with the documented value
    pass

# Measures judged for growth: (column, absolute tolerance, tolerance relative to the level).
# RSS: allocator noise and caches settle within tens of MB; fds/threads: a few come and go with connections;
# tmp: the app keeps its latest 32 output files (demo/common.py KEEP_OUTPUT_FILES), up to ~20 MB of GIFs, so
# it fills for the first minutes and then holds; p50: a busy CPU may double it without anything leaking.
# RSS keeps settling for minutes after the warm-up (the recorded 30-minute soak levels off after ~12 min; a 1-minute
# run once rose 43 MB in its second half): a shorter run cannot tell that from a leak, so it is not judged on RSS.
RSS_JUDGED_FROM_S = 10 * 60
GROWTH_RULES = {"rss_mb": (20.0, 0.02), "fds": (4.0, 0.0), "threads": (3.0, 0.0), "tmp_mb": (20.0, 0.0),
                "p50_s": (0.5, 1.0)}


# ---------------------------------------------------------------------------------------------
# "Keeps growing"


def theil_sen(t: list[float], y: list[float]) -> float:
    """Median of the pairwise slopes: one spike or a single GC drop does not tilt it."""
    slopes = [(y[j] - y[i]) / (t[j] - t[i]) for i in range(len(t)) for j in range(i + 1, len(t)) if t[j] > t[i]]
    return statistics.median(slopes) if slopes else 0.0


def keeps_growing(t: list[float], y: list[float], abs_tol: float, rel_tol: float = 0.0, k: int = 4) -> str | None:
    """Why ``y`` (sampled at times ``t``) keeps growing, or None.

    Growing means both: over the second half of the run the robust (Theil-Sen) trend adds more than the
    tolerance (abs_tol + rel_tol * level), and the last ``k`` samples never go down and end higher. A leak
    satisfies both; a level that jumps once (a model loaded, a buffer grown) and stays, noise, or a sawtooth
    that a cleanup cuts back satisfies at most one."""
    n = len(y)
    if n < 4:
        return None
    m = max(3, n - n // 2)  # the second half, at least three samples
    tt, yy = t[-m:], y[-m:]
    level = statistics.median(yy)
    tol = abs_tol + rel_tol * abs(level)
    trend = theil_sen(tt, yy) * (tt[-1] - tt[0])
    last = y[-min(k, n):]
    monotone = all(b >= a for a, b in zip(last, last[1:], strict=False)) and last[-1] > last[0]
    if trend > tol and monotone:
        return (f"+{trend:.3g} over the second half (tolerance {tol:.3g}) and up in each of the last "
                f"{len(last)} samples")
    return None


# ---------------------------------------------------------------------------------------------
# The server and what it holds


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def folder_mb(path: Path, skip: Path | None = None) -> float:
    total = 0
    for root, dirs, files in os.walk(path):
        if skip is not None:
            dirs[:] = [d for d in dirs if Path(root, d) != skip]
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:  # deleted while walking
                pass
    return total / 2**20


def start_server(port: int, workdir: Path, device: str, extra: list[str]) -> subprocess.Popen:
    env = dict(os.environ, TMPDIR=str(workdir / "tmp"), GRADIO_TEMP_DIR=str(workdir / "gradio"),
               GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1")
    (workdir / "tmp").mkdir(parents=True, exist_ok=True)
    log = open(workdir / "server.log", "w")  # noqa: SIM115 - lives as long as the server
    return subprocess.Popen([sys.executable, "app.py", "--device", device, "--port", str(port), *extra], cwd=REPO,
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def wait_until_up(url: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    import httpx

    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode} while starting")
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise RuntimeError(f"the server did not answer within {timeout:.0f} s")


# ---------------------------------------------------------------------------------------------
# Load


def make_calls(example: str, bad_file: str) -> list[tuple[str, float, object]]:
    """(name, weight, function of a client) for the mixed load; bad inputs must raise AppError with words."""
    from gradio_client import handle_file

    def bad(client, *args, api_name):
        from gradio_client.exceptions import AppError

        try:
            client.predict(*args, api_name=api_name)
        except AppError as e:
            if len(str(e).split()) < 3:
                raise RuntimeError(f"unclear error: {e}") from e
            return
        raise RuntimeError(f"{api_name} accepted a bad input")

    seed = lambda: random.randrange(1000)  # noqa: E731
    return [
        ("caption", 3, lambda c: c.predict(handle_file(example), random.choice(["soft", "hard"]), 2, True,
                                           api_name="/caption")),
        ("sagan_generate", 3, lambda c: c.predict("mixed (one of each class)", seed(), 8, False,
                                                  api_name="/sagan_generate")),
        ("sagan_attention", 3, lambda c: c.predict("bag", seed(), 4, False, 2, random.randrange(32),
                                                   random.randrange(32), api_name="/sagan_attention")),
        ("sagan_sweep", 1, lambda c: c.predict("coat", seed(), 1, False, 0, 8, api_name="/sagan_sweep")),
        ("sagan_interpolate", 1, lambda c: c.predict("dress", seed(), seed(), 8, False,
                                                     api_name="/sagan_interpolate")),
        ("imt_sample", 1, lambda c: c.predict("local2d", "bag", 1.0, seed(), 1, api_name="/imt_sample")),
        ("explorer_visibility", 3, lambda c: c.predict(28, 28, "1", "local2d", 56, 112, 4, 14, 4, 7,
                                                       random.randrange(28), random.randrange(28), 0,
                                                       api_name="/explorer_visibility")),
        ("explorer_cost", 2, lambda c: c.predict(random.randrange(8, 64), 28, "3", "local1d", 56, 112, 4, 14, 4, 7,
                                                 64, api_name="/explorer_cost")),
        ("bad_upload", 1, lambda c: bad(c, handle_file(bad_file), "soft", 2, True, api_name="/caption")),
        ("bad_number", 1, lambda c: bad(c, "bag", -5, 99, False, api_name="/sagan_generate")),
    ]


@dataclass
class Load:
    url: str
    calls: list
    pause_s: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    latencies: list[tuple[float, str, float]] = field(default_factory=list)  # (end time, name, seconds)
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def worker(self, seed: int) -> None:
        from gradio_client import Client

        rng = random.Random(seed)
        client = Client(self.url, verbose=False)
        names, weights = [c[0] for c in self.calls], [c[1] for c in self.calls]
        while not self.stop.is_set():
            i = rng.choices(range(len(self.calls)), weights)[0]
            start = time.perf_counter()
            try:
                self.calls[i][2](client)
            except Exception as e:  # noqa: BLE001 - every failure is recorded and fails the run
                with self.lock:
                    self.failures.append(f"{names[i]}: {type(e).__name__}: {e}"[:300])
            with self.lock:
                self.latencies.append((time.time(), names[i], time.perf_counter() - start))
            self.stop.wait(self.pause_s)

    def since(self, t0: float) -> list[float]:
        with self.lock:
            return [s for end, _, s in self.latencies if end >= t0]


# ---------------------------------------------------------------------------------------------
# Report


COLUMNS = ["t_min", "calls", "p50_s", "p95_s", "max_s", "rss_mb", "fds", "threads", "tmp_mb", "cache_mb"]


def table(rows: list[dict]) -> str:
    lines = ["  ".join(f"{c:>9}" for c in COLUMNS)]
    for r in rows:
        lines.append("  ".join(f"{r[c]:>9.3g}" if isinstance(r[c], float) else f"{r[c]:>9}" for c in COLUMNS))
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [r["t_min"] for r in rows]
    panels = [("rss_mb", "resident memory (MB)"), ("fds", "open file descriptors"), ("threads", "threads"),
              (("tmp_mb", "cache_mb"), "folder size (MB)"), (("p50_s", "p95_s"), "latency (s)"),
              ("calls", "calls per sample")]
    fig, axes = plt.subplots(2, 3, figsize=(12, 6), constrained_layout=True)
    for ax, (cols, title) in zip(axes.flat, panels, strict=True):
        for c in (cols,) if isinstance(cols, str) else cols:
            ax.plot(t, [r[c] for r in rows], marker="o", label=c)
        ax.set_title(title)
        ax.set_xlabel("minutes")
        if not isinstance(cols, str):
            ax.legend()
    fig.suptitle("app soak test")
    fig.savefig(path, dpi=90)
    plt.close(fig)


def judge(rows: list[dict], run_s: float, max_cache_mb: float) -> list[str]:
    """What keeps growing (or would outgrow its bound), in words; empty when the server held steady."""
    problems = []
    t = [r["t_min"] * 60 for r in rows]
    for col, (abs_tol, rel_tol) in GROWTH_RULES.items():
        if col == "rss_mb" and run_s < RSS_JUDGED_FROM_S:
            continue
        why = keeps_growing(t, [r[col] for r in rows], abs_tol, rel_tol)
        if why:
            problems.append(f"{col} keeps growing: {why}")
    cache = [r["cache_mb"] for r in rows]
    if run_s > CACHE_MAX_AGE_S * 1.5:  # the cleanup has run: the cache must level off like the rest
        why = keeps_growing(t, cache, 10.0, 0.1)
        if why:
            problems.append(f"cache_mb keeps growing after the {CACHE_MAX_AGE_S:.0f} s cleanup age: {why}")
    elif len(rows) >= 2 and t[-1] > t[0]:
        rate = max(0.0, (cache[-1] - cache[0]) / (t[-1] - t[0]))
        projected = cache[0] + rate * CACHE_MAX_AGE_S
        if projected > max_cache_mb:
            problems.append(f"cache_mb would reach {projected:.0f} MB before files age out after "
                            f"{CACHE_MAX_AGE_S:.0f} s (over --max-cache-mb {max_cache_mb:g})")
    return problems


# ---------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=30.0, help="how long to run the load (default 30)")
    p.add_argument("--every-s", type=float, default=60.0, help="seconds between samples (default 60)")
    p.add_argument("--clients", type=int, default=2, help="threads calling the app at once (default 2)")
    p.add_argument("--pause-s", type=float, default=0.2, help="pause of each client between calls (default 0.2)")
    p.add_argument("--port", type=int, default=0, help="port for the app (default: a free one)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=str(REPO / "runs" / "soak"), help="folder for soak.csv/soak.png")
    p.add_argument("--max-cache-mb", type=float, default=2048.0,
                   help="largest Gradio cache acceptable at the cleanup age (default 2048)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep-workdir", action="store_true", help="keep the server's temp folders and log")
    args = p.parse_args(argv)

    import psutil

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="attn-soak-"))
    port = args.port or free_port()
    url = f"http://127.0.0.1:{port}/"
    proc = start_server(port, workdir, args.device, [])
    load = None
    try:
        try:
            wait_until_up(url, proc)
        except RuntimeError as e:
            print(f"FAIL: {e}; log: {workdir / 'server.log'}", file=sys.stderr)
            args.keep_workdir = True
            return 2
        server = psutil.Process(proc.pid)
        example = str(sorted((REPO / "demo" / "examples").glob("*.png"))[0])  # a shipped test scene
        bad_file = str(workdir / "bad.png")
        Path(bad_file).write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
        load = Load(url, make_calls(example, bad_file), args.pause_s)

        # Warm-up: every endpoint once, so models loaded on first use are not mistaken for growth.
        from gradio_client import Client

        warm = Client(url, verbose=False)
        for name, _, fn in load.calls:
            try:
                fn(warm)
            except Exception as e:  # noqa: BLE001
                load.failures.append(f"warm-up {name}: {type(e).__name__}: {e}"[:300])

        threads = [threading.Thread(target=load.worker, args=(args.seed + i,), daemon=True)
                   for i in range(args.clients)]
        start = time.time()
        for th in threads:
            th.start()
        rows, last = [], start
        print(table([]), flush=True)
        while True:
            now = time.time()
            lat = sorted(load.since(last))
            last = now
            cache = workdir / "gradio"
            row = {
                "t_min": round((now - start) / 60, 2), "calls": len(lat),
                "p50_s": float(np.percentile(lat, 50)) if lat else 0.0,
                "p95_s": float(np.percentile(lat, 95)) if lat else 0.0,
                "max_s": float(lat[-1]) if lat else 0.0,
                "rss_mb": server.memory_info().rss / 2**20, "fds": server.num_fds(), "threads": server.num_threads(),
                "tmp_mb": folder_mb(workdir / "tmp"), "cache_mb": folder_mb(cache) if cache.exists() else 0.0,
            }
            rows.append(row)
            print(table([row]).splitlines()[1], flush=True)
            if proc.poll() is not None:
                print(f"FAIL: the server died (exit code {proc.returncode}); log: {workdir / 'server.log'}")
                args.keep_workdir = True
                return 2
            if now - start >= args.minutes * 60:
                break
            time.sleep(min(args.every_s, max(0.5, start + args.minutes * 60 - time.time())))
        load.stop.set()
        for th in threads:
            th.join(timeout=120)

        with open(out / "soak.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=COLUMNS)
            w.writeheader()
            w.writerows(rows)
        plot(rows, out / "soak.png")
        print("\n" + table(rows))
        total = len(load.latencies)
        print(f"\n{total} calls by {args.clients} clients in {args.minutes:g} min; "
              f"{len(load.failures)} failed. Table: {out / 'soak.csv'}, plot: {out / 'soak.png'}")
        problems = judge(rows, time.time() - start, args.max_cache_mb)
        for f in load.failures[:10]:
            problems.append(f"call failed: {f}")
        if problems:
            print("FAIL:\n  " + "\n  ".join(problems))
            return 1
        print("OK: nothing kept growing")
        return 0
    finally:
        if load is not None:
            load.stop.set()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the server's own process group (start_new_session)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        if not args.keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
