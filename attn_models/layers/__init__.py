"""Attention primitives shared by the models (local 1D/2D and full masked attention)."""
