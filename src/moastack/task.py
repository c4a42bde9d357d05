"""The task a run solves, defined once: its metrics, what its predictions are, how they are checked.

A task is chosen by the config's ``data.task``. It owns what used to be re-derived wherever it was
needed: which metrics score it (and so which metric a metric name implies), whether its predictions are
probabilities (clipped to [0, 1], controls at 0) or values in target units, whether its labels may be
missing, which fold methods and target tables suit it, and what layout its raw feature tables have.
Losses belong to the models (each arch serves the tasks the registry lists for it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Task:
    name: str
    #: the metrics that score this task; the first is a training job's validation metric
    metrics: tuple[str, ...]
    #: predictions are probabilities in [0, 1] (else values in target units)
    probabilities: bool
    #: NaN targets are missing labels (masked) rather than an error
    missing_labels: bool
    #: target tables a model may learn (``targets:``)
    target_kinds: tuple[str, ...]
    fold_methods: tuple[str, ...]
    #: data sources (``data.source``) that produce this task's tables
    sources: tuple[str, ...]
    #: the raw feature-table layout new rows must have (``moastack predict``)
    layout: str
    #: targets are continuous: target encoding applies, label-contrasting steps (t-test) do not
    continuous: bool

    @property
    def validation_metric(self) -> str:
        return self.metrics[0]

    def postprocess(self, pred: np.ndarray, is_control: np.ndarray | None = None) -> np.ndarray:
        """A model's raw predictions as written to a table: float32, controls at 0, in [0, 1] for probabilities."""
        pred = np.array(pred, dtype=np.float32, copy=True)
        if is_control is not None:
            pred[np.asarray(is_control, dtype=bool)] = 0.0
        return np.clip(pred, 0.0, 1.0) if self.probabilities else pred

    def check_predictions(self, values: np.ndarray, what: str) -> None:
        """Refuse a prediction table this task cannot have produced (NaN, or probabilities out of range)."""
        values = np.asarray(values)
        if not np.isfinite(values).all():
            raise ValueError(f"{what}: predictions hold NaN or infinite values")
        if self.probabilities and ((values < 0).any() or (values > 1).any()):
            raise ValueError(f"{what}: a {self.name} task predicts probabilities, but values lie outside [0, 1]")


MULTILABEL = Task(
    name="multilabel",
    metrics=("log_loss", "roc_auc", "pr_auc"),
    probabilities=True,
    missing_labels=True,
    target_kinds=("scored", "nonscored"),
    fold_methods=("multilabel_stratified", "drug_aware", "scaffold", "group"),
    sources=("synthetic", "dir", "table"),
    layout="lish-moa",
    continuous=False,
)
REGRESSION = Task(
    name="regression",
    metrics=("mrrmse",),
    probabilities=False,
    missing_labels=False,
    target_kinds=("scored",),
    fold_methods=("group", "rare_cell_type"),
    sources=("synthetic_perturbation", "dir"),
    layout="perturbation",
    continuous=True,
)
TASKS: dict[str, Task] = {t.name: t for t in (MULTILABEL, REGRESSION)}


def get_task(name: str | Task | None) -> Task:
    """The task called ``name`` (multilabel when None); a ValueError names the known ones."""
    if isinstance(name, Task):
        return name
    if name is None:
        return MULTILABEL
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; known: {', '.join(TASKS)}") from None


def task_of_metric(metric: str) -> Task:
    """The task a metric scores (a results folder records its metric, so this recovers its task)."""
    for task in TASKS.values():
        if metric in task.metrics:
            return task
    raise ValueError(f"unknown metric {metric!r}; known: {', '.join(m for t in TASKS.values() for m in t.metrics)}")
