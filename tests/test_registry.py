"""The model registry: its table, local loading with strict checks and caching, every error a damaged
folder can cause (each naming the file), never unpickling, the `list` command, and the shipped weights."""
from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from attn_models import list_models, load, registry
from attn_models.__main__ import main as cli
from tests.hub_fixtures import TINY_CLASS, tiny  # noqa: F401  (fixture used by name)

REPO_ROOT = Path(__file__).resolve().parent.parent
PUBLIC_NAMES = {
    "sat-soft-fashion-scenes": "captioning",
    "sat-hard-fashion-scenes": "captioning",
    "sagan-fashion-mnist": "sagan",
    "image-transformer-1d-fashion-mnist": "image_transformer",
    "image-transformer-2d-fashion-mnist": "image_transformer",
    "fashion-mnist-classifier": "classifier",
}


def test_table_has_the_design_names():
    assert set(PUBLIC_NAMES) <= set(list_models())
    for name, task in PUBLIC_NAMES.items():
        spec = registry.get_spec(name)
        assert spec.task == task and spec.description
        assert spec.local_dir == registry.WEIGHTS_ROOT / name
        assert ":" in spec.model_class
    gans = list_models("sagan")
    assert "sagan-fashion-mnist" in gans and all(registry.get_spec(n).task == "sagan" for n in gans)
    assert "fashion-mnist-classifier" not in gans
    assert list_models() == sorted(list_models())


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError) as err:
        load("sagan-mnist")
    for name in PUBLIC_NAMES:
        assert name in str(err.value)
    assert "'sagan-mnist'" in str(err.value)


def test_bad_arguments(tiny):
    with pytest.raises(ValueError, match="unknown source 'web'"):
        load(tiny.name, source="web")
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        load(tiny.name, device="tpu")
    with pytest.raises(ValueError, match="unknown task"):
        registry.register(registry.ModelSpec("x", "segmentation", TINY_CLASS, "x"))


def test_local_round_trip_eval_mode_and_shared_copy(tiny):
    m = load(tiny.name, device="cpu")
    assert isinstance(m, type(tiny.model)) and not m.training
    assert m.registry_name == tiny.name
    assert torch.equal(tiny.outputs(m), tiny.outputs(tiny.model))
    assert m.out.weight.data_ptr() == m.inp.weight.data_ptr()  # the tie survived loading
    assert torch.equal(m.scale, tiny.model.scale)  # buffers are loaded, not left at their init
    # Cached per (name, device): every tab gets this one object; "auto" is the CPU here.
    assert load(tiny.name, device="cpu", source="local") is m
    if not torch.cuda.is_available():
        assert load(tiny.name, device="auto") is m
    registry.clear_cache(tiny.name)
    assert load(tiny.name, device="cpu") is not m


def test_source_local_without_bundled_files(tiny):
    for f in ("config.json", "model.safetensors"):
        (tiny.folder / f).unlink()
    with pytest.raises(ValueError, match=rf"no bundled weights for '{tiny.name}'.*source='hub'"):
        load(tiny.name, source="local")


def _expect_error(tiny, pattern: str, filename: str):
    with pytest.raises(ValueError, match=pattern) as err:
        load(tiny.name, device="cpu", source="local")
    assert str(tiny.folder / filename) in str(err.value), "the message must name the file"


def test_missing_config_names_the_file(tiny):
    (tiny.folder / "config.json").unlink()
    _expect_error(tiny, "missing model config", "config.json")


def test_missing_weights_name_the_file(tiny):
    (tiny.folder / "model.safetensors").unlink()
    _expect_error(tiny, "missing model weights", "model.safetensors")


def test_corrupt_config_names_the_file(tiny):
    (tiny.folder / "config.json").write_text('{"width": 8,')
    _expect_error(tiny, "corrupt model config", "config.json")
    (tiny.folder / "config.json").write_text("[8, 2]")
    _expect_error(tiny, "expected a JSON object", "config.json")
    (tiny.folder / "config.json").write_text(json.dumps({"width": 8, "heads": 4}))
    _expect_error(tiny, "does not fit TinyNet", "config.json")


@pytest.mark.parametrize("cut", ["half", "header", "empty"])
def test_truncated_weights_name_the_file(tiny, cut):
    path = tiny.folder / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes({"half": data[: len(data) // 2], "header": data[:20], "empty": b""}[cut])
    _expect_error(tiny, "corrupt or truncated weights file", "model.safetensors")


def test_garbage_weights_name_the_file(tiny):
    (tiny.folder / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    _expect_error(tiny, "corrupt or truncated weights file", "model.safetensors")


def test_strict_keys_missing_unexpected_and_shape(tiny):
    path = tiny.folder / "model.safetensors"
    state = load_file(path)
    # missing key
    save_file({k: v for k, v in state.items() if k != "scale"}, path)
    _expect_error(tiny, r"(?s)does not match TinyNet.*scale", "model.safetensors")
    # unexpected key (the mixin's own from_pretrained would accept this silently)
    save_file({**state, "extra.weight": torch.zeros(2)}, path)
    _expect_error(tiny, r"(?s)does not match TinyNet.*extra\.weight", "model.safetensors")
    # wrong shape
    save_file({**state, "scale": torch.zeros(3)}, path)
    _expect_error(tiny, "does not match TinyNet", "model.safetensors")


class _Payload:
    """Unpickling this object creates a file: proof that something unpickled it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_pickle_in_place_of_the_weights_is_never_unpickled(tiny, tmp_path):
    marker = tmp_path / "unpickled"
    for payload in (pickle.dumps(_Payload(marker)), None):
        path = tiny.folder / "model.safetensors"
        if payload is None:  # a torch.save zip archive, as in pytorch_model.bin
            torch.save({"x": _Payload(marker)}, path)
        else:
            path.write_bytes(payload)
        _expect_error(tiny, "corrupt or truncated weights file", "model.safetensors")
        assert not marker.exists()


def test_list_command_in_a_fresh_process():
    proc = subprocess.run([sys.executable, "-m", "attn_models", "list"], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    header, *rows = proc.stdout.strip().splitlines()
    assert header.split()[:4] == ["NAME", "TASK", "WEIGHTS", "DESCRIPTION"]
    assert sorted(r.split()[0] for r in rows) == list_models()
    for row in rows:
        name = row.split()[0]
        spec = registry.get_spec(name)
        assert spec.task in row and spec.description in row
        where = "local (weights/" if registry.auto_source(spec) == "local" else f"hub ({spec.repo_id})"
        assert where in row


def test_list_command_shows_where_weights_come_from(tiny, monkeypatch, capsys):
    assert cli(["list", "--task", "classifier"]) == 0
    out = capsys.readouterr().out
    assert tiny.name in out and f"local ({tiny.folder}/)" in out
    assert "sagan-fashion-mnist" not in out  # filtered by task
    monkeypatch.setenv("ATTN_MODELS_HUB_ORG", "my-org")  # the user's own published copies win
    assert cli(["list"]) == 0
    assert f"hub (my-org/{tiny.name})" in capsys.readouterr().out
    monkeypatch.delenv("ATTN_MODELS_HUB_ORG")
    for f in ("config.json", "model.safetensors"):
        (tiny.folder / f).unlink()
    assert cli(["list"]) == 0
    assert f"hub (attention-in-vision/{tiny.name})" in capsys.readouterr().out
    assert cli(["list", "--task", "audio"]) == 2


@pytest.mark.parametrize("name", list_models())
def test_shipped_weights_load_strictly(name):
    """Each bundled folder (once its owner ships it) loads strictly, small, with a model card."""
    spec = registry.get_spec(name)
    if not registry.has_local_weights(spec):
        pytest.skip(f"{spec.local_dir} not shipped yet")
    weights = spec.local_dir / "model.safetensors"
    assert weights.stat().st_size < 20 * 2**20, "keep shipped weights under 20 MB"
    assert (spec.local_dir / "README.md").is_file(), "every shipped model has a model card"
    m = load(name, device="cpu", source="local")
    assert not m.training and sum(p.numel() for p in m.parameters()) > 0
    assert set(load_file(weights)) <= set(m.state_dict())


def test_a_slow_hub_download_does_not_hold_up_other_models(monkeypatch):
    """While one model waits on the Hub (offline retries take ~25 s), another model still loads at once; two
    callers of the same model wait for one build."""
    import threading

    from attn_models import hub

    release, started, finished = threading.Event(), threading.Event(), threading.Event()

    def blocked_download(repo, rev):
        started.set()
        try:
            release.wait(30)
            raise ValueError("offline")
        finally:
            finished.set()

    monkeypatch.setattr(hub, "download_model_files", blocked_download)
    errors = []
    waiting = threading.Thread(target=lambda: errors.append(pytest.raises(ValueError, load, "sagan-fashion-mnist",
                                                                          device="cpu", source="hub")))
    waiting.start()
    try:
        assert started.wait(10)
        registry.clear_cache("fashion-mnist-classifier")
        m = load("fashion-mnist-classifier", device="cpu", source="local")  # not blocked by the download
        assert not finished.is_set()  # the other load is still downloading: nothing waited for it
        assert m is load("fashion-mnist-classifier", device="cpu", source="local")
    finally:
        release.set()
        waiting.join(30)
    assert errors and not waiting.is_alive()
