"""A table data source: one CSV of rows (molecules) with an id, optional SMILES, numeric features and labels.

Tox21-style data come as one file: label columns with an empty field for "not measured", an id column
and a SMILES column. ``load_table_source`` turns such a file (plus an optional unlabelled test file) into
the five prepared tables the rest of moastack reads (``columns.TABLES``), with the same strictness as
``validate.py``: every problem stops here with the file, the column and up to five offending rows
(data rows counted from 1, the header is not a row).

Output layout: ``train_features``/``test_features`` = ``sig_id`` (the id as str), ``smiles`` (canonical
RDKit SMILES, when a SMILES column is configured), then the numeric feature columns as float32 (no
``cp_*`` columns); ``train_targets_scored`` = ``sig_id`` + labels as float32 with NaN for missing;
``train_targets_nonscored`` = ``sig_id`` only; ``train_drug`` = ``sig_id`` + ``drug_id`` (the canonical
SMILES, so the drug-aware folds keep one molecule in one fold; the id when there is no SMILES).

SMILES are read by :func:`moastack.data.smiles.read_smiles`: an aromatic ``n`` written without its H is
repaired when exactly one molecule results (counted in the log), the rest RDKit cannot read are refused
or dropped (``invalid_smiles``). One molecule under several ids (``duplicates``) is refused, reduced to
its first row, or merged into one row whose conflicting label cells follow an explicit policy
(``any_positive`` = ``merge``, ``majority``, ``drop_conflicts``), with the counts in the log.
``prepare`` records the columns in ``train_features.parquet``'s footer (:func:`table_record`), and
``moastack predict`` reads new molecules by them with this module's checks (:func:`load_new_rows`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from moastack import columns as C
from moastack.data.smiles import (  # parse_smiles, quiet_rdkit: re-exported for older imports
    ReadSmiles,
    parse_smiles,  # noqa: F401
    quiet_rdkit,  # noqa: F401
    read_smiles,
)
from moastack.data.validate import MAX_EXAMPLES, InputError, _names

log = logging.getLogger(__name__)

SMILES_COL = C.SMILES_COL
#: what to do with one molecule (canonical SMILES) under several ids; ``merge`` is ``any_positive`` (its older name)
DUPLICATE_POLICIES = ("refuse", "keep_first", "merge", "any_positive", "majority", "drop_conflicts")
INVALID_SMILES_POLICIES = ("refuse", "drop")
TABLE_KEYS = (
    "path",
    "id_column",
    "smiles_column",
    "feature_columns",
    "label_columns",
    "test_path",
    "duplicates",
    "invalid_smiles",
    "missing_labels",
)
_RESERVED = (C.ID_COL, SMILES_COL, C.DRUG_COL)
_COLUMN_LIMIT = 20  # how many of a file's columns a "missing columns" message lists


@dataclass(frozen=True)
class TableSpec:
    """The checked ``data.table`` settings."""

    path: str
    id_column: str
    label_columns: tuple[str, ...]
    smiles_column: str | None = None
    feature_columns: tuple[str, ...] = ()
    test_path: str | None = None
    duplicates: str = "refuse"
    invalid_smiles: str = "refuse"
    missing_labels: tuple[str, ...] = ()  # label values meaning "not measured" besides an empty field


@dataclass
class _Loaded:
    """One validated file: typed columns (``sig_id``, ``smiles``, features, labels) and file row numbers."""

    frame: pd.DataFrame
    rows: np.ndarray
    file: str


# ------------------------------------------------------------------------------------------- config
def table_spec(cfg: Mapping[str, Any], where: str = "data.table") -> TableSpec:
    """Check the config dict (keys, policies, column names) before any file is read."""
    cfg = dict(cfg or {})
    unknown = sorted(set(cfg) - set(TABLE_KEYS))
    if unknown:
        raise InputError(f"{where}: unknown settings {unknown}; known: {list(TABLE_KEYS)}")
    for key in ("path", "id_column"):
        if not cfg.get(key):
            raise InputError(f"{where}.{key}: required")
    labels = _column_list(cfg.get("label_columns"), f"{where}.label_columns")
    if not labels:
        raise InputError(f"{where}.label_columns: at least one label column is required")
    spec = TableSpec(
        path=str(cfg["path"]),
        id_column=str(cfg["id_column"]),
        label_columns=labels,
        smiles_column=cfg.get("smiles_column") or None,
        feature_columns=_column_list(cfg.get("feature_columns"), f"{where}.feature_columns"),
        test_path=str(cfg["test_path"]) if cfg.get("test_path") else None,
        duplicates=cfg.get("duplicates") or "refuse",
        invalid_smiles=cfg.get("invalid_smiles") or "refuse",
        missing_labels=_column_list(cfg.get("missing_labels"), f"{where}.missing_labels", "label values"),
    )
    _check_policies(spec, where)
    _check_column_roles(spec, where)
    return spec


def _column_list(value: Any, where: str, what: str = "column names") -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise InputError(f"{where}: expected a list of {what}, got {value!r}")
    return tuple(str(v) for v in value)


def _check_policies(spec: TableSpec, where: str) -> None:
    if spec.duplicates not in DUPLICATE_POLICIES:
        raise InputError(f"{where}.duplicates: expected one of {list(DUPLICATE_POLICIES)}, got {spec.duplicates!r}")
    if spec.invalid_smiles not in INVALID_SMILES_POLICIES:
        raise InputError(
            f"{where}.invalid_smiles: expected one of {list(INVALID_SMILES_POLICIES)}, got {spec.invalid_smiles!r}"
        )


def _check_column_roles(spec: TableSpec, where: str) -> None:
    """Each column has one role, and no feature or label column takes an output name (sig_id, smiles...)."""
    named = [spec.id_column, *([spec.smiles_column] if spec.smiles_column else []), *spec.feature_columns]
    named += list(spec.label_columns)
    repeated = sorted({c for c in named if named.count(c) > 1})
    if repeated:
        raise InputError(f"{where}: columns named in more than one role or twice: {_names(repeated)}")
    taken = [c for c in (*spec.feature_columns, *spec.label_columns) if c in _RESERVED]
    if taken:
        raise InputError(
            f"{where}: feature/label columns {_names(taken)} clash with the output columns {_names(_RESERVED)}"
        )


# ------------------------------------------------------------------------------------------- reading
def _read(path: str, spec: TableSpec) -> pd.DataFrame:
    """The CSV with only empty fields as missing (``NA`` is a value, and an error in a label column unless
    ``missing_labels`` lists it), or a Parquet file (by its ``.parquet`` extension) as it is typed."""
    file = Path(path)
    if not file.is_file():
        raise InputError(f"{path}: file not found")
    if file.stat().st_size == 0:
        raise InputError(f"{path}: file is empty")
    if file.suffix == ".parquet":
        try:
            return pd.read_parquet(file, engine="pyarrow")
        except Exception as err:  # pyarrow raises several unrelated types for a file that is not Parquet
            raise InputError(f"{path}: not a readable Parquet file: {err}") from err
    text_cols = {spec.id_column: "str", **({spec.smiles_column: "str"} if spec.smiles_column else {})}
    try:
        return pd.read_csv(file, dtype=text_cols, keep_default_na=False, na_values=[""], low_memory=False)
    except pd.errors.EmptyDataError as err:
        raise InputError(f"{path}: file is empty") from err
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
        raise InputError(f"{path}: not a readable CSV file: {err}") from err


def _check_columns(df: pd.DataFrame, file: str, wanted: Sequence[str]) -> None:
    missing = [c for c in wanted if c not in df.columns]
    if missing:
        raise InputError(
            f"{file}: missing columns: {_names(missing, _COLUMN_LIMIT)}; "
            f"the file has: {_names(list(df.columns), _COLUMN_LIMIT)}"
        )
    if len(df) == 0:
        raise InputError(f"{file}: no rows (the file has only a header)")


# ---------------------------------------------------------------------------------------- messages
def _examples(mask: np.ndarray, rows: np.ndarray, ids: np.ndarray | None, id_name: str, values=None) -> str:
    """'row 3 (mol_id X) 'abc', ...' for the first few rows where ``mask`` is true."""
    hits = np.flatnonzero(mask)
    parts = []
    for i in hits[:MAX_EXAMPLES]:
        text = f"row {rows[i]}"
        if ids is not None:
            text += f" ({id_name} {ids[i]})"
        if values is not None:
            value = values[i]
            text += f" {value!r}" if isinstance(value, str) else f" {value}"
        parts.append(text)
    if hits.size > MAX_EXAMPLES:
        parts.append(f"... ({hits.size - MAX_EXAMPLES} more)")
    return ", ".join(parts)


def _rows_error(file: str, what: str, mask: np.ndarray, rows: np.ndarray, ids, id_name: str, values=None, hint=""):
    n = int(mask.sum())
    examples = _examples(mask, rows, ids, id_name, values)
    return InputError(f"{file}: {what} in {n} row{'s' if n != 1 else ''}: {examples}{hint}")


# ------------------------------------------------------------------------------------------ columns
def _ids(df: pd.DataFrame, file: str, col: str, rows: np.ndarray) -> np.ndarray:
    """Non-empty, unique ids as str."""
    raw = df[col]
    empty = raw.isna().to_numpy() | (raw.astype("str").str.strip() == "").to_numpy()
    if empty.any():
        raise _rows_error(file, f"column '{col}' is empty", empty, rows, None, col)
    ids = raw.astype("str").to_numpy(dtype=object)
    dup = pd.Series(ids).duplicated(keep=False).to_numpy()
    if dup.any():
        raise _rows_error(file, f"column '{col}' has duplicate values", dup, rows, None, col, ids)
    return ids


def _numeric(df: pd.DataFrame, col: str) -> tuple[np.ndarray, np.ndarray]:
    """float64 values (NaN where empty) and the mask of fields that are not numbers."""
    num = pd.to_numeric(df[col], errors="coerce") if not _is_number(df[col]) else df[col]
    values = num.to_numpy(dtype=np.float64, na_value=np.nan)
    return values, (np.isnan(values) & df[col].notna().to_numpy())


def _is_number(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype)


def _labels(df: pd.DataFrame, file: str, cols: Sequence[str], rows, ids, id_name, missing=()) -> np.ndarray:
    """0/1 labels as float32, NaN where the field is empty or one of ``missing``; anything else is an error."""
    out = np.empty((len(df), len(cols)), dtype=np.float32)
    for j, col in enumerate(cols):
        raw = df[col]
        if missing:
            raw = raw.mask(raw.astype("str").str.strip().isin(missing))
        values, _ = _numeric(raw.to_frame(), col)
        bad = ~((values == 0) | (values == 1) | raw.isna().to_numpy())
        if bad.any():
            also = f", {_names(missing)}" if missing else ""
            what = f"label column '{col}' has values other than 0, 1{also} and empty"
            raise _rows_error(file, what, bad, rows, ids, id_name, df[col].to_numpy(dtype=object))
        out[:, j] = values
    return out


def _features(df: pd.DataFrame, file: str, cols: Sequence[str], rows, ids, id_name) -> np.ndarray:
    """Finite numeric features as float32; text, empty fields and ±inf are errors."""
    out = np.empty((len(df), len(cols)), dtype=np.float32)
    for j, col in enumerate(cols):
        values, text = _numeric(df, col)
        if text.any():
            what = f"feature column '{col}' has non-numeric values"
            raise _rows_error(file, what, text, rows, ids, id_name, df[col].to_numpy(dtype=object))
        with np.errstate(over="ignore"):
            out[:, j] = values
        bad = ~np.isfinite(out[:, j])
        if bad.any():
            what = f"feature column '{col}' has missing (empty), infinite or out-of-range values"
            raise _rows_error(file, what, bad, rows, ids, id_name, values)
    return out


# ------------------------------------------------------------------------------------------- SMILES
CONFIG_DROP_HINT = "set invalid_smiles: drop to skip them"


@dataclass(frozen=True)
class _Change:
    """A repaired SMILES as a message shows it: 'raw' -> 'canonical'."""

    raw: object
    canonical: object

    def __str__(self) -> str:
        return f"{self.raw!r} -> {self.canonical!r}"


def _smiles(df, file, col, policy, rows, ids, id_name, drop_hint) -> tuple[np.ndarray, np.ndarray]:
    """Canonical SMILES (repaired where :func:`read_smiles` can) and the mask of rows to keep (``drop``
    policy) or an error (``refuse``); repairs are logged as a warning with their count."""
    raw = df[col].to_numpy(dtype=object)
    read = read_smiles(raw)
    if read.repaired.any():
        changes = [_Change(r, c) for r, c in zip(raw, read.canonical, strict=True)]
        log.warning("%s: column '%s': repaired %d SMILES whose aromatic n lacked its H ([nH] at the one position "
                    "that parses): %s", file, col, int(read.repaired.sum()),
                    _examples(read.repaired, rows, ids, id_name, changes))
    bad = read.invalid
    if bad.any() and policy == "refuse":
        what = f"column '{col}' has SMILES RDKit cannot parse"
        hint = f"{_ambiguous_note(read, rows, ids, id_name, raw)} ({drop_hint})"
        raise _rows_error(file, what, bad, rows, ids, id_name, raw, hint)
    if bad.any():
        examples = _examples(bad, rows, ids, id_name, raw)
        log.warning("%s: dropped %d rows whose SMILES RDKit cannot parse: %s%s", file, int(bad.sum()), examples,
                    _ambiguous_note(read, rows, ids, id_name, raw))
    return read.canonical, ~bad


def _ambiguous_note(read: ReadSmiles, rows, ids, id_name, raw) -> str:
    """'; ambiguous repair ... in 2 rows: row 4 ...' for the invalid SMILES that more than one repair parses."""
    n = int(read.ambiguous.sum())
    if not n:
        return ""
    return (f"; of these, {n} row{'s' if n != 1 else ''} lack the H of an aromatic n but [nH] at different "
            f"positions gives different molecules (ambiguous, not repaired): "
            f"{_examples(read.ambiguous, rows, ids, id_name, raw)}")


# ------------------------------------------------------------------------------------------ one file
def _load_file(path: str, spec: TableSpec, labelled: bool, drop_hint: str = CONFIG_DROP_HINT) -> _Loaded:
    """Read and validate one file; labels only for the train file."""
    df = _read(path, spec)
    labels = list(spec.label_columns) if labelled else []
    smiles = [spec.smiles_column] if spec.smiles_column else []
    _check_columns(df, path, [spec.id_column, *smiles, *spec.feature_columns, *labels])
    rows = np.arange(1, len(df) + 1)
    id_name = spec.id_column
    ids = _ids(df, path, id_name, rows)
    label_values = _labels(df, path, labels, rows, ids, id_name, spec.missing_labels)
    feature_values = _features(df, path, spec.feature_columns, rows, ids, id_name)
    out = {C.ID_COL: pd.Series(ids, dtype="str")}
    keep = np.ones(len(df), dtype=bool)
    if spec.smiles_column:
        canon, keep = _smiles(df, path, spec.smiles_column, spec.invalid_smiles, rows, ids, id_name, drop_hint)
        out[SMILES_COL] = pd.Series(canon, dtype=object)
    frame = pd.concat(
        [
            pd.DataFrame(out),
            pd.DataFrame(feature_values, columns=list(spec.feature_columns)),
            pd.DataFrame(label_values, columns=labels),
        ],
        axis=1,
    )
    frame = frame.loc[keep].reset_index(drop=True)
    if spec.smiles_column:
        frame[SMILES_COL] = frame[SMILES_COL].astype("str")
    if len(frame) == 0:
        raise InputError(f"{path}: no rows left after dropping rows with unparsable SMILES")
    return _Loaded(frame, rows[keep], path)


# ------------------------------------------------------------------------------------- duplicates
def _duplicate_molecules(train: _Loaded, spec: TableSpec) -> _Loaded:
    """Apply the ``duplicates`` policy to rows that share a canonical SMILES under different ids; the log
    says how many molecules were repeated, how many rows they had, how many label cells their rows
    disagreed on and what became of those cells."""
    key = train.frame[SMILES_COL]
    dup = key.duplicated(keep=False).to_numpy()
    if not dup.any():
        return train
    if spec.duplicates == "refuse":
        raise InputError(_duplicates_message(train, spec))
    first = ~key.duplicated(keep="first").to_numpy()
    n_rows, n_groups = int(dup.sum()), int((dup & first).sum())
    votes = _LabelVotes.count(train.frame, list(spec.label_columns))
    if spec.duplicates == "keep_first":
        log.warning("%s: %d rows repeat %d molecules; kept the first row of each (%d label cells disagreed; the "
                    "first row's value kept)", train.file, n_rows, n_groups, votes.n_conflicts)
        return _Loaded(train.frame.loc[first].reset_index(drop=True), train.rows[first], train.file)
    values, note = votes.resolve(spec.duplicates)
    out = train.frame.loc[first].reset_index(drop=True)
    out[list(spec.label_columns)] = values.loc[out[SMILES_COL]].to_numpy(dtype=np.float32)
    log.warning("%s: merged %d rows into %d molecules (%d label cells disagreed, resolved by duplicates: %s: %s)",
                train.file, n_rows, n_groups, votes.n_conflicts, spec.duplicates, note)
    return _Loaded(out, train.rows[first], train.file)


@dataclass
class _LabelVotes:
    """Per molecule (canonical SMILES, in first-appearance order) and label: how many of its rows say 1 and 0."""

    positive: pd.DataFrame
    negative: pd.DataFrame

    @classmethod
    def count(cls, frame: pd.DataFrame, labels: list[str]) -> _LabelVotes:
        values = frame[labels]
        groups = frame[SMILES_COL].to_numpy()
        return cls((values == 1).groupby(groups, sort=False).sum(), (values == 0).groupby(groups, sort=False).sum())

    @property
    def conflicts(self) -> pd.DataFrame:
        return (self.positive > 0) & (self.negative > 0)

    @property
    def n_conflicts(self) -> int:
        return int(self.conflicts.to_numpy().sum())

    def resolve(self, policy: str) -> tuple[pd.DataFrame, str]:
        """One label per molecule and cell (NaN where no row is labelled), and how the conflicting cells
        were resolved. ``any_positive`` (``merge``): 1 if any row says 1. ``majority``: the more frequent
        value; a tie becomes missing. ``drop_conflicts``: a conflicting cell becomes missing."""
        pos, neg, conflicts = self.positive, self.negative, self.conflicts
        agreed = pd.DataFrame(np.where(pos > 0, 1.0, np.where(neg > 0, 0.0, np.nan)), index=pos.index, columns=pos.columns)
        n = self.n_conflicts
        if policy in ("merge", "any_positive"):
            return agreed, f"{n} set positive (any positive wins)"
        if policy == "drop_conflicts":
            return agreed.mask(conflicts), f"{n} set missing (conflicts dropped)"
        if policy == "majority":
            vote = np.where(pos > neg, 1.0, np.where(neg > pos, 0.0, np.nan))
            resolved = agreed.mask(conflicts, pd.DataFrame(vote, index=pos.index, columns=pos.columns))
            to_pos = int((conflicts & (pos > neg)).to_numpy().sum())
            to_neg = int((conflicts & (neg > pos)).to_numpy().sum())
            return resolved, f"{to_pos} set positive and {to_neg} negative by majority, {n - to_pos - to_neg} ties set missing"
        raise ValueError(f"duplicates: no merge rule for {policy!r}")


def _duplicates_message(train: _Loaded, spec: TableSpec) -> str:
    """'file: column 'smiles': the same molecule under different ids ...: 'CCO': mol_id 'a' (row 1), ...'."""
    key = train.frame[SMILES_COL]
    groups = [idx for idx in key.groupby(key, sort=False).indices.values() if len(idx) > 1]
    parts = []
    for idx in groups[:MAX_EXAMPLES]:
        members = ", ".join(f"{train.frame[C.ID_COL].iat[i]!r} (row {train.rows[i]})" for i in idx)
        parts.append(f"{key.iat[idx[0]]!r}: {spec.id_column} {members}")
    more = f"; ... ({len(groups) - MAX_EXAMPLES} more)" if len(groups) > MAX_EXAMPLES else ""
    return (
        f"{train.file}: column '{spec.smiles_column}' has the same molecule (canonical SMILES) under different "
        f"ids in {len(groups)} groups: {'; '.join(parts)}{more} (set duplicates: keep_first, any_positive, "
        f"majority or drop_conflicts)"
    )


# ------------------------------------------------------------------------------------------- tables
def _check_test_ids(train: _Loaded, test: _Loaded, spec: TableSpec) -> None:
    ids = test.frame[C.ID_COL]
    shared = ids.isin(train.frame[C.ID_COL]).to_numpy()
    if shared.any():
        what = f"column '{spec.id_column}' has ids also in {train.file}"
        raise _rows_error(test.file, what, shared, test.rows, None, spec.id_column, ids.to_numpy(dtype=object))
    if spec.smiles_column:
        seen = int(test.frame[SMILES_COL].isin(train.frame[SMILES_COL]).sum())
        if seen:
            log.warning("%s: %d test molecules also occur in %s", test.file, seen, train.file)


def _warn_thin_labels(targets: pd.DataFrame, file: str) -> None:
    """A label with no positive or no negative cannot be learned or scored by AUC: say so early."""
    values = targets.drop(columns=[C.ID_COL])
    pos, neg = (values == 1).sum(), (values == 0).sum()
    thin = [c for c in values.columns if pos[c] == 0 or neg[c] == 0]
    if thin:
        log.warning("%s: label columns without both classes: %s", file, _names(thin))


def _tables(train: _Loaded, test: _Loaded | None, spec: TableSpec) -> dict[str, pd.DataFrame]:
    frame = train.frame
    feature_cols = [C.ID_COL, *([SMILES_COL] if spec.smiles_column else []), *spec.feature_columns]
    train_features = frame[feature_cols].reset_index(drop=True)
    test_features = train_features.iloc[:0].copy() if test is None else test.frame[feature_cols]
    drug = frame[SMILES_COL] if spec.smiles_column else frame[C.ID_COL]
    out = {
        "train_features": train_features,
        "train_targets_scored": frame[[C.ID_COL, *spec.label_columns]].reset_index(drop=True),
        "train_targets_nonscored": frame[[C.ID_COL]].reset_index(drop=True),
        "train_drug": pd.DataFrame({C.ID_COL: frame[C.ID_COL], C.DRUG_COL: drug.astype("str")}),
        "test_features": test_features.reset_index(drop=True),
    }
    return {name: out[name] for name in C.TABLES}


def load_table_source(cfg: Mapping[str, Any], where: str = "data.table") -> dict[str, pd.DataFrame]:
    """The five prepared tables from a table config; every check runs before anything is returned."""
    spec = table_spec(cfg, where)
    train = _load_file(spec.path, spec, labelled=True)
    if spec.smiles_column:
        train = _duplicate_molecules(train, spec)
    test = _load_file(spec.test_path, spec, labelled=False) if spec.test_path else None
    if test is not None:
        _check_test_ids(train, test, spec)
    tables = _tables(train, test, spec)
    _warn_thin_labels(tables["train_targets_scored"], spec.path)
    labels = tables["train_targets_scored"].drop(columns=[C.ID_COL])
    log.info(
        "table source: %d train rows, %d test rows, %d labels (%.1f%% of label cells missing)",
        len(train.frame), len(tables["test_features"]), labels.shape[1], 100.0 * float(labels.isna().mean().mean()),
    )
    return tables


# ------------------------------------------------------------------------------------- new rows
#: where ``prepare`` records the table source's columns: a key of ``train_features.parquet``'s footer
#: (Parquet key-value metadata), read by ``moastack predict`` to validate new molecules as prepare did
RECORD_KEY = "moastack.table_source"
_RECORDED = ("id_column", "smiles_column", "feature_columns", "label_columns")


def table_record(cfg: Mapping[str, Any], where: str = "data.table") -> dict[str, Any]:
    """What a results folder keeps of a table config: the columns new rows are read by (no paths or policies)."""
    spec = table_spec(cfg, where)
    return {"id_column": spec.id_column, "smiles_column": spec.smiles_column,
            "feature_columns": list(spec.feature_columns), "label_columns": list(spec.label_columns)}


def load_new_rows(path: str, record: Mapping[str, Any], invalid_smiles: str = "refuse",
                  drop_hint: str = CONFIG_DROP_HINT) -> pd.DataFrame:
    """New rows to predict (CSV, or Parquet by extension), validated like the table source's test file:
    the recorded id, SMILES and feature columns must be there (others are ignored), ids non-empty and
    unique, features finite, SMILES parsable (or repaired; ``invalid_smiles: drop`` drops the rest with a
    logged count). Returns the prepared layout: ``sig_id``, ``smiles`` (canonical), the feature columns."""
    cfg = {key: record.get(key) for key in _RECORDED}
    spec = table_spec({**cfg, "path": str(path), "invalid_smiles": invalid_smiles}, where=f"{RECORD_KEY} record")
    frame = _load_file(str(path), spec, labelled=False, drop_hint=drop_hint).frame
    return frame[[C.ID_COL, *([SMILES_COL] if spec.smiles_column else []), *spec.feature_columns]]
