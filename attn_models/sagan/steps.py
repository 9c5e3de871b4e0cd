"""One SAGAN training step (hinge loss, TTUR, n_dis=1 as in the paper) and the EMA of G.

Kept apart from the CLI (attn_models.sagan.train) so the step itself is unit-tested.
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F

from attn_models.sagan.networks import Discriminator, Generator


def d_hinge(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    return F.relu(1.0 - real_scores).mean() + F.relu(1.0 + fake_scores).mean()


def g_hinge(fake_scores: torch.Tensor) -> torch.Tensor:
    return -fake_scores.mean()


def make_optimizers(g: nn.Module, d: nn.Module, lr_g: float = 1e-4, lr_d: float = 4e-4,
                    betas: tuple[float, float] = (0.0, 0.9)):
    """Two time-scale update rule (Heusel et al. 2017) with SAGAN's settings."""
    return (torch.optim.Adam(g.parameters(), lr=lr_g, betas=betas),
            torch.optim.Adam(d.parameters(), lr=lr_d, betas=betas))


def train_step(g: Generator, d: Discriminator, opt_g, opt_d, real: torch.Tensor, labels: torch.Tensor,
               backward=None) -> dict[str, float]:
    """One D update on (real, fake) then one G update. real: (B, C, S, S) in [-1, 1]; labels: (B,).

    Fake labels are drawn uniformly, independent of the real batch. ``backward`` lets Accelerate
    handle the backward pass (mixed precision, gradient sync); default is loss.backward().
    """
    backward = backward or (lambda loss: loss.backward())
    b, device = real.shape[0], real.device
    g.train()
    d.train()
    z = torch.randn(b, g.z_dim, device=device)
    y_fake = torch.randint(0, g.num_classes, (b,), device=device)
    with torch.no_grad():
        fake = g(z, y_fake)
    real_scores, fake_scores = d(real, labels), d(fake, y_fake)
    loss_d = d_hinge(real_scores, fake_scores)
    opt_d.zero_grad(set_to_none=True)
    backward(loss_d)
    opt_d.step()

    z = torch.randn(b, g.z_dim, device=device)
    y_fake = torch.randint(0, g.num_classes, (b,), device=device)
    for p in d.parameters():  # D's grads are not needed for G's step
        p.requires_grad_(False)
    loss_g = g_hinge(d(g(z, y_fake), y_fake))
    opt_g.zero_grad(set_to_none=True)
    backward(loss_g)
    opt_g.step()
    for p in d.parameters():
        p.requires_grad_(True)
    return {"loss_d": loss_d.item(), "loss_g": loss_g.item(),
            "d_real": real_scores.mean().item(), "d_fake": fake_scores.mean().item()}


class EMA:
    """Exponential moving average of G's parameters, used for sampling (as in the SAGAN/BigGAN code).

    Buffers (BatchNorm statistics, spectral-norm vectors) are copied; ``standing_stats`` re-estimates
    them for the averaged weights before export.
    """

    def __init__(self, g: nn.Module, decay: float = 0.999):
        self.decay = decay
        self.model = copy.deepcopy(g).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, g: nn.Module, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))  # warm-up: early averages track G closely
        for pe, p in zip(self.model.parameters(), g.parameters(), strict=True):
            pe.lerp_(p.detach(), 1 - decay)
        for be, b in zip(self.model.buffers(), g.buffers(), strict=True):
            be.copy_(b)


@torch.no_grad()
def standing_stats(g: Generator, batches: int = 64, batch_size: int = 64, seed: int = 0) -> None:
    """Recompute BatchNorm running statistics (and settle the spectral-norm power iteration) for the
    weights ``g`` has now, by averaging over generated batches in train mode."""
    bns = [m for m in g.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over all batches
    device = next(g.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    g.train()
    for _ in range(batches):
        z = torch.randn(batch_size, g.z_dim, generator=gen).to(device)
        y = torch.randint(0, g.num_classes, (batch_size,), generator=gen).to(device)
        g(z, y)
    g.eval()
    for m, mom in zip(bns, saved, strict=True):
        m.momentum = mom
