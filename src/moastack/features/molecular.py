"""Molecular feature steps: Morgan fingerprints and RDKit 2-D descriptors computed from a SMILES column.

Both steps read one string column (``smiles`` by default, as the table source writes it) and append
float32 columns; they follow ``transformers.FeatureStep``'s conventions, so a fitted step pickled with
the feature set turns new molecules into the same features at inference.

RDKit work is done once per distinct SMILES in a call (duplicates and the train/test overlap cost
nothing). Descriptor rows are also kept in a bounded per-process cache, because a feature set computes
them for the train rows up to three times (fit, transform at fit time, transform of train), and each
molecule costs a few milliseconds. An unparsable SMILES gives an all-zero fingerprint and NaN
descriptors (imputed by the fitted medians), with a logged count, instead of stopping the run: the
table source already refused or dropped such rows, so here they can only come from new samples.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted

from moastack.data.table import parse_smiles, quiet_rdkit
from moastack.features.transformers import FeatureStep, add_columns, register

log = logging.getLogger(__name__)

#: distinct SMILES whose descriptor rows are remembered per process (about 2 kB each with all descriptors)
DESCRIPTOR_CACHE_SIZE = 50_000
_PERCENTILES = (0.1, 99.9)
_F32_MAX = float(np.finfo(np.float32).max)


# ------------------------------------------------------------------------------------------ parsing
def _smiles_codes(X: pd.DataFrame, column: str, step: str) -> tuple[np.ndarray, np.ndarray]:
    """Row -> index into the distinct SMILES, and the distinct strings (missing values become '')."""
    _check_smiles_column(X, column, step)
    values = X[column].astype(object).where(X[column].notna(), "")
    codes, uniques = pd.factorize(values.to_numpy(dtype=object))
    return codes.astype(np.int64), np.asarray(uniques, dtype=object)


def _log_unparsable(step: str, codes: np.ndarray, bad: np.ndarray, uniques: np.ndarray) -> None:
    if bad.any():
        n_rows = int(bad[codes].sum())
        log.warning("%s: %d rows have SMILES RDKit cannot parse (e.g. %r)", step, n_rows, uniques[bad][:3].tolist())


def _check_smiles_column(X: pd.DataFrame, column: str, step: str) -> None:
    if column not in X.columns:
        raise KeyError(f"{step}: SMILES column {column!r} not in the frame (columns: {list(X.columns)[:10]}...)")


# ------------------------------------------------------------------------------------------- Morgan
@register("morgan")
class MorganFingerprint(FeatureStep):
    """Append a folded Morgan (ECFP-like) fingerprint as ``morgan_0..morgan_{n_bits-1}``.

    Bits are 0/1; ``counts=True`` gives how often each folded environment occurs instead (same
    non-zero positions), and ``log_counts=True`` stores ``log1p`` of the counts, so that a carbon chain's
    count of 30 does not dwarf the rare environments a network should weigh (+0.01 ROC-AUC on Tox21). Stateless apart from the names: the generator is built in ``transform``,
    so the fitted step pickles without RDKit objects.
    """

    def __init__(self, radius: int = 2, n_bits: int = 2048, counts: bool = False, log_counts: bool = False,
                 smiles_column: str = "smiles"):
        self.radius = radius
        self.n_bits = n_bits
        self.counts = counts
        self.log_counts = log_counts
        self.smiles_column = smiles_column

    def fit(self, X: pd.DataFrame, y: None = None) -> MorganFingerprint:
        if int(self.radius) < 0 or int(self.n_bits) < 1:
            raise ValueError(f"morgan: need radius >= 0 and n_bits >= 1, got {self.radius}, {self.n_bits}")
        _check_smiles_column(X, self.smiles_column, "morgan")
        self.columns_ = [self.smiles_column]
        self.names_out_ = [f"morgan_{i}" for i in range(int(self.n_bits))]
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        from rdkit.Chem import rdFingerprintGenerator

        check_is_fitted(self, "names_out_")
        codes, uniques = _smiles_codes(X, self.smiles_column, "morgan")
        mols = parse_smiles(uniques)
        gen = rdFingerprintGenerator.GetMorganGenerator(radius=int(self.radius), fpSize=int(self.n_bits))
        fingerprint = gen.GetCountFingerprintAsNumPy if self.counts else gen.GetFingerprintAsNumPy
        block = np.zeros((len(mols), len(self.names_out_)), dtype=np.float32)
        for i, mol in enumerate(mols):
            if mol is not None:
                block[i] = fingerprint(mol)
        _log_unparsable("morgan", codes, np.array([m is None for m in mols], dtype=bool), uniques)
        if self.counts and self.log_counts:
            np.log1p(block, out=block)
        return add_columns(X, self.names_out_, block[codes])


# -------------------------------------------------------------------------------------- descriptors
def all_descriptor_names() -> list[str]:
    """Names of RDKit's 2-D descriptors (``Descriptors._descList``), in its order."""
    from rdkit.Chem import Descriptors

    return [name for name, _ in Descriptors._descList]


def _descriptor_names(names: Sequence[str] | None) -> list[str]:
    known = all_descriptor_names()
    if names is None:
        return known
    names = [names] if isinstance(names, str) else list(names)
    unknown = [n for n in names if n not in set(known)]
    if unknown or not names:
        raise ValueError(
            f"rdkit_descriptors: unknown or no descriptor names {unknown}; known (rdkit.Chem.Descriptors."
            f"_descList): {known[:8]}... ({len(known)} in all)"
        )
    return names


@lru_cache(maxsize=DESCRIPTOR_CACHE_SIZE)
def _descriptor_row(smiles: str, names: tuple[str, ...]) -> tuple[float, ...]:
    """One molecule's descriptors (NaN for an unparsable SMILES or a descriptor that raises)."""
    (mol,) = parse_smiles([smiles])
    if mol is None:
        return (np.nan,) * len(names)
    from rdkit.Chem import Descriptors

    functions = dict(Descriptors._descList)
    out = []
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        for name in names:
            try:
                out.append(float(functions[name](mol)))
            except Exception:  # RDKit raises assorted errors on odd molecules; NaN is the answer
                out.append(np.nan)
    return tuple(out)


def descriptor_matrix(smiles: Sequence[str], names: Sequence[str]) -> np.ndarray:
    """float64 descriptors (rows × names) for distinct SMILES, NaN/±inf where RDKit gives them."""
    key = tuple(names)
    if not len(smiles):
        return np.empty((0, len(key)), dtype=np.float64)
    with quiet_rdkit():
        rows = [_descriptor_row(s, key) for s in smiles]
    return np.array(rows, dtype=np.float64).reshape(len(smiles), len(key))


def _fit_scaling(raw: np.ndarray) -> dict[str, np.ndarray]:
    """Column medians (for NaN/±inf), 0.1/99.9 percentile clip bounds and the clipped mean/std."""
    finite = np.where(np.isfinite(raw), raw, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: median 0 below
        median = np.nanmedian(finite, axis=0)
    median = np.where(np.isfinite(median), median, 0.0)
    x = np.where(np.isnan(finite), median, finite)
    lo, hi = np.percentile(x, _PERCENTILES, axis=0)
    x = np.clip(x, lo, hi)
    # scale first so descriptors such as Ipc (up to ~1e30 and beyond) cannot overflow the variance
    size = np.max(np.abs(x), axis=0)
    size = np.where(size > 0, size, 1.0)
    mean = (x / size).mean(axis=0) * size
    std = (x / size).std(axis=0) * size
    std = np.where(std > 1e-12 * size, std, 1.0)
    return {"median": median, "lo": lo, "hi": hi, "mean": mean, "std": std}


def _impute(raw: np.ndarray, median: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(raw), raw, median)


@register("rdkit_descriptors")
class RDKitDescriptors(FeatureStep):
    """Append RDKit 2-D descriptors as ``desc_<Name>`` (all of ``Descriptors._descList`` by default).

    ``scale=True`` (the default) replaces NaN/±inf by the fitted column median, clips to the fitted
    0.1/99.9 percentiles and standardises with the fitted mean/std (std 0 -> 1), so heavy-tailed
    descriptors (Ipc, BertzCT) neither dominate nor overflow float32. ``scale=False`` keeps raw values
    but still imputes NaN/±inf with the fitted medians (models need finite inputs) and clips to the
    float32 range.
    """

    def __init__(self, smiles_column: str = "smiles", names: Sequence[str] | None = None, scale: bool = True):
        self.smiles_column = smiles_column
        self.names = names
        self.scale = scale

    def fit(self, X: pd.DataFrame, y: None = None) -> RDKitDescriptors:
        _check_smiles_column(X, self.smiles_column, "rdkit_descriptors")
        if len(X) == 0:
            raise ValueError("rdkit_descriptors: cannot fit on zero rows")
        self.descriptors_ = _descriptor_names(self.names)
        self.columns_ = [self.smiles_column]
        self.names_out_ = [f"desc_{n}" for n in self.descriptors_]
        stats = _fit_scaling(self._raw(X))
        self.median_, self.lo_, self.hi_ = stats["median"], stats["lo"], stats["hi"]
        self.mean_, self.std_ = stats["mean"], stats["std"]
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self, "median_")
        x = _impute(self._raw(X), self.median_)
        if self.scale:
            x = (np.clip(x, self.lo_, self.hi_) - self.mean_) / self.std_
        else:
            x = np.clip(x, -_F32_MAX, _F32_MAX)
        return add_columns(X, self.names_out_, x)

    def _raw(self, X: pd.DataFrame) -> np.ndarray:
        """Raw descriptors per row, computed once per distinct SMILES."""
        codes, uniques = _smiles_codes(X, self.smiles_column, "rdkit_descriptors")
        mols_ok = np.array([m is not None for m in parse_smiles(uniques)], dtype=bool)
        _log_unparsable("rdkit_descriptors", codes, ~mols_ok, uniques)
        return descriptor_matrix(uniques, self.descriptors_)[codes]
