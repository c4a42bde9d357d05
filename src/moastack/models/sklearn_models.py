"""scikit-learn models behind the ``TabularModel`` interface.

``random_forest`` is the Tox21 challenge's baseline (its sample code fits one RandomForestClassifier
per assay on fingerprints): one forest per target, trained on that target's labelled rows only, so a
missing label (NaN) is skipped rather than read as a negative.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from moastack.models.base import FitContext, TabularModel

_RF_DEFAULTS: dict[str, Any] = {
    "n_estimators": 200,
    "max_depth": None,
    "min_samples_leaf": 1,
    "max_features": "sqrt",
    "class_weight": None,
    "n_jobs": None,  # None: the job's context.threads
    "clip": None,  # e.g. 1e-3: predictions kept in [clip, 1 - clip], so log loss never sees an exact 0 or 1
}


class RandomForestModel(TabularModel):
    """One ``RandomForestClassifier`` per target (seed ``context.seed + target index``).

    A target whose labelled training rows hold a single class (or none) gets no forest and predicts
    that class's rate (0.5 when no row is labelled). Forests predict exactly 0 or 1 for many rows: fine
    for ROC-AUC, ruinous under log loss (each confident miss costs -log(1e-15) = 34.5), hence ``clip``.
    """

    arch = "random_forest"
    defaults = _RF_DEFAULTS

    def check_params(self) -> None:
        weight = self.param("class_weight")
        if weight not in (None, "balanced", "balanced_subsample"):
            raise ValueError(f"random_forest: class_weight {weight!r} is not None, 'balanced' or 'balanced_subsample'")

    def _forest(self, seed: int, n_jobs: int):
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(
            n_estimators=int(self.param("n_estimators")),
            max_depth=self.param("max_depth"),
            min_samples_leaf=self.param("min_samples_leaf"),
            max_features=self.param("max_features"),
            class_weight=self.param("class_weight"),
            n_jobs=n_jobs,
            random_state=seed,
        )

    def fit(self, X, Y, X_valid, Y_valid, context: FitContext) -> RandomForestModel:
        """Fit each target on its labelled rows; validation data is not used (forests do not early-stop)."""
        X = np.asarray(X, dtype=np.float32)
        Y = np.asarray(Y, dtype=np.float64)
        Y = Y[:, None] if Y.ndim == 1 else Y
        n_jobs = int(self.param("n_jobs") or context.threads or 1)
        self.estimators_: list = []
        self.constant_ = np.full(Y.shape[1], np.nan, dtype=np.float32)
        for j in range(Y.shape[1]):
            labelled = ~np.isnan(Y[:, j])
            y = Y[labelled, j]
            if np.unique(y).size < 2:
                self.constant_[j] = float(y.mean()) if y.size else 0.5
                self.estimators_.append(None)
                context.logger.info("random_forest: target %d has one class in training; predicting %.3f",
                                    j, self.constant_[j])
                continue
            forest = self._forest(int(context.seed) + j, n_jobs).fit(X[labelled], (y > 0.5).astype(np.int8))
            self.estimators_.append(forest)
        return self

    def predict(self, X, context: FitContext | None = None) -> np.ndarray:
        """Probability of class 1 per target, float32 (n × t); n may be 0."""
        X = np.asarray(X, dtype=np.float32)
        out = np.empty((len(X), len(self.estimators_)), dtype=np.float32)
        for j, forest in enumerate(self.estimators_):
            if forest is None or len(X) == 0:
                out[:, j] = self.constant_[j] if forest is None else 0.0
                continue
            if context is not None:
                forest.set_params(n_jobs=int(self.param("n_jobs") or context.threads or 1))
            proba = forest.predict_proba(X)
            out[:, j] = proba[:, list(forest.classes_).index(1)]
        clip = self.param("clip")
        return out if clip is None else np.clip(out, float(clip), 1.0 - float(clip)).astype(np.float32)

    def state(self) -> dict[str, Any]:
        return {"estimators": list(self.estimators_), "constant": self.constant_}

    @classmethod
    def from_state(cls, state: dict[str, Any], params: dict[str, Any]) -> RandomForestModel:
        model = cls(**params)
        model.estimators_ = list(state["estimators"])
        model.constant_ = np.asarray(state["constant"], dtype=np.float32)
        return model
