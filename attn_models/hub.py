"""Thin layer over huggingface_hub: where a model's files come from (bundled folder or the Hub).

Weights are safetensors only and are read with strict key checking; nothing here unpickles.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_model

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
# Users point the app at their own published weights with this variable (or load(..., repo_id=...)).
HUB_ORG_ENV = "ATTN_MODELS_HUB_ORG"
DEFAULT_HUB_ORG = "attention-in-vision"


def default_repo_id(name: str) -> str:
    return f"{os.environ.get(HUB_ORG_ENV, DEFAULT_HUB_ORG)}/{name}"


def download_model_files(repo_id: str, revision: str | None = None) -> Path:
    """Fetch config.json and model.safetensors of ``repo_id`` into the HF cache; return their folder.

    Honours HF_ENDPOINT, HF_HOME/HF_HUB_CACHE and HF_HUB_OFFLINE the way huggingface_hub does.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    paths = []
    for filename in (CONFIG_NAME, WEIGHTS_NAME):
        try:
            paths.append(Path(hf_hub_download(repo_id, filename, revision=revision)))
        except RepositoryNotFoundError as e:
            raise ValueError(
                f"Hub repo {repo_id!r} was not found (or is private). Check the repo id, set "
                f"{HUB_ORG_ENV} to your organisation, or use the bundled weights with source='local'."
            ) from e
        except RevisionNotFoundError as e:
            raise ValueError(f"Hub repo {repo_id!r} has no revision {revision!r}.") from e
        except EntryNotFoundError as e:
            raise ValueError(f"Hub repo {repo_id!r} has no file {filename!r}; is it a model pushed by this app?") from e
        except LocalEntryNotFoundError as e:
            raise ValueError(
                f"Could not download {filename!r} of Hub repo {repo_id!r}: the Hub is unreachable (or HF_HUB_OFFLINE=1) "
                f"and nothing is cached. Connect to the internet once, set HF_ENDPOINT to a mirror, "
                f"or use the bundled weights in weights/ (source='local')."
            ) from e
    return paths[0].parent


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
    try:
        model = model_class(**config)
    except TypeError as e:
        raise ValueError(f"model config {folder / CONFIG_NAME} does not fit {model_class.__name__}: {e}") from e
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        raise ValueError(f"missing model weights: {weights} does not exist")
    try:
        # load_model handles tensors that share storage and raises on missing/unexpected keys.
        load_model(model, str(weights), strict=True)
    except SafetensorError as e:
        raise ValueError(f"corrupt or truncated weights file {weights}: {e}") from e
    except RuntimeError as e:
        raise ValueError(f"weights file {weights} does not match {model_class.__name__}: {e}") from e
    return model
