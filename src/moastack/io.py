"""Atomic file output and Parquet helpers.

Every writer goes through a temporary file in the destination folder and an ``os.replace``,
so an interrupted job never leaves a file that looks complete.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_parquet(df: pd.DataFrame, path: str | os.PathLike, metadata: dict[str, str] | None = None) -> None:
    """Write ``df`` without its pandas index, atomically; ``metadata`` adds key-value pairs to the footer."""
    with atomic_path(path) as tmp:
        if not metadata:
            df.to_parquet(tmp, index=False, engine="pyarrow")
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(df, preserve_index=False)
        extra = {key.encode(): value.encode() for key, value in metadata.items()}
        pq.write_table(table.replace_schema_metadata({**(table.schema.metadata or {}), **extra}), tmp)


def read_parquet(path: str | os.PathLike, columns: list[str] | None = None) -> pd.DataFrame:
    return pd.read_parquet(path, columns=columns, engine="pyarrow")


def parquet_columns(path: str | os.PathLike) -> list[str]:
    """Column names of a Parquet file, from its footer (no data read)."""
    import pyarrow.parquet as pq

    return list(pq.read_schema(path).names)


def parquet_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The key-value pairs of a Parquet file's footer (pandas' own ``pandas`` key included)."""
    import pyarrow.parquet as pq

    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in (pq.read_schema(path).metadata or {}).items()}


def read_present_columns(path: str | os.PathLike, columns: list[str]) -> pd.DataFrame:
    """The listed columns that the file has (tables of other tasks lack e.g. lish-moa's ``cp_type``)."""
    present = set(parquet_columns(path))
    return read_parquet(path, columns=[c for c in columns if c in present])


def write_json(obj: Any, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


def write_csv(df: pd.DataFrame, path: str | os.PathLike, **kwargs: Any) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, **kwargs)


def write_joblib(obj: Any, path: str | os.PathLike) -> None:
    import joblib

    with atomic_path(path) as tmp:
        joblib.dump(obj, tmp)


def read_joblib(path: str | os.PathLike) -> Any:
    import joblib

    return joblib.load(path)


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
