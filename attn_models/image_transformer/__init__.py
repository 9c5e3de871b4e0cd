"""Image Transformer (Parmar et al. 2018): ``model`` (the model, its one-position ``step`` methods and the public
API) and ``sampler`` (cached incremental decoding, random draws; imports nothing from ``model``)."""
