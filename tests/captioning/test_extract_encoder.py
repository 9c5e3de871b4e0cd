"""extract_encoder: the shipped decoders' frozen encoder, written as --encoder-from reads it."""
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from attn_models import load
from attn_models.captioning.extract_encoder import main
from attn_models.captioning.pretrain import encoder_file

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "weights" / "sat-hard-fashion-scenes"


def test_the_shipped_encoder_round_trips_into_a_strict_load(tmp_path):
    target = main([str(SHIPPED), str(tmp_path / "enc")])
    assert encoder_file(tmp_path / "enc") == target  # what --encoder-from resolves a folder to
    model = load("sat-hard-fashion-scenes", device="cpu")
    extracted = load_file(str(target))
    expected = model.encoder.state_dict()
    assert extracted.keys() == expected.keys()
    assert all(torch.equal(extracted[k], expected[k].cpu()) for k in expected)
    with safe_open(str(target), "pt") as f:
        assert f.metadata()["source"].endswith("model.safetensors") and len(f.metadata()["source_sha256"]) == 64


def test_a_folder_without_a_model_or_without_an_encoder_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="no model.safetensors"):
        main([str(tmp_path), str(tmp_path / "enc")])
    save_file({"decoder.w": torch.zeros(2)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(SystemExit, match="no encoder"):
        main([str(tmp_path), str(tmp_path / "enc")])
    assert not (tmp_path / "enc" / "encoder.safetensors").exists()
