"""Fashion-MNIST from its four idx .gz files.

Looked up in this order: the ``root`` argument, $FASHION_MNIST_DIR, the Debian package
``dataset-fashion-mnist`` (/usr/share/datasets/fashion-mnist/), then torchvision's download
when ``download=True`` and the machine is online.
"""
from __future__ import annotations

import gzip
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

ENV_VAR = "FASHION_MNIST_DIR"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
CLASS_NAMES = ("tshirt", "trousers", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot")
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 60000),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 10000),
}
IMAGE_MAGIC, LABEL_MAGIC = 2051, 2049


def _read_idx(path: Path, magic: int, ndim: int) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 + 4 * ndim:
        raise ValueError(f"{path} is too short to be an idx file")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise ValueError(f"{path}: bad idx magic number {found}, expected {magic}")
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise ValueError(f"{path}: {body.size} bytes of data for shape {dims} (truncated?)")
    return body.reshape(dims)


def _candidate_dirs(root: str | os.PathLike | None) -> list[Path]:
    dirs = [Path(root)] if root else []
    if os.environ.get(ENV_VAR):
        dirs.append(Path(os.environ[ENV_VAR]))
    dirs.append(DEBIAN_DIR)
    return dirs


def _find(directory: Path, filename: str) -> Path | None:
    for name in (filename, filename[:-3]):  # accept gunzipped copies too
        for sub in ("", "raw", "FashionMNIST/raw"):  # torchvision's layout
            p = directory / sub / name
            if p.is_file():
                return p
    return None


@lru_cache(maxsize=4)
def _load_cached(split: str, root: str | None, download: bool) -> tuple[np.ndarray, np.ndarray]:
    image_file, label_file, count = FILES[split]
    for d in _candidate_dirs(root):
        ip, lp = _find(d, image_file), _find(d, label_file)
        if ip and lp:
            images = _read_idx(ip, IMAGE_MAGIC, 3)
            labels = _read_idx(lp, LABEL_MAGIC, 1)
            if images.shape != (count, 28, 28) or labels.shape != (count,):
                raise ValueError(f"Fashion-MNIST {split} in {d} has shapes {images.shape}, {labels.shape}; "
                                 f"expected ({count}, 28, 28) and ({count},)")
            if labels.max() > 9:
                raise ValueError(f"Fashion-MNIST {split} labels in {d} go past class 9")
            return images, labels.astype(np.int64)
    if download:
        try:
            from torchvision.datasets import FashionMNIST

            target = Path(root or os.environ.get(ENV_VAR) or Path.home() / ".cache" / "fashion-mnist")
            FashionMNIST(str(target), train=split == "train", download=True)
            return _load_cached(split, str(target), False)
        except Exception as e:  # offline, or the mirror is down: fall through to the clear message
            reason = f" (download failed: {e})"
    else:
        reason = ""
    searched = ", ".join(str(d) for d in _candidate_dirs(root))
    raise FileNotFoundError(
        f"Fashion-MNIST {split} files ({image_file}, {label_file}) not found in {searched}{reason}. "
        f"Install them with `apt-get install dataset-fashion-mnist` (Debian), point ${ENV_VAR} or --data-dir "
        f"at a folder holding them, or allow the automatic download (online)."
    )


def load_fashion_mnist(split: str = "train", root: str | os.PathLike | None = None,
                       download: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(images uint8 (N, 28, 28), labels int64 (N,))`` for ``split`` in {"train", "test"}.

    The arrays are shared between calls (cached): do not modify them in place.
    """
    if split not in FILES:
        raise ValueError(f"unknown split {split!r}; expected 'train' or 'test'")
    return _load_cached(split, str(root) if root else None, download)
