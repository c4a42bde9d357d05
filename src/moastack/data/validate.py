"""Strict validation of the five raw lish-moa tables.

Every later step trusts these tables blindly, so a bad input must stop here with one message a user can
act on: the file, the column(s) and up to five offending rows. Row numbers count data rows from 1 (the
header is not a row), so ``row 3`` is line 4 of a CSV file. All checks are vectorised; rows are looped
over only to format the examples.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from moastack import columns as C

log = logging.getLogger(__name__)

MAX_EXAMPLES = 5
NUMERIC_COLS = C.GENE_COLS + C.CELL_COLS
_FEATURE_TABLES = ("train_features", "test_features")
_TARGET_TABLES = ("train_targets_scored", "train_targets_nonscored")
_STR_COLS = {C.ID_COL: "str", "cp_type": "str", "cp_dose": "str", C.DRUG_COL: "str"}


class InputError(ValueError):
    """Bad input: message names the file, the column and a few offending rows."""


# ------------------------------------------------------------------------------------------- reading
def read_raw_dir(directory: str | os.PathLike) -> dict[str, pd.DataFrame]:
    """Read ``<table>.csv`` for every table of ``columns.TABLES`` from ``directory``.

    Identifier columns are read as strings: a drug id such as ``123e45678`` would otherwise turn into a
    float. Values are not checked here; ``validate_tables`` does that.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(f"{directory}: input directory not found")
    return {name: _read_csv(directory / f"{name}.csv") for name in C.TABLES}


def _read_csv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: file is empty")
    try:
        return pd.read_csv(path, dtype=_STR_COLS, low_memory=False)
    except pd.errors.EmptyDataError as err:
        raise InputError(f"{path}: file is empty") from err
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: not a readable CSV file: {err}") from err


# ---------------------------------------------------------------------------------------- formatting
def _fmt_value(value: object) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _examples(df: pd.DataFrame, mask: np.ndarray, column: str | None = None) -> str:
    """'row 3 (sig_id id_x) 'abc', ...' for the first few rows where ``mask`` is true."""
    rows = np.flatnonzero(mask)
    parts = []
    for i in rows[:MAX_EXAMPLES]:
        text = f"row {i + 1}"
        if C.ID_COL in df.columns and column != C.ID_COL:
            text += f" (sig_id {df[C.ID_COL].iat[i]})"
        if column is not None:
            text += f" {_fmt_value(df[column].iat[i])}"
        parts.append(text)
    if rows.size > MAX_EXAMPLES:
        parts.append(f"... ({rows.size - MAX_EXAMPLES} more)")
    return ", ".join(parts)


def _rows_error(file: str, what: str, df: pd.DataFrame, mask: np.ndarray, column: str | None = None):
    n = int(mask.sum())
    return InputError(f"{file}: {what} in {n} row{'s' if n != 1 else ''}: {_examples(df, mask, column)}")


def _names(values: Iterable[object], limit: int = MAX_EXAMPLES) -> str:
    values = list(values)
    text = ", ".join(repr(v) if isinstance(v, str) else str(v) for v in values[:limit])
    return text + (f" (and {len(values) - limit} more)" if len(values) > limit else "")


# ------------------------------------------------------------------------------------ shared checks
def _check_rows(df: pd.DataFrame, file: str) -> None:
    if len(df) == 0:
        raise InputError(f"{file}: no rows (the file is empty or has only a header)")


def _check_ids(df: pd.DataFrame, file: str) -> pd.Series:
    """sig_id present, non-empty and unique; returns it as strings."""
    if C.ID_COL not in df.columns:
        raise InputError(f"{file}: missing column '{C.ID_COL}'")
    ids = df[C.ID_COL]
    missing = ids.isna().to_numpy() | (ids.astype("str").str.strip() == "").to_numpy()
    if missing.any():
        raise _rows_error(file, f"column '{C.ID_COL}' is empty", df, missing)
    ids = ids.astype("str")
    dup = ids.duplicated(keep=False).to_numpy()
    if dup.any():
        raise _rows_error(file, f"column '{C.ID_COL}' has duplicate values", df, dup, C.ID_COL)
    return ids


def _check_categories(df: pd.DataFrame, file: str, column: str, allowed: tuple) -> pd.Series:
    """Values of a meta column restricted to ``allowed``; cp_time is compared as a number."""
    values = df[column]
    if column == "cp_time":
        num = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isin(num, np.asarray(allowed, dtype=np.float64))
        converted = pd.Series(np.where(bad, 0, num).astype(np.int64), index=df.index, name=column)
    else:
        converted = values.astype("str")
        bad = (~converted.isin(allowed)).to_numpy() | values.isna().to_numpy()
    if bad.any():
        what = f"column '{column}' has unknown values (allowed: {_names(allowed)})"
        raise _rows_error(file, what, df, bad, column)
    return converted


def _numeric_block(df: pd.DataFrame, file: str, cols: list[str]) -> np.ndarray:
    """g-/c- values as float32, refusing text, NaN and ±inf (or values beyond float32)."""
    non_numeric = [c for c in cols if not _is_number_dtype(df[c].dtype)]
    converted = {}
    for col in non_numeric:
        num = pd.to_numeric(df[col], errors="coerce")
        bad = (num.isna() & df[col].notna()).to_numpy()
        if bad.any():
            also = [c for c in non_numeric if c != col][:MAX_EXAMPLES]
            extra = f" (other non-numeric columns: {_names(also)})" if also else ""
            raise _rows_error(file, f"column '{col}' has non-numeric values{extra}", df, bad, col)
        converted[col] = num
    block = df[cols].assign(**converted) if converted else df[cols]
    with np.errstate(over="ignore", invalid="ignore"):
        values = block.to_numpy(dtype=np.float64, na_value=np.nan).astype(np.float32)
    finite = np.isfinite(values)
    if not finite.all():
        bad_cols = np.flatnonzero(~finite.all(axis=0))
        col = cols[bad_cols[0]]
        also = f" (also in columns {_names([cols[j] for j in bad_cols[1:]])})" if bad_cols.size > 1 else ""
        what = f"column '{col}' has missing (NaN), infinite or out-of-range values{also}"
        raise _rows_error(file, what, df, ~finite[:, bad_cols[0]], col)
    return values


def _is_number_dtype(dtype) -> bool:
    return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)


# ------------------------------------------------------------------------------------------ features
def _check_feature_columns(df: pd.DataFrame, file: str) -> None:
    cols = list(df.columns)
    dup = sorted({c for c in cols if cols.count(c) > 1}) if len(set(cols)) != len(cols) else []
    if dup:
        raise InputError(f"{file}: duplicate columns: {_names(dup)}")
    expected = set(C.FEATURE_COLS)
    missing = [c for c in C.FEATURE_COLS if c not in set(cols)]
    if missing:
        raise InputError(f"{file}: missing columns: {_names(missing)}")
    extra = [c for c in cols if c not in expected]
    if extra:
        raise InputError(
            f"{file}: unknown columns: {_names(extra)} (expected exactly sig_id, "
            f"{', '.join(C.META_COLS)}, g-0..g-{C.N_GENES - 1}, c-0..c-{C.N_CELLS - 1})"
        )


def validate_features(df: pd.DataFrame, file: str) -> pd.DataFrame:
    """Check a features table and return it typed, in canonical column order.

    Used for train/test here and for new samples by ``moastack predict``. Types: sig_id, cp_type,
    cp_dose str; cp_time int64; g-/c- float32.
    """
    _check_rows(df, file)
    _check_feature_columns(df, file)
    ids = _check_ids(df, file)
    meta = {
        "cp_type": _check_categories(df, file, "cp_type", C.CP_TYPES),
        "cp_time": _check_categories(df, file, "cp_time", C.CP_TIMES),
        "cp_dose": _check_categories(df, file, "cp_dose", C.CP_DOSES),
    }
    values = _numeric_block(df, file, NUMERIC_COLS)
    head = pd.DataFrame({C.ID_COL: ids.to_numpy(), **{k: v.to_numpy() for k, v in meta.items()}})
    head = head.astype({C.ID_COL: "str", "cp_type": "str", "cp_time": np.int64, "cp_dose": "str"})
    return pd.concat([head, pd.DataFrame(values, columns=NUMERIC_COLS)], axis=1)


# ------------------------------------------------------------------------------------------- targets
def _validate_targets(df: pd.DataFrame, file: str) -> pd.DataFrame:
    """sig_id first, at least one target column, only 0/1 values; returns sig_id str + int8 targets."""
    _check_rows(df, file)
    cols = list(df.columns)
    if not cols or cols[0] != C.ID_COL:
        raise InputError(f"{file}: the first column must be '{C.ID_COL}', found {_names(cols[:1]) or 'none'}")
    targets = cols[1:]
    if not targets:
        raise InputError(f"{file}: no target columns after '{C.ID_COL}'")
    if C.ID_COL in targets:
        raise InputError(f"{file}: column '{C.ID_COL}' appears more than once")
    ids = _check_ids(df, file)
    block = df[targets]
    converted = {
        c: pd.to_numeric(block[c], errors="coerce") for c in targets if not _is_number_dtype(block[c].dtype)
    }
    if converted:
        block = block.assign(**converted)
    values = block.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~((values == 0) | (values == 1))
    if bad.any():
        bad_cols = np.flatnonzero(bad.any(axis=0))
        col = targets[bad_cols[0]]
        also = f" (also in columns {_names([targets[j] for j in bad_cols[1:]])})" if bad_cols.size > 1 else ""
        what = f"target column '{col}' has values other than 0 and 1{also}"
        raise _rows_error(file, what, df, bad[:, bad_cols[0]], col)
    out = pd.DataFrame(values.astype(np.int8), columns=targets)
    out.insert(0, C.ID_COL, ids.to_numpy())
    return out.astype({C.ID_COL: "str"})


def _validate_drug(df: pd.DataFrame, file: str) -> pd.DataFrame:
    """Exactly sig_id and drug_id, with no empty drug ids."""
    _check_rows(df, file)
    expected = [C.ID_COL, C.DRUG_COL]
    missing = [c for c in expected if c not in df.columns]
    if missing:
        raise InputError(f"{file}: missing columns: {_names(missing)}")
    extra = [c for c in df.columns if c not in expected]
    if extra:
        raise InputError(f"{file}: unknown columns: {_names(extra)} (expected exactly {_names(expected)})")
    ids = _check_ids(df, file)
    drugs = df[C.DRUG_COL]
    empty = drugs.isna().to_numpy() | (drugs.astype("str").str.strip() == "").to_numpy()
    if empty.any():
        raise _rows_error(file, f"column '{C.DRUG_COL}' is empty", df, empty)
    return pd.DataFrame({C.ID_COL: ids.to_numpy(), C.DRUG_COL: drugs.astype("str").to_numpy()}).astype("str")


# ------------------------------------------------------------------------------------------- tables
def _check_same_columns(train: pd.DataFrame, test: pd.DataFrame, train_file: str, test_file: str) -> None:
    """Test features must have exactly the train columns (names; order may differ)."""
    tr, te = list(train.columns), list(test.columns)
    if set(tr) == set(te):
        return
    missing = [c for c in tr if c not in set(te)]
    extra = [c for c in te if c not in set(tr)]
    parts = []
    if missing:
        parts.append(f"missing columns present in {train_file}: {_names(missing)}")
    if extra:
        parts.append(f"columns not in {train_file}: {_names(extra)}")
    raise InputError(f"{test_file}: feature columns differ from {train_file}: {'; '.join(parts)}")


def _check_id_match(ref: pd.Series, ref_file: str, table: pd.DataFrame, file: str) -> None:
    """A train table must have exactly the sig_ids of train_features."""
    ids = table[C.ID_COL]
    extra_mask = (~ids.isin(ref)).to_numpy()
    missing = ref[~ref.isin(ids)]
    if not extra_mask.any() and missing.empty:
        return
    parts = []
    if not missing.empty:
        parts.append(f"{len(missing)} sig_ids of {ref_file} are missing ({_names(missing.tolist())})")
    if extra_mask.any():
        parts.append(
            f"{int(extra_mask.sum())} sig_ids are not in {ref_file}: {_examples(table, extra_mask, C.ID_COL)}"
        )
    raise InputError(f"{file}: column '{C.ID_COL}' differs from {ref_file}: {'; '.join(parts)}")


def _reorder(table: pd.DataFrame, ids: pd.Series) -> pd.DataFrame:
    """Rows of ``table`` in the order of ``ids`` (same id set, checked before)."""
    pos = pd.Index(table[C.ID_COL]).get_indexer(ids)
    return table.iloc[pos].reset_index(drop=True)


def validate_tables(
    frames: dict[str, pd.DataFrame], files: dict[str, str] | None = None
) -> dict[str, pd.DataFrame]:
    """Check the five raw tables together and return them typed, targets and drugs in train order.

    ``files`` maps table name to the file name shown in messages (default ``<table>.csv``). The first
    problem found raises ``InputError``; nothing is returned partially.
    """
    files = {name: f"{name}.csv" for name in C.TABLES} | dict(files or {})
    for name in C.TABLES:
        if name not in frames:
            raise InputError(f"{files[name]}: table '{name}' is missing")
    out: dict[str, pd.DataFrame] = {}
    out["train_features"] = validate_features(frames["train_features"], files["train_features"])
    _check_rows(frames["test_features"], files["test_features"])
    _check_same_columns(
        frames["train_features"], frames["test_features"], files["train_features"], files["test_features"]
    )
    out["test_features"] = validate_features(frames["test_features"], files["test_features"])
    train_ids = out["train_features"][C.ID_COL]
    shared = out["test_features"][C.ID_COL].isin(train_ids).to_numpy()
    if shared.any():
        raise _rows_error(
            files["test_features"], f"sig_ids also in {files['train_features']}", out["test_features"], shared
        )

    for name in _TARGET_TABLES:
        out[name] = _validate_targets(frames[name], files[name])
    overlap = sorted(set(out[_TARGET_TABLES[0]].columns[1:]) & set(out[_TARGET_TABLES[1]].columns[1:]))
    if overlap:
        raise InputError(
            f"{files[_TARGET_TABLES[1]]}: target columns also in {files[_TARGET_TABLES[0]]}: "
            f"{_names(overlap)}"
        )
    out["train_drug"] = _validate_drug(frames["train_drug"], files["train_drug"])
    for name in (*_TARGET_TABLES, "train_drug"):
        _check_id_match(train_ids, files["train_features"], out[name], files[name])
        out[name] = _reorder(out[name], train_ids)
    log.info(
        "validated: %d train rows, %d test rows, %d scored and %d non-scored targets",
        len(out["train_features"]),
        len(out["test_features"]),
        out["train_targets_scored"].shape[1] - 1,
        out["train_targets_nonscored"].shape[1] - 1,
    )
    return {name: out[name] for name in C.TABLES}
