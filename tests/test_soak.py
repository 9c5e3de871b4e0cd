"""bench/soak.py: its growth rule on made-up series, and a short real run against the launched app."""
from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

import soak  # noqa: E402


def series(values, every_s: float = 60.0):
    return [i * every_s for i in range(len(values))], list(values)


def test_a_leak_is_caught():
    rng = np.random.default_rng(0)
    leak = 500 + 3.0 * np.arange(30) + rng.normal(0, 1, 30)  # +3 MB a minute under 1 MB of noise
    assert soak.keeps_growing(*series(np.maximum.accumulate(leak)), *soak.GROWTH_RULES["rss_mb"])
    assert soak.keeps_growing(*series(range(10, 40)), abs_tol=3)  # one more descriptor every sample


@pytest.mark.parametrize("values", [
    np.full(30, 800.0),  # flat
    800 + np.random.default_rng(1).normal(0, 8, 30),  # noisy but level
    np.r_[np.full(5, 500.0), np.full(25, 700.0)],  # one jump (a model loaded), then level
    np.tile([600.0, 620, 640, 660, 600], 6),  # sawtooth cut back by a cleanup
    # grew while warming up, then settled
    np.r_[np.arange(500, 560, 4.0), np.full(15, 560.0)] + np.random.default_rng(2).normal(0, 2, 30),
    [1.0, 2.0, 3.0],  # too short to say
])
def test_what_is_not_growth(values):
    assert soak.keeps_growing(*series(values), *soak.GROWTH_RULES["rss_mb"]) is None


def test_the_cache_is_judged_by_the_size_it_reaches_at_the_cleanup_age():
    rows = [dict(t_min=m, rss_mb=700.0, fds=40, threads=20, tmp_mb=1.0, p50_s=0.2, cache_mb=10.0 + 50 * m)
            for m in range(6)]
    problems = soak.judge(rows, run_s=300, max_cache_mb=2048)  # 50 MB a minute: 3 GB after an hour
    assert len(problems) == 1 and "cache_mb would reach" in problems[0]
    assert soak.judge(rows, run_s=300, max_cache_mb=4096) == []


@pytest.mark.e2e
def test_a_short_soak_run(tmp_path):
    """One minute, a sample every 10 s, one client: the server must hold steady and the report be written."""
    proc = subprocess.run([sys.executable, "bench/soak.py", "--minutes", "1", "--every-s", "10", "--clients", "1",
                           "--out", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=540)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "OK: nothing kept growing" in proc.stdout
    with open(tmp_path / "soak.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) >= 6 and all(float(r["rss_mb"]) > 50 for r in rows)
    assert sum(int(r["calls"]) for r in rows) >= 10
    assert (tmp_path / "soak.png").stat().st_size > 10_000


def test_rss_is_judged_only_on_runs_long_enough_to_settle():
    """RSS still settles minutes after the warm-up: a short run's rise is not called a leak; a long run's is."""
    rows = [dict(t_min=m, rss_mb=800.0 + 20 * m, fds=40, threads=20, tmp_mb=1.0, p50_s=0.2, cache_mb=10.0)
            for m in range(0, 31, 3)]
    short = [dict(r, t_min=r["t_min"] / 6) for r in rows]  # the same rise squeezed into 5 minutes
    assert not any("rss_mb" in p for p in soak.judge(short, run_s=300, max_cache_mb=2048))
    assert any("rss_mb keeps growing" in p for p in soak.judge(rows, run_s=1800, max_cache_mb=2048))
