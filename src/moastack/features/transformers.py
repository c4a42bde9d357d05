"""DataFrame-in, DataFrame-out feature steps, following scikit-learn's estimator conventions.

Every step takes the whole feature frame (``sig_id``, ``cp_*`` and float feature columns) and returns
a new frame with the same rows in the same order: it either replaces some columns in place
(``RankGauss``, ``Standardize``), adds columns (``BlockPCA``, ``RowStats``, ``OneHot``) or drops some
(``VarianceSelector``). Keeping the whole frame lets a config chain steps freely, and keeping ``sig_id``
means no step can lose track of which row is which.

Conventions (see STYLE.md, scikit-learn section): ``__init__`` only stores its arguments; ``fit``
records the columns it acts on in ``columns_`` and its learned state in other trailing-underscore
attributes; ``transform`` calls ``check_is_fitted``, uses only what ``fit`` recorded and never refits,
so a fitted step pickled with joblib transforms new samples exactly as it did at fit time.

New steps (UMAP, factor analysis, k-means, fingerprints...) subclass ``FeatureStep`` and register
themselves under a config name with ``@register("name")``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import cached_property

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.decomposition import PCA
from sklearn.feature_selection import VarianceThreshold
from sklearn.preprocessing import QuantileTransformer, StandardScaler
from sklearn.utils.validation import check_is_fitted, check_random_state

from moastack.data.columns import CP_DOSES, CP_TIMES, ID_COL, META_COLS

#: block name -> short tag used in the names of columns a step derives from that block
BLOCK_TAGS = {"genes": "g", "cells": "c", "all": "all"}
_BLOCK_PREFIX = {"genes": "g-", "cells": "c-"}
#: columns that are never features: the key and the raw experiment metadata
NON_FEATURE_COLS = (ID_COL, *META_COLS)

#: config step name -> class; filled by ``@register``
STEP_CLASSES: dict[str, type[FeatureStep]] = {}


def register(name: str) -> Callable[[type], type]:
    """Make a step class available to feature-set configs under ``name``."""

    def deco(cls: type) -> type:
        if name in STEP_CLASSES:
            raise ValueError(f"feature step {name!r} registered twice")
        STEP_CLASSES[name] = cls
        cls.step_name = name
        return cls

    return deco


def as_blocks(blocks: str | Iterable[str]) -> list[str]:
    """Accept ``"genes"`` as well as ``["genes", "cells"]`` in configs."""
    blocks = [blocks] if isinstance(blocks, str) else list(blocks)
    unknown = [b for b in blocks if b not in BLOCK_TAGS]
    if unknown or not blocks:
        raise ValueError(f"unknown or empty blocks {unknown or blocks}; known: {sorted(BLOCK_TAGS)}")
    return blocks


def block_columns(df: pd.DataFrame, block: str) -> list[str]:
    """Columns of ``block`` in the frame as it is now (so later steps see earlier steps' outputs).

    ``genes``/``cells`` are the raw ``g-``/``c-`` columns; ``all`` is every float column except
    ``sig_id`` and ``cp_*`` (so one-hot columns are never rescaled or dropped by an ``all`` step).
    """
    as_blocks(block)
    if block in _BLOCK_PREFIX:
        return [c for c in df.columns if c.startswith(_BLOCK_PREFIX[block])]
    return [
        c
        for c, dtype in df.dtypes.items()
        if c != ID_COL and not c.startswith("cp_") and pd.api.types.is_float_dtype(dtype)
    ]


def select_columns(df: pd.DataFrame, blocks: str | Iterable[str]) -> list[str]:
    """Union of the blocks' columns in frame order, refusing an empty selection (a config mistake)."""
    wanted: set[str] = set()
    for block in as_blocks(blocks):
        cols = block_columns(df, block)
        if not cols:
            raise ValueError(f"block {block!r} selects no columns in a frame of {df.shape[1]} columns")
        wanted.update(cols)
    return [c for c in df.columns if c in wanted]


def _values(df: pd.DataFrame, cols: Sequence[str]) -> np.ndarray:
    """The columns as one float32 matrix, failing clearly if a fitted column is missing."""
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise KeyError(f"{len(missing)} fitted columns missing from the frame, e.g. {missing[:5]}")
    return df[list(cols)].to_numpy(dtype=np.float32)


def replace_columns(df: pd.DataFrame, cols: Sequence[str], values: np.ndarray) -> pd.DataFrame:
    """A new frame with ``cols`` replaced by ``values`` (float32), column order unchanged."""
    new = pd.DataFrame(np.asarray(values, dtype=np.float32), columns=list(cols), index=df.index)
    rest = df.drop(columns=list(cols))
    return pd.concat([rest, new], axis=1)[list(df.columns)]


def add_columns(df: pd.DataFrame, names: Sequence[str], values: np.ndarray) -> pd.DataFrame:
    """A new frame with float32 columns appended; a name clash means two steps collide in the config."""
    clash = [n for n in names if n in df.columns]
    if clash:
        raise ValueError(f"feature step would overwrite existing columns {clash[:5]}")
    new = pd.DataFrame(np.asarray(values, dtype=np.float32), columns=list(names), index=df.index)
    return pd.concat([df, new], axis=1)


class FeatureStep(TransformerMixin, BaseEstimator):
    """Base of all steps: DataFrame in, DataFrame out, ``columns_`` = the columns the fit looked at."""

    step_name: str = ""

    def fit(self, X: pd.DataFrame, y: None = None) -> FeatureStep:  # pragma: no cover - abstract
        raise NotImplementedError

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:  # pragma: no cover - abstract
        raise NotImplementedError


@register("rankgauss")
class RankGauss(FeatureStep):
    """Map each column to a standard normal through its empirical quantiles (the winners' "RankGauss").

    One QuantileTransformer covers all selected columns. ``subsample=None`` uses every row for the
    quantiles, as scikit-learn 0.23 (the winners' version) did for lish-moa's row count.
    """

    def __init__(
        self,
        blocks: str | Sequence[str] = ("genes", "cells"),
        n_quantiles: int = 100,
        subsample: int | None = None,
        random_state: int | None = 0,
    ) -> None:
        self.blocks = blocks
        self.n_quantiles = n_quantiles
        self.subsample = subsample
        self.random_state = random_state

    def fit(self, X: pd.DataFrame, y: None = None) -> RankGauss:
        self.columns_ = select_columns(X, self.blocks)
        self.quantile_ = QuantileTransformer(
            n_quantiles=self.n_quantiles,
            output_distribution="normal",
            subsample=self.subsample,
            random_state=check_random_state(self.random_state),
        ).fit(_values(X, self.columns_))
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self, "quantile_")
        return replace_columns(X, self.columns_, self.quantile_.transform(_values(X, self.columns_)))


@register("standardize")
class Standardize(FeatureStep):
    """Zero mean, unit variance per column (StandardScaler), in place."""

    def __init__(self, blocks: str | Sequence[str] = "all") -> None:
        self.blocks = blocks

    def fit(self, X: pd.DataFrame, y: None = None) -> Standardize:
        self.columns_ = select_columns(X, self.blocks)
        self.scaler_ = StandardScaler().fit(_values(X, self.columns_))
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self, "scaler_")
        return replace_columns(X, self.columns_, self.scaler_.transform(_values(X, self.columns_)))


@register("pca")
class BlockPCA(FeatureStep):
    """Append the first principal components of one block as ``pca_g_0..`` / ``pca_c_0..``.

    Computed in float64 and rounded to float32, so the same rows give bit-identical outputs whatever
    the batch, memory alignment or BLAS kernel (float32 matmuls differ in the last bit otherwise).
    """

    def __init__(self, block: str = "genes", n_components: int = 50, random_state: int | None = 0) -> None:
        self.block = block
        self.n_components = n_components
        self.random_state = random_state

    def fit(self, X: pd.DataFrame, y: None = None) -> BlockPCA:
        self.columns_ = select_columns(X, self.block)
        self.pca_ = PCA(n_components=self.n_components, random_state=check_random_state(self.random_state))
        self.pca_.fit(_values(X, self.columns_).astype(np.float64))
        tag = BLOCK_TAGS[self.block]
        self.names_out_ = [f"pca_{tag}_{i}" for i in range(self.pca_.n_components_)]
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self, "pca_")
        return add_columns(
            X, self.names_out_, self.pca_.transform(_values(X, self.columns_).astype(np.float64))
        )


class RowMoments:
    """Row-wise statistics of one block, each computed at most once (skew and kurt share moments).

    Plain numpy on a C-ordered float64 copy: about ten times faster than ``scipy.stats`` here.
    Definitions follow pandas (ddof=1 std, bias-corrected skew and excess kurtosis), as the winners'
    notebooks used; a constant row gets skew and kurtosis 0 instead of NaN.
    """

    def __init__(self, values: np.ndarray) -> None:
        self.v = np.ascontiguousarray(values, dtype=np.float64)
        self.n = self.v.shape[1]

    @cached_property
    def mean(self) -> np.ndarray:
        return self.v.mean(axis=1)

    @cached_property
    def _central(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        d = self.v - self.mean[:, None]
        d2 = d * d
        return d2.mean(axis=1), (d2 * d).mean(axis=1), (d2 * d2).mean(axis=1)

    def sum(self) -> np.ndarray:
        return self.v.sum(axis=1)

    def std(self) -> np.ndarray:
        m2 = self._central[0]
        return np.sqrt(m2 * self.n / (self.n - 1))

    def skew(self) -> np.ndarray:
        n, (m2, m3, _) = self.n, self._central
        with np.errstate(divide="ignore", invalid="ignore"):
            g1 = np.sqrt(n * (n - 1)) / (n - 2) * m3 / m2**1.5
        return np.where(m2 > 0, g1, 0.0)

    def kurt(self) -> np.ndarray:
        n, (m2, _, m4) = self.n, self._central
        with np.errstate(divide="ignore", invalid="ignore"):
            g2 = (n - 1) / ((n - 2) * (n - 3)) * ((n + 1) * m4 / m2**2 - 3 * (n - 1))
        return np.where(m2 > 0, g2, 0.0)

    def min(self) -> np.ndarray:
        return self.v.min(axis=1)

    def max(self) -> np.ndarray:
        return self.v.max(axis=1)

    def median(self) -> np.ndarray:
        return np.median(self.v, axis=1)


#: row statistic name -> how to get it from a block's ``RowMoments``
ROW_STATS: dict[str, Callable[[RowMoments], np.ndarray]] = {
    "sum": RowMoments.sum,
    "mean": lambda m: m.mean,
    "std": RowMoments.std,
    "skew": RowMoments.skew,
    "kurt": RowMoments.kurt,
    "min": RowMoments.min,
    "max": RowMoments.max,
    "median": RowMoments.median,
}


@register("row_stats")
class RowStats(FeatureStep):
    """Append per-row statistics of each block: ``g_mean, g_std, g_skew, g_kurt, c_mean, ...``.

    Stateless apart from the columns, which are fixed at fit so train and test rows get the same stats.
    """

    def __init__(
        self,
        blocks: str | Sequence[str] = ("genes", "cells"),
        stats: Sequence[str] = ("mean", "std", "skew", "kurt"),
    ) -> None:
        self.blocks = blocks
        self.stats = stats

    def fit(self, X: pd.DataFrame, y: None = None) -> RowStats:
        unknown = [s for s in self.stats if s not in ROW_STATS]
        if unknown:
            raise ValueError(f"row_stats: unknown stats {unknown}; known: {sorted(ROW_STATS)}")
        self.block_columns_ = {b: select_columns(X, b) for b in as_blocks(self.blocks)}
        self.columns_ = select_columns(X, self.blocks)
        self.names_out_ = [f"{BLOCK_TAGS[b]}_{s}" for b in self.block_columns_ for s in self.stats]
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self, "block_columns_")
        out = []
        for cols in self.block_columns_.values():
            moments = RowMoments(_values(X, cols))
            out.extend(ROW_STATS[s](moments) for s in self.stats)
        return add_columns(X, self.names_out_, np.column_stack(out))


@register("onehot")
class OneHot(FeatureStep):
    """Append ``cp_time_24/48/72`` and ``cp_dose_D1/D2`` indicators; the raw ``cp_*`` columns stay.

    Categories are fixed (``columns.CP_TIMES``/``CP_DOSES``), not learned, so train and test always get
    the same columns even when a value is absent from one of them. An unknown value is an error.
    """

    def __init__(self, categories: dict[str, Sequence] | None = None) -> None:
        self.categories = categories

    def fit(self, X: pd.DataFrame, y: None = None) -> OneHot:
        cats = self.categories or {"cp_time": CP_TIMES, "cp_dose": CP_DOSES}
        self.categories_ = {col: list(values) for col, values in cats.items()}
        self.columns_ = list(self.categories_)
        self.names_out_ = [f"{col}_{v}" for col, values in self.categories_.items() for v in values]
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self, "categories_")
        blocks = []
        for col, values in self.categories_.items():
            raw = X[col].to_numpy()
            hot = np.column_stack([raw == v for v in values])
            bad = ~hot.any(axis=1)
            if bad.any():
                odd = pd.unique(raw[bad])[:5].tolist()
                raise ValueError(f"onehot: {col} has values outside {values}: {odd}")
            blocks.append(hot)
        return add_columns(X, self.names_out_, np.hstack(blocks))


@register("variance_threshold")
class VarianceSelector(FeatureStep):
    """Drop the block's columns whose variance is at most ``threshold`` (VarianceThreshold)."""

    def __init__(self, threshold: float = 0.0, blocks: str | Sequence[str] = "all") -> None:
        self.threshold = threshold
        self.blocks = blocks

    def fit(self, X: pd.DataFrame, y: None = None) -> VarianceSelector:
        self.columns_ = select_columns(X, self.blocks)
        self.selector_ = VarianceThreshold(self.threshold).fit(_values(X, self.columns_))
        keep = self.selector_.get_support()
        self.dropped_ = [c for c, k in zip(self.columns_, keep, strict=True) if not k]
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self, "selector_")
        return X.drop(columns=self.dropped_)
