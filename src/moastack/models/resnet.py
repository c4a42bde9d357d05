"""The winners' 2-heads ResNet (``arch: resnet2h``), with transfer from a phase-1 model.

Two input blocks, chosen from the column NAMES the job passes in its fit context (``context.feature_names``):

* block A: columns matching ``head_a_patterns`` (shell globs; default ``pca_*`` and ``*_mean``: the
  PCA components and row means of genes and cells);
* block B: every other column (the job has already t-test-selected the g-/c- columns with the
  ``ttest_select`` fold step, see ``features/fold_steps.py``).

Layout (the public Keras "2heads-ResNet" the winners started from)::

    A ─ head_a: BN → Dropout .2 → Dense 512 ELU → BN → Dense 256 ELU ─────────────┐ h_a
    B ┐                                                                            │
      └ concat(B, h_a) ─ head_b: [BN → Dropout .3 → Dense] 512 ReLU, 512 ELU,      │  skip
                                  256 ReLU, 256 ELU ─ h_b ─ average(h_a, h_b) ◄────┘
        ─ tail: BN → Dense 256 SELU ─ output: BN → Dense n_targets (logits)

h_a enters head B (a skip connection into the residual block) and is averaged with its output.
Without feature names, or with no column matching block A, the model is a plain head B → tail.

``layout: concat`` is instead the graph of the winners' training script (``2heads-ResNest-train.py``,
lines 293-346), with fixed widths (``head_a_*`` still shape head A)::

    h_a = head_a(A)                                     BN → Dropout .2 → 512 ELU → BN → 256 ELU
    a1  = [BN → Dropout .3 → 512 ReLU](h_a, B)
    a2  = [BN → 512 ELU → BN → 256 ReLU](h_a, B, a1)
    a3  = [BN → 256 ELU](a1, a2)
    a3_ = [BN → 256 ReLU](a1, a2, a3)
    t   = [BN → 256 SELU → BN → 206 SELU](h_a, a2, a3, a3_)      (the ``tail``; 206 in every phase)
    out = [BN → Dense n_targets](t)                               (the ``output``; logits)

where (x, y, ...) is a concatenation. ``bn_momentum`` / ``bn_eps`` set every BatchNorm (torch's
convention: Keras' momentum 0.99 is torch's 0.01, Keras' epsilon 1e-3), and ``init: keras`` draws
the Linear layers as Keras does (Glorot-uniform weights, zero biases; the layers followed by SELU
LeCun-normal, as the script's ``kernel_initializer=lecun_normal``).

Training (REFERENCE.md): Adam lr 1e-3, batch 128, ReduceLROnPlateau(0.5, patience 4), early stopping
patience 10 (min delta 1e-5), label smoothing 5e-4, on the non-scored targets (phase 1).

Transfer (phase 2): the job's fit context carries a phase-1 model's :meth:`state` (``context.init_state``,
read from the ``init_from`` job's model file). The module is then built with the phase-1 input
layout, every weight but the output layer is copied, and training runs in two steps: 2a with only
``transfer_trainable`` (default tail + output) trainable, the frozen layers' BatchNorms in inference
mode, lr / ``phase2a_lr_div`` and min delta ``transfer_min_delta``; 2b with everything unfrozen,
lr / ``phase2b_lr_div``. Both stop early on the validation loss.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from moastack.models import resnet_concat as concat
from moastack.models.base import FitContext
from moastack.models.simple_nn import FastDropout
from moastack.models.trainer import (
    TorchTabularModel,
    TrainConfig,
    fit_module,
    init_output_bias,
    seed_everything,
    set_threads,
)

ACTS = {"relu": nn.ReLU, "elu": nn.ELU, "selu": nn.SELU, "leaky_relu": nn.LeakyReLU}
#: the module's parts, in forward order; ``transfer_trainable`` names some of them
PARTS = ("head_a", "head_b", "tail", "output")
#: params that fix the module's shapes: phase 1 and phase 2 must agree on them
SHAPE_PARAMS = ("head_a_hidden", "head_b_hidden", "tail_hidden")


def _as_list(value: Any, n: int, name: str) -> list:
    """One value per layer: a scalar for all, or a list repeated cyclically (``[relu, elu]`` alternates)."""
    if isinstance(value, (str, int, float)):
        return [value] * n
    values = list(value)
    if not values:
        raise ValueError(f"resnet2h: {name} is an empty list")
    return [values[i % len(values)] for i in range(n)]


LAYOUTS = ("average", "concat")
INITS = ("torch", "keras")


def dense_block(
    n_in: int, hidden: Sequence[int], dropout: float | Sequence[float], activation: str | Sequence[str]
) -> tuple[nn.Sequential, int]:
    """[BatchNorm → Dropout → Linear → activation] per hidden width; returns (block, output width)."""
    hidden = [int(h) for h in hidden]
    drops = [float(d) for d in _as_list(dropout, len(hidden), "dropout")]
    acts = [str(a) for a in _as_list(activation, len(hidden), "activation")]
    layers: list[nn.Module] = []
    width = int(n_in)
    for h, d, a in zip(hidden, drops, acts):
        if a not in ACTS:
            raise ValueError(f"resnet2h: activation must be one of {sorted(ACTS)}, got {a!r}")
        layers.append(nn.BatchNorm1d(width))
        if d > 0:
            layers.append(FastDropout(d))
        layers.append(nn.Linear(width, h))
        layers.append(ACTS[a]())
        width = h
    return nn.Sequential(*layers), width


class PartedModule(nn.Module):
    """A network made of named parts (``PARTS``) that transfer learning freezes and unfreezes by name;
    its two column blocks are picked by index from the job's full feature matrix."""

    def __init__(self, a_idx: Sequence[int], b_idx: Sequence[int]) -> None:
        super().__init__()
        self.register_buffer("a_idx", torch.as_tensor(list(a_idx), dtype=torch.long))
        self.register_buffer("b_idx", torch.as_tensor(list(b_idx), dtype=torch.long))
        self.head_a: nn.Module | None = None
        #: parts whose weights are frozen: kept in inference mode (BatchNorm statistics fixed)
        self.frozen_parts: tuple[str, ...] = ()

    def parts(self) -> dict[str, nn.Module]:
        return {name: getattr(self, name) for name in PARTS if getattr(self, name) is not None}

    def freeze(self, trainable: Sequence[str]) -> None:
        """Freeze every part not in ``trainable`` (weights and BatchNorm statistics)."""
        self.frozen_parts = tuple(name for name in self.parts() if name not in trainable)
        for name, part in self.parts().items():
            part.requires_grad_(name not in self.frozen_parts)
        self.train(self.training)

    def unfreeze(self) -> None:
        self.frozen_parts = ()
        self.requires_grad_(True)
        self.train(self.training)

    def train(self, mode: bool = True) -> PartedModule:
        super().train(mode)
        for name in self.frozen_parts:  # a frozen layer behaves as at inference, like Keras' trainable=False
            for m in getattr(self, name).modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self


class TwoHeadResNetModule(PartedModule):
    """The network on the job's full feature matrix: it picks its two blocks by column index."""

    def __init__(
        self,
        a_idx: Sequence[int],
        b_idx: Sequence[int],
        n_out: int,
        head_a_hidden: Sequence[int] = (512, 256),
        head_a_dropout: float | Sequence[float] = (0.2, 0.0),
        head_a_activation: str | Sequence[str] = "elu",
        head_b_hidden: Sequence[int] = (512, 512, 256, 256),
        head_b_dropout: float | Sequence[float] = 0.3,
        head_b_activation: str | Sequence[str] = ("relu", "elu"),
        tail_hidden: Sequence[int] = (256,),
        tail_activation: str | Sequence[str] = "selu",
        output_dropout: float = 0.0,
    ) -> None:
        super().__init__(a_idx, b_idx)
        n_a, n_b = len(a_idx), len(b_idx)
        if n_a + n_b == 0:
            raise ValueError("resnet2h: no input columns")
        if n_a:
            self.head_a, width_a = dense_block(n_a, head_a_hidden, head_a_dropout, head_a_activation)
        else:
            self.head_a, width_a = None, 0
        self.head_b, width_b = dense_block(n_b + width_a, head_b_hidden, head_b_dropout, head_b_activation)
        if n_a and width_a != width_b:
            raise ValueError(
                f"resnet2h: head A ends at width {width_a} and head B at {width_b}; they are averaged, "
                "so the last entries of head_a_hidden and head_b_hidden must be equal"
            )
        self.tail, width = dense_block(width_b, tail_hidden, 0.0, tail_activation)
        out: list[nn.Module] = [nn.BatchNorm1d(width)]
        if output_dropout > 0:
            out.append(FastDropout(output_dropout))
        out.append(nn.Linear(width, int(n_out)))
        self.output = nn.Sequential(*out)  # registered last: its Linear is the module's last one

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xb = x.index_select(1, self.b_idx)
        if self.head_a is None:
            h = self.head_b(xb)
        else:
            ha = self.head_a(x.index_select(1, self.a_idx))
            hb = self.head_b(torch.cat([xb, ha], dim=1))
            h = (ha + hb) * 0.5
        return self.output(self.tail(h))

class ConcatResNetModule(PartedModule):
    """The winners' Keras graph (``layout: concat``): dense blocks fed by concatenations of earlier outputs.

    Its parts for transfer/freezing: ``head_a``, ``head_b`` (a1, a2, a3, a3_), ``tail`` (the SELU block),
    ``output``."""

    def __init__(
        self,
        a_idx: Sequence[int],
        b_idx: Sequence[int],
        n_out: int,
        head_a_hidden: Sequence[int] = (512, 256),
        head_a_dropout: float | Sequence[float] = (0.2, 0.0),
        head_a_activation: str | Sequence[str] = "elu",
        output_dropout: float = 0.0,
        **_: Any,
    ) -> None:
        super().__init__(a_idx, b_idx)
        n_a, n_b = len(a_idx), len(b_idx)
        if n_a == 0 or n_b == 0:
            raise ValueError("resnet2h layout concat: needs columns in both blocks (head_a_patterns and the rest)")
        self.head_a, w_a = dense_block(n_a, head_a_hidden, head_a_dropout, head_a_activation)
        n_in = concat.input_widths(w_a, n_b)

        def build(block: concat.Block) -> nn.Sequential:
            return dense_block(n_in[block.name], block.widths, block.dropout, list(block.activations))[0]

        self.head_b = nn.ModuleList([build(block) for block in concat.HEAD_B])
        self.tail = build(concat.TAIL)
        width = concat.TAIL.widths[-1]
        out: list[nn.Module] = [nn.BatchNorm1d(width)]
        if output_dropout > 0:
            out.append(FastDropout(output_dropout))
        out.append(nn.Linear(width, int(n_out)))
        self.output = nn.Sequential(*out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = {"a": self.head_a(x.index_select(1, self.a_idx)), "b": x.index_select(1, self.b_idx)}
        for block, layers in zip(concat.BLOCKS, (*self.head_b, self.tail)):
            h[block.name] = layers(torch.cat([h[name] for name in block.inputs], dim=1))
        return self.output(h[concat.TAIL.name])


def set_batchnorm(module: nn.Module, momentum: float, eps: float) -> None:
    """Every BatchNorm's running-statistics momentum (torch's convention) and epsilon."""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum, m.eps = float(momentum), float(eps)


@torch.no_grad()
def keras_init(module: nn.Module) -> None:
    """Keras' Dense defaults: Glorot-uniform weights and zero biases; a Linear followed by SELU
    LeCun-normal (Keras' truncated normal: std sqrt(1/fan_in) / 0.8796, cut at two std)."""
    for block in module.modules():
        if not isinstance(block, nn.Sequential):
            continue
        layers = list(block)
        for i, m in enumerate(layers):
            if not isinstance(m, nn.Linear):
                continue
            if i + 1 < len(layers) and isinstance(layers[i + 1], nn.SELU):
                std = (1.0 / m.in_features) ** 0.5 / 0.87962566103423978
                nn.init.trunc_normal_(m.weight, std=std, a=-2 * std, b=2 * std)
            else:
                nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def split_blocks(names: Sequence[str] | None, n_in: int, patterns: Sequence[str]) -> tuple[list[int], list[int]]:
    """Column indices of block A (names matching a glob in ``patterns``) and block B (the rest)."""
    if names is None:
        return [], list(range(n_in))
    names = [str(n) for n in names]
    if len(names) != n_in:
        raise ValueError(f"resnet2h: context.feature_names has {len(names)} names but X has {n_in} columns")
    patterns = [patterns] if isinstance(patterns, str) else list(patterns)
    is_a = [any(fnmatch.fnmatchcase(n, p) for p in patterns) for n in names]
    return [i for i, a in enumerate(is_a) if a], [i for i, a in enumerate(is_a) if not a]


class ResNet2H(TorchTabularModel):
    """The 2-heads ResNet; reads ``context.feature_names`` (and ``context.init_state`` for transfer) in ``fit``."""

    arch = "resnet2h"
    defaults = {
        "head_a_patterns": ["pca_*", "*_mean"],
        "head_a_hidden": [512, 256],
        "head_a_dropout": [0.2, 0.0],
        "head_a_activation": "elu",
        "head_b_hidden": [512, 512, 256, 256],
        "head_b_dropout": 0.3,
        "head_b_activation": ["relu", "elu"],  # alternating, as the Keras original
        "tail_hidden": [256],
        "tail_activation": "selu",
        "output_dropout": 0.0,
        "layout": "average",  # average: the module above | concat: the winners' Keras graph (fixed widths)
        "bn_momentum": 0.1,  # every BatchNorm, torch's convention (Keras' 0.99 = 0.01 here)
        "bn_eps": 1e-5,  # Keras' 1e-3
        "init": "torch",  # torch: nn.Linear's default | keras: Glorot-uniform, zero bias, LeCun-normal before SELU
        # transfer (used only when the fit context carries init_state)
        "transfer_trainable": ["tail", "output"],  # parts trained in phase 2a; the rest stays frozen
        "phase2a_lr_div": 3.0,
        "phase2b_lr_div": 5.0,
        "phase2a_epochs": None,  # None: the ``epochs`` param
        "phase2b_epochs": None,  # None: ``epochs``; 0 skips phase 2b
        "transfer_min_delta": 1e-6,
    }
    train_defaults = {
        "epochs": 50,
        "batch_size": 128,
        "lr": 1e-3,
        "weight_decay": 0.0,  # the original is Keras' plain Adam
        "scheduler": "plateau",
        "plateau_factor": 0.5,
        "plateau_patience": 4,
        "patience": 10,
        "min_delta": 1e-5,
        "label_smoothing": 5e-4,
    }

    def check_params(self) -> None:
        super().check_params()
        trainable = self.param("transfer_trainable")
        trainable = [trainable] if isinstance(trainable, str) else list(trainable)
        if "output" not in trainable or any(t not in PARTS for t in trainable):
            raise ValueError(
                f"resnet2h: transfer_trainable must include 'output' and name parts of {PARTS}, got {trainable}"
            )
        if self.param("layout") not in LAYOUTS:
            raise ValueError(f"resnet2h: layout must be one of {LAYOUTS}, got {self.param('layout')!r}")
        if self.param("init") not in INITS:
            raise ValueError(f"resnet2h: init must be one of {INITS}, got {self.param('init')!r}")
        if not 0.0 <= float(self.param("bn_momentum")) <= 1.0 or not float(self.param("bn_eps")) > 0:
            raise ValueError(
                f"resnet2h: bn_momentum must be in [0, 1] and bn_eps > 0, got {self.param('bn_momentum')!r}, "
                f"{self.param('bn_eps')!r}"
            )
        for key in ("phase2a_lr_div", "phase2b_lr_div"):
            if not float(self.param(key)) > 0:
                raise ValueError(f"resnet2h: {key} must be > 0, got {self.param(key)!r}")

    # ----------------------------------------------------------------- module

    def module_kwargs(self) -> dict[str, Any]:
        keys = (
            "head_a_hidden",
            "head_a_dropout",
            "head_a_activation",
            "head_b_hidden",
            "head_b_dropout",
            "head_b_activation",
            "tail_hidden",
            "tail_activation",
            "output_dropout",
        )
        return {k: self.param(k) for k in keys}

    def build_module(self, n_in: int, n_out: int) -> nn.Module:
        a_idx = getattr(self, "a_idx_", None)
        b_idx = getattr(self, "b_idx_", None)
        if a_idx is None or b_idx is None:
            a_idx, b_idx = split_blocks(None, n_in, self.param("head_a_patterns"))
        cls = ConcatResNetModule if self.param("layout") == "concat" else TwoHeadResNetModule
        module = cls(a_idx, b_idx, n_out, **self.module_kwargs())
        set_batchnorm(module, self.param("bn_momentum"), self.param("bn_eps"))
        if self.param("init") == "keras":
            keras_init(module)
        return module

    # ----------------------------------------------------------------- training

    def fit(self, X, Y, X_valid, Y_valid, context: FitContext) -> ResNet2H:
        seed_everything(context.seed)
        set_threads(context.threads)
        self.n_in_, self.n_out_ = int(X.shape[1]), int(Y.shape[1])
        names = context.feature_names
        self.a_idx_, self.b_idx_ = split_blocks(names, self.n_in_, self.param("head_a_patterns"))
        self.feature_names_ = None if names is None else [str(n) for n in names]
        cfg = self.train_config()
        init = context.init_state
        self.module_ = self.build_module(self.n_in_, self.n_out_)
        if init is None:
            if cfg.init_output_bias:
                init_output_bias(self.module_, Y)
            self.history_ = _tag(fit_module(self.module_, X, Y, X_valid, Y_valid, cfg, context), "1")
            self.transferred_ = False
            return self

        self._load_phase1(init)
        if cfg.init_output_bias:
            init_output_bias(self.module_, Y)
        e2a = self.param("phase2a_epochs")
        e2b = self.param("phase2b_epochs")
        min_delta = float(self.param("transfer_min_delta"))
        cfg_a = _scaled(cfg, float(self.param("phase2a_lr_div")), min_delta, e2a)
        self.module_.freeze(self._trainable())
        history = _tag(fit_module(self.module_, X, Y, X_valid, Y_valid, cfg_a, context), "2a")
        self.module_.unfreeze()
        if e2b is None or int(e2b) > 0:
            cfg_b = _scaled(cfg, float(self.param("phase2b_lr_div")), min_delta, e2b)
            history += _tag(fit_module(self.module_, X, Y, X_valid, Y_valid, cfg_b, context), "2b", start=len(history))
        self.history_ = history
        self.transferred_ = True
        return self

    def _trainable(self) -> list[str]:
        t = self.param("transfer_trainable")
        return [t] if isinstance(t, str) else list(t)

    def _load_phase1(self, init: dict[str, Any]) -> None:
        """Copy every phase-1 weight but the output layer into the freshly built module."""
        if not isinstance(init, dict) or "module" not in init:
            raise ValueError("resnet2h: context.init_state must be a ResNet2H.state() dict (from an init_from job)")
        if int(init["n_in"]) != self.n_in_:
            raise ValueError(
                f"resnet2h transfer: phase 1 was trained on {init['n_in']} input columns, phase 2 gets "
                f"{self.n_in_}; both phases must use the same features (feature set and fold steps)"
            )
        old_names, new_names = init.get("feature_names"), self.feature_names_
        if old_names is not None and new_names is not None and list(old_names) != list(new_names):
            diff = [(i, a, b) for i, (a, b) in enumerate(zip(old_names, new_names)) if a != b][:3]
            raise ValueError(f"resnet2h transfer: phase-1 and phase-2 feature names differ, e.g. {diff}")
        if list(init.get("a_idx", [])) != list(self.a_idx_) or list(init.get("b_idx", [])) != list(self.b_idx_):
            raise ValueError(
                f"resnet2h transfer: the input blocks differ (phase 1: {len(init.get('a_idx', []))} A / "
                f"{len(init.get('b_idx', []))} B columns; phase 2: {len(self.a_idx_)} A / {len(self.b_idx_)} B)"
            )
        old_shape = init.get("module_params", {})
        for key in SHAPE_PARAMS:
            if key in old_shape and list(old_shape[key]) != list(self.param(key)):
                raise ValueError(
                    f"resnet2h transfer: {key} is {old_shape[key]} in phase 1 but "
                    f"{self.param(key)} in phase 2; the architectures must match"
                )
        own = self.module_.state_dict()
        copied = {k: v for k, v in init["module"].items() if not k.startswith("output.")}
        missing = sorted(set(own) - set(copied) - {k for k in own if k.startswith("output.")})
        mismatch = [k for k, v in copied.items() if k not in own or tuple(own[k].shape) != tuple(v.shape)]
        if missing or mismatch:
            raise ValueError(
                f"resnet2h transfer: phase-1 weights don't fit this architecture "
                f"(missing {missing[:3]}, mismatched {mismatch[:3]})"
            )
        own.update({k: v.to(own[k].device, own[k].dtype) for k, v in copied.items()})
        self.module_.load_state_dict(own)

    # ----------------------------------------------------------------- persistence

    def state(self) -> dict[str, Any]:
        state = super().state()
        state.update(
            {
                "a_idx": list(self.a_idx_),
                "b_idx": list(self.b_idx_),
                "feature_names": self.feature_names_,
                "module_params": {k: self.param(k) for k in SHAPE_PARAMS},
                "transferred": bool(getattr(self, "transferred_", False)),
            }
        )
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any], params: dict[str, Any]) -> ResNet2H:
        model = cls(**params)
        model.n_in_, model.n_out_ = int(state["n_in"]), int(state["n_out"])
        model.a_idx_, model.b_idx_ = list(state["a_idx"]), list(state["b_idx"])
        model.feature_names_ = state.get("feature_names")
        model.transferred_ = bool(state.get("transferred", False))
        model.module_ = model.build_module(model.n_in_, model.n_out_)
        model.module_.load_state_dict(state["module"])
        model.module_.eval()
        model.history_ = list(state.get("history", []))
        return model


def _scaled(cfg: TrainConfig, lr_div: float, min_delta: float, epochs: int | None) -> TrainConfig:
    """The phase-2 config: lr (and OneCycle's max lr) divided, smaller min delta, own epoch budget."""
    return dataclasses.replace(
        cfg,
        lr=cfg.lr / lr_div,
        max_lr=cfg.max_lr / lr_div,
        min_delta=min_delta,
        epochs=cfg.epochs if epochs is None else int(epochs),
    )


def _tag(history: list[dict[str, Any]], phase: str, start: int = 0) -> list[dict[str, Any]]:
    """History records with their phase and epochs numbered on from ``start``."""
    return [{**r, "epoch": start + i + 1, "phase": phase} for i, r in enumerate(history)]
