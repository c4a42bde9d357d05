"""Scaffold folds keep each Bemis–Murcko scaffold in one fold; stratified folds tolerate missing labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from rdkit import Chem
from rdkit.Chem.Scaffolds import MurckoScaffold

from moastack.folds import METHODS, make_folds, multilabel_stratified, scaffold, scaffold_groups

RINGS = ["c1ccccc1", "c1ccncc1", "c1ccc2ccccc2c1", "C1CCCCC1", "C1CCNCC1", "c1ccoc1", "c1ccsc1", "C1CCOC1",
         "c1ccc(cc1)C1CCCCC1", "c1ccc2[nH]ccc2c1", "C1CC1", "c1cnc2ccccc2c1"]
SUBSTITUENTS = ["", "C", "CC", "O", "N", "Cl", "F", "CCC", "OC", "CO"]
ACYCLIC = ["CCO", "CCCN", "CC(C)O", "CCCCCl", "OCCO", "CC(=O)O", "CCOCC", "NCCN"]


def molecules(seed: int = 0) -> pd.Series:
    """Ring systems of very different group sizes (each a scaffold) plus acyclic molecules."""
    rng = np.random.default_rng(seed)
    out = []
    for i, ring in enumerate(RINGS):
        size = int(rng.integers(2, 40)) if i else 60  # one dominant scaffold, like benzene in Tox21
        out += [SUBSTITUENTS[j % len(SUBSTITUENTS)] + ring for j in range(size)]
    out += [ACYCLIC[j % len(ACYCLIC)] for j in range(30)]
    return pd.Series(out)


def targets_for(smiles: pd.Series) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    y = (rng.random((len(smiles), 3)) < 0.2).astype(float)
    df = pd.DataFrame(y, columns=["t0", "t1", "t2"])
    df.insert(0, "sig_id", [f"id{i}" for i in range(len(smiles))])
    return df


def reference_scaffolds(smiles: pd.Series) -> pd.Series:
    return smiles.map(lambda s: MurckoScaffold.MurckoScaffoldSmiles(mol=Chem.MolFromSmiles(s)))


def test_no_scaffold_is_split_and_fold_sizes_are_balanced():
    smiles = molecules()
    targets = targets_for(smiles)
    folds = scaffold(targets, smiles, k=4, seed=0)
    assert folds["sig_id"].tolist() == targets["sig_id"].tolist()
    assert sorted(folds["fold"].unique()) == [0, 1, 2, 3]
    scaff = reference_scaffolds(smiles)
    ringed = scaff != ""
    assert (folds["fold"][ringed].groupby(scaff[ringed]).nunique() == 1).all()
    sizes = folds["fold"].value_counts()
    largest_group = scaff[ringed].value_counts().max()
    assert largest_group == 60
    # greedy largest-first: the spread is at most one group, and here the small groups even it out
    assert sizes.max() - sizes.min() <= 2


def test_acyclic_molecules_are_their_own_groups():
    smiles = molecules()
    keys = scaffold_groups(smiles)
    acyclic = reference_scaffolds(smiles) == ""
    assert acyclic.sum() == 30 and len(set(keys[acyclic.to_numpy()])) == 30
    folds = scaffold(targets_for(smiles), smiles, k=4, seed=0)
    assert folds["fold"][acyclic].nunique() > 1


def test_scaffold_folds_are_deterministic_per_seed():
    smiles = molecules()
    targets = targets_for(smiles)
    a = make_folds({"method": "scaffold", "k": 5, "seed": 3}, targets, smiles=smiles)
    b = make_folds({"method": "scaffold", "k": 5, "seed": 3}, targets, smiles=smiles)
    c = make_folds({"method": "scaffold", "k": 5, "seed": 4}, targets, smiles=smiles)
    pd.testing.assert_frame_equal(a, b)
    assert not a["fold"].equals(c["fold"])


def test_unparsable_smiles_get_their_own_group_and_errors_are_clear():
    smiles = pd.Series(["c1ccccc1C", "Cc1ccccc1", "C1CC", "C1CC", "CCO", "CCN"])
    keys = scaffold_groups(smiles)
    assert keys[0] == keys[1] == "c1ccccc1" and keys[2] != keys[3]
    targets = targets_for(smiles)
    assert "scaffold" in METHODS
    with pytest.raises(ValueError, match="scaffold folds need the SMILES"):
        make_folds({"method": "scaffold", "k": 2, "seed": 0}, targets)
    with pytest.raises(ValueError, match="only 5 scaffold groups, fewer than k=6"):
        scaffold(targets, smiles, k=6, seed=0)
    with pytest.raises(ValueError, match="5 SMILES for 6 target rows"):
        scaffold(targets, smiles.iloc[:5], k=2, seed=0)


def test_stratified_folds_with_missing_labels_are_balanced():
    rng = np.random.default_rng(0)
    n, t = 600, 6
    y = (rng.random((n, t)) < 0.15).astype(float)
    y[rng.random((n, t)) < 0.3] = np.nan
    targets = pd.DataFrame(y, columns=[f"t{j}" for j in range(t)])
    targets.insert(0, "sig_id", [f"id{i}" for i in range(n)])
    folds = multilabel_stratified(targets, k=5, seed=0)
    fold = folds["fold"].to_numpy()
    sizes = np.bincount(fold, minlength=5)
    assert sizes.min() >= 115 and sizes.max() <= 125
    positives = np.array([np.nansum(y[fold == f], axis=0) for f in range(5)])
    share = np.nansum(y, axis=0) / 5
    assert (np.abs(positives - share) <= np.maximum(2, 0.1 * share)).all()
