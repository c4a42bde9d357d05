"""Transforms fitted inside one training fold, on the fold's assembled matrix (target-aware steps).

Feature sets (``feature_set.py``) are fitted once, before the folds, and may only be unsupervised.
A step that looks at the targets (the 2-heads ResNet's t-test selection) would leak the validation
fold's labels into every model if it were fitted there, so it runs in the train job instead: after
the job has assembled the fold's training matrix (features + meta-features), it fits these steps on
the training rows only and applies them to the training, validation and test rows alike.

Steps work on numpy arrays with a parallel list of column names (the job's ``feature_names``)::

    steps = build_fold_steps(model_cfg.get("fold_steps", []))
    names = fit_fold_steps(steps, X_train, Y_train, feature_names)   # fits in order
    X_train, X_valid, X_test = (apply_fold_steps(steps, X) for X in (X_train, X_valid, X_test))

The fitted steps pickle with joblib (or inside the model file's extras), so inference applies the
same selection and scaling to new samples.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np


def _check_X(X: np.ndarray, n_cols: int, what: str) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != n_cols:
        raise ValueError(f"{what}: expected a 2-D array with {n_cols} columns, got shape {X.shape}")
    return X


class FoldStep:
    """Base class: ``fit(X, Y, names)`` on the fold's training rows, then ``transform(X)`` any rows.

    After ``fit``: ``names_in_`` (the columns it was fitted on) and ``names_out_`` (the columns
    ``transform`` returns, in order). ``transform`` never refits and returns float32.
    """

    #: config keys (besides ``name``) and their defaults
    defaults: ClassVar[dict[str, Any]] = {}
    step_name: ClassVar[str] = ""

    def fit(self, X: np.ndarray, Y: np.ndarray | None, names: Sequence[str]) -> FoldStep:  # pragma: no cover
        raise NotImplementedError

    def transform(self, X: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def _start_fit(self, X: np.ndarray, names: Sequence[str]) -> np.ndarray:
        names = [str(n) for n in names]
        X = _check_X(X, len(names), f"{self.step_name}.fit")
        if len(set(names)) != len(names):
            raise ValueError(f"{self.step_name}: duplicate feature names")
        self.names_in_ = names
        return X

    def _check_fitted(self) -> None:
        if not hasattr(self, "names_out_"):
            raise RuntimeError(f"{self.step_name}: transform called before fit")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.defaults)
        return f"{type(self).__name__}({args})"


class TTestSelect(FoldStep):
    """Keep the features that best separate rows with any MoA from rows with none (Student t-test).

    For every column in ``blocks`` (name prefixes, e.g. ``g-``, ``c-``), ``scipy.stats.ttest_ind``
    (equal variances) compares the training rows whose target row has any positive with those
    that have none; the columns whose p-value is strictly below the ``quantile`` quantile of those
    p-values are kept. Columns outside ``blocks`` pass through untouched, in their original order.
    A constant column (NaN p-value) is never kept. Missing labels (NaN) count as negatives.

    ``copy: true`` drops nothing: every column passes through and the selected ones are appended again
    as ``tt_<name>`` (the winners' 2-heads ResNet fed all g-/c- columns to one input and a t-test-selected
    copy of some of them to the other).
    """

    step_name = "ttest_select"
    defaults: ClassVar[dict[str, Any]] = {"quantile": 0.25, "blocks": ("g-", "c-"), "copy": False}

    def __init__(
        self, quantile: float = 0.25, blocks: Sequence[str] | str = ("g-", "c-"), copy: bool = False
    ) -> None:
        if not 0.0 < float(quantile) <= 1.0:
            raise ValueError(f"ttest_select: quantile must be in (0, 1], got {quantile}")
        if not isinstance(copy, bool):
            raise ValueError(f"ttest_select: copy must be true or false, got {copy!r}")
        self.quantile = float(quantile)
        self.blocks = (blocks,) if isinstance(blocks, str) else tuple(blocks)
        self.copy = copy

    def fit(self, X: np.ndarray, Y: np.ndarray | None, names: Sequence[str]) -> TTestSelect:
        from scipy.stats import ttest_ind

        X = self._start_fit(X, names)
        if Y is None or len(Y) != len(X):
            raise ValueError("ttest_select needs the training targets, one row per training row")
        tested = np.array([n.startswith(self.blocks) for n in self.names_in_])
        if not tested.any():
            raise ValueError(f"ttest_select: no column starts with any of {list(self.blocks)}")
        Y = np.asarray(Y, dtype=np.float64)
        any_moa = (np.nan_to_num(Y, nan=0.0) > 0.5).any(axis=1) if Y.ndim == 2 else np.nan_to_num(Y) > 0.5
        if any_moa.all() or not any_moa.any():
            raise ValueError("ttest_select: the training rows need both rows with and without any MoA")
        cols = np.flatnonzero(tested)
        Xt = X[:, cols].astype(np.float64)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # constant columns: NaN p-values, handled below
            _, p = ttest_ind(Xt[any_moa], Xt[~any_moa], axis=0)
        p = np.where(np.isfinite(p), p, np.inf)
        finite = p[np.isfinite(p)]
        threshold = np.quantile(finite, self.quantile) if len(finite) else -np.inf
        keep = np.ones(len(self.names_in_), dtype=bool)
        keep[cols] = p < threshold
        self.p_values_ = dict(zip([self.names_in_[i] for i in cols], p.tolist()))
        self.threshold_ = float(threshold)
        self.n_positive_rows_ = int(any_moa.sum())
        if self.copy:  # everything, then the selected tested columns again
            selected = cols[keep[cols]]
            self.keep_ = np.concatenate([np.arange(len(self.names_in_)), selected])
            self.names_out_ = list(self.names_in_) + [f"tt_{self.names_in_[i]}" for i in selected]
        else:
            self.keep_ = np.flatnonzero(keep)
            self.names_out_ = [self.names_in_[i] for i in self.keep_]
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        self._check_fitted()
        X = _check_X(X, len(self.names_in_), "ttest_select.transform")
        return np.ascontiguousarray(X[:, self.keep_], dtype=np.float32)


class StandardizeFold(FoldStep):
    """StandardScaler fitted on the fold's training rows, applied to every column."""

    step_name = "standardize"

    def fit(self, X: np.ndarray, Y: np.ndarray | None, names: Sequence[str]) -> StandardizeFold:
        from sklearn.preprocessing import StandardScaler

        X = self._start_fit(X, names)
        self.scaler_ = StandardScaler().fit(X.astype(np.float64))
        self.names_out_ = list(self.names_in_)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        self._check_fitted()
        X = _check_X(X, len(self.names_in_), "standardize.transform")
        return self.scaler_.transform(X.astype(np.float64)).astype(np.float32)


class InFoldFeatureStep(FoldStep):
    """An unsupervised feature step (``rankgauss``, ``pca``...) fitted on the fold's training rows instead of
    once before the folds, as the 2nd-place 1-D CNN fitted its quantile transform and PCA."""

    #: feature steps that may run in a fold (they read only numeric g-/c-/derived columns)
    ALLOWED: ClassVar[tuple[str, ...]] = ("rankgauss", "pca", "row_robust_center")

    def __init__(self, step: str, **params: Any) -> None:
        from moastack.features.transformers import STEP_CLASSES

        self.step, self.params = step, dict(params)
        self.step_name = step
        self.feature_step = STEP_CLASSES[step](**params)

    def fit(self, X: np.ndarray, Y: np.ndarray | None, names: Sequence[str]) -> InFoldFeatureStep:
        import pandas as pd

        X = self._start_fit(X, names)
        frame = pd.DataFrame(X, columns=self.names_in_)
        self.feature_step.fit(frame)
        self.names_out_ = [str(c) for c in self.feature_step.transform(frame.iloc[:1]).columns]
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        import pandas as pd

        self._check_fitted()
        X = _check_X(X, len(self.names_in_), f"{self.step}.transform")
        out = self.feature_step.transform(pd.DataFrame(X, columns=self.names_in_))
        return np.ascontiguousarray(out.to_numpy(dtype=np.float32))

    def __repr__(self) -> str:
        return f"InFoldFeatureStep({self.step!r}, {self.params!r})"


#: config name -> class
FOLD_STEPS: dict[str, type[FoldStep]] = {"ttest_select": TTestSelect, "standardize": StandardizeFold}


def build_fold_steps(specs: Sequence[Mapping[str, Any]] | None) -> list[FoldStep]:
    """Unfitted steps from the config's list of dicts (``{"name": "ttest_select", "quantile": 0.25}``)."""
    steps: list[FoldStep] = []
    for i, spec in enumerate(specs or []):
        if not isinstance(spec, Mapping):
            raise ValueError(f"fold step #{i} must be a mapping with a 'name', got {spec!r}")
        spec = dict(spec)
        name = spec.pop("name", None)
        if name in InFoldFeatureStep.ALLOWED:
            steps.append(InFoldFeatureStep(name, **spec))
            continue
        if name not in FOLD_STEPS:
            raise ValueError(f"unknown fold step {name!r}; known fold steps: "
                             f"{sorted([*FOLD_STEPS, *InFoldFeatureStep.ALLOWED])}")
        cls = FOLD_STEPS[name]
        unknown = sorted(set(spec) - set(cls.defaults))
        if unknown:
            raise ValueError(
                f"fold step {name!r}: unknown key {unknown[0]!r}; allowed: {['name', *sorted(cls.defaults)]}"
            )
        steps.append(cls(**spec))
    return steps


def fit_fold_steps(
    steps: Sequence[FoldStep], X_train: np.ndarray, Y_train: np.ndarray | None, names: Sequence[str]
) -> list[str]:
    """Fit the steps in order on the training rows, each on the previous one's output; the final names."""
    X, names = X_train, list(names)
    for step in steps:
        step.fit(X, Y_train, names)
        X, names = step.transform(X), list(step.names_out_)
    return names


def apply_fold_steps(steps: Sequence[FoldStep], X: np.ndarray) -> np.ndarray:
    """Apply fitted steps to any rows (training, validation, test or new samples)."""
    for step in steps:
        X = step.transform(X)
    return X
