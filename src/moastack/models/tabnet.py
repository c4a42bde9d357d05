"""TabNet (``arch: tabnet``): pytorch-tabnet's network as the winners used it, trained by moastack's loop.

The winners fitted pytorch-tabnet's ``TabNetRegressor`` on the targets with a label-smoothed BCE on its
outputs, early-stopped on the validation log loss. Here the same network (``pytorch_tabnet.tab_network.
TabNet``: attentive transformer, ghost batch norm, entmax/sparsemax masks) trains through
:func:`~moastack.models.trainer.fit_module` like every torch model: smoothed (and optionally clipped) BCE
with missing labels masked, minus ``lambda_sparse`` × the network's sparsity loss, gradient-norm clipping
(``clip_value``), Adam, ReduceLROnPlateau on the validation loss, early stopping with best-weight restore.
Defaults are REFERENCE.md's "2-stage NN + TabNet": n_d = n_a = 32, n_steps 1, gamma 0.9, lambda_sparse 0,
entmax masks, Adam lr 2e-2 wd 1e-5, batch 1024, virtual batch 128, 200 epochs, patience 50, label
smoothing 1e-4; the scheduler is the public notebook's ReduceLROnPlateau(factor 0.9, patience 5, min lr 1e-5).
The winners' training script differs (``configs/winner.yaml`` follows it): ``scheduler: multistep`` with
``milestones: [100, 150]`` and ``step_factor: 0.9`` (their MultiStepLR), ``monitor: smoothed_bce`` (their
early-stopping metric: the log loss on the smoothed labels), and categorical embeddings of columns named
in ``cat_columns`` (pytorch-tabnet's ``cat_idxs``, found by name; ``cat_dims`` categories each, integer
codes 0..n-1, e.g. the ``ordinal`` feature step's ``cp_time_code``/``cp_dose_code``; ``cat_emb_dim``).

TabNet's output layer has no bias, so each target's training prior logit is added to its outputs
(``init_output_bias``): it starts at the prior instead of p = 0.5 (pytorch-tabnet itself does not; off
in ``configs/winner.yaml``). pytorch-tabnet is imported on first use.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from moastack.models.base import FitContext, TabularModel
from moastack.models.trainer import TrainConfig, fit_module, predict_module, seed_everything, set_threads
from moastack.targets import prior_logit

SCHEDULERS = ("plateau", "multistep", "none")
#: plain tensor attributes of pytorch-tabnet 4.1's modules (not buffers: ``Module.to`` would leave them behind)
_TENSOR_ATTRS = ("group_attention_matrix", "embedding_group_matrix")


def _count(value: Any, least: int) -> bool:
    """An int (not a bool) of at least ``least``."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= least


class TabNetLogits(nn.Module):
    """pytorch-tabnet's network with a fixed per-target offset on its outputs; keeps the last forward's
    sparsity loss for the training loss."""

    def __init__(self, network: nn.Module, offset: np.ndarray) -> None:
        super().__init__()
        self.network = network
        self.register_buffer("offset", torch.as_tensor(np.asarray(offset, dtype=np.float32)))
        self.sparsity_loss: torch.Tensor | None = None
        embedder = network.embedder
        self.embeds = not embedder.skip_embedding
        if self.embeds:  # where each input column lands after pytorch-tabnet's embedding (its column order)
            cont = embedder.continuous_idx.cpu().numpy().astype(bool)
            widths = np.ones(len(cont), dtype=np.int64)
            widths[~cont] = [e.embedding_dim for e in embedder.embeddings]
            starts = np.concatenate([[0], np.cumsum(widths)[:-1]])
            self.cat_slices = [(int(i), int(starts[i]), int(widths[i])) for i in np.flatnonzero(~cont)]
            self.register_buffer("cont_in", torch.as_tensor(np.flatnonzero(cont)), persistent=False)
            self.register_buffer("cont_out", torch.as_tensor(starts[cont]), persistent=False)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """pytorch-tabnet's ``EmbeddingGenerator.forward`` (each categorical column replaced by its embedding,
        in place) in a few tensor ops instead of a Python loop over every column."""
        embedder = self.network.embedder
        out = x.new_empty((x.shape[0], embedder.post_embed_dim))
        out[:, self.cont_out] = x[:, self.cont_in]
        for k, (col, start, width) in enumerate(self.cat_slices):
            out[:, start:start + width] = embedder.embeddings[k](x[:, col].long())
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.embeds:
            out, self.sparsity_loss = self.network.tabnet(self.embed(x))
        else:
            out, self.sparsity_loss = self.network(x)
        return out + self.offset

    def _apply(self, fn, *args, **kwargs):
        super()._apply(fn, *args, **kwargs)
        for module in self.modules():  # the group matrices move with the parameters
            for name in _TENSOR_ATTRS:
                value = getattr(module, name, None)
                if isinstance(value, torch.Tensor):
                    setattr(module, name, fn(value))
        return self


class TabNetModel(TabularModel):
    """TabNet on label-smoothed BCE; probabilities = sigmoid(outputs + prior logit)."""

    arch = "tabnet"
    uses_torch = True
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
        "scheduler": "plateau",  # plateau | multistep | none
        "plateau_factor": 0.9,
        "plateau_patience": 5,
        "min_lr": 1e-5,
        "milestones": None,  # multistep: the lr × step_factor after each of these epochs (MultiStepLR)
        "step_factor": 0.1,  # MultiStepLR's gamma (torch's default)
        "monitor": "bce",  # what early stopping watches: bce (0/1 labels) | smoothed_bce (the smoothed labels)
        # categorical embeddings (pytorch-tabnet's cat_idxs/cat_dims/cat_emb_dim): the feature columns, by
        # name, that hold integer codes 0..n-1; the number of categories of each; the embedding width
        # (one int, or one per column). Empty: every column is numeric.
        "cat_columns": [],
        "cat_dims": [],
        "cat_emb_dim": 1,
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
        self.cat_spec()
        self.train_config(1)

    def cat_spec(self) -> tuple[list[str], list[int], list[int]]:
        """The categorical columns' names, category counts and embedding widths, checked."""
        cols, dims, emb = self.param("cat_columns"), self.param("cat_dims"), self.param("cat_emb_dim")
        if not isinstance(cols, (list, tuple)) or not all(isinstance(c, str) for c in cols) or len(set(cols)) != len(cols):
            raise ValueError(f"tabnet: cat_columns must be a list of distinct column names, got {cols!r}")
        if not isinstance(dims, (list, tuple)) or len(dims) != len(cols) or not all(_count(d, 2) for d in dims):
            raise ValueError(f"tabnet: cat_dims needs one category count >= 2 per cat_columns entry, got {dims!r}")
        emb = [emb] * len(cols) if _count(emb, 1) else emb
        if not isinstance(emb, (list, tuple)) or len(emb) != len(cols) or not all(_count(e, 1) for e in emb):
            raise ValueError(f"tabnet: cat_emb_dim must be an int >= 1 or one per cat_columns entry, got {emb!r}")
        return list(cols), [int(d) for d in dims], [int(e) for e in emb]

    def cat_indices(self, X, context: FitContext) -> list[int]:
        """Where the ``cat_columns`` are in X (by the context's column names); their codes checked."""
        cols, dims, _ = self.cat_spec()
        if not cols:
            return []
        names = list(context.feature_names or [])
        missing = [c for c in cols if c not in names]
        if missing:
            raise ValueError(f"tabnet: cat_columns {missing} are not among the model's input columns "
                             f"({len(names)} named; an ordinal feature step makes cp_time_code/cp_dose_code)")
        idxs = [names.index(c) for c in cols]
        for col, i, n in zip(cols, idxs, dims, strict=True):
            codes = np.asarray(X[:, i])
            if not (np.all(codes == np.round(codes)) and codes.min(initial=0) >= 0 and codes.max(initial=0) < n):
                raise ValueError(f"tabnet: cat column {col!r} must hold integer codes 0..{n - 1}")
        return idxs

    def train_config(self, n_rows: int) -> TrainConfig:
        """The loop's settings from TabNet's params (pytorch-tabnet's names, as the winners' configs use them)."""
        clip = self.param("target_clip")
        return TrainConfig(
            epochs=int(self.param("max_epochs")), batch_size=min(int(self.param("batch_size")), max(n_rows, 1)),
            drop_last=bool(self.param("drop_last")), lr=float(self.param("lr")),
            weight_decay=float(self.param("weight_decay")), scheduler=str(self.param("scheduler")),
            plateau_factor=float(self.param("plateau_factor")), plateau_patience=int(self.param("plateau_patience")),
            min_lr=float(self.param("min_lr")), patience=int(self.param("patience")),
            label_smoothing=float(self.param("label_smoothing")),
            target_clip=None if clip is None else (float(clip[0]), float(clip[1])),
            grad_clip=None if not self.param("clip_value") else float(self.param("clip_value")),
            eval_batch_size=int(self.param("eval_batch_size")), init_output_bias=False, amp=False,
            milestones=self.param("milestones"), step_factor=float(self.param("step_factor")),
            monitor=str(self.param("monitor")),
        )

    def build_module(self, n_in: int, n_out: int, virtual_batch_size: int, offset: np.ndarray,
                     cat_idxs: list[int] | tuple[int, ...] = ()) -> TabNetLogits:
        with warnings.catch_warnings():  # pytorch-tabnet 4.1 imports a deprecated scipy.sparse path
            warnings.simplefilter("ignore", DeprecationWarning)
            from pytorch_tabnet.tab_network import TabNet

        network = TabNet(
            n_in, n_out, n_d=int(self.param("n_d")), n_a=int(self.param("n_a")), n_steps=int(self.param("n_steps")),
            gamma=float(self.param("gamma")), n_independent=int(self.param("n_independent")),
            n_shared=int(self.param("n_shared")), virtual_batch_size=int(virtual_batch_size),
            momentum=float(self.param("momentum")), mask_type=str(self.param("mask_type")),
            group_attention_matrix=torch.eye(n_in), **self._embedding_args(cat_idxs),
        )
        return TabNetLogits(network, offset)

    def _embedding_args(self, cat_idxs) -> dict[str, list[int]]:
        """pytorch-tabnet's cat_idxs/cat_dims/cat_emb_dim, sorted by column as its TabModel sorts them."""
        _, dims, emb = self.cat_spec()
        if not cat_idxs:
            return {}
        order = np.argsort(cat_idxs)
        return {"cat_idxs": [int(cat_idxs[i]) for i in order], "cat_dims": [dims[i] for i in order],
                "cat_emb_dim": [emb[i] for i in order]}

    def fit(self, X, Y, X_valid, Y_valid, context: FitContext) -> TabNetModel:
        seed_everything(context.seed)
        set_threads(context.threads)
        cfg = self.train_config(len(X))
        if len(X) < int(self.param("batch_size")):  # tiny data: one batch of all rows instead of none at all
            context.logger.warning("tabnet: %d training rows < batch_size %d; using one batch of %d",
                                   len(X), self.param("batch_size"), len(X))
        self.n_in_, self.n_out_ = int(X.shape[1]), int(Y.shape[1])
        self.cat_idxs_ = self.cat_indices(X, context)
        if self.cat_idxs_ and X_valid is not None and len(X_valid):
            self.cat_indices(X_valid, context)
        self.virtual_batch_size_ = min(int(self.param("virtual_batch_size")), cfg.batch_size)
        offset = prior_logit(Y) if self.param("init_output_bias") else np.zeros(Y.shape[1])
        self.module_ = self.build_module(self.n_in_, self.n_out_, self.virtual_batch_size_, offset, self.cat_idxs_)
        lambda_sparse = float(self.param("lambda_sparse"))
        penalty = (lambda: -lambda_sparse * self.module_.sparsity_loss) if lambda_sparse else None
        self.history_ = fit_module(self.module_, X, Y, X_valid, Y_valid, cfg, context, penalty=penalty, name="tabnet")
        return self

    def predict(self, X, context: FitContext | None = None) -> np.ndarray:
        return predict_module(self.module_, X, context, batch_size=int(self.param("eval_batch_size")))

    def state(self) -> dict[str, Any]:
        return {
            "module": {k: v.detach().cpu() for k, v in self.module_.state_dict().items()},
            "n_in": self.n_in_,
            "n_out": self.n_out_,
            "virtual_batch_size": self.virtual_batch_size_,
            "cat_idxs": list(self.cat_idxs_),
            "history": list(self.history_),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], params: dict[str, Any]) -> TabNetModel:
        model = cls(**params)
        model.n_in_, model.n_out_ = int(state["n_in"]), int(state["n_out"])
        model.virtual_batch_size_ = int(state["virtual_batch_size"])
        model.cat_idxs_ = [int(i) for i in state.get("cat_idxs", [])]  # states saved before embeddings had none
        model.module_ = model.build_module(model.n_in_, model.n_out_, model.virtual_batch_size_,
                                          np.zeros(model.n_out_), model.cat_idxs_)
        model.module_.load_state_dict(state["module"])
        model.module_.eval()
        model.history_ = list(state.get("history", []))
        return model
