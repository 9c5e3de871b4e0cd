"""Data sets: Fashion-MNIST, the Fashion-Scenes captioning set, generic image/caption sets."""
from attn_models.data.fashion_mnist import CLASS_NAMES, load_fashion_mnist

__all__ = ["CLASS_NAMES", "load_fashion_mnist"]
