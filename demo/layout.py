"""Builds the whole app: one tab per model plus the Attention explorer."""
from __future__ import annotations

import gradio as gr

from demo import captioning_tab, common, explorer_tab, image_transformer_tab, inductive_bias_tab, sagan_tab

TITLE = "Attention in vision models"
INTRO = (
    "# Attention in vision models\n"
    "See where three classic models look: **Show, Attend and Tell** (Xu et al. 2015) captioning with soft and "
    "hard attention, the **Self-Attention GAN** (Zhang et al. 2019), and the **Image Transformer** "
    "(Parmar et al. 2018) with local 1D and 2D attention; what local attention costs, and which inductive "
    "biases (translation equivariance, relative position) a vision model gets from convolution or attention. "
    "Every map shown is computed from the model's real activations."
)


# Gradio keeps a copy of every file and image a handler returns in its own cache; without an age limit a
# long-running app fills the disk. An hour covers any page a visitor is still looking at.
CACHE_CLEANUP = (3600, 3600)  # (check every, delete older than) seconds


def build_app(device: str = "auto") -> gr.Blocks:
    # Created now, in the serving process: on ZeroGPU the handlers run in forked workers, which share the
    # folder this way, and only this process's exit removes it.
    common.output_folder()
    # Every request with one intra-op thread, set once here: a per-request change is process-wide in PyTorch and
    # made concurrent answers differ from the same call made alone (see common.pin_threads).
    common.pin_threads(common.SERVED_THREADS)
    with gr.Blocks(title=TITLE, delete_cache=CACHE_CLEANUP) as app:
        gr.Markdown(INTRO)
        with gr.Tab("Captioning", id="captioning"):
            captioning_tab.build(device)
        with gr.Tab("Self-attention GAN", id="sagan"):
            sagan_tab.build(device)
        with gr.Tab("Image Transformer", id="image-transformer"):
            image_transformer_tab.build(device)
        with gr.Tab("Attention explorer", id="explorer"):
            explorer_tab.build(device)
        with gr.Tab("Inductive biases", id="inductive-biases"):
            inductive_bias_tab.build(device)
    return app
