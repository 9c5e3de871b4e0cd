"""Attention maps on the image: one resize shared by the metrics, the model-card figures and the demo."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def resize_map(attn: np.ndarray, height: int, width: int, smooth: bool = True) -> np.ndarray:
    """(gh, gw) map -> (height, width) float64: bilinear (pixel centres aligned, as a cell's receptive field is
    centred on the cell) when ``smooth``, else blocky nearest-neighbour (what the model's grid really is)."""
    t = torch.as_tensor(np.asarray(attn, dtype=np.float64))[None, None]
    if smooth:
        up = F.interpolate(t, size=(height, width), mode="bilinear", align_corners=False)
    else:
        up = F.interpolate(t, size=(height, width), mode="nearest")
    return up[0, 0].numpy()
