"""The evaluation entry: a weights folder in, the metrics JSON (the keys of the shipped metrics.json) out."""
import json

import torch

from attn_models.captioning import evaluate
from attn_models.captioning.model import ShowAttendTell

KEYS = ["bleu1", "bleu2", "bleu3", "bleu4", "object_recall", "attention_correctness", "uniform_baseline",
        "object_words", "scenes", "beam_size", "exact_match", "model", "attention", "seconds", "command"]


def test_evaluate_writes_the_metrics_json(tmp_path, fashion_mnist):
    torch.manual_seed(0)
    ShowAttendTell(attention="hard", encoder_channels=8, encoder_widths=(4, 6, 8), embed_dim=8, hidden_dim=16,
                   attn_dim=8).eval().save_pretrained(tmp_path / "w")
    evaluate.main([str(tmp_path / "w"), "--limit", "3", "--beam-size", "2", "--max-len", "4",
                   "--json", str(tmp_path / "m.json"), "--figure", str(tmp_path / "f.png"), "--figure-scenes", "1"])
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert list(metrics) == KEYS and metrics["scenes"] == 3 and metrics["attention"] == "hard"
    assert metrics["command"].startswith("python -m attn_models.captioning.evaluate ")
    assert "--limit 3" in metrics["command"]
    assert all(0 <= metrics[k] <= 1 for k in KEYS[:4]) and (tmp_path / "f.png").stat().st_size > 0
