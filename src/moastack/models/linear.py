"""Linear models, one per target: ``logistic`` (logistic regression) and ``svm`` (a calibrated linear SVM).

Both are :class:`~moastack.models.sklearn_models.PerTargetModel`\\ s: each target is fitted on its
labelled rows, and a target with a single class there predicts its rate.

The SVM of the blog comparison scored 0.098 on lish-moa (4.5 × the prior) because margins are not
probabilities. Here each target's ``LinearSVC`` sits inside ``CalibratedClassifierCV``: the training
rows are split in ``cv`` stratified folds, an SVM is fitted on each part and a sigmoid (Platt) or
isotonic map is fitted on its held-out rows, and the prediction averages the ``cv`` calibrated SVMs.
A target with fewer positives (or negatives) than ``cv`` is calibrated on as many folds as it has
positives; one with a single positive cannot be calibrated and predicts its rate (both logged).
"""

from __future__ import annotations

from typing import Any

from moastack.models.base import FitContext
from moastack.models.sklearn_models import PerTargetModel, positive_proba

_CLASS_WEIGHTS = (None, "balanced")


def _check_choice(arch: str, key: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(f"{arch}: {key} {value!r} is not one of {list(allowed)}")


def _check_positive(arch: str, key: str, value: Any, integer: bool = False) -> None:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or value <= 0:
        raise ValueError(f"{arch}: {key} must be a positive {'integer' if integer else 'number'}, got {value!r}")


class LogisticModel(PerTargetModel):
    """``LogisticRegression`` (lbfgs, L2 with strength 1/C) per target, ``random_state`` = seed + target."""

    arch = "logistic"
    defaults = {
        "C": 1.0,  # inverse L2 strength (scikit-learn's default)
        "class_weight": None,  # None | "balanced"
        "max_iter": 500,
        "tol": 1e-4,
    }

    def check_params(self) -> None:
        _check_positive(self.arch, "C", self.param("C"))
        _check_positive(self.arch, "max_iter", self.param("max_iter"), integer=True)
        _check_positive(self.arch, "tol", self.param("tol"))
        _check_choice(self.arch, "class_weight", self.param("class_weight"), _CLASS_WEIGHTS)

    def fit_target(self, j, X, y, X_valid, y_valid, context):

        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(
            C=float(self.param("C")),
            solver="lbfgs",
            class_weight=self.param("class_weight"),
            max_iter=int(self.param("max_iter")),
            tol=float(self.param("tol")),
            random_state=int(context.seed) + j,
        )
        return _fit_logging_convergence(model, X, y, context, f"logistic: target {j}", model.max_iter)

    def predict_target(self, estimator, X, context):
        return positive_proba(estimator, X)


class SVMModel(PerTargetModel):
    """``LinearSVC`` per target, calibrated by ``CalibratedClassifierCV`` on the training rows.

    ``cv`` stratified folds (not shuffled, so the fit is deterministic), fewer for a target with fewer
    than ``cv`` positives or negatives; a target with one positive (or one negative) predicts its rate.
    """

    arch = "svm"
    defaults = {
        "C": 0.01,  # inverse L2 strength of the hinge loss
        "cv": 3,  # calibration folds inside the training rows
        "method": "sigmoid",  # "sigmoid" (Platt) | "isotonic"
        "class_weight": None,  # None | "balanced"
        "max_iter": 2000,
    }

    def check_params(self) -> None:
        _check_positive(self.arch, "C", self.param("C"))
        _check_positive(self.arch, "max_iter", self.param("max_iter"), integer=True)
        cv = self.param("cv")
        if isinstance(cv, bool) or not isinstance(cv, int) or cv < 2:
            raise ValueError(f"svm: cv must be an integer >= 2, got {cv!r}")
        _check_choice(self.arch, "method", self.param("method"), ("sigmoid", "isotonic"))
        _check_choice(self.arch, "class_weight", self.param("class_weight"), _CLASS_WEIGHTS)

    def fit_target(self, j, X, y, X_valid, y_valid, context: FitContext):

        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.model_selection import StratifiedKFold
        from sklearn.svm import LinearSVC

        minority = int(min(y.sum(), y.size - y.sum()))
        folds = min(int(self.param("cv")), minority)
        if folds < 2:
            context.logger.warning("svm: target %d has %d row(s) of its rarer class, too few to calibrate; "
                                   "predicting its rate", j, minority)
            return None
        if folds < int(self.param("cv")):
            context.logger.info("svm: target %d has %d row(s) of its rarer class; calibrating on %d folds",
                                j, minority, folds)
        svm = LinearSVC(
            C=float(self.param("C")),
            class_weight=self.param("class_weight"),
            max_iter=int(self.param("max_iter")),
            random_state=int(context.seed) + j,
        )
        model = CalibratedClassifierCV(svm, method=self.param("method"), cv=StratifiedKFold(folds))
        return _fit_logging_convergence(model, X, y, context, f"svm: target {j}", svm.max_iter)

    def predict_target(self, estimator, X, context):
        return positive_proba(estimator, X)


def _fit_logging_convergence(model, X, y, context: FitContext, what: str, max_iter: int):
    """Fit ``model``; a ConvergenceWarning becomes one log line naming the target (not a warning per call)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(X, y)
    if any(issubclass(w.category, ConvergenceWarning) for w in caught):
        context.logger.warning("%s did not converge in %d iterations", what, max_iter)
    return model
