"""The single-cell perturbation generator: determinism, shapes, contracts and the rare-cell split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from moastack import columns as C
from moastack.data.synthetic_perturbation import (
    DRUGS,
    RARE_CELL_TYPES,
    PerturbationSpec,
    generate_perturbation,
    perturbation_test_truth,
)

SPEC = PerturbationSpec(n_compounds=70, n_genes=40, seed=3)


@pytest.fixture(scope="module")
def frames():
    return generate_perturbation(SPEC)


def test_deterministic_per_seed(frames):
    again = generate_perturbation(SPEC)
    for name in C.TABLES:
        pd.testing.assert_frame_equal(frames[name], again[name])
    other = generate_perturbation(PerturbationSpec(n_compounds=70, n_genes=40, seed=4))
    assert not other["train_targets_scored"].equals(frames["train_targets_scored"])


def test_shapes_and_contracts(frames):
    assert set(frames) == set(C.TABLES)
    n_rare_meas = SPEC.n_rare_measured  # round(0.15 · 70) = 10
    n_train = 2 * 70 + 2 * n_rare_meas
    assert n_rare_meas == 10
    assert list(frames["train_features"].columns) == [C.ID_COL, "cell_type", "compound", "smiles"]
    assert list(frames["test_features"].columns) == [C.ID_COL, "cell_type", "compound", "smiles"]
    assert frames["train_features"].shape == (n_train, 4)
    assert frames["test_features"].shape == (SPEC.n_test, 4) and SPEC.n_test == round(0.2 * 4 * 70)
    y = frames["train_targets_scored"]
    assert y.shape == (n_train, 1 + 40)
    assert list(y.columns[:3]) == [C.ID_COL, "gene_0000", "gene_0001"]
    assert (y.dtypes.iloc[1:] == np.float32).all()
    assert list(frames["train_targets_nonscored"].columns) == [C.ID_COL]
    drug = frames["train_drug"]
    assert (drug[C.DRUG_COL].to_numpy() == frames["train_features"]["compound"].to_numpy()).all()
    ids = pd.concat([frames["train_features"][C.ID_COL], frames["test_features"][C.ID_COL]])
    assert ids.is_unique and ids.str.fullmatch(r"pair-\d{5}").all()
    for name in ("train_targets_scored", "train_targets_nonscored", "train_drug"):
        assert (frames[name][C.ID_COL].to_numpy() == frames["train_features"][C.ID_COL].to_numpy()).all()


def test_test_pairs_are_unseen_rare_cell_pairs(frames):
    train, test = frames["train_features"], frames["test_features"]
    assert set(test["cell_type"]) == set(RARE_CELL_TYPES)
    train_pairs = set(zip(train["cell_type"], train["compound"]))
    test_pairs = set(zip(test["cell_type"], test["compound"]))
    assert len(test_pairs) == len(test) and not (train_pairs & test_pairs)
    # every test compound is measured in the common cell types, as in the real task
    assert set(test["compound"]) <= set(train.loc[~train["cell_type"].isin(RARE_CELL_TYPES), "compound"])
    rare_train = train[train["cell_type"].isin(RARE_CELL_TYPES)]
    assert rare_train.groupby("cell_type").size().tolist() == [10, 10]


def test_truth_matches_test_rows():
    truth = perturbation_test_truth(SPEC)
    test = generate_perturbation(SPEC)["test_features"]
    assert (truth[C.ID_COL].to_numpy() == test[C.ID_COL].to_numpy()).all()
    assert truth.shape == (SPEC.n_test, 41) and (truth.dtypes.iloc[1:] == np.float32).all()
    assert np.isfinite(truth.iloc[:, 1:].to_numpy()).all()


def test_compounds_cycle_smiles_with_distinct_names():
    n = len(DRUGS) + 5
    spec = PerturbationSpec(n_compounds=n, n_genes=8, rare_fraction=0.5)
    f = generate_perturbation(spec)
    both = pd.concat([f["train_features"], f["test_features"]]).drop_duplicates("compound")
    assert both["compound"].nunique() == n  # rare_fraction 0.5: common cells see every compound
    assert both["smiles"].nunique() == len(DRUGS)
    assert {"aspirin", "aspirin-2"} <= set(both["compound"])
    smiles = both.set_index("compound")["smiles"]
    assert smiles["aspirin"] == smiles["aspirin-2"] == dict(DRUGS)["aspirin"]


def test_smiles_are_valid_molecules():
    from rdkit import Chem

    assert len(DRUGS) >= 40 and len({s for _, s in DRUGS}) == len(DRUGS)
    assert all(Chem.MolFromSmiles(s) is not None for _, s in DRUGS)


def test_targets_are_low_rank_plus_noise(frames):
    y = frames["train_targets_scored"].iloc[:, 1:].to_numpy(np.float64)
    s = np.linalg.svd(y - y.mean(axis=0), compute_uv=False)
    share = np.cumsum(s**2) / np.sum(s**2)
    # rank-8 compound signal plus 4 cell-type baselines (3 directions after centring): ≥ 95% within 11
    assert share[10] > 0.95
    assert share[0] < 0.6  # ...but spread over several components


def test_full_size_spec_is_valid():
    spec = PerturbationSpec(n_cell_types=6, n_compounds=146, n_genes=18211, rare_fraction=17 / 146,
                            test_fraction=255 / 876)
    assert spec.n_rare_measured == 17 and spec.n_test == 255


def test_too_many_test_pairs_rejected():
    with pytest.raises(ValueError, match="test pairs"):
        PerturbationSpec(test_fraction=0.6)
