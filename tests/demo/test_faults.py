"""Faults outside the user's control: weights missing or corrupt, a Hub that does not answer, a full disk
when writing an output, a handler that fails unexpectedly. Each must reach the user as words (a gr.Error),
leave the other tabs working, and go away with its cause (nothing broken is cached)."""
from __future__ import annotations

import dataclasses
import errno
import shutil
import types
from contextlib import ExitStack, contextmanager

import gradio as gr
import numpy as np
import pytest

from attn_models import registry
from demo import captioning_tab, common, explorer_tab, render, sagan_tab
from demo import image_transformer_tab as imt_tab
from tests.demo.test_image_transformer_tab import tiny as tiny_imt
from tests.hub_fixtures import closed_port_url, point_huggingface_hub_at

SAGAN = sagan_tab.MODEL_NAME
SOFT = captioning_tab.MODEL_NAMES["soft"]


@pytest.fixture(scope="module")
def tiny_imt_models():
    with ExitStack() as stack:
        for kind, name in imt_tab.MODEL_NAMES.items():
            stack.enter_context(common.override_model(name, tiny_imt(kind)))
        yield


def no_progress(*_a, **_k):
    return None


def other_tabs_work(broken: str) -> None:
    """A normal call of every tab but ``broken`` succeeds."""
    if broken != "captioning":
        assert captioning_tab.caption(captioning_tab.example_paths()[0], "soft", 1, True)[5]["words"]
    if broken != "sagan":
        assert sagan_tab.generate("bag", 1, 2, False)[4]["count"] == 2
    if broken != "imt":
        *_, last = imt_tab.sample("local1d", 0, 1.0, 0, 1, progress=no_progress)  # (picture, status, ...)
        assert "Done" in last[1]
    if broken != "explorer":
        assert len(explorer_tab.cost_table(*explorer_tab.DEFAULTS.values(), 64)) > 3


def message_of(fn, *args) -> str:
    with pytest.raises(gr.Error) as err:
        out = fn(*args)
        if hasattr(out, "__next__"):
            list(out)
    return str(err.value.message)


@contextmanager
def weights_in(name: str, folder):
    """Serve ``name`` from the registry with its weights read from ``folder`` (no test override, nothing cached);
    afterwards the real spec again, loaded afresh."""
    spec = registry.get_spec(name)
    registry.register(dataclasses.replace(spec, weights_dir=str(folder)))
    registry.clear_cache(name)
    try:
        with common.override_model(name, None):
            yield
    finally:
        registry.register(spec)
        registry.clear_cache(name)


# ---------------------------------------------------------------------------------------------
# Weights missing or corrupt


def break_weights(folder, how: str) -> str:
    """Damage a copy of a weights folder; returns the file the message must name."""
    weights = folder / "model.safetensors"
    if how == "missing weights":
        weights.unlink()
    elif how == "truncated weights":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif how == "garbage config":
        (folder / "config.json").write_text('{"channels": ')
        return "config.json"
    return "model.safetensors"


@pytest.mark.parametrize("how", ["missing weights", "truncated weights", "garbage config"])
@pytest.mark.parametrize("tab, name, call", [
    ("sagan", SAGAN, lambda: sagan_tab.generate("bag", 1, 2, False)),
    ("captioning", SOFT, lambda: captioning_tab.caption(captioning_tab.example_paths()[0], "soft", 1, True)),
])
def test_broken_weights_are_named_and_the_other_tabs_work(tmp_path, tiny_imt_models, tab, name, call, how):
    folder = tmp_path / name
    shutil.copytree(registry.get_spec(name).local_dir, folder)
    filename = break_weights(folder, how)
    with weights_in(name, folder):
        message = message_of(call)
        assert f"Could not load the model {name}" in message and str(folder / filename) in message
        other_tabs_work(broken=tab)
        assert message_of(call) == message  # asked again: the same answer, not a half-loaded model
    call()  # the real weights back in place: the tab recovers without a restart


def test_a_model_whose_weights_are_gone_from_the_folder(tmp_path, tiny_imt_models):
    # A folder left with only its card: nothing bundled, so the registry turns to the Hub; offline, that fails
    # at once with advice instead of hanging.
    folder = tmp_path / SAGAN
    folder.mkdir()
    (folder / "README.md").write_text("card only")
    with pytest.MonkeyPatch.context() as mp, weights_in(SAGAN, folder):
        point_huggingface_hub_at(mp, closed_port_url(), tmp_path / "hf-cache", offline=True)
        message = message_of(sagan_tab.generate, "bag", 1, 2, False)
        assert f"Could not load the model {SAGAN}" in message and "unreachable" in message
        other_tabs_work(broken="sagan")


# ---------------------------------------------------------------------------------------------
# A Hub that does not answer


def test_a_hub_that_does_not_answer(monkeypatch, tmp_path, tiny_imt_models):
    """A deployer pointed the soft captioner at a Hub repo (ATTN_CAPTION_SOFT_REPO) and the Hub is down."""
    point_huggingface_hub_at(monkeypatch, closed_port_url(), tmp_path / "empty-cache")
    from huggingface_hub.utils import _http

    waits = []  # huggingface_hub backs off 1+2+4+8+8 s between retries: record the waits instead of sleeping
    monkeypatch.setattr(_http, "time", types.SimpleNamespace(sleep=waits.append))
    monkeypatch.setenv(captioning_tab.REPO_ENV["soft"], "someone/photo-captioner")
    with common.override_model(SOFT, None):
        message = message_of(captioning_tab.caption, captioning_tab.example_paths()[0], "soft", 1, True)
    assert waits, "the real retry path ran"
    assert f"Could not load the model {SOFT}" in message and "'someone/photo-captioner'" in message
    assert "unreachable" in message
    # The hard captioner (bundled weights) and the other tabs still work.
    assert captioning_tab.caption(captioning_tab.example_paths()[0], "hard", 1, True)[5]["words"]
    other_tabs_work(broken="captioning")


# ---------------------------------------------------------------------------------------------
# A full disk when writing an output


def no_space(*_a, **_k):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("where", ["new file", "while writing"])
@pytest.mark.parametrize("call", [
    lambda: sagan_tab.sweep("bag", 1, 1, False, 0, 8),
    lambda: sagan_tab.interpolate("bag", 1, 2, 2, False),
    lambda: captioning_tab.caption(captioning_tab.example_paths()[0], "soft", 1, True),
    lambda: captioning_tab.new_random_scene(),
], ids=["sagan_sweep", "sagan_interpolate", "caption", "random_scene"])
def test_a_full_disk_is_reported(monkeypatch, tiny_imt_models, fashion_mnist_or_skip, where, call):
    if where == "new file":
        monkeypatch.setattr(render, "output_path", no_space)
    else:  # the file was created, then the disk filled up while the frames went in
        monkeypatch.setattr(render.Image.Image, "save", no_space)  # PNG and GIF go through Pillow
    assert "No space left on device" in message_of(call)
    # Tabs that write no file keep working.
    assert sagan_tab.generate("bag", 1, 2, False)[4]["count"] == 2
    assert len(explorer_tab.cost_table(*explorer_tab.DEFAULTS.values(), 64)) > 3


@pytest.fixture
def fashion_mnist_or_skip(request):
    """new_random_scene needs Fashion-MNIST; the other calls do not."""
    if "random_scene" in request.node.name:
        request.getfixturevalue("fashion_mnist")


# ---------------------------------------------------------------------------------------------
# A handler that raises unexpectedly


class Exploding:
    """Stands in for a model whose forward pass fails (a driver error, a bug in a layer)."""

    def __init__(self, error: Exception):
        self.error = error

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)

        def fail(*_a, **_k):
            raise self.error

        return fail


@pytest.mark.parametrize("error, expected", [
    (RuntimeError("CUDA error: an illegal memory access was encountered"), "RuntimeError: CUDA error"),
    (MemoryError(), "MemoryError"),
])
def test_an_unexpected_failure_is_told_in_words(tiny_imt_models, error, expected):
    with common.override_model(SAGAN, Exploding(error)):
        message = message_of(sagan_tab.generate, "bag", 1, 2, False)
        assert "computation failed" in message and expected in message
        other_tabs_work(broken="sagan")
    assert sagan_tab.generate("bag", 1, 2, False)[4]["count"] == 2


@pytest.mark.parametrize("error", [KeyError("gammas"), TypeError("unsupported operand"), IndexError("list index")])
def test_a_bug_in_a_handler_is_told_in_words(tiny_imt_models, error):
    with common.override_model(SAGAN, Exploding(error)):
        message = message_of(sagan_tab.generate, "bag", 1, 2, False)
    assert type(error).__name__ in message and len(message.split()) >= 3


# ---------------------------------------------------------------------------------------------
# Through the launched app: what the browser gets is the message, and the server keeps serving.


@pytest.mark.e2e
def test_faults_through_the_app(client, tmp_path, tiny_imt_models):
    from gradio_client.exceptions import AppError

    folder = tmp_path / SAGAN
    shutil.copytree(registry.get_spec(SAGAN).local_dir, folder)
    break_weights(folder, "truncated weights")
    with weights_in(SAGAN, folder):
        with pytest.raises(AppError, match=f"Could not load the model {SAGAN}.*corrupt or truncated"):
            client.predict("bag", 1, 2, False, api_name="/sagan_generate")
        h, w, _c, *rest = explorer_tab.DEFAULTS.values()  # the API takes the channel choice as a string
        assert client.predict(h, w, "1", *rest, 64, api_name="/explorer_cost")["data"]
    with common.override_model(SAGAN, Exploding(RuntimeError("device lost"))):
        with pytest.raises(AppError, match=r"computation failed \(RuntimeError: device lost\)"):
            client.predict("bag", 1, 2, False, 0, 16, 16, api_name="/sagan_attention")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(render, "output_path", no_space)
        with pytest.raises(AppError, match="No space left on device"):
            client.predict("bag", 1, 1, False, 0, 8, api_name="/sagan_sweep")
    *_, numbers = client.predict("bag", 1, 2, False, api_name="/sagan_generate")
    assert numbers["classes"] == ["bag", "bag"]
    info = client.predict("bag", 1, 2, False, 0, 16, 16, api_name="/sagan_attention")[0]  # (numbers, downloads)
    assert np.asarray(info["attention"]).shape == tuple(info["key_hw"])
