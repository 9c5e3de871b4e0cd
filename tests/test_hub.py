"""Hub loading and publishing through the real huggingface_hub code (hf_hub_download, HfApi.upload_folder)
against a Hub-shaped server on 127.0.0.1 (tests/hub_server.py), and against a cache laid out the way
huggingface_hub lays it out, with offline mode on."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

from attn_models import hub, load, registry
from attn_models.__main__ import main as cli
from tests.hub_fixtures import (  # noqa: F401  (fixtures are used by name)
    CARD_TEXT,
    TINY_CLASS,
    closed_port_url,
    fake_hub,
    point_huggingface_hub_at,
    save_tiny,
    tiny,
)
from tests.hub_server import FakeHub, lay_out_hf_cache
from tests.tiny_model import make_tiny

REPO_ROOT = Path(__file__).resolve().parent.parent


def resolve_requests(fake: FakeHub, repo_id: str) -> list[str]:
    return [p for _, p in fake.requests if p.startswith(f"/{repo_id}/resolve/")]


def test_push_then_load_from_hub_gives_identical_outputs(tiny, fake_hub):
    info = registry.push(tiny.name, repo_id="someone/tiny")
    published = fake_hub.files("someone/tiny")
    # What a user gets on the Hub: the weights, their config, the bundled card (with front matter
    # added for the Hub) and the card's picture.
    assert {"config.json", "model.safetensors", "README.md", "samples.png"} <= set(published)
    assert published["samples.png"] == (tiny.folder / "samples.png").read_bytes()
    card = published["README.md"].decode()
    assert card.startswith("---\n") and "library_name: pytorch" in card and CARD_TEXT in card
    assert json.loads(published["config.json"]) == json.loads((tiny.folder / "config.json").read_text())
    assert info.oid == fake_hub.repos["someone/tiny"].branches["main"]

    m = load(tiny.name, device="cpu", source="hub", repo_id="someone/tiny")
    assert not m.training and m.registry_name == tiny.name
    assert torch.equal(tiny.outputs(m), tiny.outputs(tiny.model))
    # It came through the HTTP download path, into huggingface_hub's cache layout.
    assert resolve_requests(fake_hub, "someone/tiny")
    snapshot = hub.download_model_files("someone/tiny")
    assert snapshot.parent.name == "snapshots" and snapshot.name == info.oid
    # Cached per (name, device, where from): a second call is the same object.
    assert load(tiny.name, device="cpu", source="hub", repo_id="someone/tiny") is m


def test_auto_source_uses_the_hub_when_nothing_is_bundled_and_org_is_configurable(tmp_path, fake_hub, monkeypatch):
    folder = tmp_path / "published"
    ref = save_tiny(folder, seed=5)
    name = "test-tiny-hub-only"
    registry.register(registry.ModelSpec(name, "classifier", TINY_CLASS, "hub only", weights_dir=str(tmp_path / "no")))
    try:
        files = {f: (folder / f).read_bytes() for f in ("config.json", "model.safetensors")}
        fake_hub.add_commit(f"{hub.DEFAULT_HUB_ORG}/{name}", files)
        fake_hub.add_commit(f"my-org/{name}", files)
        fake_hub.add_commit(f"arg-org/{name}", files)
        x = torch.randn(2, 8)

        m = load(name, device="cpu")  # auto, default org
        assert resolve_requests(fake_hub, f"{hub.DEFAULT_HUB_ORG}/{name}")
        assert torch.equal(m(x), ref(x))

        monkeypatch.setenv(hub.HUB_ORG_ENV, "my-org")
        assert registry.get_spec(name).repo_id == f"my-org/{name}"
        assert torch.equal(load(name, device="cpu")(x), ref(x))
        assert resolve_requests(fake_hub, f"my-org/{name}")

        assert torch.equal(load(name, device="cpu", org="arg-org")(x), ref(x))
        assert resolve_requests(fake_hub, f"arg-org/{name}")
    finally:
        registry.unregister(name)


def test_org_variable_points_auto_at_the_users_copies_over_bundled_ones(tiny, fake_hub, monkeypatch):
    theirs = save_tiny(tiny.folder.parent / "theirs", seed=7)
    fake_hub.add_commit(f"my-org/{tiny.name}", {f: (tiny.folder.parent / "theirs" / f).read_bytes()
                                               for f in ("config.json", "model.safetensors")})
    assert torch.equal(tiny.outputs(load(tiny.name, device="cpu")), tiny.outputs(tiny.model))  # bundled
    monkeypatch.setenv(hub.HUB_ORG_ENV, "my-org")
    assert torch.equal(tiny.outputs(load(tiny.name, device="cpu")), tiny.outputs(theirs))
    assert resolve_requests(fake_hub, f"my-org/{tiny.name}")


def test_revision_pinning(tiny, fake_hub):
    repo = "someone/versions"
    old_sha = fake_hub.add_commit(repo, tiny.files())
    newer = save_tiny(tiny.folder.parent / "newer", seed=9)
    new_sha = fake_hub.add_commit(repo, {f: (tiny.folder.parent / "newer" / f).read_bytes()
                                         for f in ("config.json", "model.safetensors")})
    fake_hub.repos[repo].branches["v1"] = old_sha  # a tag/branch name pointing at the old commit
    assert old_sha != new_sha

    expected_old, expected_new = tiny.outputs(tiny.model), tiny.outputs(newer)
    assert not torch.equal(expected_old, expected_new)
    assert torch.equal(tiny.outputs(load(tiny.name, source="hub", repo_id=repo)), expected_new)  # main
    assert torch.equal(tiny.outputs(load(tiny.name, source="hub", repo_id=repo, revision=old_sha)), expected_old)
    assert torch.equal(tiny.outputs(load(tiny.name, source="hub", repo_id=repo, revision="v1")), expected_old)

    # A spec that pins a revision of its published repo gets that revision by default.
    pinned = "test-tiny-pinned"
    registry.register(registry.ModelSpec(pinned, "classifier", TINY_CLASS, "pinned", hub_repo_id=repo,
                                         revision=old_sha, weights_dir=str(tiny.folder.parent / "absent")))
    try:
        assert torch.equal(tiny.outputs(load(pinned, device="cpu")), expected_old)
    finally:
        registry.unregister(pinned)

    with pytest.raises(ValueError, match=r"'someone/versions' has no revision 'v9'"):
        load(tiny.name, source="hub", repo_id=repo, revision="v9")


def test_cached_download_loads_when_the_hub_is_gone(tiny, fake_hub, monkeypatch, tmp_path):
    sha = fake_hub.add_commit("someone/tiny", tiny.files())
    expected = tiny.outputs(tiny.model)
    load(tiny.name, source="hub", repo_id="someone/tiny")
    load(tiny.name, source="hub", repo_id="someone/tiny", revision=sha)
    registry.clear_cache(tiny.name)
    fake_hub.stop()
    point_huggingface_hub_at(monkeypatch, closed_port_url(), tmp_path / "hf-cache")
    # main: the HEAD request fails to connect, huggingface_hub falls back to the cached refs/main.
    assert torch.equal(tiny.outputs(load(tiny.name, source="hub", repo_id="someone/tiny")), expected)
    # a pinned commit is read from the cache without asking the Hub at all.
    assert torch.equal(tiny.outputs(load(tiny.name, source="hub", repo_id="someone/tiny", revision=sha)), expected)


def test_unreachable_hub_with_nothing_cached_names_the_repo_and_what_to_do(tiny, monkeypatch, tmp_path):
    point_huggingface_hub_at(monkeypatch, closed_port_url(), tmp_path / "empty-cache")
    # With no cached copy to fall back on, huggingface_hub retries with backoff (1+2+4+8+8 s) before
    # giving up; record those waits instead of sleeping through them.
    from huggingface_hub.utils import _http

    waits = []
    monkeypatch.setattr(_http, "time", types.SimpleNamespace(sleep=waits.append))
    with pytest.raises(ValueError) as err:
        load(tiny.name, source="hub", repo_id="someone/tiny")
    assert waits, "the real retry path ran"
    msg = str(err.value)
    assert "'someone/tiny'" in msg and "unreachable" in msg
    assert "source='local'" in msg and "HF_ENDPOINT" in msg  # what to do


def test_offline_mode_reads_a_hub_layout_cache(tiny, monkeypatch, tmp_path):
    cache = tmp_path / "offline-cache"
    commit = "0123456789abcdef0123456789abcdef01234567"
    lay_out_hf_cache(cache, "someone/tiny", tiny.files(), commit)
    # No server at all: an attempt to reach the endpoint would fail loudly.
    point_huggingface_hub_at(monkeypatch, closed_port_url(), cache, offline=True)
    m = load(tiny.name, source="hub", repo_id="someone/tiny")
    assert torch.equal(tiny.outputs(m), tiny.outputs(tiny.model))
    assert torch.equal(tiny.outputs(load(tiny.name, source="hub", repo_id="someone/tiny", revision=commit)),
                       tiny.outputs(tiny.model))

    with pytest.raises(ValueError, match=r"'someone/other'.*HF_HUB_OFFLINE=1.*not in the local Hugging Face cache"):
        load(tiny.name, source="hub", repo_id="someone/other")


def test_unknown_repo(tiny, fake_hub):
    with pytest.raises(ValueError, match=r"Hub repo 'nobody/nothing' was not found.*ATTN_MODELS_HUB_ORG"):
        load(tiny.name, source="hub", repo_id="nobody/nothing")


def test_repo_without_config_names_the_file(tiny, fake_hub):
    fake_hub.add_commit("someone/weights-only", {"model.safetensors": tiny.files()["model.safetensors"]})
    with pytest.raises(ValueError, match=r"'someone/weights-only' has no file 'config.json'"):
        load(tiny.name, source="hub", repo_id="someone/weights-only")


def test_truncated_weights_on_the_hub_name_the_file(tiny, fake_hub, tmp_path):
    files = tiny.files()
    files["model.safetensors"] = files["model.safetensors"][: len(files["model.safetensors"]) // 2]
    fake_hub.add_commit("someone/broken", files)
    with pytest.raises(ValueError, match=r"corrupt or truncated weights file .*models--someone--broken.*"
                                         r"model\.safetensors"):
        load(tiny.name, source="hub", repo_id="someone/broken")


def test_push_cli_to_a_branch_of_a_private_repo(tiny, fake_hub, capsys):
    assert cli(["push", tiny.name, "--repo-id", "me/tiny-cli", "--revision", "dev", "--private"]) == 0
    repo = fake_hub.repos["me/tiny-cli"]
    assert repo.private
    assert "model.safetensors" in fake_hub.files("me/tiny-cli", "dev")
    assert "model.safetensors" not in fake_hub.files("me/tiny-cli", "main")  # only the branch got the commit
    out = capsys.readouterr().out
    assert repo.branches["dev"] in out and "me/tiny-cli" in out
    m = load(tiny.name, source="hub", repo_id="me/tiny-cli", revision="dev")
    assert torch.equal(tiny.outputs(m), tiny.outputs(tiny.model))


def test_push_cli_reports_errors_without_a_traceback(tiny, monkeypatch, tmp_path, capsys):
    point_huggingface_hub_at(monkeypatch, closed_port_url(), tmp_path / "cache")
    assert cli(["push", tiny.name, "--repo-id", "me/tiny"]) == 1
    assert "pushing test-tiny-net to me/tiny failed" in capsys.readouterr().err
    assert cli(["push", "no-such-model", "--repo-id", "me/tiny"]) == 2
    assert "valid names" in capsys.readouterr().err
    assert cli(["push", tiny.name, "--repo-id", "no-slash"]) == 2
    (tiny.folder / "config.json").unlink()  # a broken bundled folder is not published
    assert cli(["push", tiny.name, "--repo-id", "me/tiny"]) == 2
    assert "config.json" in capsys.readouterr().err


def test_environment_variables_drive_a_fresh_process(tmp_path):
    """HF_ENDPOINT, HF_HUB_CACHE and ATTN_MODELS_HUB_ORG as a user sets them, read by a new interpreter."""
    folder = tmp_path / "published"
    ref = save_tiny(folder, seed=11)
    with FakeHub() as fake:
        fake.add_commit("env-org/test-tiny-env", {f: (folder / f).read_bytes()
                                                  for f in ("config.json", "model.safetensors")})
        script = (
            "import torch, sys\n"
            "from attn_models import registry, load\n"
            f"registry.register(registry.ModelSpec('test-tiny-env', 'classifier', {TINY_CLASS!r}, 'x',"
            f" weights_dir={str(tmp_path / 'absent')!r}))\n"
            "torch.manual_seed(0); x = torch.randn(3, 8)\n"
            "with torch.inference_mode():\n"
            "    y = load('test-tiny-env', device='cpu')(x)\n"
            "torch.save(y, sys.argv[1])\n"
        )
        env = {**os.environ, "HF_ENDPOINT": fake.url, "HF_HUB_CACHE": str(tmp_path / "cache"),
               "ATTN_MODELS_HUB_ORG": "env-org", "HF_HUB_OFFLINE": "0", "PYTHONPATH": str(REPO_ROOT)}
        env.pop("HF_TOKEN", None)
        out = tmp_path / "y.pt"
        proc = subprocess.run([sys.executable, "-c", script, str(out)], cwd=REPO_ROOT, env=env,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert resolve_requests(fake, "env-org/test-tiny-env")
    torch.manual_seed(0)
    x = torch.randn(3, 8)
    with torch.inference_mode():
        assert torch.equal(torch.load(out, weights_only=True), ref(x))
    assert (tmp_path / "cache" / "models--env-org--test-tiny-env" / "snapshots").is_dir()


def test_push_validates_locally_before_any_upload(tiny, fake_hub):
    # Weights of a width-4 model under a config that says width 8: the strict local load must refuse.
    make_tiny(0, width=4).save_pretrained(tiny.folder)
    (tiny.folder / "config.json").write_text(json.dumps({"width": 8, "depth": 2}))
    with pytest.raises(ValueError, match="does not match TinyNet"):
        registry.push(tiny.name, repo_id="me/never")
    assert "me/never" not in fake_hub.repos
