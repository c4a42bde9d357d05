import numpy as np
import pandas as pd
import pytest

from moastack.folds import drug_aware, make_folds, multilabel_stratified


def _targets_and_drugs(seed=0):
    """Drugs of mixed sizes (a few large, most 6-18 rows), each with one or two mechanisms."""
    rng = np.random.default_rng(seed)
    sizes = [120, 90] + list(rng.integers(6, 19, size=60))
    n_targets = 12
    rows, drugs = [], []
    for d, size in enumerate(sizes):
        moa = np.zeros(n_targets, dtype=np.int8)
        moa[rng.choice(n_targets, size=rng.integers(1, 3), replace=False)] = 1
        for _ in range(size):
            rows.append(moa)
            drugs.append(f"drug{d}")
    ids = [f"id_{i:05d}" for i in range(len(rows))]
    targets = pd.DataFrame(np.array(rows), columns=[f"t{j}" for j in range(n_targets)])
    targets.insert(0, "sig_id", ids)
    return targets, pd.DataFrame({"sig_id": ids, "drug_id": drugs})


def test_multilabel_stratified_covers_every_sample_once_and_balances_labels():
    targets, _ = _targets_and_drugs()
    folds = multilabel_stratified(targets, k=5, seed=1)
    assert list(folds["sig_id"]) == list(targets["sig_id"])
    assert set(folds["fold"]) == set(range(5))
    sizes = folds["fold"].value_counts()
    assert sizes.max() - sizes.min() <= 0.1 * len(folds)
    y = targets.drop(columns="sig_id").to_numpy()
    per_fold = np.array([y[folds["fold"].to_numpy() == f].sum(axis=0) for f in range(5)])
    # each label's positives are spread within one or two of the even share per fold
    assert (np.abs(per_fold - y.sum(axis=0) / 5) <= np.maximum(2, 0.2 * y.sum(axis=0))).all()


def test_drug_aware_keeps_small_drugs_whole_and_splits_large_ones():
    targets, drugs = _targets_and_drugs()
    folds = drug_aware(targets, drugs, k=5, seed=1, drug_threshold=18)
    merged = folds.merge(drugs, on="sig_id")
    folds_per_drug = merged.groupby("drug_id")["fold"].nunique()
    sizes = drugs["drug_id"].value_counts()
    assert (folds_per_drug[sizes[sizes <= 18].index] == 1).all()
    assert (folds_per_drug[sizes[sizes > 18].index] == 5).all()
    assert sorted(folds["fold"].unique()) == list(range(5))
    assert list(folds["sig_id"]) == list(targets["sig_id"])


def test_folds_are_deterministic_per_seed():
    targets, drugs = _targets_and_drugs()
    a = make_folds({"method": "drug_aware", "k": 4, "seed": 3}, targets, drugs)
    b = make_folds({"method": "drug_aware", "k": 4, "seed": 3}, targets, drugs)
    c = make_folds({"method": "drug_aware", "k": 4, "seed": 4}, targets, drugs)
    pd.testing.assert_frame_equal(a, b)
    assert not a["fold"].equals(c["fold"])


def test_missing_labels_are_tolerated():
    targets, _ = _targets_and_drugs()
    targets = targets.astype({c: float for c in targets.columns if c != "sig_id"})
    targets.iloc[::7, 3] = np.nan
    folds = multilabel_stratified(targets, k=3, seed=0)
    assert folds["fold"].between(0, 2).all()


def test_errors_name_the_problem():
    targets, drugs = _targets_and_drugs()
    with pytest.raises(ValueError, match="unknown fold method 'random'"):
        make_folds({"method": "random", "k": 5, "seed": 0}, targets, drugs)
    with pytest.raises(ValueError, match="fewer than k=5"):
        drug_aware(targets, drugs, k=5, seed=0, drug_threshold=1)
