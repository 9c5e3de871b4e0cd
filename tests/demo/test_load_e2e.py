"""bench/load.py at a small size against the test session's app: every client is served, each with exactly the
answer the same call gives alone (files compared by content)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

BENCH = Path(__file__).resolve().parents[2] / "bench" / "load.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_load", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_concurrent_clients_all_get_the_answer_they_get_alone(app_url):
    bench = load_bench()
    lines = []
    result = bench.run(app_url, clients=8, calls=1, timeout=600, out=lines.append)
    assert result["answered"] == 8, "\n".join(lines)
    assert result["failed"] == 0 and result["differing"] == 0, "\n".join(lines)
    assert result["p95_s"] >= result["p50_s"] > 0


def test_the_bench_compares_answers_by_content(tmp_path):
    """The same picture under two names (and encodings) is the same answer, another picture is not."""
    import numpy as np
    from PIL import Image

    bench = load_bench()
    a, b, c = (tmp_path / n for n in ("a.png", "b.png", "c.png"))
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(a)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(b, optimize=True)
    Image.fromarray(np.ones((4, 4, 3), np.uint8)).save(c)
    assert bench.canonical([str(a), {"x": 1}]) == bench.canonical([str(b), {"x": 1}])
    assert bench.canonical(str(a)) != bench.canonical(str(c))
