"""Target encoding of (cell type, compound) keys, fitted inside a fold.

The single-cell winners described a pair by statistics of the training targets of its cell type and of
its compound (mean, std, quantiles). With 18k genes, per-gene statistics would give 2 × 4 × 18k features
for a few hundred rows, so the statistics are taken in the space of a truncated SVD of the targets (fitted
on the same training rows): the mean of the scores is exactly the projection of the per-gene mean, and
the spread statistics summarise it along the directions that carry most variance. That keeps
``len(columns) × len(stats) × n_components`` float32 features.

Leakage rules: ``fit`` must see only the training fold. Rows of that fold that feed a model should be
encoded with ``loo=True`` (``fit_transform``): each row's statistics then come from the other rows of its
category, so a row never sees its own target, as a validation or test row never does. (The SVD basis
itself is fitted on all training rows; it is shared structure, not a row's value.)
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from moastack.target_svd import TargetSVD

_NAMED_QUANTILES = {"median": 0.5, "min": 0.0, "max": 1.0}
_QUANTILE = re.compile(r"q(\d{1,2})$")


def _stat_quantile(stat: str) -> float | None:
    """The quantile a stat name stands for ("q25" → 0.25, "median" → 0.5), None for mean/std."""
    if stat in ("mean", "std"):
        return None
    if stat in _NAMED_QUANTILES:
        return _NAMED_QUANTILES[stat]
    match = _QUANTILE.match(stat)
    if match is None:
        raise ValueError(f"unknown stat {stat!r}; use mean, std, median, min, max or qNN (q05, q25, q75, ...)")
    return int(match.group(1)) / 100.0


class TargetEncoder:
    """Per-category target statistics in SVD space (sklearn-style ``fit`` / ``transform``).

    ``smoothing`` m blends each category's statistic toward the global one by its row count n:
    (n·stat + m·global) / (n + m) (an m-estimate; 0 = off). Unseen categories get the global statistic.
    """

    def __init__(
        self,
        columns: Sequence[str] = ("cell_type", "compound"),
        stats: Sequence[str] = ("mean", "std", "q25", "q75"),
        n_components: int = 16,
        loo: bool = False,
        smoothing: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.columns = tuple(columns)
        self.stats = tuple(stats)
        if not self.columns or not self.stats:
            raise ValueError("TargetEncoder needs at least one column and one stat")
        for s in self.stats:
            _stat_quantile(s)
        if smoothing < 0:
            raise ValueError(f"smoothing must be >= 0, got {smoothing}")
        self.n_components = int(n_components)
        self.loo = bool(loo)
        self.smoothing = float(smoothing)
        self.seed = int(seed)

    # ------------------------------------------------------------------ statistics
    def _stats_of(self, Z: np.ndarray) -> np.ndarray:
        """(len(stats), k) statistics of the rows of Z."""
        out = np.empty((len(self.stats), Z.shape[1]))
        for i, s in enumerate(self.stats):
            q = _stat_quantile(s)
            out[i] = Z.mean(axis=0) if s == "mean" else Z.std(axis=0) if s == "std" else np.quantile(Z, q, axis=0)
        return out

    def _loo_stats_of(self, Z: np.ndarray) -> np.ndarray:
        """(m, len(stats), k): each row's statistics over the other m − 1 rows (m >= 2), vectorised."""
        m = len(Z)
        mu = Z.mean(axis=0)
        d = Z - mu
        ss = np.square(d).sum(axis=0)
        order = np.argsort(Z, axis=0, kind="stable")
        ranks = np.argsort(order, axis=0, kind="stable")
        sorted_z = np.take_along_axis(Z, order, axis=0)
        cols = np.arange(Z.shape[1])
        out = np.empty((m, len(self.stats), Z.shape[1]))
        for i, s in enumerate(self.stats):
            if s == "mean":
                out[:, i] = mu - d / (m - 1)
            elif s == "std":
                var = (ss - d**2) / (m - 1) - (d / (m - 1)) ** 2
                out[:, i] = np.sqrt(np.maximum(var, 0.0))
            else:  # numpy's linear quantile of the m − 1 others: skip each row's own rank in the sorted column
                pos = _stat_quantile(s) * (m - 2)
                lo = int(np.floor(pos))
                hi = min(lo + 1, m - 2)
                frac = pos - lo
                j_lo = lo + (lo >= ranks)
                j_hi = hi + (hi >= ranks)
                out[:, i] = sorted_z[j_lo, cols] * (1 - frac) + sorted_z[j_hi, cols] * frac
        return out

    def _smooth(self, stat: np.ndarray, count: np.ndarray) -> np.ndarray:
        """m-estimate blend toward the global statistic; count 0 gives the global one."""
        count = np.asarray(count, dtype=np.float64).reshape(-1, *([1] * (stat.ndim - 1)))
        m = self.smoothing
        with np.errstate(invalid="ignore", divide="ignore"):
            blended = (count * stat + m * self.global_) / (count + m)
        return np.where(count > 0, blended, self.global_) if m > 0 else np.where(count > 0, stat, self.global_)

    # ------------------------------------------------------------------ sklearn-style API
    def _keys(self, keys: pd.DataFrame) -> pd.DataFrame:
        missing = [c for c in self.columns if c not in keys.columns]
        if missing:
            raise ValueError(f"keys lack the encoded columns {missing}")
        return keys

    def fit(self, keys: pd.DataFrame, Y: np.ndarray) -> TargetEncoder:
        """Learn the SVD of Y and each category's statistics; ``keys`` and Y are the training fold only."""
        keys = self._keys(keys)
        Y = np.asarray(Y, dtype=np.float32)
        if len(keys) != len(Y):
            raise ValueError(f"keys have {len(keys)} rows but Y has {len(Y)}")
        self.svd_ = TargetSVD(self.n_components, self.seed).fit(Y)
        Z = self.svd_.transform(Y).astype(np.float64)
        self.global_ = self._stats_of(Z)
        self.categories_: dict[str, pd.Index] = {}
        self.counts_: dict[str, np.ndarray] = {}
        self.table_: dict[str, np.ndarray] = {}
        for col in self.columns:
            codes, uniques = pd.factorize(keys[col], use_na_sentinel=False)
            counts = np.bincount(codes, minlength=len(uniques))
            raw = np.stack([self._stats_of(Z[codes == c]) for c in range(len(uniques))])
            self.categories_[col] = pd.Index(uniques)
            self.counts_[col] = counts
            self.table_[col] = self._smooth(raw, counts)
        return self

    def transform(self, keys: pd.DataFrame) -> np.ndarray:
        """(n, len(columns)·len(stats)·k) float32 encodings; categories unseen in fit get the global stats."""
        keys = self._keys(keys)
        blocks = []
        for col in self.columns:
            codes = self.categories_[col].get_indexer(keys[col])
            table = np.concatenate([self.table_[col], self.global_[None]])  # code −1 → global row
            blocks.append(table[codes].reshape(len(keys), table[0].size))
        return np.hstack(blocks).astype(np.float32)

    def fit_transform(self, keys: pd.DataFrame, Y: np.ndarray) -> np.ndarray:
        """Fit, then encode the fit rows: leave-one-out statistics when ``loo``, else ``transform(keys)``."""
        self.fit(keys, Y)
        if not self.loo:
            return self.transform(keys)
        Z = self.svd_.transform(np.asarray(Y, dtype=np.float32)).astype(np.float64)
        n, k = Z.shape
        blocks = []
        for col in self.columns:
            codes = self.categories_[col].get_indexer(keys[col])
            enc = np.empty((n, len(self.stats), k))
            for c, m in enumerate(self.counts_[col]):
                rows = np.flatnonzero(codes == c)
                if m >= 2:
                    enc[rows] = self._smooth(self._loo_stats_of(Z[rows]), np.full(m, m - 1))
                else:  # a lone row has no others: the global statistics
                    enc[rows] = self.global_
            blocks.append(enc.reshape(n, len(self.stats) * k))
        return np.hstack(blocks).astype(np.float32)

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        """``te_<column>_<stat>_<component>`` in the column order of ``transform``."""
        width = max(2, len(str(self.n_components - 1)))
        return np.array([f"te_{col}_{s}_{j:0{width}d}" for col in self.columns for s in self.stats
                         for j in range(self.n_components)], dtype=object)
