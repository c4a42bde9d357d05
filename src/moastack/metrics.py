"""The competition metric: mean over targets of binary log loss, clipped at 1e-15; plus ROC-AUC and PR-AUC.

Missing labels (NaN) are ignored per target, so the same functions serve tables with gaps (Tox21).
lish-moa is scored by log loss; Tox21 and most molecular benchmarks by mean ROC-AUC, which ranks
rather than calibrates. ``METRICS`` names them all, with whether greater is better.

Regression tasks (``data.task: regression``) have one metric, MRRMSE (:mod:`moastack.regression.metrics`):
:func:`metric_value` and :func:`score_record` dispatch to it by name, so collect, the blend and tuning call
the same two functions whatever the task. ``TASK_METRICS`` says which metric belongs to which task.
"""

from __future__ import annotations

from collections.abc import Callable

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


#: metric name -> (per-target function, greater_is_better)
METRICS: dict[str, tuple[Callable[[np.ndarray, np.ndarray], np.ndarray], bool]] = {
    "log_loss": (per_target_log_loss, False),
    "roc_auc": (per_target_roc_auc, True),
    "pr_auc": (per_target_average_precision, True),
}


#: regression metric name -> greater_is_better (not in ``METRICS``: a multilabel score record keeps its keys)
REGRESSION_METRICS: dict[str, bool] = {"mrrmse": False}
#: task -> the metrics its ``data.metric`` may name
TASK_METRICS: dict[str, tuple[str, ...]] = {"multilabel": tuple(METRICS), "regression": tuple(REGRESSION_METRICS)}


def metric_task(name: str) -> str:
    """The task a metric belongs to: ``regression`` for MRRMSE, ``multilabel`` for the others."""
    return "regression" if name in REGRESSION_METRICS else "multilabel"


def greater_is_better(name: str) -> bool:
    """Whether a larger value of metric ``name`` is better (AUCs) or worse (losses, MRRMSE)."""
    if name in REGRESSION_METRICS:
        return REGRESSION_METRICS[name]
    return _metric(name)[1]


def _metric(name: str) -> tuple[Callable[[np.ndarray, np.ndarray], np.ndarray], bool]:
    try:
        return METRICS[name]
    except KeyError:
        raise ValueError(f"unknown metric {name!r}; known: {sorted(METRICS)}") from None


def _nanmean(values: np.ndarray) -> float:
    """Mean over targets that have a value; NaN (not a warning) when none has."""
    values = np.asarray(values, dtype=np.float64)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def metric_value(name: str, y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean over targets (NaN targets skipped) of metric ``name``; MRRMSE (mean over rows) for ``mrrmse``."""
    if name == "mrrmse":
        from moastack.regression.metrics import mrrmse

        return mrrmse(y_true, y_pred)
    return _nanmean(_metric(name)[0](y_true, y_pred))


def score_record(
    y_true: np.ndarray, y_pred: np.ndarray, targets: list[str], metric: str = "log_loss", **extra
) -> dict:
    """A ``score.json`` body: the chosen metric's name (``mean_<metric>``), value and per-target values,
    whether greater is better, the means and per-target values of every metric, and the row count.

    With the default metric this is ``{"metric": "mean_log_loss", ...}`` as before; ``value`` and
    ``per_target`` always belong to the chosen metric, so compare ``value`` with ``greater_is_better``.
    ``metric="mrrmse"`` gives :func:`moastack.regression.metrics.regression_score_record` (MRRMSE, mean
    column-wise RMSE and MAE, per-target RMSE, per-row RMSE quantiles) with ``greater_is_better`` False.
    """
    if metric == "mrrmse":
        from moastack.regression.metrics import regression_score_record

        return {"greater_is_better": False, **regression_score_record(y_true, y_pred, list(targets), **extra)}
    _metric(metric)
    per_all = {name: fn(y_true, y_pred) for name, (fn, _) in METRICS.items()}
    chosen = per_all[metric]
    return {
        "metric": f"mean_{metric}",
        "value": _nanmean(chosen),
        "greater_is_better": METRICS[metric][1],
        "per_target": {t: float(v) for t, v in zip(targets, chosen)},
        "metrics": {name: _nanmean(v) for name, v in per_all.items()},
        "per_target_all": {name: {t: float(x) for t, x in zip(targets, v)} for name, v in per_all.items()},
        "n": int(len(y_true)),
        **extra,
    }
