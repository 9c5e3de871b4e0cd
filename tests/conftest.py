"""Shared fixtures. Tests needing Fashion-MNIST or Chromium skip when those are missing, except in CI
(.ci/run sets ATTN_REQUIRE_DATA / ATTN_REQUIRE_BROWSER), where a missing one is a failure."""
from __future__ import annotations

import os
import shutil
import socket

import pytest
import torch

# One intra-op thread: the in-process app server and the tests share two cores, and oversubscribed OpenMP
# threads made the step-by-step sampler 10-100x slower here.
torch.set_num_threads(1)


def _missing(what: str, env: str) -> None:
    if os.environ.get(env):
        pytest.fail(f"{what} is required here ({env} is set) but missing")
    pytest.skip(f"{what} not available")


@pytest.fixture(scope="session")
def fashion_mnist():
    """(train_images, train_labels, test_images, test_labels) from the offline Debian package or $FASHION_MNIST_DIR."""
    from attn_models.data import load_fashion_mnist

    try:
        tr = load_fashion_mnist("train", download=False)
        te = load_fashion_mnist("test", download=False)
    except FileNotFoundError:
        _missing("Fashion-MNIST (apt-get install dataset-fashion-mnist)", "ATTN_REQUIRE_DATA")
    return tr[0], tr[1], te[0], te[1]


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        _missing("Chromium (apt-get install chromium)", "ATTN_REQUIRE_BROWSER")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def app_url():
    """The full app, launched once per test session on a free local port (CPU), with app.py's limits."""
    from app import launch_settings
    from demo.layout import build_app

    app = build_app("cpu")
    port = free_port()
    queue, launch = launch_settings()  # the served app's queue bound and upload limit ($ATTN_MAX_* apply)
    app.queue(**queue).launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                              **launch)
    yield f"http://127.0.0.1:{port}/"
    app.close()


@pytest.fixture(scope="session")
def client(app_url):
    from gradio_client import Client

    return Client(app_url, verbose=False)
