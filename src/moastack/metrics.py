"""The competition metric: mean over targets of binary log loss, clipped at 1e-15.

Missing labels (NaN) are ignored per target, so the same function serves tables with gaps.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-15


def per_target_log_loss(y_true: np.ndarray, y_pred: np.ndarray, eps: float = EPS) -> np.ndarray:
    """Binary log loss of each column; cells where ``y_true`` is NaN do not count."""
    y_true = np.asarray(y_true, dtype=np.float64)
    p = np.clip(np.asarray(y_pred, dtype=np.float64), eps, 1.0 - eps)
    if y_true.shape != p.shape:
        raise ValueError(f"shape mismatch: truth {y_true.shape} vs predictions {p.shape}")
    labelled = ~np.isnan(y_true)
    y = np.where(labelled, y_true, 0.0)
    cell = -(y * np.log(p) + (1.0 - y) * np.log1p(-p))
    cell = np.where(labelled, cell, 0.0)
    counts = labelled.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, cell.sum(axis=0) / np.maximum(counts, 1), np.nan)


def mean_log_loss(y_true: np.ndarray, y_pred: np.ndarray, eps: float = EPS) -> float:
    """The lish-moa metric (mean of the per-target losses)."""
    return float(np.nanmean(per_target_log_loss(y_true, y_pred, eps)))


def score_record(y_true: np.ndarray, y_pred: np.ndarray, targets: list[str], **extra) -> dict:
    """A ``score.json`` body: metric name, value, per-target losses and the row count."""
    losses = per_target_log_loss(y_true, y_pred)
    return {
        "metric": "mean_log_loss",
        "value": float(np.nanmean(losses)),
        "per_target": {t: float(v) for t, v in zip(targets, losses)},
        "n": int(len(y_true)),
        **extra,
    }
