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


def test_store_writes_what_the_tab_reads_beside_registry_weights(fashion_mnist, tmp_path, monkeypatch):
    from attn_models import registry

    name = "inductive-bias-attention-none"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(registry, "WEIGHTS_ROOT", tmp_path / "weights")
    registry.clear_cache(name)
    train.main([*TINY, "--kind", "attention", "--position", "none", "--max-steps", "1", "--no-progress",
                "--export", f"weights/{name}"])
    try:
        out = evaluate.main([name, "--limit", "20", "--store"])
    finally:
        registry.clear_cache(name)
    stored = json.loads((tmp_path / "weights" / name / "metrics.json").read_text())
    assert stored["command"] == out["command"] and stored["test_accuracy"] == out["models"][name]["test_accuracy"]
    assert len(stored["accuracy_vs_shift"]["mean"]) == 7 and set(stored["equivariance_error"]["0"]) == {
        str(s) for s in range(1, 7)}


def test_bits_per_dim_against_shift_scores_the_moved_images():
    """Each point is the model's score of the images moved by s pixels; the share of ink moved out is reported."""
    import numpy as np

    from attn_models.inductive_bias.shift import bits_per_dim_vs_shift, shift_images

    class MeanIntensity:  # a stand-in "model" whose bits/dim is the images' mean intensity
        def bits_per_dim(self, images, labels=None):
            return float(images.mean())

    images = np.zeros((2, 28, 28), np.uint8)
    images[:, 0:3, 10:14] = 200  # ink along the top edge: an upward shift pushes it out
    curve = bits_per_dim_vs_shift(MeanIntensity(), images, np.zeros(2, np.int64), max_shift=3)
    assert curve["down"][1] == pytest.approx(images.mean())  # nothing leaves going down by 1
    assert curve["up"][1] == pytest.approx(shift_images(images[..., None], -1, 0).mean())
    assert curve["up"][3] == 0.0 and curve["ink_lost"][0] == 0.0 and curve["ink_lost"][3] == pytest.approx(0.25)
    assert curve["mean"][2] == pytest.approx(np.mean([curve[d][2] for d in ("up", "down", "left", "right")]))
    # the control loses the same pixels without moving the rest: for this "model" (mean intensity) moving costs
    # nothing, so the position penalty is 0 at every shift
    assert curve["cropped_mean"][3] == pytest.approx(curve["mean"][3])
    assert curve["position_penalty"] == pytest.approx([0.0] * 4, abs=1e-12)
