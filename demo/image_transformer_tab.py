"""Placeholder until this tab's issue lands."""
from __future__ import annotations

import gradio as gr


def build(device: str) -> None:
    gr.Markdown("This tab is under construction.")
