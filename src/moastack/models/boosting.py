"""``xgboost``: gradient-boosted trees (XGBoost ``hist``), one booster per target or one multi-output model.

``strategy: per_target`` (the default) fits one ``binary:logistic`` booster per target on its labelled
rows, early-stopped on the fold's validation rows labelled for that target; a target whose training
rows hold no positive (or no negative) predicts its rate, as every per-target model does.
``scale_pos_weight: balanced`` weighs each target's positives by its negatives / positives.

``strategy: multi_output`` grows one tree per round with a leaf vector over all targets
(``multi_strategy: multi_output_tree``), on a masked log loss (missing labels give no gradient),
started from each target's training rate and early-stopped on the validation rows' mean log loss.

``device`` comes from the job (``context.device``: cpu or cuda); prediction runs on the CPU unless the
caller's context says cuda. Boosters are stored as UBJSON bytes, so saving does not pickle XGBoost
objects.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from moastack.models.base import FitContext
from moastack.models.sklearn_models import PerTargetModel, _as_matrix, as_float32
from moastack.targets import clipped_rate, label_rate

_EPS = 1e-7


def _xgb():
    try:
        import xgboost
    except ImportError as err:  # pragma: no cover - xgboost is a declared dependency
        raise ImportError("arch xgboost needs the xgboost package (pip install xgboost)") from err
    return xgboost


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


class XGBoostModel(PerTargetModel):
    arch = "xgboost"
    defaults = {
        "strategy": "per_target",  # per_target | multi_output
        "n_estimators": 500,  # boosting rounds at most (early stopping picks fewer)
        "learning_rate": 0.05,
        "max_depth": 3,
        "subsample": 0.8,
        "colsample_bytree": 0.5,
        "min_child_weight": 1.0,
        "reg_lambda": 1.0,
        "early_stopping_rounds": 30,  # on the fold's validation rows; ignored when there are none
        "scale_pos_weight": None,  # None | "balanced" (per_target only)
        "max_bin": 256,
    }

    def check_params(self) -> None:
        if self.param("strategy") not in ("per_target", "multi_output"):
            raise ValueError(f"xgboost: strategy {self.param('strategy')!r} is not per_target or multi_output")
        for key in ("n_estimators", "max_depth", "early_stopping_rounds", "max_bin"):
            value = self.param(key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"xgboost: {key} must be a positive integer, got {value!r}")
        for key, low, high in (("learning_rate", 0, 1), ("subsample", 0, 1), ("colsample_bytree", 0, 1)):
            value = self.param(key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low < value <= high:
                raise ValueError(f"xgboost: {key} must be in ({low}, {high}], got {value!r}")
        for key in ("min_child_weight", "reg_lambda"):
            value = self.param(key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"xgboost: {key} must be >= 0, got {value!r}")
        weight = self.param("scale_pos_weight")
        if weight not in (None, "balanced"):
            raise ValueError(f"xgboost: scale_pos_weight {weight!r} is not None or 'balanced'")
        if weight == "balanced" and self.param("strategy") == "multi_output":
            raise ValueError("xgboost: scale_pos_weight 'balanced' is per target; strategy multi_output has one "
                             "model for all targets")

    # ------------------------------------------------------------------------------------- shared
    def _booster_params(self, context: FitContext, seed: int) -> dict[str, Any]:
        return {
            "tree_method": "hist",
            "device": "cuda" if context.device == "cuda" else "cpu",
            "eta": float(self.param("learning_rate")),
            "max_depth": int(self.param("max_depth")),
            "subsample": float(self.param("subsample")),
            "colsample_bytree": float(self.param("colsample_bytree")),
            "min_child_weight": float(self.param("min_child_weight")),
            "lambda": float(self.param("reg_lambda")),
            "max_bin": int(self.param("max_bin")),
            "nthread": int(context.threads or 1),
            "seed": int(seed),
            "verbosity": 0,
        }

    def _train(self, params, dtrain, dvalid, **kwargs):
        xgb = _xgb()
        rounds = int(self.param("n_estimators"))
        if dvalid is None:
            return xgb.train(params, dtrain, num_boost_round=rounds, **kwargs)
        return xgb.train(params, dtrain, num_boost_round=rounds, evals=[(dvalid, "valid")],
                         early_stopping_rounds=int(self.param("early_stopping_rounds")), verbose_eval=False,
                         **kwargs)

    @staticmethod
    def _n_trees(booster, early_stopped: bool) -> int:
        return int(booster.best_iteration) + 1 if early_stopped else int(booster.num_boosted_rounds())

    @staticmethod
    def _predict_device(booster, context: FitContext | None) -> None:
        booster.set_param({"device": "cuda" if context is not None and context.device == "cuda" else "cpu",
                           "nthread": int(context.threads or 1) if context is not None else 1})

    def encode_estimator(self, estimator):
        booster, n_trees = estimator
        return {"ubj": bytes(booster.save_raw(raw_format="ubj")), "n_trees": n_trees}

    def decode_estimator(self, stored):
        booster = _xgb().Booster(model_file=bytearray(stored["ubj"]))
        return booster, int(stored["n_trees"])

    # ---------------------------------------------------------------------------------- per target
    def fit_target(self, j, X, y, X_valid, y_valid, context):
        params = self._booster_params(context, int(context.seed) + j)
        params.update(objective="binary:logistic", eval_metric="logloss")
        if self.param("scale_pos_weight") == "balanced":
            params["scale_pos_weight"] = float((y == 0).sum()) / float(y.sum())
        dtrain = self._matrix(X, y)
        dvalid = None if X_valid is None else self._matrix(X_valid, y_valid)
        booster = self._train(params, dtrain, dvalid)
        return booster, self._n_trees(booster, dvalid is not None)

    def _matrix(self, X: np.ndarray, y: np.ndarray):
        """A DMatrix of X labelled y; the one of the previous target is relabelled when X is the same array.

        Every target of a fully labelled table gets the same X, so its binned (hist) copy is built once.
        """
        cache = self.__dict__.setdefault("_dmatrix_cache", {})
        hit = cache.get(id(X))
        if hit is None or hit[0] is not X:
            if len(cache) >= 2:
                cache.clear()
            hit = cache[id(X)] = (X, _xgb().DMatrix(X))
        hit[1].set_label(y)
        return hit[1]

    def fit(self, X, Y, X_valid, Y_valid, context: FitContext) -> XGBoostModel:
        try:
            return self._fit(X, Y, X_valid, Y_valid, context)
        finally:
            self.__dict__.pop("_dmatrix_cache", None)

    def prepare_rows(self, X):
        return _xgb().DMatrix(X)

    def predict_target(self, estimator, X, context):
        booster, n_trees = estimator
        self._predict_device(booster, context)
        return booster.predict(X, iteration_range=(0, n_trees))

    # -------------------------------------------------------------------------------- multi output
    def _fit(self, X, Y, X_valid, Y_valid, context: FitContext) -> XGBoostModel:
        """Per target through :class:`PerTargetModel`, or one multi-output model on a masked log loss."""
        if self.param("strategy") == "per_target":
            return super().fit(X, Y, X_valid, Y_valid, context)
        xgb = _xgb()
        X = as_float32(X)
        Y = _as_matrix(Y)
        labelled = ~np.isnan(Y)
        n_pos = np.where(labelled, Y > 0.5, False).sum(axis=0)
        n_lab = labelled.sum(axis=0)
        rate = label_rate(Y)
        one_class = (n_pos == 0) | (n_pos == n_lab)
        # a one-class target at its rate, kept off an exact 0 or 1 as the prior keeps it
        self.constant_ = np.where(one_class, clipped_rate(Y), np.nan).astype(np.float32)
        for j in np.flatnonzero(one_class):
            context.logger.info("xgboost: target %d has one class in training; predicting %.3f", j, rate[j])
        # boosting starts from each target's rate (kept off 0 and 1), given as a per-row base margin
        start = np.clip(rate, 1e-4, 1 - 1e-4)
        self.base_margin_ = np.log(start / (1 - start)).astype(np.float32)

        def masked(Y_part: np.ndarray):
            mask = ~np.isnan(Y_part)
            return np.where(mask, Y_part > 0.5, 0).astype(np.float32), mask.astype(np.float32)

        y_train, m_train = masked(Y)

        def objective(margin: np.ndarray, _dtrain) -> tuple[np.ndarray, np.ndarray]:
            p = _sigmoid(margin.reshape(y_train.shape))
            grad = (p - y_train) * m_train
            hess = np.maximum(p * (1 - p), 1e-16) * m_train
            return grad, hess

        dtrain = xgb.DMatrix(X, label=y_train, base_margin=self._margin(X.shape[0]))
        params = self._booster_params(context, int(context.seed))
        params.update(multi_strategy="multi_output_tree", num_target=Y.shape[1], disable_default_eval_metric=1)
        dvalid, kwargs = None, {}
        if X_valid is not None and Y_valid is not None and (~np.isnan(_as_matrix(Y_valid))).any():
            y_valid, m_valid = masked(_as_matrix(Y_valid))
            X_valid = as_float32(X_valid)
            dvalid = xgb.DMatrix(X_valid, label=y_valid, base_margin=self._margin(X_valid.shape[0]))

            def valid_loss(margin: np.ndarray, _dvalid) -> tuple[str, float]:
                p = np.clip(_sigmoid(margin.reshape(y_valid.shape)), _EPS, 1 - _EPS)
                cell = -(y_valid * np.log(p) + (1 - y_valid) * np.log1p(-p)) * m_valid
                return "masked_logloss", float((cell.sum(axis=0) / np.maximum(m_valid.sum(axis=0), 1)).mean())

            kwargs["custom_metric"] = valid_loss
        booster = self._train(params, dtrain, dvalid, obj=objective, **kwargs)
        self.estimators_ = [(booster, self._n_trees(booster, dvalid is not None))]
        return self

    def _margin(self, n: int) -> np.ndarray:
        return np.broadcast_to(self.base_margin_, (n, self.base_margin_.size)).copy()

    def predict(self, X, context: FitContext | None = None) -> np.ndarray:
        if self.param("strategy") == "per_target":
            return super().predict(X, context)
        X = as_float32(X)
        t = self.constant_.size
        if X.shape[0] == 0:
            return np.empty((0, t), dtype=np.float32)
        booster, n_trees = self.estimators_[0]
        self._predict_device(booster, context)
        dmatrix = _xgb().DMatrix(X, base_margin=self._margin(X.shape[0]))
        margin = booster.predict(dmatrix, output_margin=True, iteration_range=(0, n_trees)).reshape(X.shape[0], t)
        out = np.where(np.isnan(self.constant_)[None, :], _sigmoid(margin), self.constant_[None, :])
        return np.clip(out, 0.0, 1.0).astype(np.float32)

    def state(self) -> dict[str, Any]:
        state = super().state()
        if self.param("strategy") == "multi_output":
            state["base_margin"] = self.base_margin_
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any], params: dict[str, Any]) -> XGBoostModel:
        model = super().from_state(state, params)
        if model.param("strategy") == "multi_output":
            model.base_margin_ = np.asarray(state["base_margin"], dtype=np.float32)
        return model
