"""bench/sagan_train_step.py at a tiny size: both arms built by the SAGAN training task, timed in turns, and the
JSON that ``attn_models.cards --step-cost`` reads. Timings are never asserted (they depend on the machine and its
load), only that they exist and that the ratio is the one of the two medians."""
from __future__ import annotations

import json
import shlex
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

import sagan_train_step  # noqa: E402

TINY = ["--ch", "8", "--batch-size", "4", "--z-dim", "16", "--limit", "64"]
KEYS = {"attention_s_per_step", "none_s_per_step", "ratio", "repeats", "threads", "torch", "load_average", "command"}


def test_tiny_run_writes_both_arms_and_their_ratio(fashion_mnist, tmp_path, capsys):
    out = tmp_path / "cost.json"
    argv = ["--repeats", "3", "--warmup", "1", *TINY, "--json", str(out)]
    returned = sagan_train_step.main(argv)
    result = json.loads(out.read_text())
    assert result == json.loads(json.dumps(returned))
    assert KEYS <= set(result)
    assert result["repeats"] == 3 and result["threads"] == 1 and result["torch"]
    assert result["command"] == "python bench/sagan_train_step.py " + shlex.join(argv)
    assert result["ratio"] == result["attention_s_per_step"] / result["none_s_per_step"]
    for arm in ("attention", "none"):
        times = result["times_s"][arm]
        assert len(times) == 3 and all(t > 0 for t in times)
        assert result[f"{arm}_s_per_step"] == statistics.median(times)
    # the arms differ only in attention: G and D at 16x16 (the task's default) vs none
    assert result["arms"]["attention"]["g_attn_res"] == [16] and result["arms"]["attention"]["d_attn_res"] == [16]
    assert result["arms"]["none"]["g_attn_res"] == [] and result["arms"]["none"]["d_attn_res"] == []
    assert result["arms"]["none"]["flags"] == [*TINY, "--attn-res", "none"]
    assert {arm["batch_size"] for arm in result["arms"].values()} == {4}
    assert len(result["load_average"]["before"]) == 3 and len(result["load_average"]["after"]) == 3
    printed = capsys.readouterr().out
    assert "ratio attention / none" in printed and f"{result['ratio']:.4f}" in printed
