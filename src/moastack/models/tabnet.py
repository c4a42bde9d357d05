"""TabNet (``arch: tabnet``): pytorch-tabnet's ``TabNetRegressor`` as the winners used it.

Multi-output regression on the targets with a label-smoothed BCE-with-logits loss (``loss_fn``) and,
for early stopping, the log loss of the sigmoid of its outputs on the validation rows (a custom eval
metric); ``predict`` applies the sigmoid. Defaults are REFERENCE.md's "2-stage NN + TabNet": n_d =
n_a = 32, n_steps 1, gamma 0.9, lambda_sparse 0, entmax masks, Adam lr 2e-2 wd 1e-5, batch 1024,
virtual batch 128, 200 epochs, patience 50, label smoothing 1e-4; the scheduler is the public
notebook's ReduceLROnPlateau(factor 0.9, patience 5, min lr 1e-5) on the validation log loss.

The saved state is the network's ``state_dict`` plus its input/output sizes: :meth:`from_state`
rebuilds the network from the params (``TabNetRegressor._set_network``) and loads the weights, so the
model file is the same plain ``torch.save`` payload as every other model's.

pytorch-tabnet is imported on first use only (``fit``/``from_state``).
"""

from __future__ import annotations

import contextlib
import io
import time
import warnings
from typing import Any

import numpy as np
import torch

from moastack.models.base import FitContext, TabularModel
from moastack.models.losses import SmoothBCEWithLogits
from moastack.models.trainer import seed_everything, set_threads
from moastack.targets import prior_logit

SCHEDULERS = ("plateau", "none")

_LOGLOSS_METRIC: type | None = None


def _logloss_metric() -> type:
    """A pytorch-tabnet eval metric: mean binary log loss of sigmoid(outputs), NaN labels ignored.

    Created once per process: pytorch-tabnet finds custom metrics by name among ``Metric``'s
    direct subclasses, so there must be exactly one class with this name.
    """
    global _LOGLOSS_METRIC
    if _LOGLOSS_METRIC is None:
        from pytorch_tabnet.metrics import Metric

        class LogitsLogLoss(Metric):
            def __init__(self) -> None:
                self._name = "logits_ll"
                self._maximize = False

            #: the fitting model's prior-logit offset (one fit at a time per process)
            offset: np.ndarray | float = 0.0

            def __call__(self, y_true: np.ndarray, y_score: np.ndarray) -> float:
                y = np.asarray(y_true, dtype=np.float64)
                logits = np.asarray(y_score, dtype=np.float64) + type(self).offset
                p = np.clip(1.0 / (1.0 + np.exp(-logits)), 1e-15, 1 - 1e-15)
                cell = -(y * np.log(p) + (1.0 - y) * np.log(1.0 - p))
                return float(np.nanmean(cell))

        _LOGLOSS_METRIC = LogitsLogLoss
    return _LOGLOSS_METRIC


class _SmoothLoss:
    """``loss_fn`` for TabNet: smoothed (and optionally clipped) BCE on logits, NaN labels masked."""

    def __init__(self, smoothing: float, clip: tuple[float, float] | None, offset: np.ndarray | None = None) -> None:
        self.loss = SmoothBCEWithLogits(smoothing, clip)
        self.offset = None if offset is None else torch.as_tensor(offset, dtype=torch.float32)

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.offset is not None:
            logits = logits + self.offset.to(logits.device)
        nan = torch.isnan(targets)
        if bool(nan.any()):
            return self.loss(logits, torch.nan_to_num(targets, nan=0.0), ~nan)
        return self.loss(logits, targets)


class _Plateau(torch.optim.lr_scheduler.ReduceLROnPlateau):
    """ReduceLROnPlateau that pytorch-tabnet 4.1 steps with the validation metric.

    pytorch-tabnet passes the metric to ``step`` only when the scheduler class has an ``is_better``
    attribute, which recent torch renamed to ``_is_better``; without it ``step()`` fails.
    """

    def is_better(self, a: float, best: float) -> bool:
        return self._is_better(a, best) if hasattr(self, "_is_better") else super().is_better(a, best)


def _epoch_timer() -> Any:
    """A pytorch-tabnet callback recording each epoch's wall time."""
    from pytorch_tabnet.callbacks import Callback

    class EpochTimer(Callback):
        def __init__(self) -> None:
            super().__init__()
            self.seconds: list[float] = []

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self._t0 = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self.seconds.append(time.perf_counter() - self._t0)

    return EpochTimer()


#: plain tensor attributes of pytorch-tabnet 4.1's modules (not buffers: ``Module.to`` leaves them behind)
_TENSOR_ATTRS = ("group_attention_matrix", "embedding_group_matrix")


def _network_to(network: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Move a TabNet network to ``device``, including the group matrices ``.to`` does not move."""
    network.to(device)
    for module in network.modules():
        for name in _TENSOR_ATTRS:
            value = getattr(module, name, None)
            if isinstance(value, torch.Tensor) and value.device != device:
                setattr(module, name, value.to(device))
    return network


class TabNetModel(TabularModel):
    """pytorch-tabnet ``TabNetRegressor`` on label-smoothed BCE; probabilities = sigmoid(outputs)."""

    arch = "tabnet"
    defaults = {
        "n_d": 32,
        "n_a": 32,
        "n_steps": 1,
        "gamma": 0.9,
        "n_independent": 2,
        "n_shared": 2,
        "momentum": 0.02,
        "lambda_sparse": 0.0,
        "mask_type": "entmax",
        "clip_value": 1.0,  # gradient-norm clipping (pytorch-tabnet's default)
        "lr": 2e-2,
        "weight_decay": 1e-5,
        "batch_size": 1024,
        "virtual_batch_size": 128,
        "drop_last": True,
        "max_epochs": 200,
        "patience": 50,
        "label_smoothing": 1e-4,
        "target_clip": None,
        "scheduler": "plateau",  # plateau | none
        "plateau_factor": 0.9,
        "plateau_patience": 5,
        "min_lr": 1e-5,
        "eval_batch_size": 4096,
        # TabNet's output layer has no bias, so it starts every target at p = 0.5; adding each
        # target's training prior logit to its outputs starts it at the prior instead.
        "init_output_bias": True,
    }

    def check_params(self) -> None:
        if self.param("scheduler") not in SCHEDULERS:
            raise ValueError(f"tabnet: scheduler must be one of {SCHEDULERS}, got {self.param('scheduler')!r}")
        if self.param("mask_type") not in ("entmax", "sparsemax"):
            raise ValueError(f"tabnet: mask_type must be entmax or sparsemax, got {self.param('mask_type')!r}")

    # ----------------------------------------------------------------- the pytorch-tabnet estimator

    def _regressor(self, seed: int, device: str) -> Any:
        with warnings.catch_warnings():  # pytorch-tabnet 4.1 imports a deprecated scipy.sparse path
            warnings.simplefilter("ignore", DeprecationWarning)
            from pytorch_tabnet.tab_model import TabNetRegressor

        sched: dict[str, Any] = {}
        if self.param("scheduler") == "plateau":
            sched = {
                "scheduler_fn": _Plateau,
                "scheduler_params": {
                    "mode": "min",
                    "factor": float(self.param("plateau_factor")),
                    "patience": int(self.param("plateau_patience")),
                    "min_lr": float(self.param("min_lr")),
                },
            }
        return TabNetRegressor(
            n_d=int(self.param("n_d")),
            n_a=int(self.param("n_a")),
            n_steps=int(self.param("n_steps")),
            gamma=float(self.param("gamma")),
            n_independent=int(self.param("n_independent")),
            n_shared=int(self.param("n_shared")),
            momentum=float(self.param("momentum")),
            lambda_sparse=float(self.param("lambda_sparse")),
            mask_type=str(self.param("mask_type")),
            clip_value=self.param("clip_value"),
            optimizer_fn=torch.optim.Adam,
            optimizer_params={"lr": float(self.param("lr")), "weight_decay": float(self.param("weight_decay"))},
            seed=int(seed),
            device_name=device,
            verbose=0,
            **sched,
        )

    def fit(self, X, Y, X_valid, Y_valid, context: FitContext) -> TabNetModel:
        seed_everything(context.seed)  # also seeds the DataLoader's shuffling
        set_threads(context.threads)
        X = np.ascontiguousarray(X, dtype=np.float32)
        Y = np.ascontiguousarray(Y, dtype=np.float32)
        n = len(X)
        batch_size = int(self.param("batch_size"))
        vbs = int(self.param("virtual_batch_size"))
        drop_last = bool(self.param("drop_last"))
        if n < batch_size:  # tiny data: one batch of all rows instead of none at all
            context.logger.warning("tabnet: %d training rows < batch_size %d; using one batch of %d", n, batch_size, n)
            batch_size, drop_last = n, True
        vbs = min(vbs, batch_size)
        clip = self.param("target_clip")
        clip = None if clip is None else (float(clip[0]), float(clip[1]))
        has_valid = X_valid is not None and Y_valid is not None and len(X_valid) > 0
        fit_kwargs: dict[str, Any] = {}
        if has_valid:
            fit_kwargs = {
                "eval_set": [
                    (np.ascontiguousarray(X_valid, dtype=np.float32), np.ascontiguousarray(Y_valid, dtype=np.float32))
                ],
                "eval_name": ["valid"],
                "eval_metric": [_logloss_metric()],
            }
        self.offset_ = prior_logit(Y).astype(np.float32) if self.param("init_output_bias") else np.zeros(Y.shape[1], np.float32)
        _logloss_metric().offset = self.offset_
        timer = _epoch_timer()
        self.regressor_ = self._regressor(context.seed, context.device)
        out = io.StringIO()
        with warnings.catch_warnings(), contextlib.redirect_stdout(out):
            warnings.filterwarnings("ignore", module="pytorch_tabnet")
            self.regressor_.fit(
                X,
                Y,
                loss_fn=_SmoothLoss(float(self.param("label_smoothing")), clip, self.offset_),
                max_epochs=int(self.param("max_epochs")),
                patience=int(self.param("patience")) if has_valid else 0,
                batch_size=batch_size,
                virtual_batch_size=vbs,
                drop_last=drop_last,
                num_workers=0,
                pin_memory=False,
                compute_importance=False,
                callbacks=[timer],
                **fit_kwargs,
            )
        for line in out.getvalue().strip().splitlines():
            context.logger.info("tabnet: %s", line.strip())
        self.network_ = self.regressor_.network.eval()
        self.n_in_, self.n_out_ = int(X.shape[1]), int(Y.shape[1])
        self.virtual_batch_size_ = vbs
        hist = self.regressor_.history.history
        valid = hist.get("valid_logits_ll", [None] * len(hist["loss"]))
        self.history_ = [
            {
                "epoch": i + 1,
                "train_loss": float(hist["loss"][i]),
                "valid_loss": None if valid[i] is None else float(valid[i]),
                "lr": float(hist["lr"][i]),
                "seconds": float(timer.seconds[i]) if i < len(timer.seconds) else None,
            }
            for i in range(len(hist["loss"]))
        ]
        self.best_epoch_ = int(getattr(self.regressor_, "best_epoch", len(self.history_) - 1)) + 1
        return self

    def predict(self, X, context: FitContext | None = None) -> np.ndarray:
        if context is not None:
            set_threads(context.threads)
            device = torch.device(context.device)
        else:
            device = next(self.network_.parameters()).device
        net = _network_to(self.network_, device).eval()
        X = np.ascontiguousarray(X, dtype=np.float32)
        offset = torch.as_tensor(self.offset_, dtype=torch.float32, device=device)
        bs = int(self.param("eval_batch_size"))
        chunks = []
        with torch.inference_mode():
            for start in range(0, len(X), bs):
                logits, _ = net(torch.from_numpy(X[start : start + bs]).to(device))
                chunks.append(torch.sigmoid(logits.float() + offset).cpu())
        if not chunks:
            return np.zeros((0, self.n_out_), dtype=np.float32)
        return torch.cat(chunks).numpy().astype(np.float32, copy=False)

    # ----------------------------------------------------------------- persistence

    def state(self) -> dict[str, Any]:
        return {
            "network": {k: v.detach().cpu() for k, v in self.network_.state_dict().items()},
            "n_in": self.n_in_,
            "n_out": self.n_out_,
            "virtual_batch_size": self.virtual_batch_size_,
            "best_epoch": self.best_epoch_,
            "history": list(self.history_),
            "offset": self.offset_,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], params: dict[str, Any]) -> TabNetModel:
        model = cls(**params)
        reg = model._regressor(seed=0, device="cpu")
        reg.input_dim, reg.output_dim = int(state["n_in"]), int(state["n_out"])
        reg.virtual_batch_size = int(state["virtual_batch_size"])
        reg._set_network()  # pytorch-tabnet 4.1: builds TabNet(input_dim, output_dim, ...) from the params
        reg.network.load_state_dict(state["network"])
        model.regressor_ = reg
        model.network_ = reg.network.eval()
        model.n_in_, model.n_out_ = int(state["n_in"]), int(state["n_out"])
        model.virtual_batch_size_ = int(state["virtual_batch_size"])
        model.best_epoch_ = int(state.get("best_epoch", 0))
        model.offset_ = np.asarray(state.get("offset", np.zeros(model.n_out_)), dtype=np.float32)
        model.history_ = list(state.get("history", []))
        return model
