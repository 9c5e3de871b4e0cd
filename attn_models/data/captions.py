"""Image-caption data sets in Karpathy's split JSON format (dataset_coco.json, dataset_flickr8k.json,
dataset_flickr30k.json), for training Show, Attend and Tell on real photos.

The JSON holds {"images": [{"filename", "filepath"?, "split", "sentences": [{"tokens": [...]}, ...]}]};
images live in ``image_root/<filepath>/<filename>`` (COCO) or ``image_root/<filename>`` (Flickr).
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

SPECIALS = ("<pad>", "<start>", "<end>", "<unk>")
SPLITS = ("train", "val", "test")


class KarpathyCaptions(Dataset):
    """Items are ``(image float (3, S, S) in [0, 1], list of reference captions as word lists)``.

    ``restval`` images (COCO) count as training images, as in Karpathy's and the paper's setup.
    """

    def __init__(self, json_path: str | Path, image_root: str | Path, split: str = "train",
                 image_size: int = 224, max_words: int | None = None):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        with open(json_path, encoding="utf-8") as f:
            data = json.load(f)
        if not isinstance(data, dict) or not isinstance(data.get("images"), list):
            raise ValueError(f"{json_path} is not a Karpathy split file (no 'images' list)")
        wanted = {"train", "restval"} if split == "train" else {split}
        self.image_root = Path(image_root)
        self.image_size = image_size
        self.entries: list[tuple[Path, list[list[str]]]] = []
        for img in data["images"]:
            if img.get("split") not in wanted:
                continue
            caps = [[w.lower() for w in s["tokens"]][:max_words] for s in img.get("sentences", []) if s.get("tokens")]
            if caps:
                self.entries.append((self.image_root / img.get("filepath", "") / img["filename"], caps))
        if not self.entries:
            raise ValueError(f"no {split} images with captions in {json_path}")

    def __len__(self) -> int:
        return len(self.entries)

    def load_image(self, path: Path) -> torch.Tensor:
        with Image.open(path) as im:
            im = im.convert("RGB").resize((self.image_size, self.image_size), Image.Resampling.BILINEAR)
            arr = np.asarray(im, dtype=np.uint8).copy()
        return torch.from_numpy(arr).permute(2, 0, 1).float() / 255.0

    def __getitem__(self, i: int) -> tuple[torch.Tensor, list[list[str]]]:
        path, caps = self.entries[i]
        return self.load_image(path), caps

    def captions(self) -> list[list[str]]:
        return [c for _, caps in self.entries for c in caps]


def build_vocab(captions: list[list[str]], min_count: int = 5, max_size: int | None = None) -> list[str]:
    """Specials first, then words seen at least ``min_count`` times, most frequent first (ties by word)."""
    counts = Counter(w for c in captions for w in c)
    words = sorted((w for w, n in counts.items() if n >= min_count and w not in SPECIALS),
                   key=lambda w: (-counts[w], w))
    return list(SPECIALS) + words[:max_size]


def collate(batch: list[tuple[torch.Tensor, list[list[str]]]]) -> tuple[torch.Tensor, list[list[list[str]]]]:
    return torch.stack([b[0] for b in batch]), [b[1] for b in batch]
