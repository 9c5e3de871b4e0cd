"""The Gradio UI: one module per tab, plus the toolkit they share (common: input checks, models, error messages,
output files; render: pictures and animations). Imports attn_models, never the reverse."""
