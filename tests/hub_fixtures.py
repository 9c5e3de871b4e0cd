"""Fixtures shared by test_hub.py and test_registry.py (imported there by name): a temporary
registry entry backed by a tiny model, and huggingface_hub pointed at a FakeHub on 127.0.0.1."""
from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from attn_models import registry
from tests.hub_server import FakeHub
from tests.tiny_model import TinyNet, make_tiny

TINY_NAME = "test-tiny-net"
TINY_CLASS = "tests.tiny_model:TinyNet"
CARD_TEXT = "# test-tiny-net\n\nA card written by the test, with a picture: ![fig](samples.png)\n"


@dataclass
class Tiny:
    name: str
    model: TinyNet  # the reference model; outputs of every loaded copy must equal its outputs
    folder: Path  # the bundled weights folder of the temporary spec
    x: torch.Tensor  # a fixed input

    def outputs(self, model: torch.nn.Module) -> torch.Tensor:
        with torch.inference_mode():
            return model(self.x)

    def files(self) -> dict[str, bytes]:
        """What a published repo holds (the subset hf_hub_download asks for)."""
        return {f: (self.folder / f).read_bytes() for f in ("config.json", "model.safetensors")}


def save_tiny(folder: Path, seed: int = 0, **config) -> TinyNet:
    model = make_tiny(seed, **config)
    model.save_pretrained(folder)
    (folder / "README.md").write_text(CARD_TEXT)
    Image.fromarray(np.full((4, 4, 3), 40 * seed % 256, np.uint8)).save(folder / "samples.png")
    return model


@pytest.fixture
def tiny(tmp_path):
    """A registered model `test-tiny-net` whose bundled folder lives in tmp_path; removed afterwards."""
    folder = tmp_path / "weights" / TINY_NAME
    model = save_tiny(folder, seed=3, width=8, depth=2)
    registry.register(registry.ModelSpec(TINY_NAME, "classifier", TINY_CLASS, "tiny test model",
                                         weights_dir=str(folder)))
    torch.manual_seed(123)
    yield Tiny(TINY_NAME, model, folder, torch.randn(5, 8))
    registry.unregister(TINY_NAME)


@pytest.fixture
def fake_hub(monkeypatch, tmp_path):
    """A started FakeHub, with huggingface_hub pointed at it and at an empty cache in tmp_path.

    huggingface_hub reads HF_ENDPOINT/HF_HUB_CACHE/HF_HUB_OFFLINE once, at import, into its constants
    module; patching those constants is what setting the variables before start-up does (a subprocess
    test in test_hub.py sets the real variables).
    """
    hub = FakeHub().start()
    point_huggingface_hub_at(monkeypatch, hub.url, tmp_path / "hf-cache")
    yield hub
    hub.stop()


def point_huggingface_hub_at(monkeypatch, endpoint: str, cache_dir, offline: bool = False) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache_dir))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("ATTN_MODELS_HUB_ORG", raising=False)


def closed_port_url() -> str:
    """The URL of a local port nobody listens on: connections are refused at once, like a dead Hub."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"
