"""ZeroGPU support: on a Hugging Face Space with ZeroGPU hardware, the functions that use the GPU must be
decorated with ``spaces.GPU`` (a GPU is attached for the duration of each call). Elsewhere ``spaces`` is
not installed and the decorator is a no-op; where it is installed but the hardware is not ZeroGPU,
``spaces.GPU`` itself has no effect.

Use it plainly on Gradio handlers (plain functions or generators that stream):

    @gpu_handler
    def generate(...): ...

    @gpu_handler(duration=120)   # calls expected to take longer than the 60 s default
    def sample(...): ...

This module imports neither torch nor Gradio, so app.py can import it first: ZeroGPU requires
``import spaces`` before anything initialises CUDA.
"""
from __future__ import annotations

try:  # pragma: no cover - only present on Spaces
    import spaces

    gpu_handler = spaces.GPU
except Exception:  # ImportError, or spaces present but unusable outside a Space

    def gpu_handler(fn=None, **_kwargs):
        if fn is None:  # used as @gpu_handler(duration=...)
            return lambda f: f
        return fn
