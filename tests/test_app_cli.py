"""app.py's command line and the ZeroGPU wrapper in demo/gpu.py."""
from __future__ import annotations

import importlib
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_help_documents_every_flag_without_loading_the_ui():
    # -X importtime lists every module imported: --help must not pull in Gradio (it stays instant).
    proc = subprocess.run([sys.executable, "-X", "importtime", "app.py", "--help"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for flag in ("--share", "--device", "--port", "--host"):
        assert flag in out
    assert "{auto,cpu,cuda,mps}" in out and "gradio.live" in out and "0.0.0.0" in out
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert "demo.gpu" in imported and "gradio" not in imported


def test_parse_args_defaults_and_environment(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO_ROOT))
    import app

    for var in ("ATTN_DEVICE", "GRADIO_SERVER_PORT", "GRADIO_SERVER_NAME"):
        monkeypatch.delenv(var, raising=False)
    args = app.parse_args([])
    assert (args.device, args.port, args.host, args.share) == ("auto", 7860, "127.0.0.1", False)
    args = app.parse_args(["--device", "cpu", "--port", "9000", "--host", "0.0.0.0", "--share"])
    assert (args.device, args.port, args.host, args.share) == ("cpu", 9000, "0.0.0.0", True)
    # A Space sets these; the defaults follow them.
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    monkeypatch.setenv("GRADIO_SERVER_PORT", "7861")
    monkeypatch.setenv("ATTN_DEVICE", "cpu")
    args = app.parse_args([])
    assert (args.device, args.port, args.host) == ("cpu", 7861, "0.0.0.0")


def test_bad_flags_fail_with_a_message(monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(REPO_ROOT))
    import app

    with pytest.raises(SystemExit) as exit_:
        app.main(["--device", "tpu"])
    assert exit_.value.code == 2 and "invalid choice: 'tpu'" in capsys.readouterr().err
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit) as exit_:
            app.main(["--device", "cuda"])
        assert exit_.value.code == 2 and "no CUDA GPU is available" in capsys.readouterr().err


def _reload_gpu(monkeypatch, spaces_module):
    if spaces_module is None:
        monkeypatch.setitem(sys.modules, "spaces", None)  # makes `import spaces` raise ImportError
    else:
        monkeypatch.setitem(sys.modules, "spaces", spaces_module)
    import demo.gpu

    return importlib.reload(demo.gpu)


def test_gpu_handler_is_a_no_op_without_spaces(monkeypatch):
    gpu = _reload_gpu(monkeypatch, None)

    def handler(x, y=2):
        return x * y

    def stream(n):
        yield from range(n)

    assert gpu.gpu_handler(handler) is handler  # plain @gpu_handler
    assert gpu.gpu_handler(duration=120)(handler) is handler  # @gpu_handler(duration=...)
    assert list(gpu.gpu_handler(stream)(3)) == [0, 1, 2]  # generators (streamed outputs) too
    importlib.reload(gpu)


def test_gpu_handler_is_spaces_gpu_when_spaces_imports(monkeypatch):
    calls = []

    def fake_gpu(fn=None, **kwargs):  # the decorator shape of spaces.GPU: bare or with duration=
        calls.append(kwargs)
        if fn is None:
            return lambda f: fake_gpu(f, **kwargs)
        fn.on_zero_gpu = True
        return fn

    gpu = _reload_gpu(monkeypatch, types.SimpleNamespace(GPU=fake_gpu))
    assert gpu.gpu_handler is fake_gpu

    @gpu.gpu_handler
    def a():
        return 1

    @gpu.gpu_handler(duration=90)
    def b():
        return 2

    assert a.on_zero_gpu and b.on_zero_gpu and a() == 1 and b() == 2
    assert {"duration": 90} in calls
    monkeypatch.undo()
    importlib.reload(gpu)


@pytest.mark.parametrize("module", ["app", "demo.gpu"])
def test_spaces_is_imported_before_torch(module):
    """ZeroGPU needs `import spaces` before torch initialises CUDA: app.py imports demo.gpu first."""
    source = (REPO_ROOT / (module.replace(".", "/") + ".py")).read_text()
    lines = [ln for ln in source.splitlines() if ln.startswith(("import ", "from "))]
    first_torch_user = next((i for i, ln in enumerate(lines) if "attn_models" in ln or "torch" in ln), len(lines))
    if module == "app":
        assert any("demo.gpu" in ln for ln in lines[:first_torch_user])
    else:
        assert not any("torch" in ln or "gradio" in ln for ln in lines)
