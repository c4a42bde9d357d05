"""Mixed regression losses (MSE + MAE + log-cosh), as the single-cell winners combined them.

MSE matches the RMSE metric; MAE and log-cosh are less pulled by the heavy-tailed gene responses.
Each term is a mean over all cells (rows × targets), so weights compare like with like.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LOSS_TERMS = ("mse", "mae", "logcosh")
DEFAULT_WEIGHTS = {"mse": 1.0, "mae": 0.0, "logcosh": 0.0}
_LOG2 = math.log(2.0)


def check_loss_weights(weights: dict[str, float] | None) -> dict[str, float]:
    """Weights with defaults filled in; unknown terms, negative weights or an all-zero mix are errors."""
    merged = dict(DEFAULT_WEIGHTS)
    for key, value in (weights or {}).items():
        if key not in LOSS_TERMS:
            raise ValueError(f"unknown loss term {key!r}; known: {list(LOSS_TERMS)}")
        merged[key] = float(value)
    if any(v < 0 for v in merged.values()) or not any(v > 0 for v in merged.values()):
        raise ValueError(f"loss weights must be >= 0 with at least one > 0, got {merged}")
    return merged


def log_cosh(x: torch.Tensor) -> torch.Tensor:
    """log(cosh(x)) without overflow: |x| + softplus(-2|x|) - log 2."""
    a = x.abs()
    return a + F.softplus(-2.0 * a) - _LOG2


def mixed_regression_loss(
    pred: torch.Tensor, target: torch.Tensor, weights: dict[str, float] | None = None
) -> torch.Tensor:
    """Σ_term weight·mean_over_cells(term(pred − target)); terms with weight 0 cost nothing."""
    w = check_loss_weights(weights)
    diff = pred - target
    total = pred.new_zeros(())
    if w["mse"]:
        total = total + w["mse"] * diff.square().mean()
    if w["mae"]:
        total = total + w["mae"] * diff.abs().mean()
    if w["logcosh"]:
        total = total + w["logcosh"] * log_cosh(diff).mean()
    return total
