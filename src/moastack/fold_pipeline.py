"""Everything a job fits inside its fold, as one scikit-learn-style object saved in the model file.

A job's model inputs are the feature set's columns, then (stacking) the upstream models' predictions
through a quantile transform, then (regression) target encodings of string key columns, then the
model's ``fold_steps`` (t-test selection, standardisation) over all of those. Each of these looks at
the fold's training rows only. :class:`FoldPipeline` holds them in that order:
``fit_transform`` on the training rows (and their targets) gives the training matrix, ``transform``
gives any other rows' matrix — the fold's validation rows, the test rows, and the new rows of
``moastack predict``. Training, tuning and prediction all build inputs through it: there is no second
"apply" path to keep in step.

``fit_transform`` may differ from ``fit().transform()`` on the same rows, as scikit-learn's
TargetEncoder does: with ``loo`` the training rows get leave-one-out encodings.

Sparse blocks (a feature set with ``sparse_fingerprint`` steps) pass through: every step above acts
on the dense columns only, and the rows' sparse block is appended after them unchanged, so the model
inputs are then one float32 CSR matrix (dense columns first, then the sparse ones). Fold steps
therefore never select or rescale fingerprint columns (a t-test over 200k count columns is not
what they are for); the feature set's frequency filter is the selection those columns get.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from moastack.columns import SMILES_COL
from moastack.features.fold_steps import apply_fold_steps, build_fold_steps, fit_fold_steps
from moastack.spec import ModelSpec
from moastack.stacking import apply_meta_transform, fit_meta_transform


@dataclass
class JobRows:
    """Some rows of a job's raw inputs: feature-set columns (dense ``X``, and the sparse block of a set with
    sparse steps), upstream predictions, string key columns (target encoding's keys; ``smiles`` for an arch
    that reads molecules)."""

    X: np.ndarray
    names: list[str]
    meta: np.ndarray | None = None
    meta_names: tuple[str, ...] = ()
    keys: pd.DataFrame | None = None
    sparse: sp.csr_matrix | None = None
    sparse_names: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.X)

    @property
    def smiles(self) -> np.ndarray | None:
        """The rows' molecules (the ``smiles`` key column), None when the rows carry none."""
        if self.keys is None or SMILES_COL not in self.keys.columns:
            return None
        return self.keys[SMILES_COL].to_numpy(dtype=object)

    def take(self, rows: np.ndarray) -> JobRows:
        """The rows selected by a boolean mask or an index array."""
        keys = None if self.keys is None else self.keys.iloc[np.asarray(rows)].reset_index(drop=True)
        return JobRows(self.X[rows], self.names, None if self.meta is None else self.meta[rows],
                       self.meta_names, keys, None if self.sparse is None else self.sparse[rows], self.sparse_names)


class FoldPipeline:
    """The per-fold transforms of one model (see the module docstring), fitted on its training rows."""

    def __init__(self, spec: ModelSpec, seed: int = 0) -> None:
        self.spec = spec
        self.seed = seed

    # ------------------------------------------------------------------ fit
    def fit_transform(self, rows: JobRows, Y: np.ndarray, any_moa: np.ndarray | None = None) -> np.ndarray:
        """Fit every step on the training ``rows`` and their targets ``Y``; return their model inputs.

        ``any_moa`` (1 for rows with any scored mechanism) is what a t-test selection contrasts.
        """
        self.feature_names_in_ = list(rows.names)
        self.meta_names_in_ = tuple(rows.meta_names)
        self.meta_transform_ = None
        if rows.meta is not None and rows.meta_names:
            fit_rows = np.ones(len(rows), dtype=bool)
            self.meta_transform_ = fit_meta_transform(rows.meta, fit_rows, self.spec.meta_transform, self.seed)
        X, names = self._with_meta(rows)
        self.target_encoder_ = None
        if self.spec.target_encoding:
            self.target_encoder_ = self._encoder()
            X = np.hstack([X, self.target_encoder_.fit_transform(self._keys(rows), Y)])
            names = [*names, *self.target_encoder_.get_feature_names_out().tolist()]
        self.fold_steps_ = build_fold_steps(list(self.spec.fold_steps))
        if self.fold_steps_:
            names = fit_fold_steps(self.fold_steps_, X, any_moa, names)
            X = apply_fold_steps(self.fold_steps_, X)
        self.sparse_names_in_ = tuple(rows.sparse_names)
        if self._uses_sparse(rows):
            names = [*names, *rows.sparse_names]
        self.names_out_ = list(names)
        return self._with_sparse(X, rows)

    # ------------------------------------------------------------ transform
    def transform(self, rows: JobRows) -> np.ndarray | sp.csr_matrix:
        """The model inputs of any rows, through the steps fitted on the training rows."""
        if not hasattr(self, "names_out_"):
            raise RuntimeError(f"model {self.spec.name}: fold pipeline used before fit")
        sparse_in = getattr(self, "sparse_names_in_", ())  # pipelines saved before sparse blocks had none
        if (list(rows.names) != self.feature_names_in_ or tuple(rows.meta_names) != self.meta_names_in_
                or tuple(rows.sparse_names) != sparse_in):
            raise ValueError(
                f"model {self.spec.name}: rows have {len(rows.names)} feature, {len(rows.sparse_names)} sparse and "
                f"{len(rows.meta_names)} upstream columns, the fold pipeline was fitted on "
                f"{len(self.feature_names_in_)}, {len(sparse_in)} and {len(self.meta_names_in_)} other ones; "
                "the inputs come from a different config"
            )
        X, _ = self._with_meta(rows)
        if self.target_encoder_ is not None:
            X = np.hstack([X, self.target_encoder_.transform(self._keys(rows))])
        return self._with_sparse(apply_fold_steps(self.fold_steps_, X), rows)

    # -------------------------------------------------------------- helpers
    def _with_meta(self, rows: JobRows) -> tuple[np.ndarray, list[str]]:
        """Feature-set columns then the transformed upstream predictions (or those alone with meta_only)."""
        if rows.meta is None or not rows.meta_names:
            return np.asarray(rows.X, dtype=np.float32), list(rows.names)
        meta = apply_meta_transform(self.meta_transform_, rows.meta)
        if self.spec.meta_only:
            return meta, list(rows.meta_names)
        return np.hstack([rows.X, meta]), [*rows.names, *rows.meta_names]

    def _uses_sparse(self, rows: JobRows) -> bool:
        return rows.sparse is not None and not self.spec.meta_only

    def _with_sparse(self, X: np.ndarray, rows: JobRows) -> np.ndarray | sp.csr_matrix:
        """The dense inputs, followed by the rows' sparse block as one float32 CSR matrix when there is one."""
        if not self._uses_sparse(rows):
            return X
        return sp.hstack([sp.csr_matrix(np.asarray(X, dtype=np.float32)), rows.sparse], format="csr",
                         dtype=np.float32)

    def _keys(self, rows: JobRows) -> pd.DataFrame:
        columns = list(self.spec.target_encoding["columns"])
        if rows.keys is None:
            raise ValueError(f"model {self.spec.name}: its target encoding needs the key columns {columns} of the rows")
        missing = [c for c in columns if c not in rows.keys.columns]
        if missing:
            raise ValueError(f"model {self.spec.name}: the rows lack the key columns {missing}")
        return rows.keys[columns].astype(str).reset_index(drop=True)

    def _encoder(self):
        from moastack.features.target_encoding import TargetEncoder

        cfg = self.spec.target_encoding
        return TargetEncoder(columns=cfg["columns"], stats=cfg["stats"], n_components=cfg["n_components"],
                             loo=cfg["loo"], smoothing=cfg["smoothing"], seed=self.seed)
