"""Model registry: a name -> ModelSpec table, and ``load(name)`` that builds the model from
bundled weights (``weights/<name>/``) or from the Hugging Face Hub.

Model classes are imported lazily (by "module:Class" path) so that listing models or loading one
does not import the code of all the others.
"""
from __future__ import annotations

import importlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import torch

from attn_models import hub
from attn_models.device import resolve_device

WEIGHTS_ROOT = Path(__file__).resolve().parent.parent / "weights"
# One name per model family, the same as its package (attn_models/<task>/), tab module and test folder.
TASKS = ("captioning", "sagan", "image_transformer", "classifier", "inductive_bias")
SOURCES = ("auto", "local", "hub")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    task: str
    model_class: str  # "package.module:ClassName", imported on first load
    description: str
    hub_repo_id: str | None = None  # the published repo; None -> "attention-in-vision/<name>"
    revision: str | None = None  # pinned revision of that repo (commit sha or tag); None -> main
    weights_dir: str | None = None  # bundled folder; None -> weights/<name>/

    @property
    def local_dir(self) -> Path:
        return Path(self.weights_dir) if self.weights_dir else WEIGHTS_ROOT / self.name

    @property
    def published_repo_id(self) -> str:
        return self.hub_repo_id or hub.default_repo_id(self.name, hub.DEFAULT_HUB_ORG)

    @property
    def repo_id(self) -> str:
        """Where Hub loads go: $ATTN_MODELS_HUB_ORG/<name> when that is set (a user's own copies), else the
        published repo."""
        if os.environ.get(hub.HUB_ORG_ENV):
            return hub.default_repo_id(self.name)
        return self.published_repo_id

    def resolve_class(self) -> type[torch.nn.Module]:
        module_name, class_name = self.model_class.split(":")
        return getattr(importlib.import_module(module_name), class_name)


_SPECS: dict[str, ModelSpec] = {}
# (name, device, source, repo, revision) -> model in eval mode, shared by every caller.
_cache: dict[tuple, torch.nn.Module] = {}
_cache_lock = threading.Lock()  # guards _cache and _load_locks, held only briefly
# One lock per cache key, held while that model loads: two tabs asking for the same model at once build it once,
# while a slow Hub download of one model (retries take ~25 s offline) does not hold up loading the others.
_load_locks: dict[tuple, threading.Lock] = {}


def register(spec: ModelSpec) -> ModelSpec:
    """Add ``spec`` to the table (replacing a spec of the same name)."""
    if spec.task not in TASKS:
        raise ValueError(f"unknown task {spec.task!r} for {spec.name!r}; expected one of {TASKS}")
    _SPECS[spec.name] = spec
    return spec


_IB = "attn_models.inductive_bias.model:InductiveBiasNet"  # one class, four configurations
for _spec in (
    ModelSpec("sat-soft-fashion-scenes", "captioning", "attn_models.captioning.model:ShowAttendTell",
              "Show, Attend and Tell with soft attention, trained on Fashion-Scenes"),
    ModelSpec("sat-hard-fashion-scenes", "captioning", "attn_models.captioning.model:ShowAttendTell",
              "Show, Attend and Tell with hard (stochastic, REINFORCE) attention, trained on Fashion-Scenes"),
    ModelSpec("sagan-fashion-mnist", "sagan", "attn_models.sagan.model:SAGAN",
              "Class-conditional self-attention GAN on 32x32 Fashion-MNIST"),
    ModelSpec("sagan-fashion-mnist-no-attention", "sagan", "attn_models.sagan.model:SAGAN",
              "Ablation of sagan-fashion-mnist: same network and budget, self-attention removed"),
    ModelSpec("image-transformer-1d-fashion-mnist", "image_transformer",
              "attn_models.image_transformer.model:ImageTransformer",
              "Image Transformer with local 1D attention, class-conditional, Fashion-MNIST"),
    ModelSpec("image-transformer-2d-fashion-mnist", "image_transformer",
              "attn_models.image_transformer.model:ImageTransformer",
              "Image Transformer with local 2D attention, class-conditional, Fashion-MNIST"),
    ModelSpec("fashion-mnist-classifier", "classifier", "attn_models.classifier.model:FashionMNISTClassifier",
              "Small CNN classifier on Fashion-MNIST; the feature extractor for GAN metrics"),
    ModelSpec("inductive-bias-cnn", "inductive_bias", _IB,
              "Convolutional classifier of centred Fashion-MNIST items on a 40x40 canvas (translation equivariant)"),
    ModelSpec("inductive-bias-attention-absolute", "inductive_bias", _IB,
              "Self-attention classifier over 4x4 patches with learned absolute position embeddings (ViT-style)"),
    ModelSpec("inductive-bias-attention-relative", "inductive_bias", _IB,
              "The same self-attention classifier with a learned 2D relative position bias (Swin/T5-style)"),
    ModelSpec("inductive-bias-attention-none", "inductive_bias", _IB,
              "The same self-attention classifier with no position information (invariant to shuffled patches)"),
):
    register(_spec)


def list_models(task: str | None = None) -> list[str]:
    """Registered model names (optionally of one task), sorted."""
    return sorted(n for n, s in _SPECS.items() if task is None or s.task == task)


def unregister(name: str) -> None:
    """Remove ``name`` from the table and from the model cache (used by tests' temporary specs)."""
    _SPECS.pop(name, None)
    clear_cache(name)


def get_spec(name: str) -> ModelSpec:
    try:
        return _SPECS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(list_models())}") from None


def has_local_weights(spec: ModelSpec) -> bool:
    """Whether weights/<name>/ holds this model's files (a card alone does not count)."""
    return any((spec.local_dir / f).is_file() for f in (hub.CONFIG_NAME, hub.WEIGHTS_NAME))


def auto_source(spec: ModelSpec, hub_requested: bool = False) -> str:
    """What source="auto" means for ``spec`` now: the bundled folder, unless it is absent or the Hub was
    asked for (a repo, revision or org argument, or $ATTN_MODELS_HUB_ORG pointing at a user's own copies)."""
    if hub_requested or os.environ.get(hub.HUB_ORG_ENV) or not has_local_weights(spec):
        return "hub"
    return "local"


def load(
    name: str,
    device: str | torch.device = "auto",
    source: str = "auto",
    revision: str | None = None,
    repo_id: str | None = None,
    org: str | None = None,
) -> torch.nn.Module:
    """Build model ``name`` with its weights, in eval mode on ``device``.

    source: "local" reads weights/<name>/; "hub" downloads from the Hugging Face Hub; "auto" uses the
    bundled folder when it is there and no Hub repo/revision/org was asked for (by argument or by
    $ATTN_MODELS_HUB_ORG), else the Hub.
    Hub repo: ``repo_id``, else ``<org>/<name>`` with ``org`` or $ATTN_MODELS_HUB_ORG, else the spec's
    pinned repo; revision: ``revision``, else the spec's pinned one, else main.
    Models are cached per (name, device) and where the weights came from, so every tab shares one copy.
    Raises ValueError (naming the repo or file) for an unknown name, an unreachable Hub with nothing
    cached, or a missing/corrupt config or weights file.
    """
    spec = get_spec(name)
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; expected one of {SOURCES}")
    dev = resolve_device(device)
    if source == "auto":
        source = auto_source(spec, hub_requested=repo_id is not None or revision is not None or org is not None)
    if source == "local":
        if not has_local_weights(spec):
            raise ValueError(
                f"no bundled weights for {name!r}: {spec.local_dir} has no {hub.CONFIG_NAME} or "
                f"{hub.WEIGHTS_NAME}; train the model or load it with source='hub'"
            )
        repo = rev = None
    else:
        repo = repo_id or (hub.default_repo_id(name, org) if org else spec.repo_id)
        # The pinned revision is a commit of the published repo; another repo has its own history.
        rev = revision or (spec.revision if repo == spec.published_repo_id else None)
    key = (name, str(dev), source, repo, rev)
    with _cache_lock:
        if key in _cache:
            return _cache[key]
        key_lock = _load_locks.setdefault(key, threading.Lock())
    with key_lock:
        with _cache_lock:
            if key in _cache:  # built by the caller we waited for
                return _cache[key]
        folder = spec.local_dir if source == "local" else hub.download_model_files(repo, rev)
        model = hub.build_and_load(spec.resolve_class(), folder)
        model = model.to(dev).eval()
        model.registry_name = name  # lets the UI and model cards say which weights are shown
        with _cache_lock:
            _cache[key] = model
        return model


def load_name_or_folder(name_or_dir: str | Path, task: str, device: str | torch.device = "cpu") -> torch.nn.Module:
    """A registry name (as ``load``), or a folder written by ``save_pretrained`` (a run's ``--export``, an
    ablation) holding a model of ``task``: what the evaluate scripts take, so a run is measured before shipping."""
    folder = Path(name_or_dir)
    if not folder.is_dir():
        return load(str(name_or_dir), device=device)
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    spec = next(s for s in _SPECS.values() if s.task == task)  # every model of a task shares its class
    model = hub.build_and_load(spec.resolve_class(), folder)
    return model.to(resolve_device(device)).eval()


def push(
    name: str,
    repo_id: str | None = None,
    revision: str | None = None,
    private: bool = False,
    token: str | None = None,
    commit_message: str | None = None,
):
    """Publish the bundled weights of ``name`` (checked by a strict local load first) with their card."""
    spec = get_spec(name)
    if not has_local_weights(spec):
        raise ValueError(f"no bundled weights for {name!r} in {spec.local_dir}: nothing to push")
    # Read from disk now rather than the load() cache: what is published is what the folder holds.
    model = hub.build_and_load(spec.resolve_class(), spec.local_dir)
    return hub.push_model(model, name, spec.local_dir, repo_id or spec.repo_id, revision=revision,
                          private=private, token=token, commit_message=commit_message)


def clear_cache(name: str | None = None) -> None:
    """Forget loaded models (all, or those of ``name``); the next load reads the files again."""
    with _cache_lock:
        for key in [k for k in _cache if name is None or k[0] == name]:
            del _cache[key]
