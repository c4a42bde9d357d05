"""Fold schemes: named assignments ``sig_id -> fold``.

* ``multilabel_stratified`` — the winners' "old CV": iterative stratification on the targets.
* ``drug_aware`` — the "new CV": drugs with at most ``drug_threshold`` rows go whole into one fold
  (folds stratified on per-drug mean targets); larger drugs are split row by row, stratified. It held
  out unseen drugs the way the leaderboard did, so its scores are worse and more honest.
* ``scaffold`` — molecules grouped by Bemis–Murcko scaffold, whole scaffolds per fold (the usual
  "scaffold split" of molecular benchmarks): validation molecules have ring systems the model never saw.

Missing labels (NaN, as in Tox21) are allowed everywhere: stratification counts them as negatives, so
folds balance the known positives; the metrics ignore the missing cells.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

from moastack.data.columns import DRUG_COL, ID_COL

METHODS = ("multilabel_stratified", "drug_aware", "scaffold")


def _stratify_matrix(targets: pd.DataFrame) -> np.ndarray:
    """Binary label matrix for stratification; missing labels count as negatives."""
    values = targets.drop(columns=[ID_COL]).to_numpy(dtype=np.float64)
    return np.nan_to_num(values, nan=0.0).astype(np.int8)


def multilabel_stratified(targets: pd.DataFrame, k: int, seed: int) -> pd.DataFrame:
    """Row-wise iterative stratification over every target column.

    A missing label (NaN) counts as a negative: the folds then balance the known positives, which is
    what a sparse label matrix needs (a missing cell is most often an untested negative in Tox21).
    """
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


def scaffold_groups(smiles: pd.Series | np.ndarray) -> np.ndarray:
    """Group key per molecule: its Bemis–Murcko scaffold SMILES.

    Acyclic molecules (empty scaffold) and unparsable SMILES each form their own group, keyed by
    their row: an acyclic molecule shares no ring system with anything, and pooling them (about a
    quarter of Tox21) would make one group larger than a fold and unbalance the split.
    Each distinct SMILES is processed once.
    """
    from rdkit.Chem.Scaffolds import MurckoScaffold

    from moastack.data.table import parse_smiles

    values = pd.Series(np.asarray(smiles, dtype=object))
    codes, uniques = pd.factorize(values.where(values.notna(), ""))
    mols = parse_smiles(list(uniques))
    scaffolds = np.array(
        ["" if m is None else MurckoScaffold.MurckoScaffoldSmiles(mol=m) for m in mols], dtype=object
    )
    keys = scaffolds[codes] if len(codes) else np.empty(0, dtype=object)
    own = keys == ""
    keys[own] = [f"\0row{i}" for i in np.flatnonzero(own)]  # NUL prefix: cannot clash with a SMILES
    return keys


def scaffold(targets: pd.DataFrame, smiles: pd.Series, k: int, seed: int) -> pd.DataFrame:
    """Whole Bemis–Murcko scaffold groups per fold, fold sizes balanced greedily.

    ``smiles`` is aligned with the rows of ``targets`` (by position). Groups go largest first, each into
    the fold with the fewest rows so far (lowest fold number on ties); groups of equal size come in an
    order shuffled by ``seed``, so different seeds give different splits of the many small scaffolds.
    Labels are not stratified: a scaffold split is about unseen chemistry, not label balance.
    """
    if len(smiles) != len(targets):
        raise ValueError(f"scaffold folds: {len(smiles)} SMILES for {len(targets)} target rows")
    keys = scaffold_groups(smiles)
    codes, groups = pd.factorize(keys)
    if len(groups) < k:
        raise ValueError(f"scaffold folds: only {len(groups)} scaffold groups, fewer than k={k}")
    sizes = np.bincount(codes, minlength=len(groups))
    shuffled = np.random.default_rng(seed).permutation(len(groups))
    order = shuffled[np.argsort(-sizes[shuffled], kind="stable")]
    group_fold = np.empty(len(groups), dtype=np.int64)
    fold_sizes = np.zeros(k, dtype=np.int64)
    for g in order:
        f = int(np.argmin(fold_sizes))
        group_fold[g] = f
        fold_sizes[f] += sizes[g]
    return pd.DataFrame({ID_COL: targets[ID_COL].to_numpy(), "fold": group_fold[codes]})


def make_folds(
    scheme: dict, targets: pd.DataFrame, drugs: pd.DataFrame | None = None, smiles: pd.Series | None = None
) -> pd.DataFrame:
    """Build the fold table for one scheme of the config (``method``, ``k``, ``seed``...).

    ``smiles`` (aligned with ``targets`` rows) is needed by the ``scaffold`` method only.
    """
    method = scheme["method"]
    if method == "multilabel_stratified":
        return multilabel_stratified(targets, scheme["k"], scheme["seed"])
    if method == "drug_aware":
        if drugs is None:
            raise ValueError("drug_aware folds need the train_drug table")
        return drug_aware(targets, drugs, scheme["k"], scheme["seed"], scheme.get("drug_threshold", 18))
    if method == "scaffold":
        if smiles is None:
            raise ValueError("scaffold folds need the SMILES of the train rows (a table source with smiles_column)")
        return scaffold(targets, smiles, scheme["k"], scheme["seed"])
    raise ValueError(f"unknown fold method {method!r}; known: {', '.join(METHODS)}")
