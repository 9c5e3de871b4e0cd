"""bench/gpu_check.py without a GPU: its CPU-vs-CPU dry run on a few models and handlers passes and reports every
row, a difference beyond a tolerance is caught, and asking for CUDA where there is none is a note, not a failure."""
from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

import gpu_check  # noqa: E402


def test_cpu_against_cpu_on_a_few_models_and_handlers(tmp_path, capsys):
    out = tmp_path / "check.json"
    rc = gpu_check.main(["--device", "cpu", "--models", "sagan-fashion-mnist", "sat-soft-fashion-scenes",
                         "--handlers", "sagan_attention", "explorer_cost", "--repeats", "1", "--threads", "1",
                         "--json", str(out)])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    rows = json.loads(out.read_text())["rows"]
    assert [r["name"] for r in rows] == ["sagan-fashion-mnist", "sat-soft-fashion-scenes", "sagan_attention",
                                         "explorer_cost"]
    assert all(r["ok"] and r["cpu_s"] > 0 and r["device_s"] > 0 for r in rows), rows
    assert "speedup" in printed and "sagan_attention" in printed
    assert torch.get_num_threads() == 1  # as conftest set it (the check ran with --threads 1)


def test_a_difference_beyond_the_tolerance_is_caught():
    checks, _ = gpu_check.model_checks(["sagan-fashion-mnist"])
    a = checks[0].run("cpu")
    b = copy.deepcopy(a)
    assert checks[0].compare(a, b).ok
    b["attention"][0, 0] += 0.01
    d = checks[0].compare(a, b)
    assert not d.ok and "attention" in d.problems[0] and d.float_max == pytest.approx(0.01, rel=1e-3)
    b = copy.deepcopy(a)
    b["images"][0, :8] ^= 0x40  # a block of pixels far off
    assert not checks[0].compare(a, b).ok


def test_the_faithfulness_answer_holds_its_maps_to_the_maps_tolerance():
    """Its occlusion drops take the looser tolerance (differences of log-probabilities); its α maps do not."""
    faithful = lambda a, b: gpu_check.compare(a, b, tol=gpu_check.TOLERANCE["faithfulness"])  # noqa: E731
    a = {"per_word": [{"word": "red", "drop_attended": 0.5, "alpha": [0.25, 0.75]}]}
    b = copy.deepcopy(a)
    b["per_word"][0]["drop_attended"] += 0.01  # within 2e-2
    assert faithful(a, b).ok
    b["per_word"][0]["alpha"] = [0.26, 0.74]  # 1e-2: within the faithfulness tolerance, not within the maps'
    d = faithful(a, b)
    assert not d.ok and "alpha" in d.problems[0]


def test_words_text_and_files_are_compared(tmp_path):
    from PIL import Image

    assert not gpu_check.compare({"words": ["a", "bag"]}, {"words": ["a", "coat"]}).ok
    assert gpu_check.compare("gamma +0.1234", "gamma +0.1235").ok  # a last printed digit
    assert not gpu_check.compare("gamma +0.1234", "gamma +0.9234").ok
    x = np.zeros((16, 16, 3), np.uint8)
    y = x.copy()
    y[3, 4, 1] = 1  # one value rounded the other way: within the tolerance
    Image.fromarray(x).save(tmp_path / "a.png")
    Image.fromarray(y).save(tmp_path / "b.png")
    z = x.copy()
    z[:, :4] = 200  # a quarter of the figure different: not rounding noise
    Image.fromarray(z).save(tmp_path / "c.png")
    Image.fromarray(np.where(y, 9, x).astype(np.uint8)).save(tmp_path / "d.png")  # one value far off
    # Figures (files): a colour map or a printed digit may move a few pixels far; a block of them is a failure.
    assert gpu_check.compare(str(tmp_path / "a.png"), str(tmp_path / "b.png")).ok
    assert gpu_check.compare(str(tmp_path / "a.png"), str(tmp_path / "d.png")).ok
    assert not gpu_check.compare(str(tmp_path / "a.png"), str(tmp_path / "c.png")).ok
    # Images the models make (arrays, and grey levels in downloads): 1-level rounding steps on a few values only.
    assert gpu_check.compare(x, y).ok
    assert not gpu_check.compare(x, x + 1).ok  # every value moved: an offset, not rounding
    assert not gpu_check.compare(x, np.where(y, 9, x).astype(np.uint8)).ok  # one value far off
    levels = {"image": x.astype(float).tolist()}
    assert gpu_check.compare(levels, {"image": y.astype(float).tolist()}).ok
    assert not gpu_check.compare(levels, {"image": np.where(y, 9, x).astype(float).tolist()}).ok


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present: the real check would run")
def test_no_cuda_is_a_note_and_exit_0(capsys):
    assert gpu_check.main(["--device", "cuda"]) == 0
    assert gpu_check.NO_CUDA in capsys.readouterr().out


def test_every_endpoint_has_a_check(tmp_path):
    assert set(gpu_check.endpoints()) <= set(gpu_check.handler_checks(tmp_path))
