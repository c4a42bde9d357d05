"""A feature set's rows: ``sig_id`` + dense float32 columns, and an optional sparse block, in one Parquet file.

High-dimensional fingerprints (hundreds of thousands of count columns, a few dozen non-zero per
molecule) cannot be dense columns: 12k rows × 200k float32 columns is 9.6 GB. A
:class:`FeatureTable` keeps them as a scipy CSR matrix beside the dense frame, and its Parquet file
holds both, row-aligned by construction (one file, one row per ``sig_id``):

- ``sig_id`` and the dense float32 columns, as before (a dense-only table is written exactly as
  before, so older readers and files are unaffected);
- the sparse block as two list columns sharing one offsets array, which are the CSR matrix itself:
  ``__sparse_indices__`` (``list<int32>``: each row's column numbers, ascending) and
  ``__sparse_values__`` (``list<float32>``: the values);
- the sparse block's column names in the file's key-value metadata (``moastack.sparse_names``, JSON).

Files are written atomically (``moastack.io.atomic_path``) like every other table.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from moastack.columns import ID_COL
from moastack.io import atomic_path

SPARSE_INDICES = "__sparse_indices__"
SPARSE_VALUES = "__sparse_values__"
SPARSE_NAMES_KEY = b"moastack.sparse_names"


def as_csr32(block: sp.spmatrix | sp.sparray) -> sp.csr_matrix:
    """``block`` as a canonical float32 CSR matrix (sorted indices, no duplicates)."""
    csr = sp.csr_matrix(block, dtype=np.float32)
    csr.sum_duplicates()
    csr.sort_indices()
    return csr


@dataclass
class FeatureTable:
    """Rows of a feature set: ``frame`` (``sig_id`` + dense float32 columns) and, when the set has sparse
    steps, ``sparse`` (float32 CSR, one row per frame row) named by ``sparse_names``."""

    frame: pd.DataFrame
    sparse: sp.csr_matrix | None = None
    sparse_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if ID_COL not in self.frame.columns:
            raise ValueError(f"feature table lacks the key column {ID_COL!r}")
        self.sparse_names = tuple(self.sparse_names)
        if self.sparse is None:
            if self.sparse_names:
                raise ValueError("feature table: sparse column names without a sparse block")
            return
        self.sparse = as_csr32(self.sparse)
        if self.sparse.shape != (len(self.frame), len(self.sparse_names)):
            raise ValueError(f"feature table: sparse block of shape {self.sparse.shape} for {len(self.frame)} rows "
                             f"and {len(self.sparse_names)} sparse column names")
        clash = set(self.sparse_names) & set(self.frame.columns)
        if clash:
            raise ValueError(f"feature table: names both dense and sparse: {sorted(clash)[:5]}")

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def ids(self) -> np.ndarray:
        return self.frame[ID_COL].to_numpy()

    @property
    def dense_names(self) -> list[str]:
        return [c for c in self.frame.columns if c != ID_COL]

    def dense(self) -> np.ndarray:
        """The dense columns as one float32 matrix (n × dense columns; zero columns is fine)."""
        names = self.dense_names
        return self.frame[names].to_numpy(dtype=np.float32).reshape(len(self.frame), len(names))

    def dense_only(self, what: str = "feature set") -> pd.DataFrame:
        """The frame, refused when a sparse block would be silently left out."""
        if self.sparse is not None:
            raise ValueError(f"{what} has {len(self.sparse_names)} sparse columns that a DataFrame cannot hold; "
                             "read it as a FeatureTable (moastack.features.feature_table)")
        return self.frame

    # -------------------------------------------------------------------------------- storage
    def write(self, path: str | os.PathLike) -> None:
        """Write the table as Parquet (see the module docstring), atomically."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(self.frame, preserve_index=False)
        if self.sparse is not None:
            csr = self.sparse
            if csr.nnz >= 2**31:
                raise ValueError(f"feature table: {csr.nnz} non-zeros exceed a Parquet list column's int32 offsets")
            offsets = pa.array(csr.indptr.astype(np.int32), type=pa.int32())
            indices = pa.ListArray.from_arrays(offsets, pa.array(csr.indices.astype(np.int32), type=pa.int32()))
            values = pa.ListArray.from_arrays(offsets, pa.array(csr.data.astype(np.float32), type=pa.float32()))
            table = table.append_column(SPARSE_INDICES, indices).append_column(SPARSE_VALUES, values)
            metadata = dict(table.schema.metadata or {})
            metadata[SPARSE_NAMES_KEY] = json.dumps(list(self.sparse_names)).encode()
            table = table.replace_schema_metadata(metadata)
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp)

    @classmethod
    def read(cls, path: str | os.PathLike) -> FeatureTable:
        """The table written by :meth:`write` (a plain ``sig_id`` + float columns file reads as dense-only)."""
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        names = table.column_names
        has_sparse = SPARSE_INDICES in names or SPARSE_VALUES in names
        if not has_sparse:
            return cls(table.to_pandas())
        metadata = table.schema.metadata or {}
        if SPARSE_INDICES not in names or SPARSE_VALUES not in names or SPARSE_NAMES_KEY not in metadata:
            raise ValueError(f"{path}: incomplete sparse block (needs the columns {SPARSE_INDICES}, {SPARSE_VALUES} "
                             f"and the {SPARSE_NAMES_KEY.decode()} metadata)")
        sparse_names = json.loads(metadata[SPARSE_NAMES_KEY])
        indptr, indices = _list_parts(table.column(SPARSE_INDICES))
        indptr_v, values = _list_parts(table.column(SPARSE_VALUES))
        if not np.array_equal(indptr, indptr_v):
            raise ValueError(f"{path}: the sparse indices and values have different row lengths")
        n = table.num_rows
        csr = sp.csr_matrix((values.astype(np.float32), indices.astype(np.int32), indptr.astype(np.int64)),
                            shape=(n, len(sparse_names)))
        frame = table.drop_columns([SPARSE_INDICES, SPARSE_VALUES]).to_pandas()
        return cls(frame, csr, tuple(sparse_names))


def _list_parts(column) -> tuple[np.ndarray, np.ndarray]:
    """(row offsets from 0, flat values) of a Parquet list column."""
    import pyarrow as pa

    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if arr.null_count:
        raise ValueError("sparse block: a row's list is null")
    offsets = np.asarray(arr.offsets, dtype=np.int64)
    if not len(offsets):  # an empty column may carry no offsets at all
        return np.zeros(1, dtype=np.int64), np.empty(0)
    return offsets - offsets[0], np.asarray(arr.values)[offsets[0]:offsets[-1]]
