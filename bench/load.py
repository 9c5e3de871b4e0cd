"""The app under concurrent load: N gradio_client clients at once, mixing every deterministic endpoint.

    python bench/load.py                      # launches `python app.py` on a free port, 64 clients, 2 calls each
    python bench/load.py --clients 8 --calls 1
    python bench/load.py --url http://127.0.0.1:7860/   # an app already running (its own queue settings)

First every distinct call of the mix is made alone, one after another: that is its reference answer. Then all
clients start together, each making ``--calls`` calls (client i starts at mix entry i, so every endpoint is hit
at once). Every answer must arrive (no error, no time-out) and equal the reference: files are compared by what
they hold (decoded pixels of PNG and GIF, arrays of NPZ, parsed JSON, the bytes of MP4), so a file deleted or
overwritten under another request shows up as a failure or a difference. Prints throughput, p50/p95 latency and
the number of failed and differing answers; exits 1 when either is not 0.

``explorer_measure`` is left out (it reports timings, which differ from run to run by nature).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = str(ROOT / "demo" / "examples" / "scene_0007.png")
PATTERN = (28, 28, "1", "local2d", 56, 112, 4, 14, 4, 7)


def mix() -> list[tuple[str, tuple]]:
    """(endpoint, arguments) of the calls the clients make; files are given as local paths (handle_file'd)."""
    return [
        ("/caption", ("FILE", "soft", 3, True)),
        ("/sagan_generate", ("bag", 1, 8, False)),
        ("/sagan_attention", ("mixed (one of each class)", 2, 8, False, 5, 12, 20)),
        ("/explorer_visibility", (*PATTERN, 13, 12, 0)),
        ("/imt_sample", ("local2d", "dress", 1.0, 3, 1)),
        ("/caption", ("FILE", "hard", 1, False)),
        ("/explorer_export", (*PATTERN, 5, 6, 0)),
        ("/sagan_attention", ("coat", 7, 4, True, 3, 30, 1)),
        ("/sagan_interpolate", ("sneaker", 3, 4, 6, False)),
        ("/imt_complete", ("local1d", "FILE", 14, 1, "shirt", 1.0, 2)),
        ("/explorer_cost", (*PATTERN, 64)),
        ("/sagan_sweep", ("trousers", 4, 2, False, 1, 10)),
    ]


# ---------------------------------------------------------------------------------------------
# What an answer holds, independent of file names and of where the client saved the files.

def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def file_content(path: str) -> str:
    from PIL import Image, ImageSequence

    suffix = Path(path).suffix.lower()
    if suffix in (".png", ".gif", ".webp", ".jpg", ".jpeg"):
        with Image.open(path) as im:
            frames = [np.asarray(f.convert("RGB")).tobytes() for f in ImageSequence.Iterator(im)]
        return f"{suffix}:{len(frames)}:{_digest(b''.join(frames))}"
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as f:
            return "npz:" + _digest(b"".join(k.encode() + f[k].tobytes() + str(f[k].dtype).encode()
                                             for k in sorted(f.files)))
    if suffix == ".json":
        return "json:" + _digest(json.dumps(json.loads(Path(path).read_text()), sort_keys=True).encode())
    return suffix + ":" + _digest(Path(path).read_bytes())


def canonical(value):
    """The answer with every file replaced by its content's digest."""
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if isinstance(value, dict):
        return {k: canonical(v) for k, v in sorted(value.items())}
    if isinstance(value, str) and os.path.isfile(value):
        return file_content(value)
    return value


# ---------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(clients: int) -> tuple[subprocess.Popen, str]:
    """``python app.py`` on a free port, its queue long enough for every client to wait its turn."""
    port = free_port()
    cmd = [sys.executable, str(ROOT / "app.py"), "--device", "cpu", "--port", str(port),
           "--max-queue", str(max(20, 2 * clients))]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited ({proc.returncode}): {proc.stderr.read()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the app did not answer within 180 s")


def call(client, endpoint: str, args: tuple, timeout: float):
    from gradio_client import handle_file

    args = tuple(handle_file(EXAMPLE) if a == "FILE" else a for a in args)
    return client.submit(*args, api_name=endpoint).result(timeout=timeout)


def run(url: str, clients: int, calls: int, timeout: float, out=print) -> dict:
    from gradio_client import Client

    entries = mix()
    reference = {}
    alone = Client(url, verbose=False)
    try:
        for i, (endpoint, args) in enumerate(entries):  # alone, one after another
            reference[i] = canonical(call(alone, endpoint, args, timeout))
    finally:
        alone.close()  # its heartbeat stream would stay open on the server (and in a test's app, until it closes)

    latencies: list[float] = []
    failures: list[str] = []
    differing: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(clients)

    def client_main(c: int) -> None:
        try:
            client = Client(url, verbose=False)
        except Exception as e:  # the connection itself failed: every call of this client counts as failed
            with lock:
                failures.extend([f"client {c}: {type(e).__name__}: {e}"] * calls)
            start.abort()
            return
        try:
            start.wait()
            calls_of(client, c)
        except threading.BrokenBarrierError:  # another client could not connect: nobody starts
            with lock:
                failures.extend([f"client {c}: not started (another client failed to connect)"] * calls)
        finally:
            client.close()

    def calls_of(client, c: int) -> None:
        for k in range(calls):
            i = (c + k) % len(entries)
            endpoint, args = entries[i]
            t0 = time.perf_counter()
            try:
                answer = canonical(call(client, endpoint, args, timeout))
            except Exception as e:
                with lock:
                    failures.append(f"client {c} {endpoint}: {type(e).__name__}: {str(e)[:300]}")
                continue
            with lock:
                latencies.append(time.perf_counter() - t0)
                if answer != reference[i]:
                    differing.append(f"client {c} {endpoint}{args}")

    threads = [threading.Thread(target=client_main, args=(c,)) for c in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat = np.array(latencies) if latencies else np.array([np.nan])
    result = {"clients": clients, "calls": clients * calls, "answered": len(latencies), "wall_s": round(wall, 2),
              "throughput_per_s": round(len(latencies) / wall, 3), "p50_s": round(float(np.percentile(lat, 50)), 3),
              "p95_s": round(float(np.percentile(lat, 95)), 3), "failed": len(failures), "differing": len(differing)}
    out(f"{clients} clients x {calls} calls = {clients * calls} calls in {wall:.1f} s: "
        f"{result['throughput_per_s']:.2f} answers/s, latency p50 {result['p50_s']:.2f} s, "
        f"p95 {result['p95_s']:.2f} s; failed {len(failures)}, differing {len(differing)}")
    for line in failures[:10] + differing[:10]:
        out("  " + line)
    result["failures"], result["differences"] = failures, differing
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--calls", type=int, default=2, help="calls per client (default 2)")
    p.add_argument("--timeout", type=float, default=900, help="seconds one call may take (default 900)")
    p.add_argument("--url", help="an app already running (default: launch python app.py)")
    args = p.parse_args(argv)
    proc = None
    url = args.url
    if url is None:
        proc, url = launch(args.clients)
    try:
        result = run(url, args.clients, args.calls, args.timeout)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
    return 0 if result["failed"] == 0 and result["differing"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
