"""``chemprop``: chemprop's directed message-passing network (D-MPNN) on the rows' molecules.

The network is chemprop v2's own building blocks, as its ``MPNN`` assembles them: the featurizer
(``SimpleMoleculeMolGraphFeaturizer``, chemprop's default atom and bond features), ``BondMessagePassing``
(``depth`` steps over directed bonds, ``hidden`` wide), a graph readout (``aggregation``: chemprop's
default ``norm`` sum / 100, or ``mean`` / ``sum``), optional batch norm, then its ``MLP`` head
(``ffn_layers`` hidden layers of ``ffn_hidden``) to one logit per target. The molecules are the rows'
SMILES, which the job hands over in its :class:`FitContext` (``smiles``; ``Arch.molecules``); the
feature set's columns are ignored unless ``descriptors: true``, which feeds them to the head beside the
graph embedding, as chemprop's extra descriptors ``X_d`` (scale them with the model's ``fold_steps``).

Training runs through moastack's one loop (:func:`moastack.models.trainer.fit_module`), not chemprop's
Lightning ``Trainer``. The loop gives this arch what every other torch arch has, with no second copy:
the masked multitask BCE (missing labels give no gradient), ``pos_weight: balanced`` for rare
positives, the output bias started at each assay's rate, OneCycle (chemprop's Noam schedule's shape:
a warm-up from ``max_lr / div_factor`` to ``max_lr``, then a decay), the best-validation epoch's
weights restored (as chemprop keeps its best checkpoint; early stopping with ``patience``), seeded
dropout and batch order (bitwise reproducible on CPU), the job's threads, a per-epoch history in
``metrics.json``; chemprop's loop would need a checkpoint folder, its own seeding and logger set-up
and a second early-stopping rule. The price is one adapter: the loop shuffles and slices rows of a
float matrix, so each row carries its row number (column 0, then the descriptors) and
:class:`_MoleculeRows` turns a batch of row numbers into chemprop's ``BatchMolGraph`` of those rows.

``import chemprop`` (and with it Lightning: 10-17 s on a 2-core box) happens only when a ``chemprop`` model
is built, fitted or loaded; the registry imports this module for the ``chemprop`` arch alone.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from moastack.models.base import FitContext
from moastack.models.trainer import (
    TorchTabularModel,
    fit_module,
    init_output_bias,
    predict_module,
    seed_everything,
    set_threads,
)

AGGREGATIONS = ("norm", "mean", "sum")
_MAX_ROWS = 2**24  # row numbers travel as float32, exact up to here


def _chemprop():
    try:
        import chemprop
    except ImportError as err:  # pragma: no cover - chemprop is a declared dependency (Python >= 3.11)
        raise ImportError("arch chemprop needs the chemprop package (pip install 'chemprop>=2.3'; "
                          "Python >= 3.11)") from err
    return chemprop


def featurize(smiles: np.ndarray, featurizer=None) -> list:
    """chemprop ``MolGraph``s of ``smiles`` (explicit hydrogens dropped, as chemprop reads SMILES);
    a ValueError names the first entries RDKit cannot parse."""
    chemprop = _chemprop()
    from chemprop.utils import make_mol

    from moastack.data.table import quiet_rdkit

    featurizer = featurizer or chemprop.featurizers.SimpleMoleculeMolGraphFeaturizer()
    graphs, bad = [], []
    with quiet_rdkit():  # RDKit's own warnings (a lone [H]...) on stderr; parse failures are named below
        for i, smi in enumerate(smiles):
            try:
                graphs.append(featurizer(make_mol(str(smi), keep_h=False, add_h=False)))
            except RuntimeError:
                bad.append(f"row {i}: {smi!r}")
    if bad:
        raise ValueError(f"chemprop: {len(bad)} SMILES RDKit cannot parse: {', '.join(bad[:5])}")
    return graphs


class DMPNN(nn.Module):
    """chemprop's D-MPNN: bond message passing → graph readout → (batch norm) → MLP head, one logit per target."""

    def __init__(self, n_desc: int, n_out: int, hidden: int, depth: int, dropout: float, ffn_hidden: int,
                 ffn_layers: int, aggregation: str, batch_norm: bool) -> None:
        super().__init__()
        cp = _chemprop().nn
        d_v, d_e = _chemprop().featurizers.SimpleMoleculeMolGraphFeaturizer().shape
        self.message_passing = cp.BondMessagePassing(d_v=d_v, d_e=d_e, d_h=hidden, depth=depth, dropout=dropout)
        self.aggregation = {"norm": cp.NormAggregation, "mean": cp.MeanAggregation, "sum": cp.SumAggregation}[
            aggregation]()
        self.batch_norm = nn.BatchNorm1d(hidden) if batch_norm else nn.Identity()
        # registered last: its final Linear is the output layer (init_output_bias looks for it)
        self.ffn = cp.ffn.MLP.build(hidden + n_desc, n_out, hidden_dim=ffn_hidden, n_layers=ffn_layers,
                                    dropout=dropout)

    def forward(self, bmg, X_d: torch.Tensor | None = None) -> torch.Tensor:
        H = self.batch_norm(self.aggregation(self.message_passing(bmg), bmg.batch))
        if X_d is not None:
            H = torch.cat([H, X_d.to(H.dtype)], dim=1)
        return self.ffn(H)


class _MoleculeRows(nn.Module):
    """The loop's view of the network: a batch of the loop's rows (row number, then descriptors) → logits
    of those rows' molecules. ``graphs`` are the featurized molecules the row numbers index (a plain list,
    not part of the state dict)."""

    def __init__(self, network: DMPNN, graphs: list) -> None:
        super().__init__()
        self.network = network
        self.graphs = graphs

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        from chemprop.data import BatchMolGraph

        index = rows[:, 0].long().tolist()
        bmg = BatchMolGraph([self.graphs[i] for i in index])
        bmg.to(rows.device)
        return self.network(bmg, rows[:, 1:] if rows.shape[1] > 1 else None)


class ChempropModel(TorchTabularModel):
    arch = "chemprop"
    defaults = {
        "hidden": 300,  # message-passing width (chemprop's d_h)
        "depth": 3,  # message-passing steps
        "dropout": 0.0,
        "ffn_hidden": 300,
        "ffn_layers": 1,  # hidden layers of the head
        "aggregation": "norm",  # norm (sum / 100, chemprop's default) | mean | sum
        "batch_norm": False,
        "descriptors": False,  # feed the feature set's columns to the head (chemprop's X_d)
    }
    # chemprop's defaults: batch 64, Adam without weight decay, lr 1e-4 -> 1e-3 warm-up then decay, the
    # best-validation epoch kept; float32 throughout (its scatter sums are not autocast-safe)
    train_defaults = {"epochs": 30, "batch_size": 64, "scheduler": "onecycle", "max_lr": 1e-3, "div_factor": 10.0,
                      "pct_start": 0.07, "weight_decay": 0.0, "patience": None, "eval_batch_size": 1024,
                      "amp": False}

    def check_params(self) -> None:
        super().check_params()
        for key in ("hidden", "depth", "ffn_hidden", "ffn_layers"):
            value = self.param(key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"chemprop: {key} must be a positive integer, got {value!r}")
        dropout = self.param("dropout")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ValueError(f"chemprop: dropout must be in [0, 1), got {dropout!r}")
        if self.param("aggregation") not in AGGREGATIONS:
            raise ValueError(f"chemprop: aggregation must be one of {AGGREGATIONS}, got {self.param('aggregation')!r}")
        for key in ("batch_norm", "descriptors"):
            if not isinstance(self.param(key), bool):
                raise ValueError(f"chemprop: {key} must be true or false, got {self.param(key)!r}")

    def build_module(self, n_in: int, n_out: int) -> nn.Module:
        """The network for ``n_in`` descriptors (0 without ``descriptors``) and ``n_out`` targets."""
        return DMPNN(n_in, n_out, hidden=self.param("hidden"), depth=self.param("depth"),
                     dropout=float(self.param("dropout")), ffn_hidden=self.param("ffn_hidden"),
                     ffn_layers=self.param("ffn_layers"), aggregation=self.param("aggregation"),
                     batch_norm=self.param("batch_norm"))

    # ------------------------------------------------------------------------------------------ rows
    def _inputs(self, X: np.ndarray, first: int = 0) -> np.ndarray:
        """The loop's rows: row numbers from ``first`` in column 0, then the descriptors (when used)."""
        if first + len(X) > _MAX_ROWS:
            raise ValueError(f"chemprop: {first + len(X)} rows; at most {_MAX_ROWS} fit one job")
        number = np.arange(first, first + len(X), dtype=np.float32)[:, None]
        if not self.param("descriptors"):
            return number
        return np.hstack([number, np.asarray(X, dtype=np.float32)])

    @staticmethod
    def _smiles(smiles: np.ndarray | None, n: int, what: str) -> np.ndarray:
        if smiles is None:
            raise ValueError(f"chemprop reads molecules, but the {what} rows come without SMILES (FitContext.smiles; "
                             "a table source with data.table.smiles_column gives them)")
        if len(smiles) != n:
            raise ValueError(f"chemprop: {len(smiles)} SMILES for {n} {what} rows")
        return np.asarray(smiles, dtype=object)

    # ------------------------------------------------------------------------------------------- fit
    def fit(self, X, Y, X_valid, Y_valid, context: FitContext) -> ChempropModel:
        smiles = self._smiles(context.smiles, len(X), "training")
        has_valid = X_valid is not None and Y_valid is not None and len(X_valid) > 0
        valid_smiles = self._smiles(context.smiles_valid, len(X_valid), "validation") if has_valid else None
        seed_everything(context.seed)  # weight init
        set_threads(context.threads)
        self.n_in_ = int(X.shape[1]) if self.param("descriptors") else 0
        self.n_out_ = int(Y.shape[1])
        self.module_ = self.build_module(self.n_in_, self.n_out_)
        cfg = self.train_config()
        if cfg.init_output_bias:
            init_output_bias(self.module_, Y)
        # one table of the training then the validation molecules; the validation rows number after the training ones
        graphs = featurize(smiles if valid_smiles is None else np.concatenate([smiles, valid_smiles]))
        rows = _MoleculeRows(self.module_, graphs)
        valid_rows = self._inputs(X_valid, first=len(X)) if has_valid else None
        self.history_ = fit_module(rows, self._inputs(X), Y, valid_rows, Y_valid if has_valid else None, cfg,
                                   context, name="chemprop")
        return self

    def predict(self, X, context: FitContext | None = None) -> np.ndarray:
        if len(X) == 0:
            return np.zeros((0, self.n_out_), dtype=np.float32)
        smiles = self._smiles(None if context is None else context.smiles, len(X), "predicted")
        rows = _MoleculeRows(self.module_, featurize(smiles))
        return predict_module(rows, self._inputs(X), context, batch_size=self.train_config().eval_batch_size)
