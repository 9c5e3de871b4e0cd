"""`python -m attn_models.classifier.evaluate`: the shipped classifier on the whole test set, and a run's export."""
from __future__ import annotations

import json

from attn_models.classifier import evaluate


def test_shipped_classifier_accuracy_and_json(fashion_mnist, tmp_path):
    out = evaluate.main(["fashion-mnist-classifier", "--json", str(tmp_path / "m.json")])
    assert json.loads((tmp_path / "m.json").read_text())["test_accuracy"] == out["test_accuracy"]
    assert out["n"] == 10_000 and out["test_accuracy"] > 0.9  # the card's 0.9234, with room for float noise
    assert out["test_accuracy"] >= out["test_accuracy_single_view"] - 0.01  # mirror averaging does not hurt
    assert set(out["per_class"]) == set(range(10))
    want = f"python -m attn_models.classifier.evaluate fashion-mnist-classifier --json {tmp_path}/m.json"
    assert out["command"] == want


def test_a_weights_folder_evaluates_too(fashion_mnist, tmp_path):
    from attn_models.classifier.model import FashionMNISTClassifier

    FashionMNISTClassifier(widths=[8, 8, 8], hidden=16).save_pretrained(tmp_path / "w")
    out = evaluate.main([str(tmp_path / "w")])
    assert 0 <= out["test_accuracy"] <= 1 and out["model"] == str(tmp_path / "w")
