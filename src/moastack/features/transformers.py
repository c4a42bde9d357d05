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

from moastack.columns import CP_DOSES, CP_TIMES, ID_COL, META_COLS

#: block name -> short tag used in the names of columns a step derives from that block
BLOCK_TAGS = {"genes": "g", "cells": "c", "gc": "gc", "all": "all", "pca": "pca", "umap": "umap", "fa": "fa"}
#: blocks that are a column-name prefix: the raw g-/c- columns, and columns earlier steps generated
#: (``pca`` = every ``pca_*`` column, genes and cells alike), so e.g. k-means can cluster PCA components
_BLOCK_PREFIX = {"genes": "g-", "cells": "c-", "pca": "pca_", "umap": "umap_", "fa": "fa_"}
#: blocks that are several prefix blocks read as one: ``gc`` = the genes and the cells together, so that
#: e.g. ``row_stats`` gives statistics over all 872 g-/c- values of a row (the winners' ``gc_mean``...)
_BLOCK_UNION = {"gc": ("genes", "cells")}
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

    ``genes``/``cells`` are the raw ``g-``/``c-`` columns (``gc`` both, as one block); ``pca``/``umap``/``fa``
    the columns earlier steps generated with that prefix (``pca_g_0``, ``umap_c_3``...); ``all`` is every
    float column except ``sig_id`` and ``cp_*`` (so one-hot columns are never rescaled or dropped by an
    ``all`` step).
    """
    as_blocks(block)
    if block in _BLOCK_UNION:
        prefixes = tuple(_BLOCK_PREFIX[b] for b in _BLOCK_UNION[block])
        return [c for c in df.columns if c.startswith(prefixes)]
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


@register("row_robust_center")
class RowRobustCenter(FeatureStep):
    """The 2nd place's per-row robust centring, in place (stateless: each row on its own).

    Genes: each row minus the mean of its ``gene_quantiles`` (25th and 75th percentiles). Cells: each row
    minus the mean of its ``cell_quantiles`` (25th and 72nd), divided by its ``cell_scale_quantile``
    (75th) percentile of |c| plus ``cell_scale_offset`` (4): a per-sample normalisation against plate
    and viability shifts that no column-wise transform can remove.
    """

    def __init__(self, gene_quantiles: Sequence[float] = (0.25, 0.75), cell_quantiles: Sequence[float] = (0.25, 0.72),
                 cell_scale_quantile: float = 0.75, cell_scale_offset: float = 4.0) -> None:
        self.gene_quantiles = gene_quantiles
        self.cell_quantiles = cell_quantiles
        self.cell_scale_quantile = cell_scale_quantile
        self.cell_scale_offset = cell_scale_offset

    def fit(self, X: pd.DataFrame, y: None = None) -> RowRobustCenter:
        self.genes_ = block_columns(X, "genes")
        self.cells_ = block_columns(X, "cells")
        if not self.genes_ and not self.cells_:
            raise ValueError("row_robust_center: the frame has no g- or c- columns")
        self.columns_ = [*self.genes_, *self.cells_]
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self, "columns_")
        out = X
        if self.genes_:
            g = _values(X, self.genes_).astype(np.float64)
            center = np.quantile(g, list(self.gene_quantiles), axis=1).mean(axis=0)
            out = replace_columns(out, self.genes_, g - center[:, None])
        if self.cells_:
            c = _values(X, self.cells_).astype(np.float64)
            center = np.quantile(c, list(self.cell_quantiles), axis=1).mean(axis=0)
            scale = np.quantile(np.abs(c), self.cell_scale_quantile, axis=1) + self.cell_scale_offset
            out = replace_columns(out, self.cells_, (c - center[:, None]) / scale[:, None])
        return out


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

    def indicators(self, X: pd.DataFrame, step: str) -> list[np.ndarray]:
        """Per categorical column, its rows' indicators over the fixed categories (n × categories, bool);
        a value outside them is an error naming ``step``, the column and a few of the values."""
        check_is_fitted(self, "categories_")
        blocks = []
        for col, values in self.categories_.items():
            raw = X[col].to_numpy()
            hot = np.column_stack([raw == v for v in values])
            bad = ~hot.any(axis=1)
            if bad.any():
                odd = pd.unique(raw[bad])[:5].tolist()
                raise ValueError(f"{step}: {col} has values outside {values}: {odd}")
            blocks.append(hot)
        return blocks

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        blocks = self.indicators(X, "onehot")  # checks fitted first
        return add_columns(X, self.names_out_, np.hstack(blocks))


@register("ordinal")
class Ordinal(OneHot):
    """Append ``cp_time_code`` (24/48/72 → 0/1/2) and ``cp_dose_code`` (D1/D2 → 0/1): each category's position
    in the fixed categories, as float columns holding integer codes; the raw ``cp_*`` columns stay.

    For a model that embeds categories itself (``tabnet``'s ``cat_columns``: the winners' TabNet took cp_time
    and cp_dose so, as pytorch-tabnet ``cat_idxs``). Named ``cp_*`` so that ``all``-block steps (standardize,
    variance_threshold) leave them alone, as they leave the one-hots. An unknown value is an error.

    ``categories`` picks the columns and their order of values (e.g. ``cp_type: [ctl_vehicle, trt_cp]``);
    ``scale: true`` divides each code by its column's categories − 1, so the codes span [0, 1] (the
    winners' DeepInsight CNNs: cp_type 0/1, cp_dose 0/1, cp_time 0/0.5/1).
    """

    def __init__(self, categories: dict[str, Sequence] | None = None, scale: bool = False) -> None:
        super().__init__(categories)
        self.scale = scale

    def fit(self, X: pd.DataFrame, y: None = None) -> Ordinal:
        if not isinstance(self.scale, bool):
            raise ValueError(f"ordinal: scale must be true or false, got {self.scale!r}")
        super().fit(X)
        self.names_out_ = [f"{col}_code" for col in self.categories_]
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        codes = [hot.argmax(axis=1).astype(np.float64) for hot in self.indicators(X, "ordinal")]
        if self.scale:
            codes = [c / max(len(values) - 1, 1) for c, values in zip(codes, self.categories_.values(), strict=True)]
        return add_columns(X, self.names_out_, np.column_stack(codes))


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


def _seed(random_state: int | None) -> int | None:
    """A plain int seed for libraries that want one (umap-learn), drawn once from ``random_state``."""
    if random_state is None or isinstance(random_state, (int, np.integer)):
        return None if random_state is None else int(random_state)
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


def _row_keys(values: np.ndarray) -> list[bytes]:
    """A 16-byte digest of each row's float32 values: identifies rows seen at fit time."""
    import hashlib

    rows = np.ascontiguousarray(values, dtype=np.float32)
    return [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in rows]


@register("umap")
class UMAPStep(FeatureStep):
    """Append a UMAP embedding of one block as ``umap_g_0..`` / ``umap_c_0..`` (umap-learn).

    The winners fitted UMAP on train + test (``fit_on: train+test``) and used the fitted embedding.
    Here too: ``transform`` gives every row that was in the fit (recognised by a hash of its
    values) its fitted embedding, so the feature set's separate ``transform(train)`` and
    ``transform(test)`` return exactly the embedding of the fit, at no cost. Only rows never seen
    (new samples at inference, or test rows with ``fit_on: train``) go through ``UMAP.transform``,
    which is deterministic for a given batch but slow (about a minute per 4k gene rows on 2 cores)
    and depends slightly on the batch, like any UMAP out-of-sample embedding.
    ``n_jobs=1`` with a fixed seed makes the fit reproducible. The fitted step keeps umap-learn's
    copy of the training matrix (needed by ``UMAP.transform``): about 85 MB for 27k × 772 genes.
    On 27k × 772 gene rows the fit takes one to two minutes on 2 cores; fewer rows or epochs
    (``n_epochs``) keep demo runs short.
    """

    def __init__(
        self,
        block: str = "genes",
        n_components: int = 5,
        n_neighbors: int = 15,
        min_dist: float = 0.1,
        n_epochs: int | None = None,
        low_memory: bool = True,
        random_state: int | None = 0,
    ) -> None:
        self.block = block
        self.n_components = n_components
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.n_epochs = n_epochs
        self.low_memory = low_memory
        self.random_state = random_state

    def fit(self, X: pd.DataFrame, y: None = None) -> UMAPStep:
        import warnings

        from umap import UMAP  # heavy import (numba): only when a feature set uses UMAP

        self.columns_ = select_columns(X, self.block)
        values = _values(X, self.columns_)
        n_neighbors = min(int(self.n_neighbors), len(values) - 1)
        self.umap_ = UMAP(
            n_components=self.n_components,
            n_neighbors=n_neighbors,
            min_dist=self.min_dist,
            n_epochs=self.n_epochs,
            low_memory=self.low_memory,
            random_state=_seed(self.random_state),
            n_jobs=1,
            transform_seed=42 if self.random_state is None else _seed(self.random_state),
        )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*n_jobs.*")
            self.umap_.fit(values)
        self.row_index_ = {key: i for i, key in enumerate(_row_keys(values))}
        self.names_out_ = [f"umap_{BLOCK_TAGS[self.block]}_{i}" for i in range(self.n_components)]
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        import warnings

        check_is_fitted(self, "umap_")
        values = _values(X, self.columns_)
        idx = np.array([self.row_index_.get(key, -1) for key in _row_keys(values)], dtype=np.int64)
        seen = idx >= 0
        embedding = np.empty((len(values), self.n_components), dtype=np.float32)
        embedding[seen] = self.umap_.embedding_[idx[seen]]
        if not seen.all():
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*n_jobs.*")
                embedding[~seen] = self.umap_.transform(values[~seen])
        return add_columns(X, self.names_out_, embedding)


@register("factor_analysis")
class FactorAnalysisStep(FeatureStep):
    """Append the factor scores of one block as ``fa_g_0..`` / ``fa_c_0..`` (sklearn FactorAnalysis).

    Fitted and applied in float64, then rounded to float32 (as ``BlockPCA``), so the same row gives
    the same output whatever the batch.
    """

    def __init__(
        self,
        block: str = "genes",
        n_components: int = 50,
        max_iter: int = 1000,
        tol: float = 1e-2,
        random_state: int | None = 0,
    ) -> None:
        self.block = block
        self.n_components = n_components
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state

    def fit(self, X: pd.DataFrame, y: None = None) -> FactorAnalysisStep:
        from sklearn.decomposition import FactorAnalysis

        self.columns_ = select_columns(X, self.block)
        self.fa_ = FactorAnalysis(
            n_components=self.n_components,
            max_iter=self.max_iter,
            tol=self.tol,
            random_state=check_random_state(self.random_state),
        ).fit(_values(X, self.columns_).astype(np.float64))
        self.names_out_ = [f"fa_{BLOCK_TAGS[self.block]}_{i}" for i in range(self.fa_.components_.shape[0])]
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self, "fa_")
        return add_columns(X, self.names_out_, self.fa_.transform(_values(X, self.columns_).astype(np.float64)))


KMEANS_OUTPUTS = ("onehot", "distance")


@register("kmeans")
class KMeansStep(FeatureStep):
    """Append k-means cluster features of one block: ``km_g_0..`` (genes), ``km_pca_0..`` (PCA columns).

    ``output="onehot"`` gives one 0/1 column per cluster (the winners' ``pd.get_dummies`` of the
    cluster label; all ``n_clusters`` columns always, even for a cluster no row falls in);
    ``output="distance"`` the distance to each centre. Note the one-hot columns are float features:
    an ``all``-block step after this one (standardize, variance_threshold at 0.5) acts on them too.
    """

    def __init__(
        self,
        block: str = "genes",
        n_clusters: int = 22,
        output: str = "onehot",
        n_init: int = 10,
        random_state: int | None = 0,
    ) -> None:
        self.block = block
        self.n_clusters = n_clusters
        self.output = output
        self.n_init = n_init
        self.random_state = random_state

    def fit(self, X: pd.DataFrame, y: None = None) -> KMeansStep:
        from sklearn.cluster import KMeans

        if self.output not in KMEANS_OUTPUTS:
            raise ValueError(f"kmeans: output must be one of {KMEANS_OUTPUTS}, got {self.output!r}")
        self.columns_ = select_columns(X, self.block)
        self.kmeans_ = KMeans(
            n_clusters=self.n_clusters, n_init=self.n_init, random_state=check_random_state(self.random_state)
        ).fit(_values(X, self.columns_).astype(np.float64))
        self.names_out_ = [f"km_{BLOCK_TAGS[self.block]}_{i}" for i in range(self.n_clusters)]
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self, "kmeans_")
        values = _values(X, self.columns_).astype(np.float64)
        if self.output == "distance":
            out = self.kmeans_.transform(values)
        else:
            labels = self.kmeans_.predict(values)
            out = labels[:, None] == np.arange(self.n_clusters)[None, :]
        return add_columns(X, self.names_out_, out)
