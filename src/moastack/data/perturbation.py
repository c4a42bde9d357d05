"""Validation of a regression task's five tables (single-cell perturbation layout).

The layout is moastack's table contract with other columns than lish-moa's: ``train_features`` /
``test_features`` hold ``sig_id`` plus key columns (``cell_type``, ``compound``, optional ``smiles``; any
further string or numeric columns are kept), ``train_targets_scored`` holds ``sig_id`` plus continuous
targets (float32, finite: MRRMSE needs dense targets), ``train_targets_nonscored`` ``sig_id`` plus optional
float targets, ``train_drug`` ``sig_id`` and ``drug_id`` (the compound, what ``group`` and
``rare_cell_type`` folds group on). As with :func:`moastack.data.validate.validate_tables`, every check
runs before anything is returned, and target tables come back in train order.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from moastack import columns as C
from moastack.data.validate import InputError, _check_id_match, _check_ids, _check_rows, _names, _reorder

log = logging.getLogger(__name__)

#: feature columns a perturbation table must have (the keys the features and target encodings read)
REQUIRED_FEATURE_COLS = ("cell_type", "compound")


def _is_number(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype)


def validate_perturbation_features(df: pd.DataFrame, file: str) -> pd.DataFrame:
    """``sig_id`` + key columns as str (no missing keys), numeric columns as float32 (finite)."""
    _check_rows(df, file)
    cols = list(df.columns)
    if len(set(cols)) != len(cols):
        raise InputError(f"{file}: duplicate columns: {_names(sorted({c for c in cols if cols.count(c) > 1}))}")
    missing = [c for c in REQUIRED_FEATURE_COLS if c not in cols]
    if missing:
        raise InputError(f"{file}: missing columns: {_names(missing)} (a perturbation table has sig_id, "
                         "cell_type, compound and optionally smiles)")
    ids = _check_ids(df, file)
    out = {C.ID_COL: ids.astype(str).to_numpy()}
    for col in cols:
        if col == C.ID_COL:
            continue
        values = df[col]
        if _is_number(values):
            x = values.to_numpy(dtype=np.float64)
            if not np.isfinite(x).all():
                raise InputError(f"{file}: column '{col}' has missing or infinite values")
            out[col] = x.astype(np.float32)
        else:
            empty = values.isna().to_numpy() | (values.astype(str).str.strip() == "").to_numpy()
            if col in REQUIRED_FEATURE_COLS and empty.any():
                raise InputError(f"{file}: column '{col}' is empty in {int(empty.sum())} rows")
            out[col] = values.astype(str).where(~empty, "").to_numpy()
    frame = pd.DataFrame(out)
    str_cols = [c for c in frame.columns if frame[c].dtype == object]
    return frame.astype({c: "str" for c in str_cols})


def _validate_float_targets(df: pd.DataFrame, file: str, dense: bool) -> pd.DataFrame:
    _check_rows(df, file)
    cols = list(df.columns)
    if not cols or cols[0] != C.ID_COL:
        raise InputError(f"{file}: the first column must be '{C.ID_COL}', found {_names(cols[:1]) or 'none'}")
    targets = cols[1:]
    if dense and not targets:
        raise InputError(f"{file}: no target columns after '{C.ID_COL}'")
    ids = _check_ids(df, file)
    block = df[targets].apply(pd.to_numeric, errors="coerce") if targets else df[targets]
    values = block.to_numpy(dtype=np.float32) if targets else np.zeros((len(df), 0), np.float32)
    bad = ~np.isfinite(values)
    if bad.any():
        col = targets[int(np.flatnonzero(bad.any(axis=0))[0])]
        raise InputError(f"{file}: target column '{col}' has missing, non-numeric or infinite values "
                         f"({int(bad.sum())} cells in all); a regression task needs dense targets")
    out = pd.DataFrame(values, columns=targets)
    out.insert(0, C.ID_COL, ids.astype(str).to_numpy())
    return out.astype({C.ID_COL: "str"})


def validate_perturbation_tables(
    frames: dict[str, pd.DataFrame], files: dict[str, str] | None = None
) -> dict[str, pd.DataFrame]:
    """The five tables checked together and typed; targets and drugs reordered to train order."""
    files = {name: f"{name}.csv" for name in C.TABLES} | dict(files or {})
    for name in C.TABLES:
        if name not in frames:
            raise InputError(f"{files[name]}: table '{name}' is missing")
    out = {
        "train_features": validate_perturbation_features(frames["train_features"], files["train_features"]),
        "test_features": validate_perturbation_features(frames["test_features"], files["test_features"]),
    }
    if set(out["train_features"].columns) != set(out["test_features"].columns):
        raise InputError(f"{files['test_features']}: feature columns differ from {files['train_features']}")
    out["test_features"] = out["test_features"][list(out["train_features"].columns)]
    train_ids = out["train_features"][C.ID_COL]
    shared = out["test_features"][C.ID_COL].isin(train_ids)
    if shared.any():
        raise InputError(f"{files['test_features']}: {int(shared.sum())} sig_ids also in {files['train_features']}, "
                         f"e.g. {out['test_features'].loc[shared, C.ID_COL].head(3).tolist()}")
    out["train_targets_scored"] = _validate_float_targets(frames["train_targets_scored"], files["train_targets_scored"],
                                                          dense=True)
    out["train_targets_nonscored"] = _validate_float_targets(frames["train_targets_nonscored"],
                                                             files["train_targets_nonscored"], dense=False)
    drug = frames["train_drug"]
    if list(drug.columns) != [C.ID_COL, C.DRUG_COL]:
        raise InputError(f"{files['train_drug']}: expected exactly the columns {C.ID_COL}, {C.DRUG_COL}")
    _check_ids(drug, files["train_drug"])
    if drug[C.DRUG_COL].isna().any():
        raise InputError(f"{files['train_drug']}: column '{C.DRUG_COL}' is empty")
    out["train_drug"] = drug.astype(str).reset_index(drop=True)
    for name in ("train_targets_scored", "train_targets_nonscored", "train_drug"):
        _check_id_match(train_ids, files["train_features"], out[name], files[name])
        out[name] = _reorder(out[name], train_ids)
    log.info("validated: %d train rows, %d test rows, %d continuous targets", len(out["train_features"]),
             len(out["test_features"]), out["train_targets_scored"].shape[1] - 1)
    return {name: out[name] for name in C.TABLES}
