"""DeepInsight: tabular rows rendered as images for CNNs (the winners' least-correlated models).

A feature map (t-SNE of the features → pixel grid) is fitted once; every sample is then rendered on the
fly into a 3-channel image (mean, min and max of the features sharing a pixel) inside the batch loop.

Names are re-exported lazily, so a job that only fits or plots a feature map never imports torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "FeatureMap": "feature_map",
    "LogNorm2Scaler": "feature_map",
    "fit_feature_map": "feature_map",
    "min_area_rotation": "feature_map",
    "Renderer": "render",
    "render_images": "render",
    "render_images_reference": "render",
    "swap_noise": "augment",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
