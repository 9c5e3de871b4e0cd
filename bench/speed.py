"""How fast the app answers on this 2-core machine, against the targets of issue 11.

    python bench/speed.py                          # launches the app as served, 5 repeats, sampler batches 1, 4, 16
    python bench/speed.py --repeats 1 --batches 1 --json runs/speed.json
    python bench/speed.py --threads 2              # two intra-op threads per request instead of the app's one

Through gradio_client, against ``python app.py --device cpu`` launched on a free port (the time until its page
answers is the cold start):
- caption with maps and animation: ``/caption`` (an example scene, soft attention, beam 3, smoothed maps): the
  caption, the enlarged first word and the downloads (every word's overlay on one sheet, the PNG; the animation, GIF
  and MP4; the numbers); target 0.8 s;
- 16 SAGAN images, then the map of one pixel: ``/sagan_generate`` (16 images) followed by ``/sagan_attention``
  (one query pixel of one of them); target 0.8 s for the two together;
- four 28x28 Image Transformer samples: ``/imt_sample`` with count 4, for each of the two models; target 2.5 s.
Each is made once to warm up (models load on first use; that first time is reported too), then ``--repeats``
times with a new seed each time; the table gives median and p90, each beside its target and as a ratio to it
(below 1 meets the target). A time is what the caller waits for, downloads of the returned files included; each
workload is timed again with a client that downloads nothing (``download_files=False``): the server's part.

Then, directly through the library in this process (the app stopped): the Image Transformer's cached sampler
(``model.sample``) in images/second at each ``--batches`` size, beside an estimate of the FLOPs it does per image
and the rate that makes (see ``sampler_flops`` for how they are counted).

By default the app runs as it is served: app.py pins one intra-op thread per request
(demo.common.pin_threads(1) in build_app), so a 2-core machine serves two requests side by side and Gradio's
own work (encoding pictures, sending files) keeps a core. ``--threads N`` starts it through ``--serve`` instead,
which makes that call pin N and changes nothing else, to see what more threads per request would do. On this
machine two are slower, not faster, whenever anything else runs: the Image Transformer's cached sampler makes
~800 tiny steps per image and each hands work to a second OpenMP thread that is often not on a core (measured
beside two one-thread trainings, load average 3-4: four local-2D samples 1.85 s with one thread, 2.89 s with two;
the sampler alone at batch 1, 0.76 s against 23 s). The sampler part below uses the same thread count.
Timings on a shared machine vary with its load; the JSON records the load average next to them.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "demo" / "examples" / "scene_0002.png"
MIXED = "mixed (one of each class)"
EACH_CLASS = "one of each class"
TARGETS_S = {"caption": 0.8, "sagan_16_then_pixel": 0.8, "imt_sample_4_local1d": 2.5, "imt_sample_4_local2d": 2.5}
IMT_MODELS = {"local1d": "image-transformer-1d-fashion-mnist", "local2d": "image-transformer-2d-fashion-mnist"}


# ---------------------------------------------------------------------------------------------
# The app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(threads: int, app_argv: list[str]) -> None:
    """``python app.py APP_ARGV`` with ``threads`` intra-op threads where the app pins one."""
    sys.path.insert(0, str(ROOT))
    from demo import common

    pin = common.pin_threads
    common.pin_threads = lambda count=common.SERVED_THREADS: pin(threads)
    import app

    app.main(app_argv)


def launch(threads: int, device: str) -> tuple[subprocess.Popen, str, float]:
    """(process, url, seconds from start until the page answers)."""
    port = free_port()
    # Offline: a model missing from weights/ then fails at once instead of retrying the Hub for ~25 s in the
    # middle of the measurements (nothing else changes: the app serves the bundled weights either way).
    env = dict(os.environ, HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--serve", "--threads", str(threads), "--",
           "--device", device, "--port", str(port)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    while time.perf_counter() - t0 < 300:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited ({proc.returncode}): {proc.stderr.read()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return proc, url, time.perf_counter() - t0
        except OSError:
            time.sleep(0.05)
    stop(proc)
    raise RuntimeError("the app did not answer within 300 s")


def stop(proc: subprocess.Popen) -> None:
    import signal

    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # its own process group (start_new_session): nothing else
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_until_idle(pid: int, quiet_s: float = 1.0, busy_below: float = 0.05, limit_s: float = 300) -> float:
    """Seconds until process ``pid`` used less than ``busy_below`` of a core over ``quiet_s``: the results shown on
    arrival are computed in a background thread after start-up, and would otherwise share the CPU with the first
    measurements."""
    import psutil

    p = psutil.Process(pid)
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < limit_s:
        c0 = sum(p.cpu_times()[:2])
        time.sleep(quiet_s)
        if sum(p.cpu_times()[:2]) - c0 < busy_below * quiet_s:
            break
    return time.perf_counter() - t0


# ---------------------------------------------------------------------------------------------
# Workloads through gradio_client: each returns {step name: seconds}


def caption(client, seed: int) -> dict[str, float]:
    from gradio_client import handle_file

    t = time.perf_counter()
    client.predict(handle_file(str(EXAMPLE)), "soft", 3, True, api_name="/caption")
    return {"caption": time.perf_counter() - t}


def sagan(client, seed: int) -> dict[str, float]:
    t0 = time.perf_counter()
    client.predict(MIXED, seed, 16, False, api_name="/sagan_generate")
    t1 = time.perf_counter()
    client.predict(MIXED, seed, 16, False, 15, 16, 16, api_name="/sagan_attention")  # the last image's centre
    t2 = time.perf_counter()
    return {"sagan_16_then_pixel": t2 - t0, "sagan_generate_16": t1 - t0, "sagan_attention_pixel": t2 - t1}


def imt(kind: str):
    def run(client, seed: int) -> dict[str, float]:
        t = time.perf_counter()
        client.submit(kind, EACH_CLASS, 1.0, seed, 4, api_name="/imt_sample").result(timeout=600)
        return {f"imt_sample_4_{kind}": time.perf_counter() - t}

    return run


WORKLOADS = {"caption": caption, "sagan": sagan, "imt_local1d": imt("local1d"), "imt_local2d": imt("local2d")}


def summary(name: str, times: list[float], first: float | None) -> dict:
    target = TARGETS_S.get(name.removesuffix(NO_DOWNLOADS))
    med, p90 = float(np.median(times)), float(np.percentile(times, 90))
    return {"name": name, "target_s": target, "median_s": med, "p90_s": p90,
            "median_ratio": None if target is None else med / target,
            "p90_ratio": None if target is None else p90 / target,
            "repeats": len(times), "times_s": times, "first_s": first}


NO_DOWNLOADS = " (no downloads)"


def measure_app(url: str, repeats: int) -> list[dict]:
    """Each workload with a client that downloads every returned file (gradio_client's default: what a caller
    waits for) and with one that does not (``download_files=False``: the server's part). Streamed answers
    (imt_sample) return files at every step, and the default client downloads each step's pictures too."""
    from gradio_client import Client

    clients = {"": Client(url, verbose=False), NO_DOWNLOADS: Client(url, verbose=False, download_files=False)}
    try:
        first: dict[str, float] = {}
        for fn in WORKLOADS.values():  # warm-up: models load on first use
            for suffix, client in clients.items():
                first.update({name + suffix: s for name, s in fn(client, 10_000).items()})
        times: dict[str, list[float]] = {}
        for r in range(repeats):
            for fn in WORKLOADS.values():
                for suffix, client in clients.items():
                    for name, s in fn(client, r).items():
                        times.setdefault(name + suffix, []).append(s)
    finally:
        for client in clients.values():
            client.close()
    return [summary(name, ts, first.get(name)) for name, ts in times.items()]


# ---------------------------------------------------------------------------------------------
# The cached sampler, through the library


def sampler_flops(model) -> dict:
    """FLOPs per generated image of ``model.sample`` (the cached sampler), from the model's config.

    Counted: matrix products only, a multiply-add as 2 FLOPs. Per generated position and layer: the query/key/value
    projection of the new position 2*d*3d, the output projection 2*d*d, the feed-forward 2*d*ffn*2, and attention
    over K cached keys, 2*K*d for the scores and 2*K*d for the weighted values (all heads together: heads*d_head=d);
    per position once: the 256-way output 2*d*256. Not counted: layer norms, softmax, embeddings, the draw (O(d) or
    O(256) per position). Positions per image: H*W*C.
    K: ``executed`` counts every slot of the cache (the sampler runs SDPA over all S+1 slots with a mask: S =
    query_len + memory_len for local 1D, (flange_h + block_h) * W * C for local 2D, plus the dummy slot);
    ``needed`` counts only the keys a position may see (its window's visible keys, averaged over positions)."""
    from attn_models.image_transformer.sampler import CachedSampler

    s = CachedSampler(model)
    layers, d = model.num_layers, model.d_model
    ffn = model.layers[0].ffn[0].out_features
    n = model.num_positions
    keys = {"executed": float(s.size + 1), "needed": float(s.visible.sum(1).double().mean())}

    def per_image(k: float) -> float:
        per_layer = 2 * d * 3 * d + 2 * d * d + 2 * 2 * d * ffn + 2 * 2 * k * d
        return n * (layers * per_layer + 2 * d * 256)

    return {"layers": layers, "d_model": d, "heads": model.num_heads, "ffn": ffn, "positions": n,
            "pattern": model.pattern.kind, "query_len": model.pattern.query_len,
            "memory_len": model.pattern.memory_len, "cache_slots": s.size + 1, "keys_executed": keys["executed"],
            "keys_needed_mean": keys["needed"], "flops_executed": per_image(keys["executed"]),
            "flops_needed": per_image(keys["needed"])}


def measure_sampler(batches: list[int], threads: int, device: str) -> list[dict]:
    import torch

    sys.path.insert(0, str(ROOT))
    from attn_models import load

    torch.set_num_threads(threads)
    rows = []
    for name in IMT_MODELS.values():
        m = load(name, device=device)
        flops = sampler_flops(m)
        m.sample(1, [0], seed=99)  # warm-up: index tables, allocator
        for b in batches:
            labels = [k % 10 for k in range(b)]
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            t = time.perf_counter()
            m.sample(b, labels, seed=0)  # returns numpy: the device has finished
            s = time.perf_counter() - t
            rows.append({"model": name, "batch": b, "seconds": s, "images_per_s": b / s,
                         "gflops_per_s_executed": flops["flops_executed"] * b / s / 1e9,
                         "gflops_per_s_needed": flops["flops_needed"] * b / s / 1e9, "flops": flops})
    return rows


# ---------------------------------------------------------------------------------------------
# Report


def fmt(v, spec: str = ".3f", unit: str = "") -> str:
    return "-" if v is None else f"{v:{spec}}{unit}"


def report(result: dict, out=print) -> None:
    out(f"torch {result['torch']}, {result['threads']} thread(s), device {result['device']}, "
        f"{result['cpu_count']} CPUs, load average {result['load_average']}")
    out(f"cold start (launch -> page answers): {result['cold_start_s']:.2f} s; "
        f"then {result['arrival_settle_s']:.1f} s until the results on arrival were computed")
    out(f"{'workload':<42}{'target':>8}{'median':>9}{'ratio':>7}{'p90':>9}{'ratio':>7}{'first':>9}{'n':>4}")
    for w in result["app"]:
        out(f"{w['name']:<42}{fmt(w['target_s'], '.2f', ' s'):>8}{fmt(w['median_s'], '.3f', ' s'):>9}"
            f"{fmt(w['median_ratio'], '.2f'):>7}{fmt(w['p90_s'], '.3f', ' s'):>9}{fmt(w['p90_ratio'], '.2f'):>7}"
            f"{fmt(w['first_s'], '.2f', ' s'):>9}{w['repeats']:>4}")
    out("ratio = time / target (at most 1 meets it); first = the warm-up call, models loading included; "
        "(no downloads): the client takes the answer without downloading its files")
    out("")
    out(f"cached sampler through the library ({result['threads']} thread(s)):")
    out(f"{'model':<38}{'batch':>6}{'s':>8}{'img/s':>8}{'GFLOP/img':>11}{'GFLOP/s':>9}{'(needed)':>10}")
    for r in result["sampler"]:
        out(f"{r['model']:<38}{r['batch']:>6}{r['seconds']:>8.2f}{r['images_per_s']:>8.2f}"
            f"{r['flops']['flops_executed'] / 1e9:>11.3f}{r['gflops_per_s_executed']:>9.2f}"
            f"{r['gflops_per_s_needed']:>10.2f}")
    out("GFLOP/img: matrix products of one image with the cache's every slot (executed); (needed): the rate counting "
        "only the keys each position may see. See sampler_flops.")


def batch_sizes(text: str) -> list[int]:
    """"4" or "1,4,16" -> the batch sizes."""
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"batch sizes are whole numbers (1 4 16 or 1,4,16), got {text!r}") from None


def main(argv=None) -> dict | None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--repeats", type=int, default=5, help="timed calls of each workload after the warm-up")
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads per request in the app, and for the sampler here (default: the "
                        "app's own, 1)")
    p.add_argument("--batches", type=batch_sizes, nargs="+", default=[[1, 4, 16]],
                   help="sampler batch sizes (1 4 16 or 1,4,16)")
    p.add_argument("--device", default="cpu", help="where the models run (app and sampler)")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the app process (see serve)
    args, rest = p.parse_known_args(argv)
    if args.serve:
        serve(args.threads, [a for a in rest if a != "--"])
        return None
    if rest:
        p.error(f"unrecognized arguments: {' '.join(rest)}")
    args.batches = [b for group in args.batches for b in group]
    if args.threads is None:
        sys.path.insert(0, str(ROOT))
        from demo.common import SERVED_THREADS  # the app as served: its own count, no override

        args.threads = SERVED_THREADS
    if args.repeats < 1 or args.threads < 1 or not args.batches or min(args.batches) < 1:
        p.error("--repeats, --threads and --batches must be at least 1")

    import torch

    proc, url, cold = launch(args.threads, args.device)
    try:
        settle = wait_until_idle(proc.pid)
        app_rows = measure_app(url, args.repeats)
    finally:
        stop(proc)
    result = {"torch": torch.__version__, "python": platform.python_version(), "threads": args.threads,
              "device": args.device, "cpu_count": os.cpu_count(),
              "load_average": [round(x, 2) for x in os.getloadavg()], "repeats": args.repeats,
              "cold_start_s": cold, "arrival_settle_s": settle, "app": app_rows,
              "sampler": measure_sampler(args.batches, args.threads, args.device)}
    report(result)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
