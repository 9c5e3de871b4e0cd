"""Image Transformer (Parmar et al. 2018): model and cached sampler."""
