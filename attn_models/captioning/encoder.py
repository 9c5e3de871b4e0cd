"""Encoders that turn an image into the annotation grid ``a`` (L = gh*gw vectors) of Xu et al. 2015.

Two kinds:
- ``SmallCNN``: for 96x96 Fashion-Scenes; 3 poolings give a 12x12 grid; receptive field 62 px, so a
  cell sees a whole 28x28 item. Pretrained on a tag task (captioning/pretrain.py) and then frozen, as the
  paper freezes its ImageNet VGG.
- ``TorchvisionEncoder``: VGG-16 conv5_3 (14x14x512 at 224, the paper's choice) or a ResNet's layer3
  (14x14 at 224), for training on photos. Built with ``weights=None`` so construction never touches
  the network; the training script loads ImageNet weights on request.
"""
from __future__ import annotations

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _conv(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class SmallCNN(nn.Module):
    """(B, 3, 96, 96) in [0, 1] -> (B, C, 12, 12). ``widths`` are the three blocks before the last pool."""

    def __init__(self, channels: int = 96, widths: tuple[int, int, int] = (24, 48, 64)):
        super().__init__()
        w1, w2, w3 = widths
        self.out_channels = channels
        self.net = nn.Sequential(
            *_conv(3, w1), nn.MaxPool2d(2),          # 48
            *_conv(w1, w2), nn.MaxPool2d(2),         # 24
            *_conv(w2, w3), *_conv(w3, w3), nn.MaxPool2d(2),  # 12
            *_conv(w3, channels), *_conv(channels, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x - 0.25)  # rough centring; BatchNorm does the rest


class TorchvisionEncoder(nn.Module):
    """(B, 3, H, W) in [0, 1] -> ImageNet-normalised -> a torchvision backbone's conv grid."""

    def __init__(self, name: str):
        super().__init__()
        import torchvision

        if name == "vgg16":
            net = torchvision.models.vgg16(weights=None)
            self.body = net.features[:-1]  # up to conv5_3 + ReLU, dropping the last max-pool (paper)
            self.out_channels = 512
        elif name in ("resnet18", "resnet34", "resnet50", "resnet101"):
            net = getattr(torchvision.models, name)(weights=None)
            # layer3 keeps a 14x14 grid at 224 px, like the paper's conv5_3
            self.body = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3)
            self.out_channels = net.layer3[-1].conv1.in_channels
        else:
            raise ValueError(f"unknown torchvision encoder {name!r}")
        self.name = name
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body((x - self.mean) / self.std)

    def load_imagenet_weights(self) -> None:
        """Copy ImageNet weights into the backbone (downloads them: needs the network)."""
        import torchvision

        builder = getattr(torchvision.models, self.name)
        net = builder(weights="DEFAULT")
        ref = TorchvisionEncoder(self.name)
        if self.name == "vgg16":
            ref.body = net.features[:-1]
        else:
            ref.body = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3)
        self.body.load_state_dict(ref.body.state_dict())


ENCODERS = ("small", "vgg16", "resnet18", "resnet34", "resnet50", "resnet101")


def both_views(encoder: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The mean of ``encoder``'s grid on ``images`` and, mirrored back, on ``images`` mirrored left-right
    (``encoder_flip_average`` of the captioning model; ``evaluate_encoder --flip-average``)."""
    return (encoder(images) + encoder(images.flip(-1)).flip(-1)) / 2


class BothViews(nn.Module):
    """``encoder`` whose output is ``both_views(encoder, x)`` (for a net that calls its ``.encoder``)."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return both_views(self.encoder, images)


def build_encoder(name: str, channels: int = 96, widths: tuple[int, int, int] = (24, 48, 64)) -> nn.Module:
    if name == "small":
        if len(widths) != 3:
            raise ValueError(f"the small encoder needs 3 widths, got {widths!r}")
        return SmallCNN(channels, tuple(int(w) for w in widths))
    if name in ENCODERS:
        return TorchvisionEncoder(name)
    raise ValueError(f"unknown encoder {name!r}; expected one of {ENCODERS}")
