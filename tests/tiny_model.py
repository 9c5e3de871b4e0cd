"""A registry-shaped model small enough for unit tests: nn.Module + PyTorchModelHubMixin, JSON config,
a buffer and a tied weight (the two things a naive state-dict round trip gets wrong)."""
from __future__ import annotations

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn


class TinyNet(nn.Module, PyTorchModelHubMixin):
    def __init__(self, width: int = 8, depth: int = 2, activation: str = "tanh"):
        super().__init__()
        if activation not in ("tanh", "relu"):
            raise ValueError(f"unknown activation {activation!r}")
        self.inp = nn.Linear(width, width)
        self.hidden = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))
        self.out = nn.Linear(width, width, bias=False)
        self.out.weight = self.inp.weight  # tied: safetensors stores shared storage once
        self.register_buffer("scale", torch.linspace(0.5, 1.5, width))
        self.act = torch.tanh if activation == "tanh" else torch.relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, width) -> (B, width)
        h = self.act(self.inp(x))
        for layer in self.hidden:
            h = self.act(layer(h))
        return self.out(h) * self.scale


def make_tiny(seed: int = 0, **config) -> TinyNet:
    torch.manual_seed(seed)
    model = TinyNet(**config)
    with torch.no_grad():  # non-default buffer values, so a load that skips buffers is caught
        model.scale.mul_(1.0 + seed)
    return model.eval()
