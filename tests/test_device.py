"""resolve_device: auto = cuda, then mps, then cpu; explicit requests are checked against the machine."""
from __future__ import annotations

import pytest
import torch

from attn_models.device import VALID_DEVICES, resolve_device


def _machine(monkeypatch, cuda: bool, mps: bool) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


@pytest.mark.parametrize(("cuda", "mps", "expected"), [
    (True, True, "cuda"),  # CUDA wins over MPS
    (True, False, "cuda"),
    (False, True, "mps"),
    (False, False, "cpu"),
])
def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, expected):
    _machine(monkeypatch, cuda, mps)
    assert resolve_device("auto") == torch.device(expected)
    assert resolve_device(" AUTO ") == torch.device(expected)


def test_auto_on_this_machine_matches_what_torch_reports():
    dev = resolve_device()
    if torch.cuda.is_available():
        assert dev.type == "cuda"
    elif torch.backends.mps.is_available():
        assert dev.type == "mps"
    else:
        assert dev == torch.device("cpu")
    torch.zeros(2, device=dev)  # and it is usable


def test_explicit_devices(monkeypatch):
    _machine(monkeypatch, cuda=True, mps=True)
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("cuda") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device("mps") == torch.device("mps")
    given = torch.device("cpu")
    assert resolve_device(given) is given


def test_unavailable_or_unknown_devices_say_what_to_do(monkeypatch):
    _machine(monkeypatch, cuda=False, mps=False)
    with pytest.raises(ValueError, match="no CUDA GPU is available; use --device cpu or auto"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="MPS is not available"):
        resolve_device("mps")
    with pytest.raises(ValueError) as err:
        resolve_device("tpu")
    assert all(d in str(err.value) for d in VALID_DEVICES)
