"""Fold schemes: named assignments ``sig_id -> fold``.

* ``multilabel_stratified`` — the winners' "old CV": iterative stratification on the targets.
* ``drug_aware`` — the "new CV": drugs with at most ``drug_threshold`` rows go whole into one fold
  (folds stratified on per-drug mean targets); larger drugs are split row by row, stratified. It held
  out unseen drugs the way the leaderboard did, so its scores are worse and more honest.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

from moastack.data.columns import DRUG_COL, ID_COL

METHODS = ("multilabel_stratified", "drug_aware")


def _stratify_matrix(targets: pd.DataFrame) -> np.ndarray:
    """Binary label matrix for stratification; missing labels count as negatives."""
    values = targets.drop(columns=[ID_COL]).to_numpy(dtype=np.float64)
    return np.nan_to_num(values, nan=0.0).astype(np.int8)


def multilabel_stratified(targets: pd.DataFrame, k: int, seed: int) -> pd.DataFrame:
    """Row-wise iterative stratification over every target column."""
    y = _stratify_matrix(targets)
    fold = np.full(len(targets), -1, dtype=np.int64)
    splitter = MultilabelStratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    for f, (_, valid_idx) in enumerate(splitter.split(np.zeros(len(y)), y)):
        fold[valid_idx] = f
    return pd.DataFrame({ID_COL: targets[ID_COL].to_numpy(), "fold": fold})


def drug_aware(
    targets: pd.DataFrame, drugs: pd.DataFrame, k: int, seed: int, drug_threshold: int = 18
) -> pd.DataFrame:
    """Small drugs whole per fold, large drugs split by row, both multilabel-stratified."""
    frame = targets.merge(drugs[[ID_COL, DRUG_COL]], on=ID_COL, how="left", validate="one_to_one")
    if frame[DRUG_COL].isna().any():
        missing = frame.loc[frame[DRUG_COL].isna(), ID_COL].head(5).tolist()
        raise ValueError(f"drug_aware folds: no drug_id for sig_ids {missing}")
    target_cols = [c for c in targets.columns if c != ID_COL]
    sizes = frame[DRUG_COL].value_counts()
    small = sizes.index[sizes <= drug_threshold]
    if len(small) < k:
        raise ValueError(
            f"drug_aware folds: only {len(small)} drugs have <= {drug_threshold} rows, fewer than k={k}; "
            "lower k or raise folds.<scheme>.drug_threshold"
        )
    splitter = MultilabelStratifiedKFold(n_splits=k, shuffle=True, random_state=seed)

    per_drug = frame.loc[frame[DRUG_COL].isin(small)].groupby(DRUG_COL, sort=True)[target_cols].mean()
    drug_fold: dict[str, int] = {}
    y_drug = (np.nan_to_num(per_drug.to_numpy(dtype=np.float64)) > 0).astype(np.int8)
    for f, (_, valid_idx) in enumerate(splitter.split(np.zeros(len(per_drug)), y_drug)):
        drug_fold.update(dict.fromkeys(per_drug.index[valid_idx], f))

    fold = frame[DRUG_COL].map(drug_fold)
    large_rows = frame.loc[~frame[DRUG_COL].isin(small)]
    if len(large_rows) >= k:
        y_rows = _stratify_matrix(large_rows[[ID_COL, *target_cols]])
        for f, (_, valid_idx) in enumerate(splitter.split(np.zeros(len(large_rows)), y_rows)):
            fold.loc[large_rows.index[valid_idx]] = f
    elif len(large_rows):
        fold.loc[large_rows.index] = np.arange(len(large_rows)) % k
    return pd.DataFrame({ID_COL: frame[ID_COL].to_numpy(), "fold": fold.to_numpy(dtype=np.int64)})


def make_folds(
    scheme: dict, targets: pd.DataFrame, drugs: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Build the fold table for one scheme of the config (``method``, ``k``, ``seed``...)."""
    method = scheme["method"]
    if method == "multilabel_stratified":
        return multilabel_stratified(targets, scheme["k"], scheme["seed"])
    if method == "drug_aware":
        if drugs is None:
            raise ValueError("drug_aware folds need the train_drug table")
        return drug_aware(targets, drugs, scheme["k"], scheme["seed"], scheme.get("drug_threshold", 18))
    raise ValueError(f"unknown fold method {method!r}; known: {', '.join(METHODS)}")
