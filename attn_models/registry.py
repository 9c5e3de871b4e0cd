"""Model registry: a name -> ModelSpec table, and ``load(name)`` that builds the model from
bundled weights (``weights/<name>/``) or from the Hugging Face Hub.

Model classes are imported lazily (by "module:Class" path) so that listing models or loading one
does not import the code of all the others.
"""
from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass
from pathlib import Path

import torch

from attn_models import hub
from attn_models.device import resolve_device

WEIGHTS_ROOT = Path(__file__).resolve().parent.parent / "weights"
TASKS = ("captioning", "gan", "autoregressive", "classifier")
SOURCES = ("auto", "local", "hub")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    task: str
    model_class: str  # "package.module:ClassName", imported on first load
    description: str
    hub_repo_id: str | None = None  # None -> "<$ATTN_MODELS_HUB_ORG>/<name>"
    revision: str | None = None  # pinned Hub revision (commit sha or tag); None -> main

    @property
    def local_dir(self) -> Path:
        return WEIGHTS_ROOT / self.name

    @property
    def repo_id(self) -> str:
        return self.hub_repo_id or hub.default_repo_id(self.name)

    def resolve_class(self) -> type[torch.nn.Module]:
        module_name, class_name = self.model_class.split(":")
        return getattr(importlib.import_module(module_name), class_name)


_SPECS: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    if spec.task not in TASKS:
        raise ValueError(f"unknown task {spec.task!r} for {spec.name!r}; expected one of {TASKS}")
    _SPECS[spec.name] = spec
    return spec


for _spec in (
    ModelSpec("sat-soft-fashion-scenes", "captioning", "attn_models.captioning.model:ShowAttendTell",
              "Show, Attend and Tell with soft attention, trained on Fashion-Scenes"),
    ModelSpec("sat-hard-fashion-scenes", "captioning", "attn_models.captioning.model:ShowAttendTell",
              "Show, Attend and Tell with hard (stochastic, REINFORCE) attention, trained on Fashion-Scenes"),
    ModelSpec("sagan-fashion-mnist", "gan", "attn_models.gan.sagan:SAGAN",
              "Class-conditional self-attention GAN on 32x32 Fashion-MNIST"),
    ModelSpec("image-transformer-1d-fashion-mnist", "autoregressive",
              "attn_models.autoregressive.model:ImageTransformer",
              "Image Transformer with local 1D attention, class-conditional, Fashion-MNIST"),
    ModelSpec("image-transformer-2d-fashion-mnist", "autoregressive",
              "attn_models.autoregressive.model:ImageTransformer",
              "Image Transformer with local 2D attention, class-conditional, Fashion-MNIST"),
    ModelSpec("fashion-mnist-classifier", "classifier", "attn_models.eval.classifier:FashionMNISTClassifier",
              "Small CNN classifier on Fashion-MNIST; the feature extractor for GAN metrics"),
):
    register(_spec)


def list_models(task: str | None = None) -> list[str]:
    """Registered model names (optionally of one task), sorted."""
    return sorted(n for n, s in _SPECS.items() if task is None or s.task == task)


def get_spec(name: str) -> ModelSpec:
    try:
        return _SPECS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(list_models())}") from None


_cache: dict[tuple, torch.nn.Module] = {}
_cache_lock = threading.Lock()


def load(
    name: str,
    device: str | torch.device = "auto",
    source: str = "auto",
    revision: str | None = None,
    repo_id: str | None = None,
) -> torch.nn.Module:
    """Build model ``name`` with its weights, in eval mode on ``device``.

    source: "local" reads weights/<name>/, "hub" downloads from the Hub (repo ``repo_id`` or the
    spec's, at ``revision`` or the spec's pinned one), "auto" uses the bundled folder when present.
    Models are cached per (name, device, source, revision, repo) so every tab shares one copy.
    """
    spec = get_spec(name)
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; expected one of {SOURCES}")
    dev = resolve_device(device)
    if source == "auto":
        has_local = (spec.local_dir / hub.CONFIG_NAME).is_file() and (spec.local_dir / hub.WEIGHTS_NAME).is_file()
        source = "local" if has_local and repo_id is None and revision is None else "hub"
    repo = repo_id or spec.repo_id
    rev = revision or spec.revision
    key = (name, str(dev), source, rev, repo if source == "hub" else None)
    with _cache_lock:
        if key in _cache:
            return _cache[key]
        folder = spec.local_dir if source == "local" else hub.download_model_files(repo, rev)
        if source == "local" and not spec.local_dir.is_dir():
            raise ValueError(f"no bundled weights for {name!r}: {spec.local_dir} does not exist; use source='hub'")
        model = hub.build_and_load(spec.resolve_class(), folder)
        model = model.to(dev).eval()
        model.registry_name = name  # lets the UI and model cards say which weights are shown
        _cache[key] = model
        return model


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()
