"""scikit-learn models behind the ``TabularModel`` interface, and the per-target shape they share.

:class:`PerTargetModel` is "one estimator per target, fitted on that target's labelled rows": a missing
label (NaN) is skipped rather than read as a negative, and a target whose labelled training rows hold a
single class (or none) gets no estimator and predicts that class's rate (0.5 when no row is labelled).
``random_forest``, ``logistic``, ``svm`` and the per-target ``xgboost`` are written on it.

``random_forest`` is the Tox21 challenge's baseline (its sample code fits one RandomForestClassifier
per assay on fingerprints).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from moastack.models.base import FitContext, TabularModel
from moastack.targets import clipped_rate


class PerTargetModel(TabularModel):
    """One estimator per target on its labelled rows, a constant (the rate, clipped as the prior clips it)
    where they hold one class.

    Subclasses write :meth:`fit_target` (return the fitted estimator, or None to fall back to the
    rate) and :meth:`predict_target`; :meth:`encode_estimator`/:meth:`decode_estimator` turn an
    estimator into what :meth:`state` stores (the default keeps the object, pickled by ``save``).
    Learned state: ``estimators_`` (None where the constant applies) and ``constant_`` (NaN elsewhere).
    ``X`` may be a float32 CSR matrix, kept sparse (archs whose estimator takes CSR are registered with
    ``sparse=True``).
    """

    def fit_target(self, j: int, X: np.ndarray, y: np.ndarray, X_valid: np.ndarray | None,
                   y_valid: np.ndarray | None, context: FitContext) -> Any:
        """Fit target ``j`` on its labelled rows (``y`` is 0/1 int8 with both classes present).

        ``X_valid``/``y_valid`` are the validation rows labelled for this target (None when there are none).
        """
        raise NotImplementedError

    def predict_target(self, estimator: Any, X: Any, context: FitContext | None) -> np.ndarray:
        """P(y = 1) of each row of ``X`` (``prepare_rows(X)``, len(X) > 0)."""
        raise NotImplementedError

    def prepare_rows(self, X: np.ndarray) -> Any:
        """What :meth:`predict_target` receives for ``X`` (built once for all targets); default ``X``."""
        return X

    def encode_estimator(self, estimator: Any) -> Any:
        return estimator

    def decode_estimator(self, stored: Any) -> Any:
        return stored

    def fit(self, X, Y, X_valid, Y_valid, context: FitContext) -> PerTargetModel:
        """Fit each target on its labelled rows."""
        X = as_float32(X)
        Y = _as_matrix(Y)
        if X_valid is not None and Y_valid is not None:
            X_valid, Y_valid = as_float32(X_valid), _as_matrix(Y_valid)
        self.estimators_: list = []
        self.constant_ = np.full(Y.shape[1], np.nan, dtype=np.float32)
        for j in range(Y.shape[1]):
            labelled = ~np.isnan(Y[:, j])
            y = Y[labelled, j]
            estimator = None
            if np.unique(y).size < 2:
                context.logger.info("%s: target %d has one class in training; predicting %.3f",
                                    self.arch, j, float(y.mean()) if y.size else 0.5)
            else:
                xv = yv = None
                if Y_valid is not None:
                    keep = ~np.isnan(Y_valid[:, j])
                    if keep.any():
                        xv = X_valid if keep.all() else X_valid[keep]
                        yv = (Y_valid[keep, j] > 0.5).astype(np.int8)
                # fully labelled: the same X object for every target (a subclass may cache work on it)
                x = X if labelled.all() else X[labelled]
                estimator = self.fit_target(j, x, (y > 0.5).astype(np.int8), xv, yv, context)
            if estimator is None:  # the prior's rate, kept off an exact 0 or 1 as the prior keeps it
                self.constant_[j] = clipped_rate(y[:, None])[0]
            self.estimators_.append(estimator)
        return self

    def predict(self, X, context: FitContext | None = None) -> np.ndarray:
        """Probability of class 1 per target, float32 (n × t); n may be 0."""
        X = as_float32(X)
        out = np.empty((X.shape[0], len(self.estimators_)), dtype=np.float32)
        if X.shape[0] == 0:
            return out
        rows = self.prepare_rows(X) if any(e is not None for e in self.estimators_) else X
        for j, estimator in enumerate(self.estimators_):
            out[:, j] = self.constant_[j] if estimator is None else self.predict_target(estimator, rows, context)
        return np.clip(out, 0.0, 1.0)

    def state(self) -> dict[str, Any]:
        encoded = [None if e is None else self.encode_estimator(e) for e in self.estimators_]
        return {"estimators": encoded, "constant": self.constant_}

    @classmethod
    def from_state(cls, state: dict[str, Any], params: dict[str, Any]) -> PerTargetModel:
        model = cls(**params)
        model.estimators_ = [None if e is None else model.decode_estimator(e) for e in state["estimators"]]
        model.constant_ = np.asarray(state["constant"], dtype=np.float32)
        return model


def as_float32(X) -> np.ndarray | sp.csr_matrix:
    """``X`` as float32: a dense array, or a CSR matrix kept sparse."""
    if sp.issparse(X):
        return sp.csr_matrix(X, dtype=np.float32)
    return np.asarray(X, dtype=np.float32)


def _as_matrix(Y) -> np.ndarray:
    Y = np.asarray(Y, dtype=np.float64)
    return Y[:, None] if Y.ndim == 1 else Y


def positive_proba(estimator: Any, X: np.ndarray) -> np.ndarray:
    """Column of class 1 in a fitted classifier's ``predict_proba``."""
    return estimator.predict_proba(X)[:, list(estimator.classes_).index(1)]


class RandomForestModel(PerTargetModel):
    """One ``RandomForestClassifier`` per target (seed ``context.seed + target index``).

    Forests predict exactly 0 or 1 for many rows: fine for ROC-AUC, ruinous under log loss (each
    confident miss costs -log(1e-15) = 34.5), hence ``clip``. Validation rows are not used (forests do
    not early-stop).
    """

    arch = "random_forest"
    defaults = {
        "n_estimators": 200,
        "max_depth": None,
        "min_samples_leaf": 1,
        "max_features": "sqrt",
        "class_weight": None,
        "n_jobs": None,  # None: the job's context.threads
        "clip": None,  # e.g. 1e-3: predictions kept in [clip, 1 - clip], so log loss never sees an exact 0 or 1
    }

    def check_params(self) -> None:
        weight = self.param("class_weight")
        if weight not in (None, "balanced", "balanced_subsample"):
            raise ValueError(f"random_forest: class_weight {weight!r} is not None, 'balanced' or 'balanced_subsample'")

    def _n_jobs(self, context: FitContext | None) -> int:
        return int(self.param("n_jobs") or (context.threads if context is not None else 1) or 1)

    def fit_target(self, j, X, y, X_valid, y_valid, context):
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(
            n_estimators=int(self.param("n_estimators")),
            max_depth=self.param("max_depth"),
            min_samples_leaf=self.param("min_samples_leaf"),
            max_features=self.param("max_features"),
            class_weight=self.param("class_weight"),
            n_jobs=self._n_jobs(context),
            random_state=int(context.seed) + j,
        ).fit(X, y)

    def predict_target(self, estimator, X, context):
        if context is not None:
            estimator.set_params(n_jobs=self._n_jobs(context))
        return positive_proba(estimator, X)

    def predict(self, X, context: FitContext | None = None) -> np.ndarray:
        out = super().predict(X, context)
        clip = self.param("clip")
        return out if clip is None else np.clip(out, float(clip), 1.0 - float(clip)).astype(np.float32)
