"""Every metric moastack scores with, and the one registry of them (:data:`METRICS`).

lish-moa is scored by mean per-target binary log loss, clipped at 1e-15; Tox21 and most molecular
benchmarks by mean ROC-AUC (or PR-AUC), which ranks rather than calibrates; the single-cell perturbation
task by MRRMSE, the mean over rows of each row's RMSE. Missing labels (NaN) are ignored per target, so
the same functions serve tables with gaps (Tox21). :func:`metric_value` and :func:`score_record` serve
every task, so collect, the blend, tuning and training jobs call the same two functions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from moastack.task import task_of_metric

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


def _per_target_ranking(score: Callable, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """``score`` (an sklearn ranking metric) per column on its labelled cells.

    NaN for a column without a labelled 0 and 1, or with soft (non 0/1) truth, which ranking metrics
    cannot score.
    """
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"shape mismatch: truth {y_true.shape} vs predictions {y_pred.shape}")
    if y_true.ndim == 1:
        y_true, y_pred = y_true[:, None], y_pred[:, None]
    out = np.full(y_true.shape[1], np.nan)
    for j in range(y_true.shape[1]):
        labelled = ~np.isnan(y_true[:, j])
        y = y_true[labelled, j]
        pos, neg = y == 1, y == 0
        if pos.any() and neg.any() and (pos | neg).all():
            out[j] = score(y, y_pred[labelled, j])
    return out


def per_target_roc_auc(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """ROC-AUC of each column on its labelled cells; NaN for a column without a labelled 0 and 1."""
    from sklearn.metrics import roc_auc_score

    return _per_target_ranking(roc_auc_score, y_true, y_pred)


def per_target_average_precision(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Average precision (PR-AUC) of each column on its labelled cells; NaN as for ROC-AUC."""
    from sklearn.metrics import average_precision_score

    return _per_target_ranking(average_precision_score, y_true, y_pred)


def _nanmean(values: np.ndarray) -> float:
    """Mean over targets that have a value; NaN (not a warning) when none has."""
    values = np.asarray(values, dtype=np.float64)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def metric_value(name: str, y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """The value of metric ``name``: its own function (MRRMSE: mean over rows), else the mean over targets
    (NaN targets skipped) of its per-target values."""
    metric = get_metric(name)
    if metric.value is not None:
        return float(metric.value(y_true, y_pred))
    return _nanmean(metric.per_target(y_true, y_pred))


def score_record(
    y_true: np.ndarray, y_pred: np.ndarray, targets: list[str], metric: str = "log_loss", **extra
) -> dict:
    """A ``score.json`` body: the chosen metric's name (``mean_<metric>``), value and per-target values,
    whether greater is better, the means and per-target values of every metric of its task, and the row count.

    ``value`` and ``per_target`` always belong to the chosen metric, so compare ``value`` with
    ``greater_is_better``. A regression metric gives :func:`regression_score_record` (MRRMSE, mean
    column-wise RMSE and MAE, per-target RMSE, per-row RMSE quantiles).
    """
    task = task_of_metric(metric)
    if task.continuous:
        return {"greater_is_better": get_metric(metric).greater_is_better,
                **regression_score_record(y_true, y_pred, list(targets), **extra)}
    per_all = {name: get_metric(name).per_target(y_true, y_pred) for name in task.metrics}
    chosen = per_all[metric]
    return {
        "metric": f"mean_{metric}",
        "value": _nanmean(chosen),
        "greater_is_better": get_metric(metric).greater_is_better,
        "per_target": {t: float(v) for t, v in zip(targets, chosen)},
        "metrics": {name: _nanmean(v) for name, v in per_all.items()},
        "per_target_all": {name: {t: float(x) for t, x in zip(targets, v)} for name, v in per_all.items()},
        "n": int(len(y_true)),
        **extra,
    }


# ------------------------------------------------------------------ regression (MRRMSE)
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


# ------------------------------------------------------------------ the registry
class Metric(NamedTuple):
    """One metric: its per-target values, its direction, and its own value function when the value is
    not the mean of the per-target values (MRRMSE is a mean over rows)."""

    per_target: Callable[[np.ndarray, np.ndarray], np.ndarray]
    greater_is_better: bool
    value: Callable[[np.ndarray, np.ndarray], float] | None = None


#: every metric moastack computes; the one place that says whether greater is better. Which task a
#: metric scores is the task's business (:mod:`moastack.task`).
METRICS: dict[str, Metric] = {
    "log_loss": Metric(per_target_log_loss, greater_is_better=False),
    "roc_auc": Metric(per_target_roc_auc, greater_is_better=True),
    "pr_auc": Metric(per_target_average_precision, greater_is_better=True),
    "mrrmse": Metric(per_target_rmse, greater_is_better=False, value=mrrmse),
}


def get_metric(name: str) -> Metric:
    try:
        return METRICS[name]
    except KeyError:
        raise ValueError(f"unknown metric {name!r}; known: {sorted(METRICS)}") from None


def greater_is_better(name: str) -> bool:
    """Whether a larger value of metric ``name`` is better (AUCs) or worse (losses, MRRMSE)."""
    return get_metric(name).greater_is_better


def optuna_direction(name: str) -> str:
    """``maximize`` or ``minimize``: how a search (tuning, the TPE blend) optimises metric ``name``."""
    return "maximize" if greater_is_better(name) else "minimize"
