"""1-D convolutional networks on tabular rows, and the blog's two-input NN.

* ``cnn1d_soft`` — the 2nd-place lish-moa model (private LB 0.01601 alone, the best single model known on
  that competition), "soft ordering" 1-D CNN: a wide dense layer learns an ordering of the features as 256
  channels × 16 positions, which convolutions then read. Layout, from its public training notebook:
  BN → dropout → weight-normed dense to ``hidden`` (4096) → CELU(α 0.06) → reshape (``channels`` 256 ×
  ``hidden / channels`` positions) → BN/dropout/weight-normed Conv1d 256→512 (k 5, no bias) → ReLU →
  adaptive average pooling to half the positions → BN/dropout/Conv1d 512→512 (k 3) → ReLU, kept as ``s``
  → BN/dropout/Conv1d (k 3) → ReLU → BN/dropout/Conv1d (k 5) → ReLU → × ``s`` (a gate) → max pooling
  (k 4, stride 2, padding 1) → flatten → BN/dropout → weight-normed dense → targets. Its training:
  Adam lr 1e-3 wd 1e-5, one-cycle (max lr 1e-2, pct_start 0.1, div_factor 1e3), batch 128, 25 epochs,
  label smoothing 1e-3, the frequency-shrunk ``pos_weight: log_shrink``; optionally a warm-up on the
  non-scored targets most correlated with the scored ones (``warmup_epochs``, with the model entry's
  ``aux_targets: nonscored``), after which the output layer is replaced and training goes on.
* ``cnn1d`` — the blog comparison's plain 1-D CNN on the raw features (private LB 0.01727): Conv1d
  32/16/8 filters (k 3) over the feature vector as one channel → flatten → dense 2048 → 1048 → targets.
* ``two_input_nn`` — the blog's two-head NN (0.01768): head 1 reads the PCA components (BN, dropout 0.1,
  dense 512 → 256, ELU); head 2 reads every other column plus head 1's output (BN, dropout 0.3, dense
  512 → 512 → 256 → 256, ReLU); the two heads' outputs are averaged, then dense 256 → targets.

All three are BCE-trained :class:`~moastack.models.trainer.TorchTabularModel` archs: they only build
their module; the one training loop does the rest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from moastack.models.base import FitContext
from moastack.models.resnet import split_blocks
from moastack.models.simple_nn import FastDropout, build_mlp
from moastack.models.trainer import (
    TorchTabularModel,
    fit_module,
    init_output_bias,
    seed_everything,
    set_threads,
)


def _wn(layer: nn.Module) -> nn.Module:
    """Weight normalisation over the whole weight tensor (``dim=None``), as the original's conv layers."""
    return nn.utils.parametrizations.weight_norm(layer, dim=None)


def _bn_drop(channels: int, p: float) -> list[nn.Module]:
    return [nn.BatchNorm1d(channels), *([FastDropout(p)] if p > 0 else [])]


class SoftOrderingCNN(nn.Module):
    """The 2nd-place 1-D CNN (see the module docstring); ``head`` is the replaceable output layer."""

    def __init__(self, n_in: int, n_out: int, hidden: int = 4096, channels: int = 256, conv_channels: int = 512,
                 dropout: Sequence[float] = (0.1, 0.1, 0.1, 0.3, 0.2, 0.2), celu_alpha: float = 0.06) -> None:
        super().__init__()
        if hidden % channels or (hidden // channels) % 2:
            raise ValueError(f"cnn1d_soft: hidden ({hidden}) must be channels ({channels}) × an even length")
        d = [float(p) for p in dropout]
        if len(d) != 6:
            raise ValueError(f"cnn1d_soft: dropout needs 6 values (input, 4 conv blocks, output), got {len(d)}")
        self.channels, self.length, self.celu_alpha = channels, hidden // channels, celu_alpha
        self.expand = nn.Sequential(*_bn_drop(n_in, d[0]), _wn(nn.Linear(n_in, hidden)))
        self.conv1 = nn.Sequential(*_bn_drop(channels, d[1]),
                                   _wn(nn.Conv1d(channels, conv_channels, 5, padding=2, bias=False)))
        self.pool1 = nn.AdaptiveAvgPool1d(self.length // 2)
        self.conv2 = nn.Sequential(*_bn_drop(conv_channels, d[2]), _wn(nn.Conv1d(conv_channels, conv_channels, 3, padding=1)))
        self.conv3 = nn.Sequential(*_bn_drop(conv_channels, d[3]), _wn(nn.Conv1d(conv_channels, conv_channels, 3, padding=1)))
        self.conv4 = nn.Sequential(*_bn_drop(conv_channels, d[4]), _wn(nn.Conv1d(conv_channels, conv_channels, 5, padding=2)))
        self.pool2 = nn.MaxPool1d(kernel_size=4, stride=2, padding=1)
        width = conv_channels * ((self.length // 2 + 2 - 4) // 2 + 1)
        self.width, self.head_dropout = width, d[5]
        self.head = nn.Sequential(*_bn_drop(width, d[5]), _wn(nn.Linear(width, n_out)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.celu(self.expand(x), alpha=self.celu_alpha).reshape(len(x), self.channels, self.length)
        x = self.pool1(F.relu(self.conv1(x)))
        s = F.relu(self.conv2(x))
        x = F.relu(self.conv4(F.relu(self.conv3(s)))) * s
        return self.head(self.pool2(x).flatten(1))

    def new_head(self, n_out: int) -> None:
        """A fresh output layer for other targets (after the non-scored warm-up)."""
        device = next(self.head.parameters()).device
        self.head = nn.Sequential(*_bn_drop(self.width, self.head_dropout), _wn(nn.Linear(self.width, n_out))).to(device)


class SoftCNN1d(TorchTabularModel):
    """``cnn1d_soft``: the 2nd-place soft-ordering 1-D CNN, with its optional non-scored warm-up."""

    arch = "cnn1d_soft"
    defaults = {
        "hidden": 4096,
        "channels": 256,
        "conv_channels": 512,
        "dropout": [0.1, 0.1, 0.1, 0.3, 0.2, 0.2],
        "celu_alpha": 0.06,
        # warm-up on the non-scored targets (the model entry's aux_targets) whose largest |correlation| with
        # a scored target, on the training rows, is in the top ``warmup_top_fraction``; 0 epochs: none
        "warmup_epochs": 0,
        "warmup_top_fraction": 0.1,
    }
    train_defaults = {
        "epochs": 25,
        "batch_size": 128,
        "lr": 1e-3,
        "weight_decay": 1e-5,
        "max_lr": 1e-2,
        "pct_start": 0.1,
        "div_factor": 1e3,
        "label_smoothing": 1e-3,
        "pos_weight": "log_shrink",
        "patience": None,  # the original kept the best epoch's predictions: restore_best without stopping
    }

    def build_module(self, n_in: int, n_out: int) -> nn.Module:
        return SoftOrderingCNN(n_in, n_out, int(self.param("hidden")), int(self.param("channels")),
                               int(self.param("conv_channels")), self.param("dropout"), float(self.param("celu_alpha")))

    def fit(self, X, Y, X_valid, Y_valid, context: FitContext) -> SoftCNN1d:
        epochs = int(self.param("warmup_epochs"))
        if not epochs or context.aux_targets is None:
            if epochs:
                context.logger.warning("cnn1d_soft: warmup_epochs set but the job has no aux_targets; no warm-up")
            return super().fit(X, Y, X_valid, Y_valid, context)
        seed_everything(context.seed)
        set_threads(context.threads)
        aux = warmup_targets(context.aux_targets, Y, float(self.param("warmup_top_fraction")))
        context.logger.info("cnn1d_soft: %d-epoch warm-up on %d non-scored targets", epochs, aux.shape[1])
        self.n_in_, self.n_out_ = int(X.shape[1]), int(Y.shape[1])
        self.module_ = self.build_module(self.n_in_, aux.shape[1])
        cfg = self.train_config()
        warm = fit_module(self.module_, X, aux, None, None, dataclasses.replace(cfg, epochs=epochs), context,
                          name="warm-up")
        self.module_.new_head(self.n_out_)
        if cfg.init_output_bias:
            init_output_bias(self.module_, Y)
        main = fit_module(self.module_, X, Y, X_valid, Y_valid, cfg, context)
        self.history_ = [{**r, "phase": "warm-up"} for r in warm] + [
            {**r, "epoch": len(warm) + r["epoch"], "phase": "main"} for r in main]
        return self


def warmup_targets(aux: np.ndarray, Y: np.ndarray, top_fraction: float) -> np.ndarray:
    """The auxiliary targets whose largest absolute correlation with any target of ``Y`` (over the same,
    training, rows) is in the top ``top_fraction``; columns without a positive never qualify."""
    aux = np.nan_to_num(np.asarray(aux, dtype=np.float64))
    Y = np.nan_to_num(np.asarray(Y, dtype=np.float64))
    a = aux - aux.mean(axis=0)
    y = Y - Y.mean(axis=0)
    norm = np.outer(np.sqrt((a ** 2).sum(axis=0)), np.sqrt((y ** 2).sum(axis=0)))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.where(norm > 0, (a.T @ y) / norm, 0.0)
    best = np.abs(corr).max(axis=1) if corr.size else np.zeros(aux.shape[1])
    usable = aux.sum(axis=0) > 0
    if not usable.any():
        raise ValueError("cnn1d_soft: no auxiliary target has a positive in the training rows")
    threshold = np.quantile(best[usable], 1.0 - top_fraction)
    keep = usable & (best >= threshold)
    return aux[:, keep].astype(np.float32)


class PlainCNN1d(TorchTabularModel):
    """``cnn1d``: the blog's plain 1-D CNN over the feature vector (one channel)."""

    arch = "cnn1d"
    defaults = {"filters": [32, 16, 8], "kernel_size": 3, "dense": [2048, 1048], "dropout": 0.2}
    train_defaults = {"epochs": 20, "batch_size": 300, "label_smoothing": 1e-3}

    def build_module(self, n_in: int, n_out: int) -> nn.Module:
        k, channels, length = int(self.param("kernel_size")), 1, n_in
        layers: list[nn.Module] = [nn.Unflatten(1, (1, n_in))]  # the feature vector as one channel
        for f in self.param("filters"):
            layers += [nn.Conv1d(channels, int(f), k), nn.ReLU(inplace=True)]
            channels, length = int(f), length - k + 1
        if length < 1:
            raise ValueError(f"cnn1d: {n_in} features are too few for {len(self.param('filters'))} convolutions of k {k}")
        layers.append(nn.Flatten())
        return nn.Sequential(*layers, build_mlp(channels * length, n_out, self.param("dense"),
                                                dropout=float(self.param("dropout"))))


class TwoInputModule(nn.Module):
    """Head 1 on block A (PCA), head 2 on block B plus head 1's output; averaged, then the output layers."""

    def __init__(self, a_idx: list[int], b_idx: list[int], n_out: int, head1: Sequence[int], head2: Sequence[int],
                 tail: Sequence[int], dropout1: float, dropout2: float) -> None:
        super().__init__()
        if not a_idx or not b_idx:
            raise ValueError("two_input_nn: needs columns in both heads (head1_patterns picks head 1's)")
        if int(head1[-1]) != int(head2[-1]):
            raise ValueError("two_input_nn: the heads' last widths must be equal (their outputs are averaged)")
        self.register_buffer("a_idx", torch.as_tensor(a_idx, dtype=torch.long))
        self.register_buffer("b_idx", torch.as_tensor(b_idx, dtype=torch.long))
        self.head1 = _mlp(len(a_idx), head1, dropout1, nn.ELU)
        self.head2 = _mlp(len(b_idx) + int(head1[-1]), head2, dropout2, nn.ReLU)
        self.tail = nn.Sequential(_mlp(int(head1[-1]), tail, 0.0, nn.ReLU), nn.Linear(int(tail[-1]), n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h1 = self.head1(x.index_select(1, self.a_idx))
        h2 = self.head2(torch.cat([x.index_select(1, self.b_idx), h1], dim=1))
        return self.tail((h1 + h2) * 0.5)


def _mlp(n_in: int, widths: Sequence[int], dropout: float, act: type[nn.Module]) -> nn.Sequential:
    layers: list[nn.Module] = [nn.BatchNorm1d(n_in), *([FastDropout(dropout)] if dropout > 0 else [])]
    for w in widths:
        layers += [nn.Linear(n_in, int(w)), act()]
        n_in = int(w)
    return nn.Sequential(*layers)


class TwoInputNN(TorchTabularModel):
    """``two_input_nn``: the blog's two-head NN; head 1 reads the columns matching ``head1_patterns``."""

    arch = "two_input_nn"
    defaults = {
        "head1_patterns": ["pca_*"],
        "head1": [512, 256],
        "head2": [512, 512, 256, 256],
        "tail": [256],
        "dropout1": 0.1,
        "dropout2": 0.3,
    }
    train_defaults = {"epochs": 50, "batch_size": 128, "label_smoothing": 1e-3}

    def fit(self, X, Y, X_valid, Y_valid, context: FitContext) -> TwoInputNN:
        self.a_idx_, self.b_idx_ = split_blocks(context.feature_names, int(X.shape[1]), self.param("head1_patterns"))
        return super().fit(X, Y, X_valid, Y_valid, context)

    def build_module(self, n_in: int, n_out: int) -> nn.Module:
        return TwoInputModule(self.a_idx_, self.b_idx_, n_out, self.param("head1"), self.param("head2"),
                              self.param("tail"), float(self.param("dropout1")), float(self.param("dropout2")))

    def extra_state(self) -> dict[str, Any]:
        return {"a_idx": list(self.a_idx_), "b_idx": list(self.b_idx_)}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.a_idx_, self.b_idx_ = list(state["a_idx"]), list(state["b_idx"])
