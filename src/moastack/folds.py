"""Fold schemes: named assignments ``sig_id -> fold``.

* ``multilabel_stratified`` — the winners' "old CV": iterative stratification on the targets.
* ``drug_aware`` — the "new CV": drugs with at most ``drug_threshold`` rows go whole into one fold
  (folds stratified on per-drug mean targets); larger drugs are split row by row, stratified. It held
  out unseen drugs the way the leaderboard did, so its scores are worse and more honest.
* ``scaffold`` — molecules grouped by Bemis–Murcko scaffold, whole scaffolds per fold (the usual
  "scaffold split" of molecular benchmarks): validation molecules have ring systems the model never saw.
* ``group`` — GroupKFold-like on the compound (``train_drug.drug_id``): every row of a compound in one
  fold, fold sizes balanced greedily (:func:`balanced_group_folds`), seeded. Validation compounds are
  unseen compounds.
* ``rare_cell_type`` — the single-cell perturbation task's split (:func:`rare_cell_type`): each rare cell
  type's rows are held out together, each rare cell type in a different fold; the other rows are grouped
  by compound. Validation then asks what the test asks: a rare cell type's response to compounds whose
  response in the common cell types is known.

Missing labels (NaN, as in Tox21) are allowed everywhere: stratification counts them as negatives, so
folds balance the known positives; the metrics ignore the missing cells.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

from moastack.columns import DRUG_COL, ID_COL

METHODS = ("multilabel_stratified", "drug_aware", "scaffold", "group", "rare_cell_type")


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


def balanced_group_folds(
    codes: np.ndarray, k: int, seed: int, fold_sizes: np.ndarray | None = None,
    forbidden: dict[int, set[int]] | None = None,
) -> np.ndarray:
    """Fold of each group (``codes``: row -> group 0..g-1), every group whole in one fold.

    Groups go largest first, each into the fold with the fewest rows so far (lowest fold number on ties);
    groups of equal size come in an order shuffled by ``seed``. ``fold_sizes`` starts the counts (rows
    already placed); ``forbidden[g]`` lists folds group g should avoid, honoured unless it forbids every fold.
    """
    n_groups = int(codes.max()) + 1 if len(codes) else 0
    sizes = np.bincount(codes, minlength=n_groups)
    shuffled = np.random.default_rng(seed).permutation(n_groups)
    order = shuffled[np.argsort(-sizes[shuffled], kind="stable")]
    counts = np.zeros(k, dtype=np.int64) if fold_sizes is None else np.asarray(fold_sizes, dtype=np.int64).copy()
    group_fold = np.empty(n_groups, dtype=np.int64)
    for g in order:
        avoid = (forbidden or {}).get(int(g), set())
        allowed = [f for f in range(k) if f not in avoid] or list(range(k))
        f = min(allowed, key=lambda j: (counts[j], j))
        group_fold[g] = f
        counts[f] += sizes[g]
    return group_fold


def _drug_of(targets: pd.DataFrame, drugs: pd.DataFrame | None, method: str) -> np.ndarray:
    """Each target row's ``drug_id`` (the compound), in the rows' order."""
    if drugs is None:
        raise ValueError(f"{method} folds need the train_drug table (sig_id -> drug_id, the compound)")
    drug = targets[[ID_COL]].merge(drugs[[ID_COL, DRUG_COL]], on=ID_COL, how="left", validate="one_to_one")[DRUG_COL]
    if drug.isna().any():
        raise ValueError(f"{method} folds: no drug_id for sig_ids {targets.loc[drug.isna().to_numpy(), ID_COL].head(5).tolist()}")
    return drug.astype(str).to_numpy()


def group(targets: pd.DataFrame, drugs: pd.DataFrame, k: int, seed: int) -> pd.DataFrame:
    """Whole compounds (``drug_id``) per fold, fold sizes balanced greedily (:func:`balanced_group_folds`)."""
    codes, groups = pd.factorize(_drug_of(targets, drugs, "group"))
    if len(groups) < k:
        raise ValueError(f"group folds: only {len(groups)} compounds (drug_id), fewer than k={k}")
    return pd.DataFrame({ID_COL: targets[ID_COL].to_numpy(), "fold": balanced_group_folds(codes, k, seed)[codes]})


def rare_cell_types_of(cell_types: np.ndarray, rare: list[str] | None, n_rare: int | None) -> list[str]:
    """The rare cell types: the listed ones (each must occur), or the ``n_rare`` (default 2) cell types
    with the fewest rows, ties broken by name."""
    counts = pd.Series(cell_types).value_counts()
    if rare:
        unknown = [c for c in rare if c not in counts.index]
        if unknown:
            raise ValueError(f"rare_cell_type folds: rare_cell_types {unknown} have no training rows; "
                             f"cell types: {sorted(counts.index)}")
        return list(dict.fromkeys(rare))
    n = 2 if n_rare is None else int(n_rare)
    if not 1 <= n < len(counts):
        raise ValueError(f"rare_cell_type folds: n_rare={n} needs 1 <= n_rare < {len(counts)} (the cell types)")
    table = pd.DataFrame({"cell_type": counts.index, "rows": counts.to_numpy()})
    return table.sort_values(["rows", "cell_type"], kind="stable")["cell_type"].head(n).tolist()


def rare_cell_type(
    targets: pd.DataFrame, drugs: pd.DataFrame, cell_types: pd.Series | np.ndarray, k: int, seed: int,
    rare: list[str] | None = None, n_rare: int | None = None,
) -> pd.DataFrame:
    """The perturbation task's folds. The exact rule:

    1. The rare cell types are ``rare`` (config ``rare_cell_types``) or the ``n_rare`` cell types with the
       fewest rows (:func:`rare_cell_types_of`); there must be at most ``k`` of them.
    2. Rare cell type i (in that order) goes whole into fold ``perm[i]``, where ``perm`` is a permutation of
       0..k-1 drawn from ``numpy.random.default_rng(seed)``: each rare cell type in its own fold.
    3. Every other row is grouped by compound (``drug_id``); the groups are placed by
       :func:`balanced_group_folds` (largest first, ties shuffled by ``seed``, into the fold with the fewest
       rows so far, counting the rare rows already placed), and a compound avoids the folds that hold a rare
       row of the same compound unless that leaves no fold. So each held-out rare row's compound has its
       common-cell rows in training, as every test pair does.
    """
    cells = np.asarray(cell_types, dtype=object).astype(str)
    if len(cells) != len(targets):
        raise ValueError(f"rare_cell_type folds: {len(cells)} cell types for {len(targets)} target rows")
    rare_types = rare_cell_types_of(cells, rare, n_rare)
    if len(rare_types) > k:
        raise ValueError(f"rare_cell_type folds: {len(rare_types)} rare cell types need k >= {len(rare_types)}, got k={k}")
    drug = _drug_of(targets, drugs, "rare_cell_type")
    perm = np.random.default_rng(seed).permutation(k)
    fold = np.full(len(cells), -1, dtype=np.int64)
    for i, ct in enumerate(rare_types):
        fold[cells == ct] = perm[i]
    other = fold < 0
    codes, groups = pd.factorize(drug[other])
    if len(groups) < k - len(rare_types):
        raise ValueError(f"rare_cell_type folds: only {len(groups)} compounds outside the rare cell types for "
                         f"the {k - len(rare_types)} folds without one")
    placed = np.bincount(fold[~other], minlength=k)
    forbidden: dict[int, set[int]] = {}
    where = pd.Index(groups)
    for d, f in zip(drug[~other], fold[~other]):
        g = where.get_indexer([d])[0]
        if g >= 0:
            forbidden.setdefault(int(g), set()).add(int(f))
    fold[other] = balanced_group_folds(codes, k, seed, fold_sizes=placed, forbidden=forbidden)[codes]
    return pd.DataFrame({ID_COL: targets[ID_COL].to_numpy(), "fold": fold})


def make_folds(
    scheme: dict, targets: pd.DataFrame, drugs: pd.DataFrame | None = None, smiles: pd.Series | None = None,
    cell_types: pd.Series | None = None,
) -> pd.DataFrame:
    """Build the fold table for one scheme of the config (``method``, ``k``, ``seed``...).

    ``smiles`` (aligned with ``targets`` rows) is needed by the ``scaffold`` method only, ``cell_types``
    (aligned too) by ``rare_cell_type`` only.
    """
    method = scheme["method"]
    if method == "group":
        return group(targets, drugs, scheme["k"], scheme["seed"])
    if method == "rare_cell_type":
        if cell_types is None:
            raise ValueError("rare_cell_type folds need the cell_type column of train_features")
        return rare_cell_type(targets, drugs, cell_types, scheme["k"], scheme["seed"],
                              rare=scheme.get("rare_cell_types"), n_rare=scheme.get("n_rare"))
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
