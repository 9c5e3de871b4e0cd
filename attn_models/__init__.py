"""Attention in vision models: Show, Attend and Tell, SAGAN, Image Transformer.

Public API (README, "Python API"):  ``from attn_models import load, list_models``.
This package never imports Gradio.
"""
from attn_models.registry import ModelSpec, list_models, load

__all__ = ["ModelSpec", "list_models", "load"]
