"""Multi-output regressors for (cell type, compound) → gene responses, in the TabularModel interface.

Both share the winners' target handling: an optional truncated SVD of the training targets (the model
predicts ``svd_components`` scores, reconstructed to genes in ``predict``) and clipping of predictions
to each target's training min/max. ``predict`` returns float32 values in target units, not
probabilities. Everything target-derived is fitted inside ``fit`` on the training fold only.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from moastack.metrics import mrrmse
from moastack.models.base import FitContext, TabularModel
from moastack.models.regression_losses import check_loss_weights, mixed_regression_loss
from moastack.models.simple_nn import ACTIVATIONS, build_mlp
from moastack.models.trainer import TrainConfig, predict_module, seed_everything, set_threads, train_module
from moastack.target_svd import TargetSVD


class _Regressor(TabularModel):
    """The shared target pipeline (SVD in, reconstruction and clipping out) and its param check."""

    def check_params(self) -> None:
        k = self.param("svd_components")
        if k is not None and (isinstance(k, bool) or int(k) < 1):
            raise ValueError(f"svd_components must be None or an int >= 1, got {k!r}")

    def _fit_targets(self, Y: np.ndarray, seed: int) -> np.ndarray:
        """Record clip bounds and the SVD of the training targets; return what the learner regresses."""
        Y = np.asarray(Y, dtype=np.float32)
        if Y.ndim != 2 or len(Y) == 0:
            raise ValueError(f"{type(self).__name__} needs a non-empty 2-D Y, got shape {Y.shape}")
        self.n_targets_ = int(Y.shape[1])
        self.clip_lo_, self.clip_hi_ = Y.min(axis=0), Y.max(axis=0)
        k = self.param("svd_components")
        self.svd_ = None if k is None else TargetSVD(int(k), seed).fit(Y)
        return Y if self.svd_ is None else self.svd_.transform(Y)

    def _decode(self, out: np.ndarray) -> np.ndarray:
        """Learner outputs → float32 targets: SVD reconstruction, then per-target clipping."""
        out = np.asarray(out, dtype=np.float32)
        if self.svd_ is not None:
            out = self.svd_.inverse_transform(out)
        if self.param("clip"):
            out = np.clip(out, self.clip_lo_, self.clip_hi_)
        return out.astype(np.float32, copy=False)

    def _target_state(self) -> dict[str, Any]:
        return {"n_targets": self.n_targets_, "clip_lo": self.clip_lo_, "clip_hi": self.clip_hi_,
                "svd": None if self.svd_ is None else self.svd_.state(), "history": list(self.history_)}

    def _load_target_state(self, state: dict[str, Any]) -> None:
        self.n_targets_ = int(state["n_targets"])
        self.clip_lo_ = np.asarray(state["clip_lo"], dtype=np.float32)
        self.clip_hi_ = np.asarray(state["clip_hi"], dtype=np.float32)
        self.svd_ = None if state["svd"] is None else TargetSVD.from_state(state["svd"])
        self.history_ = list(state.get("history", []))


class RidgeRegressor(_Regressor):
    """Ridge (``kernel: none``) or RBF kernel ridge on the features; a fast, strong linear baseline.

    Kernel ridge has no intercept, so its targets are centred by their training mean. The fitted state is
    plain arrays (coefficients, or dual coefficients and training rows), predicted without sklearn.
    """

    arch = "ridge"
    defaults = {"alpha": 1.0, "kernel": "none", "gamma": None, "svd_components": None, "clip": True}

    def check_params(self) -> None:
        super().check_params()
        if self._kernel() not in ("none", "rbf"):
            raise ValueError(f"kernel must be 'none' or 'rbf', got {self.param('kernel')!r}")
        if float(self.param("alpha")) <= 0:
            raise ValueError("alpha must be > 0")

    def _kernel(self) -> str:
        k = self.param("kernel")
        return "none" if k is None else str(k)

    def fit(self, X, Y, X_valid, Y_valid, context: FitContext) -> RidgeRegressor:
        from sklearn.kernel_ridge import KernelRidge
        from sklearn.linear_model import Ridge

        T = self._fit_targets(Y, context.seed).astype(np.float64)
        X = np.asarray(X, dtype=np.float64)
        alpha = float(self.param("alpha"))
        if self._kernel() == "none":
            ridge = Ridge(alpha=alpha).fit(X, T)
            self.coef_ = np.atleast_2d(ridge.coef_).astype(np.float64)
            self.intercept_ = np.atleast_1d(ridge.intercept_).astype(np.float64)
        else:
            gamma = self.param("gamma")
            self.gamma_ = float(1.0 / X.shape[1] if gamma is None else gamma)
            self.y_mean_ = T.mean(axis=0)
            kr = KernelRidge(alpha=alpha, kernel="rbf", gamma=self.gamma_).fit(X, T - self.y_mean_)
            self.dual_coef_ = np.asarray(kr.dual_coef_, dtype=np.float64).reshape(len(X), -1)
            self.X_fit_ = X
        self.history_ = []
        return self

    def predict(self, X, context: FitContext | None = None) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if len(X) == 0:
            return np.zeros((0, self.n_targets_), dtype=np.float32)
        if self._kernel() == "none":
            out = X @ self.coef_.T + self.intercept_
        else:
            from sklearn.metrics.pairwise import rbf_kernel

            out = rbf_kernel(X, self.X_fit_, gamma=self.gamma_) @ self.dual_coef_ + self.y_mean_
        return self._decode(out)

    def state(self) -> dict[str, Any]:
        if self._kernel() == "none":
            learned = {"coef": self.coef_, "intercept": self.intercept_}
        else:
            learned = {"dual_coef": self.dual_coef_, "X_fit": self.X_fit_, "gamma": self.gamma_, "y_mean": self.y_mean_}
        return {**learned, **self._target_state()}

    @classmethod
    def from_state(cls, state: dict[str, Any], params: dict[str, Any]) -> RidgeRegressor:
        model = cls(**params)
        model._load_target_state(state)
        if model._kernel() == "none":
            model.coef_, model.intercept_ = np.asarray(state["coef"]), np.asarray(state["intercept"])
        else:
            model.dual_coef_, model.X_fit_ = np.asarray(state["dual_coef"]), np.asarray(state["X_fit"])
            model.gamma_, model.y_mean_ = float(state["gamma"]), np.asarray(state["y_mean"])
        return model


SCHEDULERS = ("cosine", "none")  # cosine annealing to 0 over all steps, or a constant lr
TARGET_SCALINGS = ("column", "global", "none")


class MLPRegressor(_Regressor):
    """An MLP ([BN → dropout → Linear → act] × hidden, then a linear head) trained on mixed losses.

    Targets (genes or SVD scores) are standardised internally (``target_scaling``: per column, one pooled
    scale, or none) and predictions returned in original units. With validation rows, each epoch scores
    the decoded, clipped predictions by MRRMSE; training stops after ``patience`` epochs without an
    improvement and the best epoch's weights are restored. ``history_`` valid_loss is that MRRMSE.

    ``drop_constant`` (default on) leaves out input columns that are constant on the training rows. Under
    group or rare-cell-type folds a one-hot column of a held-out category is all zero in training; batch
    norm then learns a near-zero variance for it and a 1 at prediction time becomes a ~300σ input.
    """

    arch = "mlp_regressor"
    uses_torch = True
    defaults = {
        "hidden": [512, 512],
        "dropout": 0.2,
        "activation": "elu",
        "batch_norm": True,
        "lr": 1e-3,
        "weight_decay": 1e-4,
        "epochs": 40,
        "batch_size": 64,
        "scheduler": "cosine",  # cosine annealing to 0 over all steps | none
        "patience": 10,  # None = no early stopping
        "min_delta": 0.0,
        "restore_best": True,
        "loss_weights": {"mse": 1.0, "mae": 0.0, "logcosh": 0.0},
        "target_scaling": "column",
        "svd_components": None,
        "clip": True,
        "eval_batch_size": 4096,
        "drop_constant": True,
    }

    def check_params(self) -> None:
        super().check_params()
        if self.param("activation") not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {self.param('activation')!r}")
        if self.param("scheduler") not in SCHEDULERS:
            raise ValueError(f"scheduler must be one of {SCHEDULERS}, got {self.param('scheduler')!r}")
        if self.param("target_scaling") not in TARGET_SCALINGS:
            raise ValueError(f"target_scaling must be one of {TARGET_SCALINGS}, got {self.param('target_scaling')!r}")
        self._train_config()
        check_loss_weights(self.param("loss_weights"))

    def _train_config(self) -> TrainConfig:
        """The loop's settings: AdamW, cosine annealing over every step (or none), early stopping on MRRMSE."""
        return TrainConfig(
            epochs=int(self.param("epochs")), batch_size=int(self.param("batch_size")), optimizer="adamw",
            lr=float(self.param("lr")), weight_decay=float(self.param("weight_decay")),
            scheduler=str(self.param("scheduler")), patience=self.param("patience"),
            min_delta=float(self.param("min_delta")), restore_best=bool(self.param("restore_best")),
            eval_batch_size=int(self.param("eval_batch_size")),
        )

    def _hidden(self) -> list[int]:
        h = self.param("hidden")
        return [int(h)] if isinstance(h, int) else [int(v) for v in h]

    def _build(self, n_in: int, n_out: int) -> torch.nn.Module:
        return build_mlp(n_in, n_out, self._hidden(), dropout=self.param("dropout"),
                         batch_norm=bool(self.param("batch_norm")), activation=str(self.param("activation")))

    def _scale_targets(self, T: np.ndarray) -> np.ndarray:
        mode = self.param("target_scaling")
        mean = T.mean(axis=0, dtype=np.float64)
        if mode == "column":
            scale = T.std(axis=0, dtype=np.float64)
        elif mode == "global":
            scale = np.full(T.shape[1], math.sqrt(float(np.mean(T.var(axis=0, dtype=np.float64)))))
        else:
            mean, scale = np.zeros(T.shape[1]), np.ones(T.shape[1])
        scale = np.where(scale > 1e-8, scale, 1.0)
        self.target_mean_, self.target_scale_ = mean.astype(np.float32), scale.astype(np.float32)
        return ((T - self.target_mean_) / self.target_scale_).astype(np.float32)

    def _outputs_to_targets(self, out: np.ndarray) -> np.ndarray:
        return self._decode(out * self.target_scale_ + self.target_mean_)

    def fit(self, X, Y, X_valid, Y_valid, context: FitContext) -> MLPRegressor:
        seed_everything(context.seed)
        set_threads(context.threads)
        device = torch.device(context.device)
        X = np.ascontiguousarray(X, dtype=np.float32)
        if len(X) != len(Y):
            raise ValueError(f"X has {len(X)} rows but Y has {len(Y)}")
        if len(X) < 2 and self.param("batch_norm"):
            raise ValueError("MLPRegressor with batch_norm needs at least 2 training rows")
        T = self._scale_targets(self._fit_targets(Y, context.seed))
        self.keep_ = (np.ptp(X, axis=0) > 0) if self.param("drop_constant") and len(X) else None
        if self.keep_ is not None and (self.keep_.all() or not self.keep_.any()):
            self.keep_ = None  # nothing to drop (or nothing would be left)
        X = self._inputs(X)
        if X_valid is not None:
            X_valid = self._inputs(X_valid)
        self.n_in_, self.n_out_ = int(X.shape[1]), int(T.shape[1])
        self.module_ = self._build(self.n_in_, self.n_out_).to(device).train()
        self.history_ = self._train(X, T, X_valid, Y_valid, context, device)
        self.module_.eval()
        return self

    def _train(self, X, T, X_valid, Y_valid, context: FitContext, device: torch.device) -> list[dict[str, Any]]:
        """The one loop (:func:`train_module`) on the mixed loss; validation by MRRMSE in target units."""
        weights = check_loss_weights(self.param("loss_weights"))
        evaluate = None
        if X_valid is not None and Y_valid is not None and len(X_valid) > 0:
            Yv = np.asarray(Y_valid, dtype=np.float32)
            evaluate = lambda module: mrrmse(Yv, self._outputs_to_targets(self._outputs(X_valid)))  # noqa: E731
        return train_module(
            self.module_, torch.from_numpy(X).to(device), torch.from_numpy(T).to(device), None, self._train_config(),
            context, lambda out, target, mask: mixed_regression_loss(out, target, weights), evaluate,
            name="mlp_regressor",
        )

    def _inputs(self, X) -> np.ndarray:
        """The input columns the network reads (all, or those not constant in training)."""
        X = np.ascontiguousarray(X, dtype=np.float32)
        keep = getattr(self, "keep_", None)
        return X if keep is None else np.ascontiguousarray(X[:, keep])

    def _outputs(self, X: np.ndarray, context: FitContext | None = None) -> np.ndarray:
        """Raw (standardised) outputs of the module in eval mode, in large batches."""
        return predict_module(self.module_, X, context, batch_size=int(self.param("eval_batch_size")), sigmoid=False)

    def predict(self, X, context: FitContext | None = None) -> np.ndarray:
        if len(X) == 0:
            return np.zeros((0, self.n_targets_), dtype=np.float32)
        return self._outputs_to_targets(self._outputs(self._inputs(X), context))

    def state(self) -> dict[str, Any]:
        return {"module": {k: v.detach().cpu() for k, v in self.module_.state_dict().items()},
                "n_in": self.n_in_, "n_out": self.n_out_, "target_mean": self.target_mean_,
                "target_scale": self.target_scale_, "keep": getattr(self, "keep_", None), **self._target_state()}

    @classmethod
    def from_state(cls, state: dict[str, Any], params: dict[str, Any]) -> MLPRegressor:
        model = cls(**params)
        model._load_target_state(state)
        model.n_in_, model.n_out_ = int(state["n_in"]), int(state["n_out"])
        model.keep_ = None if state.get("keep") is None else np.asarray(state["keep"], dtype=bool)
        model.target_mean_ = np.asarray(state["target_mean"], dtype=np.float32)
        model.target_scale_ = np.asarray(state["target_scale"], dtype=np.float32)
        model.module_ = model._build(model.n_in_, model.n_out_)
        model.module_.load_state_dict(state["module"])
        model.module_.eval()
        return model



