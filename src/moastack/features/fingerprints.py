"""DeepTox-style sparse fingerprints: count features kept as a scipy CSR block, filtered by compound frequency.

``sparse_fingerprint`` turns a SMILES column into RDKit count fingerprints of one ``kind``:

- ``morgan``: ECFP counts at ``radius`` 0–3 (ECFP2/4/6 at 1/2/3);
- ``atom_pair``: atom pairs; ``torsion``: topological torsions.

With ``n_bits`` set they are folded to that many bits (DeepTox-style 2^15–2^20; the same generator as
the dense ``morgan`` step, so the counts equal its columns); with ``n_bits: null`` they are
**unhashed**: each environment id RDKit computes (``GetSparseCountFingerprint``) is its own column.
Either way a column is kept only when at least ``min_frequency`` of the rows the step is fitted on
(the training compounds: see ``FeatureSet``, which fits sparse steps on training rows only) contain
it. The fitted state is the sorted array of kept keys, so new molecules map onto the same columns and
environments never seen in training are dropped. ``log_counts`` stores ``log1p`` of the counts.

Sparse steps do not add frame columns: the feature set calls :meth:`SparseFingerprint.transform_sparse`
and stacks the blocks beside its dense columns (``feature_table.FeatureTable``).

``maccs`` (dense) appends RDKit's 167 MACCS keys as 0/1 columns ``maccs_0..maccs_166``.
"""

from __future__ import annotations

import logging
from typing import ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.utils.validation import check_is_fitted

from moastack.data.table import parse_smiles
from moastack.features.molecular import _check_smiles_column, _log_unparsable, _smiles_codes
from moastack.features.transformers import FeatureStep, add_columns, register

log = logging.getLogger(__name__)

KINDS = ("morgan", "atom_pair", "torsion")
MAX_RADIUS = 3


def _generator(kind: str, radius: int, n_bits: int | None):
    """The RDKit fingerprint generator of ``kind`` (``fpSize`` is used only when folding)."""
    from rdkit.Chem import rdFingerprintGenerator as gen

    size = int(n_bits) if n_bits is not None else 2048
    if kind == "morgan":
        return gen.GetMorganGenerator(radius=int(radius), fpSize=size)
    if kind == "atom_pair":
        return gen.GetAtomPairGenerator(fpSize=size)
    return gen.GetTopologicalTorsionGenerator(fpSize=size)


def count_coo(smiles: np.ndarray, kind: str, radius: int,
              n_bits: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Count fingerprints of distinct SMILES as (row, key, count) triplets (keys uint64, ascending per row),
    and a mask of the SMILES RDKit could not parse (their rows have no entries)."""
    mols = parse_smiles(smiles)
    generator = _generator(kind, radius, n_bits)
    fingerprint = generator.GetCountFingerprint if n_bits is not None else generator.GetSparseCountFingerprint
    rows, keys, counts = [], [], []
    for i, mol in enumerate(mols):
        if mol is None:
            continue
        elements = fingerprint(mol).GetNonzeroElements()
        k = np.fromiter(elements.keys(), dtype=np.uint64, count=len(elements))
        order = np.argsort(k)
        keys.append(k[order])
        counts.append(np.fromiter(elements.values(), dtype=np.float32, count=len(elements))[order])
        rows.append(np.full(len(elements), i, dtype=np.int64))
    bad = np.array([m is None for m in mols], dtype=bool)
    if not rows:
        return np.empty(0, np.int64), np.empty(0, np.uint64), np.empty(0, np.float32), bad
    return np.concatenate(rows), np.concatenate(keys), np.concatenate(counts), bad


@register("sparse_fingerprint")
class SparseFingerprint(FeatureStep):
    """Count fingerprints of one ``kind`` as a sparse block, columns kept by training compound frequency."""

    #: the feature set stacks this step's ``transform_sparse`` output instead of chaining frames
    sparse_output: ClassVar[bool] = True

    def __init__(self, kind: str = "morgan", radius: int = 2, n_bits: int | None = None, min_frequency: int = 1,
                 log_counts: bool = False, smiles_column: str = "smiles") -> None:
        self.kind = kind
        self.radius = radius
        self.n_bits = n_bits
        self.min_frequency = min_frequency
        self.log_counts = log_counts
        self.smiles_column = smiles_column

    def _check_params(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"sparse_fingerprint: kind {self.kind!r} is not one of {list(KINDS)}")
        if not 0 <= int(self.radius) <= MAX_RADIUS:
            raise ValueError(f"sparse_fingerprint: radius must be in [0, {MAX_RADIUS}], got {self.radius!r}")
        if self.n_bits is not None and int(self.n_bits) < 1:
            raise ValueError(f"sparse_fingerprint: n_bits must be >= 1 or null (unhashed), got {self.n_bits!r}")
        if int(self.min_frequency) < 1:
            raise ValueError(f"sparse_fingerprint: min_frequency must be >= 1, got {self.min_frequency!r}")

    @property
    def tag(self) -> str:
        """Column-name prefix: ``ecfp4`` (radius 2), ``ap``, ``tt``; ``_h<n_bits>`` when folded."""
        base = f"ecfp{2 * int(self.radius)}" if self.kind == "morgan" else {"atom_pair": "ap", "torsion": "tt"}[self.kind]
        return base if self.n_bits is None else f"{base}_h{int(self.n_bits)}"

    def _coo(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        codes, uniques = _smiles_codes(X, self.smiles_column, self.step_name)
        rows, keys, counts, bad = count_coo(uniques, self.kind, int(self.radius), self.n_bits)
        _log_unparsable(self.step_name, codes, bad, uniques)
        return codes, rows, keys, counts

    def fit(self, X: pd.DataFrame, y: None = None) -> SparseFingerprint:
        """Keep the keys present in at least ``min_frequency`` rows of ``X`` (rows, not distinct SMILES)."""
        self._check_params()
        _check_smiles_column(X, self.smiles_column, self.step_name)
        codes, rows, keys, _ = self._coo(X)
        multiplicity = np.bincount(codes, minlength=int(codes.max()) + 1 if len(codes) else 0)
        distinct, inverse = np.unique(keys, return_inverse=True)
        frequency = np.bincount(inverse, weights=multiplicity[rows], minlength=len(distinct))
        self.keys_ = distinct[frequency >= int(self.min_frequency)]
        if not len(self.keys_):
            raise ValueError(f"sparse_fingerprint: no {self.tag} environment occurs in {self.min_frequency} of the "
                             f"{len(X)} training rows; lower min_frequency")
        self.columns_ = [self.smiles_column]
        self.names_out_ = [f"{self.tag}_{int(k)}" for k in self.keys_]
        log.info("%s: %d of %d %s keys occur in >= %d of %d training rows", self.step_name, len(self.keys_),
                 len(distinct), self.tag, self.min_frequency, len(X))
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """The frame unchanged: this step's output is :meth:`transform_sparse` (the feature set stacks it)."""
        check_is_fitted(self, "keys_")
        return X

    def transform_sparse(self, X: pd.DataFrame) -> sp.csr_matrix:
        """float32 CSR (rows of ``X`` × kept keys); unseen environments dropped, unparsable SMILES empty rows."""
        check_is_fitted(self, "keys_")
        codes, rows, keys, counts = self._coo(X)
        col = np.searchsorted(self.keys_, keys)
        hit = col < len(self.keys_)
        hit[hit] = self.keys_[col[hit]] == keys[hit]
        n_unique = int(codes.max()) + 1 if len(codes) else 0
        values = np.log1p(counts[hit]) if self.log_counts else counts[hit]
        per_molecule = sp.csr_matrix((values.astype(np.float32), (rows[hit], col[hit])),
                                     shape=(n_unique, len(self.keys_)), dtype=np.float32)
        return per_molecule[codes] if len(codes) else sp.csr_matrix((0, len(self.keys_)), dtype=np.float32)


@register("maccs")
class MACCSKeys(FeatureStep):
    """Append RDKit's 167 MACCS keys as 0/1 columns ``maccs_0..maccs_166`` (dense: 167 bits are cheap)."""

    def __init__(self, smiles_column: str = "smiles") -> None:
        self.smiles_column = smiles_column

    def fit(self, X: pd.DataFrame, y: None = None) -> MACCSKeys:
        _check_smiles_column(X, self.smiles_column, "maccs")
        self.columns_ = [self.smiles_column]
        self.names_out_ = [f"maccs_{i}" for i in range(167)]
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        from rdkit import DataStructs
        from rdkit.Chem import MACCSkeys

        check_is_fitted(self, "names_out_")
        codes, uniques = _smiles_codes(X, self.smiles_column, "maccs")
        mols = parse_smiles(uniques)
        block = np.zeros((len(mols), len(self.names_out_)), dtype=np.float32)
        row = np.zeros(len(self.names_out_), dtype=np.float64)
        for i, mol in enumerate(mols):
            if mol is not None:
                DataStructs.ConvertToNumpyArray(MACCSkeys.GenMACCSKeys(mol), row)
                block[i] = row
        _log_unparsable("maccs", codes, np.array([m is None for m in mols], dtype=bool), uniques)
        return add_columns(X, self.names_out_, block[codes])
