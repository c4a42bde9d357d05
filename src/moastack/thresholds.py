"""Per-target decision thresholds: where to cut a probability to call a sample positive.

A ranking metric (ROC-AUC) or a calibrated probability does not tell a user whether to call a compound
toxic. For each target, :func:`decision_thresholds` sweeps every distinct predicted score of the labelled
rows and keeps the cut that maximises F1 (default) or the Matthews correlation coefficient; a row is then
called positive when its probability is ``>= threshold``. At that cut it reports F1, MCC, precision and
recall, beside the ROC-AUC and PR-AUC of the same predictions (from :data:`moastack.metrics.METRICS`).

The blend chooses them on its out-of-fold predictions, the same rows its weights were searched on, so
the F1/MCC reported at the chosen threshold is optimistic by the same leak as the blend's OOF score
(the threshold is fitted on the rows that score it, as is usual); expect somewhat less on new samples.

Missing labels (NaN) are skipped per target. A target without a labelled positive has no meaningful
cut: its threshold is 1.0, it is never called (:func:`apply_thresholds` writes 0 whatever the
probability), and its F1/MCC/precision/recall are ``None``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from moastack.metrics import get_metric

#: the metrics a threshold can maximise (config ``blend.threshold_metric``)
THRESHOLD_METRICS = ("f1", "mcc")
#: the threshold of a target with no labelled positive (never called)
NEVER = 1.0
#: suffix of the 0/1 label column written beside each target's probability
LABEL_SUFFIX = "_label"
#: how a threshold is applied, as stored with it
RULE = "label = 1 where probability >= threshold; targets listed under never_called are always 0"


def sweep(y: np.ndarray, p: np.ndarray) -> dict[str, np.ndarray]:
    """Confusion counts, F1 and MCC at every distinct cut of one target's labelled scores.

    ``y`` holds 0/1 labels (no NaN), ``p`` the scores. Candidate thresholds are the distinct scores, highest
    first; at threshold ``t`` rows with ``p >= t`` are called positive. One sort and two cumulative sums,
    so a target of n rows costs O(n log n). MCC is 0 where its denominator is (as scikit-learn defines it).
    """
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    if y.shape != p.shape or y.ndim != 1 or not len(y):
        raise ValueError(f"a threshold sweep needs two equal, non-empty 1-D arrays; got {y.shape} and {p.shape}")
    if not ((y == 0.0) | (y == 1.0)).all():
        raise ValueError("a threshold sweep needs 0/1 labels (drop the missing ones first)")
    order = np.argsort(-p)  # the order within a tie does not matter: a tie group is cut whole
    p_sorted, y_sorted = p[order], y[order]
    last_of_value = np.r_[np.flatnonzero(np.diff(p_sorted) != 0), len(p_sorted) - 1]  # end of each tie group
    tp = np.cumsum(y_sorted)[last_of_value]
    fp = np.cumsum(1.0 - y_sorted)[last_of_value]
    pos, neg = y.sum(), len(y) - y.sum()
    fn, tn = pos - tp, neg - fp
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = tp / (tp + fp)  # tp + fp >= 1 at every cut
        recall = tp / pos if pos else np.full_like(tp, np.nan)
        f1 = 2 * tp / (2 * tp + fp + fn)
        denom = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
        mcc = np.where(denom > 0, (tp * tn - fp * fn) / np.where(denom > 0, denom, 1.0), 0.0)
    return {"threshold": p_sorted[last_of_value], "tp": tp, "fp": fp, "fn": fn, "tn": tn,
            "precision": precision, "recall": recall, "f1": f1, "mcc": mcc}


def best_cut(y: np.ndarray, p: np.ndarray, metric: str = "f1") -> dict[str, float]:
    """The cut of one target that maximises ``metric`` (ties: the highest threshold, the fewest calls)."""
    if metric not in THRESHOLD_METRICS:
        raise ValueError(f"unknown threshold metric {metric!r}; known: {', '.join(THRESHOLD_METRICS)}")
    curve = sweep(y, p)
    k = int(np.argmax(curve[metric]))
    return {name: float(values[k]) for name, values in curve.items()}


def _none_if_nan(v: float) -> float | None:
    return None if v is None or math.isnan(v) else float(v)


def decision_thresholds(
    y_true: np.ndarray, y_pred: np.ndarray, targets: list[str], metric: str = "f1",
    aucs: Mapping[str, Mapping[str, float]] | None = None,
) -> dict:
    """Each target's threshold maximising ``metric`` on the labelled rows, with F1, MCC, precision and recall
    there and the ROC-AUC / PR-AUC of the predictions: the record stored with the blend.

    ``aucs`` may hand over the per-target ``roc_auc`` and ``pr_auc`` already computed for the same
    predictions (a score record's ``per_target_all``); otherwise they are computed with the metric registry.
    Values that do not exist (a target without a labelled positive, an AUC with one class) are ``None``.
    """
    if metric not in THRESHOLD_METRICS:
        raise ValueError(f"unknown threshold metric {metric!r}; known: {', '.join(THRESHOLD_METRICS)}")
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape or y_true.shape[1] != len(targets):
        raise ValueError(f"shape mismatch: truth {y_true.shape}, predictions {y_pred.shape}, {len(targets)} targets")
    if aucs is not None:
        roc = np.array([np.nan if aucs["roc_auc"][t] is None else aucs["roc_auc"][t] for t in targets], dtype=float)
        pr = np.array([np.nan if aucs["pr_auc"][t] is None else aucs["pr_auc"][t] for t in targets], dtype=float)
    else:
        roc = get_metric("roc_auc").per_target(y_true, y_pred)
        pr = get_metric("pr_auc").per_target(y_true, y_pred)
    per_target, never = {}, []
    for j, target in enumerate(targets):
        labelled = ~np.isnan(y_true[:, j])
        y, p = y_true[labelled, j], y_pred[labelled, j]
        positives = int(y.sum())
        record = {"threshold": NEVER, "f1": None, "mcc": None, "precision": None, "recall": None}
        if positives > 0:
            cut = best_cut(y, p, metric)
            record = {k: _none_if_nan(cut[k]) for k in ("threshold", "f1", "mcc", "precision", "recall")}
        else:
            never.append(target)
        per_target[target] = {**record, "roc_auc": _none_if_nan(roc[j]), "pr_auc": _none_if_nan(pr[j]),
                              "labelled": int(labelled.sum()), "positives": positives}
    return {
        "metric": metric,
        "rule": RULE,
        "chosen_on": "the blend's out-of-fold predictions, the rows its weights were searched on: the F1/MCC "
                     "at the threshold are optimistic by the same leak as the blend's OOF score",
        "never_called": never,
        "targets": per_target,
    }


def threshold_table(record: Mapping) -> pd.DataFrame:
    """The stored record as a table, one row per target (NaN where a value does not exist)."""
    rows = [{"target": t, **{k: (np.nan if v is None else v) for k, v in values.items()}}
            for t, values in record["targets"].items()]
    return pd.DataFrame(rows, columns=["target", "threshold", "f1", "mcc", "precision", "recall", "roc_auc",
                                       "pr_auc", "labelled", "positives"])


def label_column(target: str) -> str:
    return f"{target}{LABEL_SUFFIX}"


def apply_thresholds(predictions: pd.DataFrame, record: Mapping, targets: list[str]) -> pd.DataFrame:
    """``predictions`` (``sig_id`` + probability columns) with one int8 0/1 column ``<target>_label`` per
    target appended after the probabilities, in the same target order: 1 where probability >= threshold
    (never for a target listed under ``never_called``)."""
    stored = record["targets"]
    missing = [t for t in targets if t not in stored]
    if missing:
        raise ValueError(f"no decision threshold for target(s) {', '.join(missing[:10])}")
    clash = [label_column(t) for t in targets if label_column(t) in predictions.columns]
    if clash:
        raise ValueError(f"label column(s) {', '.join(clash[:10])} would overwrite a prediction column of that name")
    never = set(record.get("never_called", []))
    labels = {}
    for t in targets:
        p = predictions[t].to_numpy(dtype=np.float64)
        called = np.zeros(len(p), dtype=bool) if t in never else p >= float(stored[t]["threshold"])
        labels[label_column(t)] = called.astype(np.int8)
    return pd.concat([predictions, pd.DataFrame(labels, index=predictions.index)], axis=1)
