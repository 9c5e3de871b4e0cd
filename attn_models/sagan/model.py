"""SAGAN as shipped: the (EMA) generator plus its sampling API (`generate`, `interpolate`; see README), and,
when the export holds it, the discriminator trained beside it (`discriminate`).

    m = load("sagan-fashion-mnist")
    out = m.generate([0, 5, 9], seed=0)      # Generated(images uint8 (N,H,W,C), attention (N,Q,K), ...)
    verdict = m.discriminate(out.images, [0, 5, 9])   # Judged(scores (N,), attention (N,Q,K), ...)

Image k depends only on (seed, k, labels[k]): z_k is drawn from its own generator seeded by
(seed, k), and BatchNorm runs in eval mode (running statistics), so the batch around it is irrelevant.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from attn_models.sagan.networks import Discriminator, Generator

MAX_SEED = 2 ** 32 - 1
MAX_COUNT = 4096


@dataclass
class Generated:
    images: np.ndarray  # uint8 (N, H, W, C)
    attention: np.ndarray  # float32 (N, Q, K): row q = where query q attends (sums to 1); (N, 0, 0) without attention
    query_hw: tuple[int, int]  # grid the Q queries are laid out on (row-major)
    key_hw: tuple[int, int]  # grid the K keys are laid out on (row-major)
    gamma: float  # gamma of the visualised layer
    gammas: dict[str, float] | None = None  # every attention layer, by feature-map resolution
    labels: np.ndarray | None = None


@dataclass
class Judged:
    scores: np.ndarray  # float32 (N,): D's score; under the hinge loss > 0 leans "real", < 0 "generated"
    attention: np.ndarray  # float32 (N, Q, K): D's attention (visualised layer); (N, 0, 0) without attention
    query_hw: tuple[int, int]
    key_hw: tuple[int, int]
    gamma: float  # gamma of D's visualised layer
    gammas: dict[str, float]  # every attention layer of D, by feature-map resolution
    labels: np.ndarray


def latent(seed: int, k: int, z_dim: int) -> torch.Tensor:
    """z for image k of ``seed``: its own stream, so it never depends on the other images."""
    state = np.random.SeedSequence([int(seed), int(k)]).generate_state(2, dtype=np.uint32)
    gen = torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))
    return torch.randn(z_dim, generator=gen)


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation: keeps |z| typical of a Gaussian, unlike a straight line."""
    cos = torch.clamp((a / a.norm()) @ (b / b.norm()), -1.0, 1.0)
    omega = torch.arccos(cos)
    if omega.abs() < 1e-4:
        return (1 - t) * a + t * b
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


class SAGAN(nn.Module, PyTorchModelHubMixin):
    def __init__(self, img_size: int = 32, img_channels: int = 1, num_classes: int = 10, z_dim: int = 128,
                 ch: int = 16, attn_res: list[int] = (16,), attn_variant: str = "official",
                 class_names: list[str] | None = None, d_ch: int | None = None, d_attn_res: list[int] | None = None):
        """``d_attn_res`` (a list, possibly empty) adds the discriminator, of width ``d_ch`` (default ``ch``);
        None (exports made before the discriminator was kept) leaves it out."""
        super().__init__()
        self.generator = Generator(img_size, img_channels, num_classes, z_dim, ch, list(attn_res), attn_variant)
        self.discriminator = None if d_attn_res is None else Discriminator(
            img_size, img_channels, num_classes, d_ch or ch, list(d_attn_res), attn_variant)
        self.num_classes, self.z_dim, self.img_size, self.img_channels = num_classes, z_dim, img_size, img_channels
        self.class_names = list(class_names) if class_names else [str(i) for i in range(num_classes)]
        self.vis_layer = str(max(attn_res)) if attn_res else None  # finest map is the most readable
        self.d_vis_layer = str(max(d_attn_res)) if d_attn_res else None

    @property
    def has_discriminator(self) -> bool:
        return self.discriminator is not None

    @property
    def gammas(self) -> dict[str, float]:
        """gamma of every attention layer, keyed by the feature-map resolution it runs at."""
        return {res: float(block.gamma.detach()) for res, block in self.generator.attn.items()}

    def _check(self, labels: Sequence[int], seed: int) -> np.ndarray:
        try:
            labels = np.asarray([int(x) for x in labels], dtype=np.int64)
        except (TypeError, ValueError):
            raise ValueError("labels must be a sequence of integer class ids") from None
        if not 1 <= len(labels) <= MAX_COUNT:
            raise ValueError(f"number of images must be between 1 and {MAX_COUNT}, got {len(labels)}")
        if labels.min() < 0 or labels.max() >= self.num_classes:
            raise ValueError(f"class ids must be in 0..{self.num_classes - 1}, got {labels.tolist()}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= MAX_SEED:
            raise ValueError(f"seed must be an integer in 0..{MAX_SEED}, got {seed!r}")
        return labels

    def latents(self, count: int, seed: int) -> torch.Tensor:
        return torch.stack([latent(seed, k, self.z_dim) for k in range(count)])  # (N, z_dim)

    @torch.inference_mode()
    def generate(self, labels: Sequence[int], seed: int = 0, attention_off: bool = False,
                 return_attention: bool = True, z: torch.Tensor | None = None,
                 batch_size: int = 256, knockout: int | None = None) -> Generated:
        """Images for ``labels`` (class ids), plus the attention of the visualised layer.

        attention_off=True sets every gamma to 0 for this call only (the attention output is dropped;
        the maps are still computed so they can be shown). ``z`` overrides the seeded latents
        (shape (N, z_dim)), e.g. for interpolations. ``knockout`` (a query index on the visualised layer's
        grid, row-major) zeroes that one position's attention output, for this call only.
        """
        labels = self._check(labels, seed)
        if knockout is not None:
            if self.vis_layer is None:
                raise ValueError("this model has no attention layer to knock a query out of")
            res = int(self.vis_layer)
            if isinstance(knockout, bool) or not isinstance(knockout, (int, np.integer)) \
                    or not 0 <= knockout < res * res:
                raise ValueError(f"knockout query must be an integer in 0..{res * res - 1}, got {knockout!r}")
        if z is None:
            z = self.latents(len(labels), seed)
        elif z.shape != (len(labels), self.z_dim):
            raise ValueError(f"z must have shape ({len(labels)}, {self.z_dim}), got {tuple(z.shape)}")
        was_training = self.training
        if was_training:  # BatchNorm on running statistics: image k is independent of the rest of the batch
            self.eval()
        device = next(self.parameters()).device
        imgs, maps = [], []
        want = return_attention and self.vis_layer is not None
        for i in range(0, len(labels), batch_size):
            zb = z[i:i + batch_size].to(device)
            yb = torch.from_numpy(labels[i:i + batch_size]).to(device)
            ko = None if knockout is None else {self.vis_layer: int(knockout)}
            if want:
                x, m = self.generator(zb, yb, return_attn=True, attention_off=attention_off, knockout=ko)
                maps.append(m[self.vis_layer].float().cpu())
            else:
                x = self.generator(zb, yb, attention_off=attention_off, knockout=ko)
            imgs.append(x.float().cpu())
        if was_training:
            self.train()
        x = torch.cat(imgs)  # (N, C, H, W) in [-1, 1]
        images = ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        gammas = self.gammas
        if want:
            res = int(self.vis_layer)
            block = self.generator.attn[self.vis_layer]
            query_hw, key_hw = (res, res), block.key_hw(res, res)
            attention = torch.cat(maps).numpy()
        else:
            query_hw = key_hw = (0, 0)
            attention = np.zeros((len(labels), 0, 0), np.float32)
        gamma = 0.0 if attention_off or self.vis_layer is None else gammas[self.vis_layer]
        return Generated(images, attention, query_hw, key_hw, gamma, gammas, labels)

    def interpolate(self, label: int, seed_a: int, seed_b: int, steps: int = 16,
                    attention_off: bool = False) -> Generated:
        """Images along the slerp from z(seed_a, 0) to z(seed_b, 0), all of class ``label``."""
        if not 2 <= steps <= 256:
            raise ValueError(f"steps must be between 2 and 256, got {steps}")
        self._check([label], seed_a)
        self._check([label], seed_b)
        za, zb = latent(seed_a, 0, self.z_dim), latent(seed_b, 0, self.z_dim)
        z = torch.stack([slerp(za, zb, t) for t in np.linspace(0, 1, steps)])
        return self.generate([label] * steps, seed=seed_a, z=z, attention_off=attention_off)

    @torch.inference_mode()
    def discriminate(self, images: np.ndarray, labels: Sequence[int]) -> Judged:
        """D's score and attention for uint8 ``images`` (N, S, S, C) or (N, S, S) at the model's size
        (Fashion-MNIST's 28x28 padded with 2 black pixels a side, as in training) and class ids ``labels``."""
        if self.discriminator is None:
            raise ValueError("this export holds no discriminator (it predates the exports that keep D)")
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[..., None]
        want = (self.img_size, self.img_size, self.img_channels)
        if images.ndim != 4 or images.shape[1:] != want or images.dtype != np.uint8:
            raise ValueError(f"images must be uint8 of shape (N, {want[0]}, {want[1]}, {want[2]}), got "
                             f"{images.dtype} {images.shape}")
        labels = self._check(labels, 0)
        if len(labels) != len(images):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        d = self.discriminator
        was_training = d.training
        d.eval()  # spectral norm uses its stored vectors: no power iteration, the weights stay as shipped
        device = next(d.parameters()).device
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float().to(device) / 127.5 - 1
        scores, maps = d(x, torch.from_numpy(labels).to(device), return_attn=True)
        d.train(was_training)
        gammas = {res: float(block.gamma.detach()) for res, block in d.attn.items()}
        if self.d_vis_layer is not None:
            res = int(self.d_vis_layer)
            query_hw, key_hw = (res, res), d.attn[self.d_vis_layer].key_hw(res, res)
            attention, gamma = maps[self.d_vis_layer].float().cpu().numpy(), gammas[self.d_vis_layer]
        else:
            query_hw = key_hw = (0, 0)
            attention, gamma = np.zeros((len(images), 0, 0), np.float32), 0.0
        return Judged(scores.float().cpu().numpy(), attention, query_hw, key_hw, gamma, gammas, labels)
