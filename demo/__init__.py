"""The Gradio UI: one module per tab, plus shared rendering helpers. Imports attn_models, never the reverse."""
