"""MRRMSE, the Open Problems 2023 single-cell perturbation metric, and its score record.

MRRMSE is the mean over rows of each row's RMSE across all targets: every (cell type, compound) pair
counts equally however many genes move, so a few badly predicted pairs dominate it. Inputs are assumed
NaN-free (the task's targets are dense).
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: above this many targets a score record keeps summary quantiles instead of one value per target,
#: so that a score.json of an 18k-gene task stays a few KB (it is read by collect/report for every job)
MAX_PER_TARGET = 2000
QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)


def _check(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2-D float64 views of both arrays; a shape mismatch is an error, never a broadcast."""
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if t.shape != p.shape:
        raise ValueError(f"shape mismatch: truth {t.shape} vs predictions {p.shape}")
    if t.ndim == 1:
        t, p = t[None, :], p[None, :]
    if t.ndim != 2:
        raise ValueError(f"expected 2-D (rows × targets) arrays, got {t.ndim}-D")
    return t, p


def per_row_rmse(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """RMSE of each row over its targets, shape (n,)."""
    t, p = _check(y_true, y_pred)
    return np.sqrt(np.mean((t - p) ** 2, axis=1)) if t.shape[1] else np.full(len(t), np.nan)


def mrrmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean row-wise RMSE (NaN for zero rows)."""
    rows = per_row_rmse(y_true, y_pred)
    return float(rows.mean()) if rows.size else float("nan")


def per_target_rmse(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """RMSE of each target (column) over the rows, shape (t,)."""
    t, p = _check(y_true, y_pred)
    return np.sqrt(np.mean((t - p) ** 2, axis=0)) if len(t) else np.full(t.shape[1], np.nan)


def per_target_mae(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Mean absolute error of each target, shape (t,)."""
    t, p = _check(y_true, y_pred)
    return np.mean(np.abs(t - p), axis=0) if len(t) else np.full(t.shape[1], np.nan)


def _quantiles(values: np.ndarray) -> dict[str, float]:
    if not values.size:
        return {}
    qs = np.quantile(values, QUANTILES)
    return {f"q{int(round(q * 100)):02d}": float(v) for q, v in zip(QUANTILES, qs)}


def regression_score_record(
    y_true: np.ndarray, y_pred: np.ndarray, targets: list[str], **extra: Any
) -> dict[str, Any]:
    """A ``score.json`` body for a regression task (same top-level keys as ``metrics.score_record``).

    ``per_target`` maps each target to its RMSE when there are at most :data:`MAX_PER_TARGET` targets;
    beyond that it holds quantiles of the per-target RMSE (``per_target_summary`` says so), because one
    float per gene for 18k genes would bloat every job's record and the report cannot show them anyway.
    """
    t, p = _check(y_true, y_pred)
    if len(targets) != t.shape[1]:
        raise ValueError(f"{len(targets)} target names for {t.shape[1]} columns")
    rows = per_row_rmse(t, p)
    col_rmse = per_target_rmse(t, p)
    col_mae = per_target_mae(t, p)
    value = float(rows.mean()) if rows.size else float("nan")
    record: dict[str, Any] = {
        "metric": "mrrmse",
        "value": value,
        "metrics": {
            "mrrmse": value,
            "rmse_col_mean": float(col_rmse.mean()) if col_rmse.size else float("nan"),
            "mae_col_mean": float(col_mae.mean()) if col_mae.size else float("nan"),
        },
    }
    if len(targets) <= MAX_PER_TARGET:
        record["per_target"] = {str(name): float(v) for name, v in zip(targets, col_rmse)}
    else:
        record["per_target"] = _quantiles(col_rmse)
        record["per_target_summary"] = f"quantiles of per-target RMSE ({len(targets)} > {MAX_PER_TARGET} targets)"
    record["per_row_rmse_quantiles"] = _quantiles(rows)
    record["n"] = int(len(t))
    record.update(extra)
    return record
