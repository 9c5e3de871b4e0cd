"""Small CNN classifier for Fashion-MNIST: the feature extractor behind the GAN metrics
(FID on its penultimate features, class consistency and an Inception-Score-style score).

Inputs may be 28x28 (Fashion-MNIST) or 32x32 (the GAN's padded canvas, centre-cropped to 28x28).
"""
from __future__ import annotations

import numpy as np
import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn
from torch.nn import functional as F

MEAN, STD = 0.2860, 0.3530  # Fashion-MNIST train pixel statistics (x/255)


def to_batch(images) -> torch.Tensor:
    """uint8 (N,H,W) / (N,H,W,1) array or tensor, or float tensor (N,1,H,W) in [0,1] -> float (N,1,28,28)."""
    # np.array copies: cached data sets are read-only arrays, which torch.from_numpy warns about.
    x = images if isinstance(images, torch.Tensor) else torch.from_numpy(np.array(images))
    if x.dtype == torch.uint8:
        if x.ndim == 4 and x.shape[-1] in (1, 3):  # NHWC
            x = x.permute(0, 3, 1, 2)
        elif x.ndim == 3:
            x = x[:, None]
        x = x.float() / 255.0
    if x.ndim != 4:
        raise ValueError(f"expected a batch of images, got shape {tuple(x.shape)}")
    if x.shape[1] == 3:  # colour input (e.g. torchmetrics' probe): luminance
        x = x.mean(dim=1, keepdim=True)
    if x.shape[1] != 1:
        raise ValueError(f"expected 1 or 3 channels, got {x.shape[1]}")
    h, w = x.shape[-2:]
    if (h, w) == (32, 32):  # GAN canvas: Fashion-MNIST padded by 2 on each side
        x = x[..., 2:30, 2:30]
    elif (h, w) != (28, 28):
        x = F.interpolate(x, size=(28, 28), mode="bilinear", antialias=True, align_corners=False)
    return x


class FashionMNISTClassifier(nn.Module, PyTorchModelHubMixin):
    """Three conv blocks (conv-BN-ReLU x n, then pool; the cheap 28x28 block has one conv) and a small MLP head.

    ``features(x)`` is the penultimate layer (``num_features`` values): the FID embedding.
    """

    def __init__(self, widths: list[int] = (32, 48, 96), convs_per_block: list[int] = (1, 2, 2),
                 hidden: int = 256, dropout: float = 0.3, num_classes: int = 10, flip_tta: bool = True):
        super().__init__()
        self.flip_tta = flip_tta
        if len(widths) != 3 or len(convs_per_block) != 3:
            raise ValueError("widths and convs_per_block need 3 entries (28 -> 14 -> 7 -> 3)")
        layers, c_in = [], 1
        for c, n_convs in zip(widths, convs_per_block, strict=True):
            for _ in range(n_convs):
                layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
                c_in = c
            layers.append(nn.MaxPool2d(2))
        self.body = nn.Sequential(*layers)  # 28 -> 14 -> 7 -> 3
        self.embed = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(c_in * 3 * 3, hidden),
                                   nn.BatchNorm1d(hidden), nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, num_classes))
        self.num_features = hidden  # read by torchmetrics' FID for a custom extractor

    def features(self, images) -> torch.Tensor:
        x = (to_batch(images).to(next(self.parameters()).device) - MEAN) / STD
        f = self.embed(self.body(x))  # (N, hidden)
        if self.flip_tta and not self.training:
            # Fashion-MNIST is left-right symmetric in distribution (training flips too): averaging the
            # embedding of an image and its mirror is a cheap test-time ensemble (+0.4 points of accuracy).
            f = (f + self.embed(self.body(x.flip(-1)))) / 2
        return f

    def forward(self, images) -> torch.Tensor:
        """Logits (N, num_classes)."""
        return self.head(self.features(images))

    @torch.inference_mode()
    def predict_proba(self, images, batch_size: int = 500) -> np.ndarray:
        out = [F.softmax(self(images[i:i + batch_size]), dim=-1).cpu() for i in range(0, len(images), batch_size)]
        return torch.cat(out).numpy()


class PenultimateFeatures(nn.Module):
    """Adapter for torchmetrics' FID: uint8 images in, the classifier's penultimate features out."""

    def __init__(self, classifier: FashionMNISTClassifier):
        super().__init__()
        self.classifier = classifier.eval()
        self.num_features = classifier.num_features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.classifier.features(images).double()

