"""ZeroGPU support: on a Hugging Face Space with ZeroGPU, GPU-bound handlers must be wrapped in
``spaces.GPU``; elsewhere (no ``spaces`` package) the wrapper is a no-op."""
from __future__ import annotations

try:  # pragma: no cover - only present on Spaces
    import spaces

    gpu_handler = spaces.GPU
except Exception:  # ImportError, or spaces present but unusable outside a Space
    def gpu_handler(fn=None, **_kwargs):
        if fn is None:
            return lambda f: f
        return fn
