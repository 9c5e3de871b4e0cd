"""Thin layer over huggingface_hub: where a model's files come from (bundled folder or the Hub),
how they are read back, and how a bundled model is published.

Weights are safetensors only and are read with strict key checking; nothing here unpickles.
Every failure a user can cause (wrong repo id, no network, a damaged file) becomes a ``ValueError``
whose message names the repo or file and says what to do, so the UI can show it as it is.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_model

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
# Pictures referenced by a model card travel with it when the model is pushed.
CARD_ASSET_SUFFIXES = (".png", ".gif", ".jpg", ".jpeg", ".mp4")
# Users point the app at their own published weights with this variable (or load(..., repo_id=/org=)).
HUB_ORG_ENV = "ATTN_MODELS_HUB_ORG"
DEFAULT_HUB_ORG = "attention-in-vision"


def default_repo_id(name: str, org: str | None = None) -> str:
    """``<org>/<name>``, the org taken from the argument, else $ATTN_MODELS_HUB_ORG, else the default."""
    return f"{org or os.environ.get(HUB_ORG_ENV) or DEFAULT_HUB_ORG}/{name}"


def download_model_files(repo_id: str, revision: str | None = None) -> Path:
    """Fetch config.json and model.safetensors of ``repo_id`` into the HF cache; return their folder.

    Goes through ``hf_hub_download``, so HF_ENDPOINT, HF_HOME/HF_HUB_CACHE, HF_TOKEN and HF_HUB_OFFLINE
    behave as everywhere else in the Hugging Face stack (an already cached revision loads offline).
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"Hub repo {repo_id!r}" + (f" at revision {revision!r}" if revision else "")
    folder = None
    for filename in (CONFIG_NAME, WEIGHTS_NAME):
        # What to tell the user for each failure, most specific first: LocalEntryNotFoundError is also an
        # EntryNotFoundError, and GatedRepoError a RepositoryNotFoundError. Last: other HTTP statuses, a full
        # disk, a broken proxy.
        advice = (
            (LocalEntryNotFoundError,
             f"Could not get {filename!r} of {where}: the Hub is unreachable (or HF_HUB_OFFLINE=1 is set) "
             f"and the file is not in the local Hugging Face cache. Connect to the internet once (or set "
             f"HF_ENDPOINT to a reachable mirror) so it can be cached, or use the bundled weights in weights/ "
             f"(source='local'; unset {HUB_ORG_ENV} if it is set)."),
            (GatedRepoError, f"{where} is gated: accept its terms on the Hub and log in (`hf auth login`)."),
            (RepositoryNotFoundError,
             f"{where} was not found (or is private and no valid token was given). Check the repo id, set "
             f"{HUB_ORG_ENV} to the organisation that published the weights, log in for a private repo, or use "
             f"the bundled weights with source='local'."),
            (RevisionNotFoundError, f"Hub repo {repo_id!r} has no revision {revision!r} (branch, tag or commit)."),
            (RemoteEntryNotFoundError,
             f"{where} has no file {filename!r}; was it published with `python -m attn_models push`?"),
            (HfHubHTTPError, f"Could not get {filename!r} of {where}: {{error}}"),
            (OSError, f"Could not get {filename!r} of {where}: {{error}}"),
        )
        try:
            path = Path(hf_hub_download(repo_id, filename, revision=revision))
        except tuple(kind for kind, _ in advice) as e:
            message = next(text for kind, text in advice if isinstance(e, kind))
            raise ValueError(message.replace("{error}", str(e))) from e
        if folder is None:
            folder = path.parent
            # A branch may move between the two downloads: take the weights from the very commit the
            # config came from (the snapshot folder is named after it), so the pair always matches.
            revision = folder.name
    return folder


def read_config(folder: Path) -> dict:
    path = Path(folder) / CONFIG_NAME
    if not path.is_file():
        raise ValueError(f"missing model config: {path} does not exist")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"corrupt model config {path}: {e}") from e
    if not isinstance(config, dict):
        raise ValueError(f"corrupt model config {path}: expected a JSON object")
    return config


def build_and_load(model_class: type[torch.nn.Module], folder: Path) -> torch.nn.Module:
    """Construct ``model_class(**config)`` and load its safetensors weights with strict key checking."""
    folder = Path(folder)
    config = read_config(folder)
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        raise ValueError(f"missing model weights: {weights} does not exist")
    try:
        model = model_class(**config)
    except TypeError as e:
        raise ValueError(f"model config {folder / CONFIG_NAME} does not fit {model_class.__name__}: {e}") from e
    try:
        # load_model handles tensors that share storage and, with strict=True, raises on missing or
        # unexpected keys (PyTorchModelHubMixin.from_pretrained would not).
        load_model(model, str(weights), strict=True)
    except SafetensorError as e:
        raise ValueError(f"corrupt or truncated weights file {weights}: {e}") from e
    except (RuntimeError, ValueError) as e:
        raise ValueError(f"weights file {weights} does not match {model_class.__name__}: {e}") from e
    return model


def card_with_metadata(card: str, name: str) -> str:
    """The Hub reads a card's YAML front matter for tags and the library; add one if the card has none."""
    if card.startswith("---\n"):
        return card
    front = (
        "---\nlibrary_name: pytorch\nlicense: mit\n"
        f"tags:\n- attention\n- pytorch_model_hub_mixin\n- {name}\n---\n\n"
    )
    return front + card


def push_model(
    model: torch.nn.Module,
    name: str,
    local_dir: Path,
    repo_id: str,
    revision: str | None = None,
    private: bool = False,
    token: str | None = None,
    commit_message: str | None = None,
):
    """Publish ``model`` to ``repo_id`` (created if needed) with the model card and pictures of ``local_dir``.

    ``revision`` is a branch (created from main if missing). Returns huggingface_hub's CommitInfo.
    """
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    with tempfile.TemporaryDirectory(prefix=f"push-{name}-") as tmp:
        tmp = Path(tmp)
        model.save_pretrained(tmp)  # config.json (the constructor kwargs) + model.safetensors
        card = local_dir / CARD_NAME
        text = card.read_text() if card.is_file() else f"# {name}\n\nNo model card was written for these weights.\n"
        (tmp / CARD_NAME).write_text(card_with_metadata(text, name))
        for asset in sorted(local_dir.rglob("*")):
            if asset.is_file() and asset.suffix.lower() in CARD_ASSET_SUFFIXES:
                target = tmp / asset.relative_to(local_dir)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(asset, target)
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        if revision and revision != "main":
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        return api.upload_folder(
            folder_path=str(tmp),
            repo_id=repo_id,
            repo_type="model",
            revision=revision,
            commit_message=commit_message or f"Upload {name} (config.json, model.safetensors, model card)",
        )
