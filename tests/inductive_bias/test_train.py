"""The inductive-bias nets train through the scaffold: exact resume, named runs, an export that evaluates."""
from __future__ import annotations

import json

import pytest

from attn_models.inductive_bias import evaluate, train
from tests.training_checks import assert_exact_resume

TINY = ["--limit", "64", "--val-size", "16", "--batch-size", "8", "--widths", "4", "4", "--d-model", "8",
        "--heads", "2", "--layers", "1", "--eval-every", "0", "--warmup-steps", "1"]


@pytest.mark.parametrize("model", [["--kind", "cnn"], ["--kind", "attention", "--position", "relative"]])
def test_resume_is_exact(fashion_mnist, tmp_path, model):
    assert_exact_resume(train.main, [*TINY, *model], tmp_path, k=2)


def test_run_names_export_and_evaluate(fashion_mnist, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    train.main([*TINY, "--kind", "attention", "--position", "none", "--max-steps", "2", "--no-progress",
                "--export", "w"])
    assert (tmp_path / "runs" / "inductive-bias-attention-none" / "checkpoint").is_dir()
    out = evaluate.main(["w", "--limit", "40", "--json", "m.json"])
    m = out["models"]["w"]
    assert m["kind"] == "attention" and m["position"] == "none" and len(m["accuracy_vs_shift"]["mean"]) == 7
    assert json.loads((tmp_path / "m.json").read_text())["command"].startswith(
        "python -m attn_models.inductive_bias.evaluate w")
