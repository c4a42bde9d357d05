"""DeepInsight CNN: a timm image backbone on feature rows rendered as images (REFERENCE.md "DeepInsight CNNs").

The winners' least-correlated models: EfficientNet-B3 / ResNeSt on 300×300 / 224×224 renders of the
g-/c- features. Here the backbone, image size and every training setting are params, and the defaults
are a CPU-affordable demo (resnet10t on 32×32). Set ``feature_map_`` (a :class:`FeatureMap`) before
``fit`` to share one map across folds and seeds; without it the model fits its own map on its training
rows. Rows are scaled once, swap noise is applied once per epoch to the shuffled scaled matrix, and
each batch is rendered on the training device right before the forward pass: no image files.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from moastack.deepinsight.augment import swap_noise
from moastack.deepinsight.feature_map import FeatureMap, fit_feature_map, image_shape
from moastack.deepinsight.render import Renderer
from moastack.models.base import FitContext, TabularModel
from moastack.models.losses import bce_with_logits, label_mask, smooth_targets
from moastack.models.trainer import (
    EarlyStopping,
    backward_step,
    batch_bounds,
    init_output_bias,
    seed_everything,
    set_threads,
    tune_cpu_allocator,
)

DEFAULTS: dict[str, Any] = {
    "backbone": "resnet10t",  # any timm model name
    "pretrained": False,  # False | True (timm download) | path to a local state-dict file
    "image_size": 32,  # int or [H, W]; used only when the model fits its own feature map
    "perplexity": 30.0,  # t-SNE, idem
    "head_hidden": 512,
    "head_dropout": 0.0,
    "epochs": 10,
    "batch_size": 64,
    "lr": 3.52e-4,  # RAdam
    "weight_decay": 0.0,
    "t_max": 5,  # CosineAnnealingLR, stepped per epoch
    "label_smoothing": 1e-3,
    "patience": 12,  # early stopping on the validation BCE; None = off
    "swap_prob": 0.10,
    "swap_fraction": 0.15,
    "amp": True,  # autocast on CUDA only: bf16 where supported, else fp16 with a GradScaler
    "eval_batch_size": 512,
    "init_output_bias": True,
}

#: state-dict prefixes of classifier layers that a pretrained file may hold but the backbone lacks
HEAD_PREFIXES = ("fc", "classifier", "head", "last_linear")


# --------------------------------------------------------------------------- params


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def validate_params(params: dict[str, Any]) -> None:
    """Reject unknown keys and impossible values now, not after a t-SNE and a first epoch."""
    unknown = sorted(set(params) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"DeepInsightCNN: unknown params {unknown}; known: {sorted(DEFAULTS)}")
    p = {**DEFAULTS, **params}
    image_shape(p["image_size"])
    if not isinstance(p["backbone"], str) or not p["backbone"]:
        raise ValueError(f"deepinsight: backbone must be a timm model name, got {p['backbone']!r}")
    if not isinstance(p["pretrained"], (bool, str, Path)):
        raise ValueError(f"deepinsight: pretrained must be true, false or a file path, got {p['pretrained']!r}")
    for key in ("epochs", "batch_size", "eval_batch_size", "head_hidden", "t_max"):
        if not _is_int(p[key]) or p[key] < 1:
            raise ValueError(f"deepinsight: {key} must be an integer >= 1, got {p[key]!r}")
    if p["patience"] is not None and (not _is_int(p["patience"]) or p["patience"] < 1):
        raise ValueError(f"deepinsight: patience must be an integer >= 1 or null, got {p['patience']!r}")
    for key in ("head_dropout", "label_smoothing"):
        if not 0.0 <= float(p[key]) < 1.0:
            raise ValueError(f"deepinsight: {key} must be in [0, 1), got {p[key]!r}")
    for key in ("swap_prob", "swap_fraction"):
        if not 0.0 <= float(p[key]) <= 1.0:
            raise ValueError(f"deepinsight: {key} must be in [0, 1], got {p[key]!r}")
    if float(p["lr"]) <= 0 or float(p["weight_decay"]) < 0 or float(p["perplexity"]) <= 0:
        raise ValueError("deepinsight: lr and perplexity must be > 0 and weight_decay >= 0")


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


def create_backbone(name: str, pretrained: bool | str | Path = False) -> nn.Module:
    """A timm feature extractor (``num_classes=0``: pooled features, no classifier)."""
    import timm

    if not timm.is_model(name):
        raise ValueError(f"deepinsight: timm has no model {name!r}")
    if pretrained is True:
        try:
            return timm.create_model(name, pretrained=True, num_classes=0)
        except Exception as err:  # no network on a compute node is the usual cause
            raise RuntimeError(
                f"deepinsight: could not get ImageNet weights for {name} ({err}); "
                "download them once and set pretrained to the local state-dict file"
            ) from err
    backbone = timm.create_model(name, pretrained=False, num_classes=0)
    if pretrained:
        load_backbone_weights(backbone, pretrained, name)
    return backbone


class DeepInsightNet(nn.Module):
    """Scaled feature rows → rendered images → backbone features → FC(head_hidden) → ELU → FC logits."""

    def __init__(self, renderer: Renderer, backbone: nn.Module, n_out: int, head_hidden: int = 512,
                 head_dropout: float = 0.0) -> None:
        super().__init__()
        self.renderer = renderer
        self.backbone = backbone
        self.head = nn.Sequential(
            nn.Linear(int(backbone.num_features), head_hidden),
            nn.ELU(),
            nn.Dropout(head_dropout) if head_dropout > 0 else nn.Identity(),
            nn.Linear(head_hidden, n_out),
        )
        self.channels_last = False  # set on CUDA, where convolutions prefer NHWC

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        images = self.renderer(x)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.head(self.backbone(images))


# --------------------------------------------------------------------------- helpers


def _derived_seed(seed: int, stream: int) -> int:
    """An independent seed per RNG stream (batch order, swap noise), so they don't mirror each other."""
    return int(np.random.SeedSequence([seed % 2**63, stream]).generate_state(1, dtype=np.uint64)[0] >> 1)


def _amp_dtype(enabled: bool, device: torch.device) -> torch.dtype | None:
    """Mixed-precision dtype on CUDA (bf16 where supported, else fp16); None = float32."""
    if not enabled or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _autocast(dtype: torch.dtype | None):
    return torch.autocast("cuda", dtype=dtype) if dtype is not None else nullcontext()


def _targets(Y: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Float32 targets on ``device`` with NaN cells zeroed, and the label mask (None if complete)."""
    Y_t = torch.as_tensor(np.ascontiguousarray(Y, dtype=np.float32)).to(device)
    mask = label_mask(Y_t)
    return (Y_t if mask is None else torch.nan_to_num(Y_t, nan=0.0)), mask


def _safe_prior_targets(Y: np.ndarray) -> np.ndarray:
    """Y for the output-bias prior, with all-NaN columns set to 0.5 (logit 0) instead of NaN."""
    Y = np.asarray(Y, dtype=np.float64)
    empty = np.isnan(Y).all(axis=0)
    if empty.any():
        Y = Y.copy()
        Y[:, empty] = 0.5
    return Y


@torch.inference_mode()
def _batched_logits(module: nn.Module, X: torch.Tensor, batch_size: int, dtype: torch.dtype | None
                    ) -> Iterator[tuple[int, int, torch.Tensor]]:
    """(start, stop, float32 logits) over ``X`` in eval mode."""
    for start in range(0, len(X), batch_size):
        stop = min(start + batch_size, len(X))
        with _autocast(dtype):
            logits = module(X[start:stop])
        yield start, stop, logits.float()


def _eval_loss(module: nn.Module, X: torch.Tensor, Y: torch.Tensor, mask: torch.Tensor | None,
               batch_size: int, dtype: torch.dtype | None) -> float:
    """Mean unsmoothed BCE over labelled cells (the early-stopping criterion)."""
    module.eval()
    total = torch.zeros((), dtype=torch.float64, device=X.device)
    for start, stop, logits in _batched_logits(module, X, batch_size, dtype):
        m = None if mask is None else mask[start:stop]
        total += bce_with_logits(logits, Y[start:stop], m, reduction="sum")
    module.train()
    count = Y.numel() if mask is None else int(mask.sum())
    return float(total) / max(count, 1)


# --------------------------------------------------------------------------- the model


class DeepInsightCNN(TabularModel):
    """A timm CNN on DeepInsight images; RAdam + cosine annealing, swap noise, label smoothing.

    Set ``feature_map_`` (and ``feature_names_in_``, checked against the map's names) before ``fit``;
    the saved state carries the map, so a model file predicts on raw features by itself.
    """

    arch = "deepinsight"

    def __init__(self, **params: Any) -> None:
        validate_params(params)
        super().__init__(**params)
        #: the feature map to render with; fitted on the training rows by ``fit`` when left None
        self.feature_map_: FeatureMap | None = None
        #: column names of X, set by the train job before fit (checked against the map's names)
        self.feature_names_in_: list[str] | None = None

    def param(self, key: str) -> Any:
        return self.params.get(key, DEFAULTS[key])

    # ----------------------------------------------------------------- building

    def _check_map(self, fmap: FeatureMap, n_in: int) -> None:
        if fmap.n_features != n_in:
            raise ValueError(f"deepinsight: the feature map has {fmap.n_features} features but X has {n_in} columns")
        names = self.feature_names_in_
        if names is not None and list(names) != fmap.feature_names:
            diff = next((i for i, (a, b) in enumerate(zip(names, fmap.feature_names)) if a != b), len(names))
            raise ValueError(
                f"deepinsight: X's columns differ from the feature map's at position {diff} "
                f"({names[diff] if diff < len(names) else None!r} vs "
                f"{fmap.feature_names[diff] if diff < fmap.n_features else None!r})"
            )

    def _fit_map(self, X: np.ndarray, context: FitContext) -> FeatureMap:
        height, width = image_shape(self.param("image_size"))
        names = list(self.feature_names_in_ or [f"f{j}" for j in range(X.shape[1])])
        t0 = time.perf_counter()
        fmap = fit_feature_map(X, names, height, width, seed=context.seed, perplexity=float(self.param("perplexity")),
                               n_jobs=max(1, int(context.threads or 1)))
        context.logger.info("deepinsight: no feature map given; fitted a %d×%d map on %d training rows "
                            "(%d pixels used) in %.1f s", height, width, len(X),
                            int((fmap.occupancy() > 0).sum()), time.perf_counter() - t0)
        return fmap

    def build_module(self, fmap: FeatureMap, n_out: int, pretrained: bool | str | Path = False) -> DeepInsightNet:
        renderer = Renderer(fmap.pixel_index, fmap.height, fmap.width)
        backbone = create_backbone(str(self.param("backbone")), pretrained)
        return DeepInsightNet(renderer, backbone, n_out, int(self.param("head_hidden")),
                              float(self.param("head_dropout")))

    # ----------------------------------------------------------------- training

    def fit(self, X, Y, X_valid, Y_valid, context: FitContext) -> DeepInsightCNN:
        seed_everything(context.seed)
        set_threads(context.threads)
        X, Y = np.asarray(X, dtype=np.float32), np.asarray(Y, dtype=np.float32)
        if X.ndim != 2 or Y.ndim != 2 or len(X) != len(Y) or len(X) < 2:
            raise ValueError(f"deepinsight: need X (n × p) and Y (n × t) with n >= 2, got {X.shape}, {Y.shape}")
        if self.feature_map_ is None:
            self.feature_map_ = self._fit_map(X, context)
        else:
            context.logger.info("deepinsight: rendering with the given %d×%d feature map (%d pixels used)",
                                self.feature_map_.height, self.feature_map_.width,
                                int((self.feature_map_.occupancy() > 0).sum()))
        self._check_map(self.feature_map_, X.shape[1])
        self.n_in_, self.n_out_ = int(X.shape[1]), int(Y.shape[1])
        seed_everything(context.seed)  # weight init, whether or not a map was fitted first
        self.module_ = self.build_module(self.feature_map_, self.n_out_, self.param("pretrained"))
        if self.param("init_output_bias"):
            init_output_bias(self.module_.head, _safe_prior_targets(Y))
        has_valid = X_valid is not None and Y_valid is not None and len(X_valid) > 0
        valid = (self.feature_map_.scale(X_valid), np.asarray(Y_valid, dtype=np.float32)) if has_valid else None
        self.history_ = self._train(self.feature_map_.scale(X), Y, valid, context)
        return self

    def _optimizer(self) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        params = [p for p in self.module_.parameters() if p.requires_grad]
        lr, weight_decay = float(self.param("lr")), float(self.param("weight_decay"))
        optimizer = torch.optim.RAdam(params, lr=lr, weight_decay=weight_decay)
        return optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=int(self.param("t_max")))

    def _train(self, Xs: np.ndarray, Y: np.ndarray, valid: tuple[np.ndarray, np.ndarray] | None,
               context: FitContext) -> list[dict[str, Any]]:
        """The epoch loop: shuffle, swap noise, render per batch, RAdam step; early stop on valid BCE."""
        device, log = torch.device(context.device), context.logger
        if device.type == "cpu":
            tune_cpu_allocator()
        module = self.module_.to(device).train()
        if device.type == "cuda":
            module.channels_last = True
            module.to(memory_format=torch.channels_last)
        X_t = torch.as_tensor(Xs).to(device)
        Y_t, mask_t = _targets(Y, device)
        Y_t = smooth_targets(Y_t, float(self.param("label_smoothing")))
        if valid is not None:
            Xv_t = torch.as_tensor(valid[0]).to(device)
            Yv_t, maskv_t = _targets(valid[1], device)
        perm_gen = torch.Generator(device=device).manual_seed(_derived_seed(context.seed, 1))
        noise_gen = torch.Generator(device=device).manual_seed(_derived_seed(context.seed, 2))
        optimizer, scheduler = self._optimizer()
        dtype = _amp_dtype(bool(self.param("amp")), device)
        scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
        epochs, patience = int(self.param("epochs")), self.param("patience")
        bounds = batch_bounds(len(X_t), int(self.param("batch_size")))
        history: list[dict[str, Any]] = []
        stopper = EarlyStopping(patience)
        for epoch in range(1, epochs + 1):
            t0 = time.perf_counter()
            lr = optimizer.param_groups[0]["lr"]
            perm = torch.randperm(len(X_t), generator=perm_gen, device=device)
            X_e = swap_noise(X_t[perm], float(self.param("swap_prob")), float(self.param("swap_fraction")), noise_gen)
            M_e = None if mask_t is None else mask_t[perm]
            train_loss = self._epoch(module, X_e, Y_t[perm], M_e, bounds, optimizer, scaler, dtype)
            scheduler.step()
            valid_loss = None
            if valid is not None:
                valid_loss = _eval_loss(module, Xv_t, Yv_t, maskv_t, int(self.param("eval_batch_size")), dtype)
            seconds = time.perf_counter() - t0
            history.append({"epoch": epoch, "train_loss": train_loss, "valid_loss": valid_loss, "lr": lr,
                            "seconds": seconds})
            log.info("deepinsight epoch %d/%d train %.5f valid %s lr %.2e %.2fs", epoch, epochs, train_loss,
                     "-" if valid_loss is None else f"{valid_loss:.5f}", lr, seconds)
            if valid_loss is None:
                continue
            if stopper.update(module, valid_loss):
                log.info("deepinsight: early stop after epoch %d: no improvement for %d epochs", epoch, stopper.stale)
                break
        stopper.restore(module, log, "deepinsight: ")
        module.eval()
        return history

    @staticmethod
    def _epoch(module: nn.Module, X: torch.Tensor, Y: torch.Tensor, mask: torch.Tensor | None,
               bounds: list[tuple[int, int]], optimizer: torch.optim.Optimizer,
               scaler: torch.amp.GradScaler | None, dtype: torch.dtype | None) -> float:
        """One pass over the (shuffled, noised) rows; the loss is summed on the device, read once."""
        module.train()
        loss_sum = torch.zeros((), dtype=torch.float32, device=X.device)
        for start, stop in bounds:
            optimizer.zero_grad(set_to_none=True)
            with _autocast(dtype):
                logits = module(X[start:stop])
            loss = bce_with_logits(logits.float(), Y[start:stop], None if mask is None else mask[start:stop])
            backward_step(loss, optimizer, scaler)
            loss_sum += loss.detach() * (stop - start)
        return float(loss_sum) / len(X)

    # ----------------------------------------------------------------- inference and state

    def predict(self, X: np.ndarray, context: FitContext | None = None) -> np.ndarray:
        if not hasattr(self, "module_"):
            raise RuntimeError("deepinsight: predict before fit")
        X = np.asarray(X, dtype=np.float32)
        if len(X) == 0:
            return np.zeros((0, self.n_out_), dtype=np.float32)
        if context is not None:
            set_threads(context.threads)
            self.module_.to(torch.device(context.device))
        device = next(self.module_.parameters()).device
        X_t = torch.as_tensor(self.feature_map_.scale(X)).to(device)
        dtype = _amp_dtype(bool(self.param("amp")), device)
        was_training = self.module_.training
        self.module_.eval()
        out = np.empty((len(X), self.n_out_), dtype=np.float32)
        for start, stop, logits in _batched_logits(self.module_, X_t, int(self.param("eval_batch_size")), dtype):
            out[start:stop] = torch.sigmoid(logits).cpu().numpy()
        self.module_.train(was_training)
        return out

    def state(self) -> dict[str, Any]:
        return {
            "module": {k: v.detach().cpu() for k, v in self.module_.state_dict().items()},
            "n_in": self.n_in_,
            "n_out": self.n_out_,
            "history": list(self.history_),
            "feature_map": self.feature_map_.to_arrays(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], params: dict[str, Any]) -> DeepInsightCNN:
        """Rebuild without downloading or reading pretrained weights: they are in the saved state."""
        model = cls(**params)
        model.feature_map_ = FeatureMap.from_arrays(state["feature_map"])
        model.n_in_, model.n_out_ = int(state["n_in"]), int(state["n_out"])
        model.module_ = model.build_module(model.feature_map_, model.n_out_, pretrained=False)
        model.module_.load_state_dict(state["module"])
        model.module_.eval()
        model.history_ = list(state.get("history", []))
        return model
