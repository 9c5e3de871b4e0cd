"""The limits a public server needs (app.py's launch_settings): an upload size limit and a bounded queue,
set by flag or environment variable, checked through the HTTP API of a launched app."""
from __future__ import annotations

import argparse
import os
import secrets
import tempfile
import threading
import time
from pathlib import Path

import httpx
import pytest

import app as app_module
from app import DEFAULT_MAX_QUEUE, DEFAULT_MAX_UPLOAD_MB, MB, launch_settings
from tests.conftest import free_port

# ---------------------------------------------------------------------------------------------
# Settings: flag > environment variable > default, bad values refused with a message.


@pytest.fixture
def no_limit_env(monkeypatch):
    monkeypatch.delenv("ATTN_MAX_UPLOAD_MB", raising=False)
    monkeypatch.delenv("ATTN_MAX_QUEUE", raising=False)


def test_defaults_are_bounded(no_limit_env):
    queue, launch = launch_settings()
    assert queue == {"default_concurrency_limit": 2, "max_size": DEFAULT_MAX_QUEUE}
    assert launch == {"max_file_size": round(DEFAULT_MAX_UPLOAD_MB * MB), "show_error": True}
    assert 1 <= DEFAULT_MAX_UPLOAD_MB <= 50 and 1 <= DEFAULT_MAX_QUEUE <= 100


def test_environment_then_arguments(no_limit_env, monkeypatch):
    monkeypatch.setenv("ATTN_MAX_UPLOAD_MB", "2.5")
    monkeypatch.setenv("ATTN_MAX_QUEUE", "7")
    queue, launch = launch_settings()
    assert queue["max_size"] == 7 and launch["max_file_size"] == round(2.5 * MB)
    queue, launch = launch_settings(max_upload_mb=1, max_queue=3)  # what the flags pass wins
    assert queue["max_size"] == 3 and launch["max_file_size"] == MB


def test_flags_and_their_environment_defaults(no_limit_env, monkeypatch):
    args = app_module.parse_args([])
    assert (args.max_upload_mb, args.max_queue) == (DEFAULT_MAX_UPLOAD_MB, DEFAULT_MAX_QUEUE)
    monkeypatch.setenv("ATTN_MAX_UPLOAD_MB", "4")
    monkeypatch.setenv("ATTN_MAX_QUEUE", "5")
    args = app_module.parse_args([])
    assert (args.max_upload_mb, args.max_queue) == (4.0, 5)
    args = app_module.parse_args(["--max-upload-mb", "0.5", "--max-queue", "2"])
    assert (args.max_upload_mb, args.max_queue) == (0.5, 2)


@pytest.mark.parametrize("flag, value", [
    ("--max-upload-mb", "0"), ("--max-upload-mb", "-3"), ("--max-upload-mb", "nan"), ("--max-upload-mb", "inf"),
    ("--max-upload-mb", "lots"), ("--max-queue", "0"), ("--max-queue", "-1"), ("--max-queue", "2.5"),
    ("--max-queue", "many"),
])
def test_bad_values_fail_with_a_message(no_limit_env, capsys, flag, value):
    with pytest.raises(SystemExit) as exit_:
        app_module.main([flag, value])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and f"got '{value}'" in err and flag in err


@pytest.mark.parametrize("var, value", [("ATTN_MAX_UPLOAD_MB", "ten"), ("ATTN_MAX_QUEUE", "-5")])
def test_a_bad_environment_value_stops_the_start(no_limit_env, monkeypatch, capsys, var, value):
    monkeypatch.setenv(var, value)
    with pytest.raises(SystemExit):
        app_module.main([])
    assert f"${var}" in capsys.readouterr().err
    with pytest.raises(argparse.ArgumentTypeError, match=var):
        launch_settings()


# ---------------------------------------------------------------------------------------------
# Upload limit, on the app the test session launched with these settings.


def _upload_folders() -> list[Path]:
    """Where an upload could land: Gradio's upload/cache folder and the system temp folder (top level)."""
    from gradio.utils import get_upload_folder

    return [Path(get_upload_folder()), Path(tempfile.gettempdir())]


def _files_holding(marker: bytes, since: float) -> list[Path]:
    """Files written after ``since`` whose first bytes are ``marker`` (other tests' uploads do not match)."""
    found = []
    upload, temp = _upload_folders()
    candidates = [p for p in upload.rglob("*")] + [p for p in temp.iterdir()]
    for p in candidates:
        try:
            if p.is_file() and p.stat().st_mtime >= since - 1:
                with open(p, "rb") as f:
                    if f.read(len(marker)) == marker:
                        found.append(p)
        except OSError:  # removed meanwhile, or not ours to read
            continue
    return found


def _payload(size: int) -> tuple[bytes, bytes]:
    marker = b"attn-limit-test-" + secrets.token_hex(16).encode()
    return marker, marker + b"\0" * (size - len(marker))


@pytest.mark.e2e
def test_config_announces_the_upload_limit(app_url):
    # The page gets the limit with the rest of its config (Gradio's upload components read it from there).
    config = httpx.get(app_url + "config", timeout=30).json()
    assert config["max_file_size"] == launch_settings()[1]["max_file_size"]


@pytest.mark.e2e
def test_an_oversized_upload_is_refused_and_leaves_nothing_on_disk(app_url):
    limit = launch_settings()[1]["max_file_size"]
    marker, data = _payload(limit + MB)
    start = time.time()
    try:
        r = httpx.post(app_url + "gradio_api/upload", files={"files": ("big.png", data, "image/png")}, timeout=120)
    except httpx.TransportError as e:  # the server may stop reading mid-body; then no answer reaches us
        pytest.fail(f"the server dropped the connection instead of answering 413: {e!r}")
    assert r.status_code == 413, r.text
    assert f"maximum allowed size of {limit} bytes" in r.text
    time.sleep(0.5)  # the upload route moves files in a background task: give it the chance to misbehave
    assert _files_holding(marker, start) == []
    # ... and the server keeps serving uploads within the limit.
    marker, data = _payload(limit - 64 * 1024)
    r = httpx.post(app_url + "gradio_api/upload", files={"files": ("ok.png", data, "image/png")}, timeout=120)
    assert r.status_code == 200, r.text
    (path,) = r.json()
    try:
        assert Path(path).read_bytes()[: len(marker)] == marker
    finally:
        os.remove(path)  # the test's own upload: do not leave 10 MB in the shared cache


# ---------------------------------------------------------------------------------------------
# Bounded queue: a tiny app served with launch_settings(max_queue=1) and a handler that blocks until released,
# so which requests run, wait or are refused is certain rather than a matter of timing.


@pytest.fixture
def blocking_app():
    import gradio as gr

    release, started = threading.Event(), threading.Semaphore(0)

    def slow(x):
        started.release()
        release.wait(60)
        return x

    with gr.Blocks() as demo:
        box = gr.Textbox()
        box.submit(slow, box, box, api_name="slow")
    queue, launch = launch_settings(max_upload_mb=1, max_queue=1)
    port = free_port()
    demo.queue(**queue).launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                               **launch)
    try:
        yield f"http://127.0.0.1:{port}/", release, started
    finally:
        release.set()
        demo.close()


def _join(url: str, n: int) -> httpx.Response:
    body = {"data": [f"job {n}"], "fn_index": 0, "session_hash": f"limits{n}", "event_data": None, "trigger_id": None}
    return httpx.post(url + "gradio_api/queue/join", json=body, timeout=30)


@pytest.mark.e2e
def test_the_queue_answers_full_past_its_bound(blocking_app):
    from gradio_client import Client
    from gradio_client.exceptions import AppError
    from gradio_client.utils import QueueError

    url, release, started = blocking_app
    # Two run at once (default_concurrency_limit=2) ...
    for n in (1, 2):
        assert _join(url, n).status_code == 200
    for _ in range(2):
        assert started.acquire(timeout=30), "the first two requests never started"
    # ... one may wait (max_size=1) ...
    assert _join(url, 3).status_code == 200
    # ... and the next is refused at once, with words, instead of growing the queue.
    r = _join(url, 4)
    assert r.status_code == 503 and "Queue is full. Max size is 1" in r.json()["detail"]
    client = Client(url, verbose=False)
    with pytest.raises((QueueError, AppError), match="(?i)queue is full"):
        client.predict("five", api_name="/slow")
    # Once the work drains, the server takes requests again.
    release.set()
    assert started.acquire(timeout=30)  # job 3 ran
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            assert client.predict("six", api_name="/slow") == "six"
            break
        except QueueError:  # the queue has not drained yet
            time.sleep(0.2)
    else:
        pytest.fail("the queue did not accept work again after draining")
