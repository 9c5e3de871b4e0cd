"""bench/speed.py at its smallest size: it launches the app, times every workload and the sampler, and writes the
JSON it documents. Timings are never asserted (they depend on the machine and its load), only that they exist."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

import speed  # noqa: E402

WORKLOADS = {"caption", "sagan_16_then_pixel", "sagan_generate_16", "sagan_attention_pixel", "imt_sample_4_local1d",
             "imt_sample_4_local2d"}


def test_flop_estimate_follows_the_config():
    """The count sampler_flops documents, redone by hand for a small local 1D model."""
    from attn_models.image_transformer.model import ImageTransformer

    m = ImageTransformer(image_size=8, channels=1, d_model=16, heads=2, layers=3, ffn=32, attention="local1d",
                         query_len=8, memory_len=16).eval()
    f = speed.sampler_flops(m)
    assert f["cache_slots"] == 8 + 16 + 1 and f["positions"] == 64
    per_layer = 2 * 16 * 48 + 2 * 16 * 16 + 4 * 16 * 32 + 4 * 25 * 16
    assert f["flops_executed"] == 64 * (3 * per_layer + 2 * 16 * 256)
    assert 0 < f["keys_needed_mean"] <= 24 < f["keys_executed"]
    assert f["flops_needed"] < f["flops_executed"]


def test_batch_sizes_are_read_spaced_or_with_commas():
    assert speed.batch_sizes("1,4") == [1, 4] and speed.batch_sizes("16") == [16]
    with pytest.raises(Exception, match="whole numbers"):
        speed.batch_sizes("1,four")


@pytest.mark.e2e
def test_smallest_run_writes_every_number(tmp_path):
    out = tmp_path / "speed.json"
    proc = subprocess.run([sys.executable, "bench/speed.py", "--repeats", "1", "--batches", "1", "--threads", "1",
                           "--json", str(out)], cwd=REPO, capture_output=True, text=True, timeout=580)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["threads"] == 1 and result["repeats"] == 1 and result["cold_start_s"] > 0
    assert {w["name"] for w in result["app"]} == WORKLOADS | {w + speed.NO_DOWNLOADS for w in WORKLOADS}
    for w in result["app"]:
        assert len(w["times_s"]) == 1 and w["median_s"] > 0 and w["p90_s"] >= w["median_s"]
        assert (w["target_s"] is None) == (w["median_ratio"] is None)
    assert {(r["model"], r["batch"]) for r in result["sampler"]} == {(m, 1) for m in speed.IMT_MODELS.values()}
    for r in result["sampler"]:
        assert r["images_per_s"] > 0 and r["flops"]["flops_executed"] > 0
    assert "caption" in proc.stdout and "img/s" in proc.stdout
