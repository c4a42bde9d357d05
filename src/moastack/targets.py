"""Which target table a model learns, and the control mask.

``targets: scored`` is the competition's 206 columns; ``targets: nonscored`` is the 402 extra
columns the winners used for stage-1 models and transfer learning, keeping only columns with at
least one positive (332 on the real data), since an all-zero column teaches nothing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from moastack.columns import CONTROL, ID_COL
from moastack.task import MULTILABEL, Task, get_task

TARGET_KINDS = ("scored", "nonscored")


def select_target_columns(targets: pd.DataFrame, kind: str) -> list[str]:
    """Target columns a model of ``kind`` learns, in the table's order."""
    cols = [c for c in targets.columns if c != ID_COL]
    if kind == "scored":
        return cols
    if kind == "nonscored":
        values = targets[cols].to_numpy(dtype=np.float64)
        return [c for c, pos in zip(cols, np.nansum(values, axis=0)) if pos > 0]
    raise ValueError(f"unknown targets kind {kind!r}; known: {', '.join(TARGET_KINDS)}")


#: The floor (and 1 - ceiling) of a rate predicted as a constant (the prior, a per-target model's one-class
#: target): a target without a positive in the training rows stays off an exact 0, which log loss would
#: charge at the metric's clip (about 34.5 per held-out positive).
RATE_CLIP = 1e-5


def label_rate(Y: np.ndarray) -> np.ndarray:
    """Each target's rate of positives over its labelled (non-NaN) cells; 0.5 for a target with no label.

    What the prior predicts, and where neural outputs start (their bias at its logit)."""
    Y = np.asarray(Y, dtype=np.float64)
    labelled = ~np.isnan(Y)
    return np.where(labelled.any(axis=0), np.nansum(Y, axis=0) / np.maximum(labelled.sum(axis=0), 1), 0.5)


def clipped_rate(Y: np.ndarray, clip: float = RATE_CLIP) -> np.ndarray:
    """:func:`label_rate` kept in [clip, 1 - clip]: what a constant prediction of a target (the prior, a
    per-target model's one-class target) is."""
    return np.clip(label_rate(Y), clip, 1 - clip)


def prior_logit(Y: np.ndarray, eps: float = 1e-4) -> np.ndarray:
    """The logit of :func:`label_rate`, clipped to [eps, 1 - eps] first."""
    rate = np.clip(label_rate(Y), eps, 1 - eps)
    return np.log(rate / (1 - rate))


def control_mask(cp_type: pd.Series | np.ndarray) -> np.ndarray:
    """True for control rows: no mechanism, targets all zero, predictions forced to 0."""
    return np.asarray(cp_type) == CONTROL


def control_rows(features: pd.DataFrame) -> np.ndarray:
    """The control mask of a feature table; all False for tasks without ``cp_type`` (Tox21, regression)."""
    if "cp_type" not in features.columns:
        return np.zeros(len(features), dtype=bool)
    return control_mask(features["cp_type"])


def prediction_frame(sig_ids, values: np.ndarray, targets: list[str], task: str | Task = MULTILABEL) -> pd.DataFrame:
    """The Parquet prediction contract: sig_id + one float32 column per target, in [0, 1] for a task whose
    predictions are probabilities; other tasks' values are written as they are (target units)."""
    values = np.asarray(values, dtype=np.float32)
    if get_task(task).probabilities:
        values = np.clip(values, 0.0, 1.0)
    frame = pd.DataFrame(values, columns=list(targets))
    frame.insert(0, ID_COL, np.asarray(sig_ids).astype(str))
    return frame
