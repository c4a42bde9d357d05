"""DeepInsight CNN: a timm image backbone on feature rows rendered as images (REFERENCE.md "DeepInsight CNNs").

The winners' least-correlated models: EfficientNet-B3 / ResNeSt on 300×300 / 224×224 renders of the
g-/c- features. Here the backbone, image size and every training setting are params, and the defaults
are a CPU-affordable demo (resnet10t on 32×32). A job passes its feature set's map in the fit context
(``context.feature_map``: one map shared by every fold and seed); without it the model fits its own map on
its training rows. Rows are scaled once, swap noise is applied once per epoch to the shuffled scaled matrix, and
each batch is rendered on the training device right before the forward pass: no image files.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from moastack.deepinsight.augment import swap_noise
from moastack.deepinsight.feature_map import FeatureMap, fit_feature_map, image_shape
from moastack.deepinsight.render import Renderer
from moastack.models.base import FitContext
from moastack.models.trainer import (
    TorchTabularModel,
    _is_int,
    amp_dtype,
    fit_module,
    init_output_bias,
    predict_module,
    seed_everything,
    set_threads,
)

#: the architecture's params (training settings are TrainConfig fields: see ``TRAIN_DEFAULTS``)
DEFAULTS: dict[str, Any] = {
    "backbone": "resnet10t",  # any timm model name
    "pretrained": False,  # False | True (timm download) | path to a local state-dict file
    "image_size": 32,  # int or [H, W]; used only when the model fits its own feature map
    "perplexity": 30.0,  # t-SNE, idem
    "head_hidden": 512,
    "head_dropout": 0.0,
    "head_init": "torch",  # torch: nn.Linear's own | goog: weights U(±1/sqrt(fan_out)), biases 0 (the winners')
    "drop_rate": None,  # the backbone's dropout on its pooled features, before the head (timm drop_rate)
    "drop_path_rate": None,  # the backbone's stochastic depth (timm drop_path_rate; geffnet's drop_connect_rate)
    "swap_prob": 0.10,
    "swap_fraction": 0.15,
    "swap_columns": None,  # name patterns (fnmatch) of the columns swap noise may replace; None: every column
}
HEAD_INITS = ("torch", "goog")
#: the winners' DeepInsight training: RAdam, cosine annealing stepped per epoch, label smoothing,
#: early stopping on the validation BCE, AMP on CUDA (bf16 where supported, else fp16 with a GradScaler)
TRAIN_DEFAULTS: dict[str, Any] = {
    "epochs": 10,
    "batch_size": 64,
    "optimizer": "radam",
    "lr": 3.52e-4,
    "weight_decay": 0.0,
    "scheduler": "cosine",
    "t_max": 5,
    "label_smoothing": 1e-3,
    "patience": 12,
    "eval_batch_size": 512,
}

#: state-dict prefixes of classifier layers that a pretrained file may hold but the backbone lacks
HEAD_PREFIXES = ("fc", "classifier", "head", "last_linear")


# --------------------------------------------------------------------------- params


def validate_params(params: dict[str, Any]) -> None:
    """Reject impossible architecture values now, not after a t-SNE and a first epoch."""
    p = {**DEFAULTS, **params}
    image_shape(p["image_size"])
    if not isinstance(p["backbone"], str) or not p["backbone"]:
        raise ValueError(f"deepinsight: backbone must be a timm model name, got {p['backbone']!r}")
    if not isinstance(p["pretrained"], (bool, str, Path)):
        raise ValueError(f"deepinsight: pretrained must be true, false or a file path, got {p['pretrained']!r}")
    if not _is_int(p["head_hidden"]) or p["head_hidden"] < 1:
        raise ValueError(f"deepinsight: head_hidden must be an integer >= 1, got {p['head_hidden']!r}")
    if not 0.0 <= float(p["head_dropout"]) < 1.0:
        raise ValueError(f"deepinsight: head_dropout must be in [0, 1), got {p['head_dropout']!r}")
    for key in ("swap_prob", "swap_fraction"):
        if not 0.0 <= float(p[key]) <= 1.0:
            raise ValueError(f"deepinsight: {key} must be in [0, 1], got {p[key]!r}")
    if float(p["perplexity"]) <= 0:
        raise ValueError("deepinsight: perplexity must be > 0")
    if p["head_init"] not in HEAD_INITS:
        raise ValueError(f"deepinsight: head_init must be one of {list(HEAD_INITS)}, got {p['head_init']!r}")
    for key in ("drop_rate", "drop_path_rate"):
        value = p[key]
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not 0.0 <= float(value) < 1.0):
            raise ValueError(f"deepinsight: {key} must be null or a number in [0, 1), got {value!r}")
    cols = p["swap_columns"]
    if cols is not None and (not isinstance(cols, (list, tuple)) or not cols
                             or not all(isinstance(c, str) and c for c in cols)):
        raise ValueError(f"deepinsight: swap_columns must be null or a non-empty list of name patterns, got {cols!r}")


def swap_column_index(names: list[str], patterns: list[str] | None) -> np.ndarray | None:
    """Positions of the columns whose names match one of ``patterns`` (fnmatch); None (every column) without
    patterns. An error names the patterns when they match nothing."""
    if patterns is None:
        return None
    from fnmatch import fnmatchcase

    index = np.array([j for j, name in enumerate(names) if any(fnmatchcase(name, pat) for pat in patterns)],
                     dtype=np.int64)
    if len(index) == 0:
        raise ValueError(f"deepinsight: swap_columns {list(patterns)} match none of the {len(names)} columns")
    return index


# --------------------------------------------------------------------------- backbone


def _strip_prefix(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix):]: v for k, v in state.items()}
    return state


def _is_head_key(key: str, prefixes: tuple[str, ...]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A plain state dict from a weights file (also unwrapping {"state_dict": ...} / {"model": ...})."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"deepinsight: pretrained weights file {path} does not exist")
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model", "module"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"deepinsight: {path} does not hold a state dict of tensors")
    return _strip_prefix(dict(state), "module.")


def load_backbone_weights(backbone: nn.Module, path: str | Path, name: str = "") -> list[str]:
    """Load a local state dict into ``backbone``; classifier keys it lacks are dropped, all else strict.

    Returns the dropped keys. A file for another architecture raises a ValueError naming the file.
    """
    state = read_state_dict(path)
    own = backbone.state_dict()
    cfg_head = getattr(backbone, "pretrained_cfg", {}).get("classifier") or ()
    prefixes = HEAD_PREFIXES + ((cfg_head,) if isinstance(cfg_head, str) else tuple(cfg_head))
    dropped = [k for k, v in state.items()
               if _is_head_key(k, prefixes) and (k not in own or own[k].shape != v.shape)]
    state = {k: v for k, v in state.items() if k not in dropped}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    reshaped = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or reshaped:
        raise ValueError(
            f"deepinsight: pretrained weights {path} do not fit backbone {name or type(backbone).__name__}: "
            f"{len(missing)} missing (e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]}), "
            f"{len(reshaped)} of another shape (e.g. {reshaped[:3]})"
        )
    backbone.load_state_dict(state, strict=True)
    return dropped


def create_backbone(name: str, pretrained: bool | str | Path = False, drop_rate: float | None = None,
                    drop_path_rate: float | None = None) -> nn.Module:
    """A timm feature extractor (``num_classes=0``: pooled features, no classifier). ``drop_rate``: dropout
    on the pooled features (timm applies it in its head even without a classifier); ``drop_path_rate``:
    stochastic depth; None leaves timm's default."""
    import timm

    if not timm.is_model(name):
        raise ValueError(f"deepinsight: timm has no model {name!r}")
    kwargs: dict[str, Any] = {"num_classes": 0}
    if drop_rate is not None:
        kwargs["drop_rate"] = float(drop_rate)
    if drop_path_rate is not None:
        kwargs["drop_path_rate"] = float(drop_path_rate)
    if pretrained is True:
        try:
            return timm.create_model(name, pretrained=True, **kwargs)
        except Exception as err:  # no network on a compute node is the usual cause
            raise RuntimeError(
                f"deepinsight: could not get ImageNet weights for {name} ({err}); "
                "download them once and set pretrained to the local state-dict file"
            ) from err
    backbone = timm.create_model(name, pretrained=False, **kwargs)
    if pretrained:
        load_backbone_weights(backbone, pretrained, name)
    return backbone


def init_goog_(module: nn.Module) -> None:
    """geffnet's ``initialize_weight_goog`` for Linear layers (the winners' head init, both CNNs): weights
    uniform in ±1/sqrt(fan_out), biases 0."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            bound = 1.0 / math.sqrt(m.out_features)
            nn.init.uniform_(m.weight, -bound, bound)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class DeepInsightNet(nn.Module):
    """Scaled feature rows → rendered images → backbone features → FC(head_hidden) → ELU → FC logits."""

    def __init__(self, renderer: Renderer, backbone: nn.Module, n_out: int, head_hidden: int = 512,
                 head_dropout: float = 0.0, head_init: str = "torch") -> None:
        super().__init__()
        self.renderer = renderer
        self.backbone = backbone
        self.head = nn.Sequential(
            nn.Linear(int(backbone.num_features), head_hidden),
            nn.ELU(),
            nn.Dropout(head_dropout) if head_dropout > 0 else nn.Identity(),
            nn.Linear(head_hidden, n_out),
        )
        if head_init == "goog":
            init_goog_(self.head)
        self.channels_last = False  # set on CUDA, where convolutions prefer NHWC

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        images = self.renderer(x)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.head(self.backbone(images))


# --------------------------------------------------------------------------- the model


class DeepInsightCNN(TorchTabularModel):
    """A timm CNN on DeepInsight images; RAdam + cosine annealing, swap noise, label smoothing.

    Renders with ``context.feature_map`` (its names checked against ``context.feature_names``), or fits
    its own map on the training rows when the context has none; the saved state carries the map, so a
    model file predicts on raw features by itself. Trains through the one loop (:func:`fit_module`),
    with swap noise as its per-epoch input transform.
    """

    arch = "deepinsight"
    defaults = DEFAULTS
    train_defaults = TRAIN_DEFAULTS

    def check_params(self) -> None:
        super().check_params()
        validate_params(self.params)

    # ----------------------------------------------------------------- building

    @staticmethod
    def _check_map(fmap: FeatureMap, n_in: int, names: list[str] | None) -> None:
        if fmap.n_features != n_in:
            raise ValueError(f"deepinsight: the feature map has {fmap.n_features} features but X has {n_in} columns")
        if names is not None and list(names) != fmap.feature_names:
            diff = next((i for i, (a, b) in enumerate(zip(names, fmap.feature_names)) if a != b), len(names))
            raise ValueError(
                f"deepinsight: X's columns differ from the feature map's at position {diff} "
                f"({names[diff] if diff < len(names) else None!r} vs "
                f"{fmap.feature_names[diff] if diff < fmap.n_features else None!r})"
            )

    def _fit_map(self, X: np.ndarray, context: FitContext) -> FeatureMap:
        height, width = image_shape(self.param("image_size"))
        names = list(context.feature_names or [f"f{j}" for j in range(X.shape[1])])
        t0 = time.perf_counter()
        fmap = fit_feature_map(X, names, height, width, seed=context.seed, perplexity=float(self.param("perplexity")),
                               n_jobs=max(1, int(context.threads or 1)))
        context.logger.info("deepinsight: no feature map given; fitted a %d×%d map on %d training rows "
                            "(%d pixels used) in %.1f s", height, width, len(X),
                            int((fmap.occupancy() > 0).sum()), time.perf_counter() - t0)
        return fmap

    def build_network(self, fmap: FeatureMap, n_out: int, pretrained: bool | str | Path = False) -> DeepInsightNet:
        renderer = Renderer(fmap.pixel_index, fmap.height, fmap.width)
        backbone = create_backbone(str(self.param("backbone")), pretrained, self.param("drop_rate"),
                                   self.param("drop_path_rate"))
        return DeepInsightNet(renderer, backbone, n_out, int(self.param("head_hidden")),
                              float(self.param("head_dropout")), str(self.param("head_init")))

    def build_module(self, n_in: int, n_out: int) -> nn.Module:
        return self.build_network(self.feature_map_, n_out)

    # ----------------------------------------------------------------- training

    def fit(self, X, Y, X_valid, Y_valid, context: FitContext) -> DeepInsightCNN:
        seed_everything(context.seed)
        set_threads(context.threads)
        X, Y = np.asarray(X, dtype=np.float32), np.asarray(Y, dtype=np.float32)
        if X.ndim != 2 or Y.ndim != 2 or len(X) != len(Y) or len(X) < 2:
            raise ValueError(f"deepinsight: need X (n × p) and Y (n × t) with n >= 2, got {X.shape}, {Y.shape}")
        if context.feature_map is None:
            self.feature_map_ = self._fit_map(X, context)
        elif context.feature_map.fit_on == "fold":  # the winners': scaler and t-SNE on this fold's training rows
            self._check_map(context.feature_map, X.shape[1], context.feature_names)
            t0 = time.perf_counter()
            self.feature_map_ = context.feature_map.refit(X, n_jobs=max(1, int(context.threads or 1)))
            context.logger.info("deepinsight: fitted the %d×%d feature map on this fold's %d training rows "
                                "(%d pixels used) in %.1f s", self.feature_map_.height, self.feature_map_.width,
                                len(X), int((self.feature_map_.occupancy() > 0).sum()), time.perf_counter() - t0)
        else:
            self.feature_map_ = context.feature_map
            context.logger.info("deepinsight: rendering with the given %d×%d feature map (%d pixels used)",
                                self.feature_map_.height, self.feature_map_.width,
                                int((self.feature_map_.occupancy() > 0).sum()))
        self._check_map(self.feature_map_, X.shape[1], context.feature_names)
        self.n_in_, self.n_out_ = int(X.shape[1]), int(Y.shape[1])
        seed_everything(context.seed)  # weight init, whether or not a map was fitted first
        self.module_ = self.build_network(self.feature_map_, self.n_out_, self.param("pretrained"))
        cfg = self.train_config()
        if cfg.init_output_bias:
            init_output_bias(self.module_.head, Y)
        if context.device == "cuda":
            self.module_.channels_last = True
            self.module_.to(memory_format=torch.channels_last)
        has_valid = X_valid is not None and Y_valid is not None and len(X_valid) > 0
        prob, fraction = float(self.param("swap_prob")), float(self.param("swap_fraction"))
        swap_cols = swap_column_index(self.feature_map_.feature_names, self.param("swap_columns"))
        swap_idx = None if swap_cols is None else torch.as_tensor(swap_cols, device=torch.device(context.device))
        self.history_ = fit_module(
            self.module_, self.feature_map_.scale(X), Y,
            self.feature_map_.scale(X_valid) if has_valid else None, Y_valid if has_valid else None,
            cfg, context, augment=lambda X_e, gen: swap_noise(X_e, prob, fraction, gen, columns=swap_idx),
            name="deepinsight",
        )
        return self

    # ----------------------------------------------------------------- inference and state

    def predict(self, X: np.ndarray, context: FitContext | None = None) -> np.ndarray:
        if not hasattr(self, "module_"):
            raise RuntimeError("deepinsight: predict before fit")
        X = np.asarray(X, dtype=np.float32)
        if len(X) == 0:
            return np.zeros((0, self.n_out_), dtype=np.float32)
        device = torch.device(context.device) if context is not None else next(self.module_.parameters()).device
        return predict_module(self.module_, self.feature_map_.scale(X), context,
                              batch_size=self.train_config().eval_batch_size,
                              dtype=amp_dtype(self.train_config(), device))

    def state(self) -> dict[str, Any]:
        return {**super().state(), "feature_map": self.feature_map_.to_arrays()}

    @classmethod
    def from_state(cls, state: dict[str, Any], params: dict[str, Any]) -> DeepInsightCNN:
        """Rebuild without downloading or reading pretrained weights: they are in the saved state."""
        model = cls(**params)
        model.feature_map_ = FeatureMap.from_arrays(state["feature_map"])
        model.n_in_, model.n_out_ = int(state["n_in"]), int(state["n_out"])
        model.module_ = model.build_network(model.feature_map_, model.n_out_, pretrained=False)
        model.module_.load_state_dict(state["module"])
        model.module_.eval()
        model.history_ = list(state.get("history", []))
        return model
