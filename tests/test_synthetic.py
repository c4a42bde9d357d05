"""The synthetic generator: layout, determinism, and the structure and signal of the real data."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest

from moastack import columns as C
from moastack.data.realism import structure_table
from moastack.data.synthetic import (
    CONTROL_DRUG,
    FULL_TRAIN_ROWS,
    SyntheticSpec,
    generate,
    target_names,
    write_raw_csvs,
)


@pytest.fixture(scope="module")
def demo() -> dict[str, pd.DataFrame]:
    return generate(SyntheticSpec())


@pytest.fixture(scope="module")
def full() -> dict[str, pd.DataFrame]:
    """Full lish-moa size (23,814 train rows): about 3 s."""
    return generate(SyntheticSpec(n_train=FULL_TRAIN_ROWS, n_test=3982))


@pytest.fixture(scope="module")
def small() -> dict[str, pd.DataFrame]:
    return generate(SyntheticSpec(n_train=300, n_test=100, seed=7))


def _scored(frames):
    return frames["train_targets_scored"].iloc[:, 1:].to_numpy()


def _is_control(frames, table="train_features"):
    return (frames[table]["cp_type"] == C.CONTROL).to_numpy()


def test_tables_shapes_and_columns(demo):
    spec = SyntheticSpec()
    assert tuple(demo) == C.TABLES
    assert list(demo["train_features"].columns) == C.FEATURE_COLS
    assert list(demo["test_features"].columns) == C.FEATURE_COLS
    assert demo["train_features"].shape == (spec.n_train, len(C.FEATURE_COLS))
    assert demo["test_features"].shape == (spec.n_test, len(C.FEATURE_COLS))
    assert demo["train_targets_scored"].shape == (spec.n_train, 1 + spec.n_scored)
    assert demo["train_targets_nonscored"].shape == (spec.n_train, 1 + spec.n_nonscored)
    assert list(demo["train_drug"].columns) == [C.ID_COL, C.DRUG_COL]
    for name in C.TABLES[1:4]:
        assert demo[name][C.ID_COL].equals(demo["train_features"][C.ID_COL])


def test_dtypes_match_the_kaggle_csvs(demo):
    feats = demo["train_features"]
    for col in (C.ID_COL, "cp_type", "cp_dose"):
        assert pd.api.types.is_string_dtype(feats[col])
    assert feats["cp_time"].dtype == np.int64
    assert (feats[C.GENE_COLS + C.CELL_COLS].dtypes == np.float64).all()
    for name in ("train_targets_scored", "train_targets_nonscored"):
        assert (demo[name].dtypes.iloc[1:] == np.int64).all()
        assert set(np.unique(demo[name].iloc[:, 1:].to_numpy())) <= {0, 1}
    assert pd.api.types.is_string_dtype(demo["train_drug"][C.DRUG_COL])
    assert set(feats["cp_type"]) == set(C.CP_TYPES)
    assert set(feats["cp_time"]) == set(C.CP_TIMES)
    assert set(feats["cp_dose"]) == set(C.CP_DOSES)


def test_ids_look_real_and_are_unique(demo):
    ids = pd.concat([demo["train_features"][C.ID_COL], demo["test_features"][C.ID_COL]])
    assert ids.is_unique
    assert ids.str.fullmatch(r"id_[0-9a-f]{9}").all()
    assert demo["train_drug"][C.DRUG_COL].str.fullmatch(r"[0-9a-f]{9}").all()


def test_target_names_are_plausible_stable_and_disjoint():
    scored, nonscored = target_names(206, 402)
    assert len(set(scored)) == 206 and len(set(nonscored)) == 402
    assert not set(scored) & set(nonscored)
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*_(inhibitor|agonist|antagonist|blocker|opener|activator)", n)
               for n in scored + nonscored)  # fmt: skip
    assert {"nfkb_inhibitor", "proteasome_inhibitor", "kit_inhibitor"} <= set(scored)
    assert scored == sorted(scored)
    a = generate(SyntheticSpec(n_train=60, n_test=20, seed=1))
    b = generate(SyntheticSpec(n_train=60, n_test=20, seed=2))
    assert list(a["train_targets_scored"].columns[1:]) == scored
    assert a["train_targets_nonscored"].columns.equals(b["train_targets_nonscored"].columns)


def test_same_spec_same_frames_other_seed_differs(small):
    again = generate(SyntheticSpec(n_train=300, n_test=100, seed=7))
    for name in C.TABLES:
        pd.testing.assert_frame_equal(small[name], again[name])
    other = generate(SyntheticSpec(n_train=300, n_test=100, seed=8))
    assert not other["train_features"][C.GENE_COLS].equals(small["train_features"][C.GENE_COLS])
    assert not other["train_features"][C.ID_COL].equals(small["train_features"][C.ID_COL])


def test_controls_are_eight_percent_with_zero_targets(demo):
    ctl = _is_control(demo)
    assert ctl.mean() == pytest.approx(0.08, abs=0.005)
    assert _is_control(demo, "test_features").mean() == pytest.approx(0.08, abs=0.01)
    assert _scored(demo)[ctl].sum() == 0
    assert demo["train_targets_nonscored"].iloc[:, 1:].to_numpy()[ctl].sum() == 0
    assert (demo["train_drug"][C.DRUG_COL].to_numpy()[ctl] == CONTROL_DRUG).all()
    assert (demo["train_drug"][C.DRUG_COL].to_numpy()[~ctl] != CONTROL_DRUG).all()


def test_demo_keeps_several_drugs_per_mechanism(demo):
    """Below full size the generator subsamples mechanisms, not drugs: the demo's mechanisms keep several
    drugs each (so drug-aware CV can test transfer to unseen drugs); the other targets have no positive."""
    spec = SyntheticSpec()
    pos = _scored(demo).sum(axis=0)
    n_kept = round(spec.n_scored * spec.mechanism_scale * spec.n_train / FULL_TRAIN_ROWS)
    assert (pos > 0).sum() == n_kept
    kept = pos[pos > 0]
    assert (kept >= 2).mean() > 0.9
    assert kept.max() > 60  # a few are common (nfkb, on the big drug)
    drug = demo["train_drug"][C.DRUG_COL].to_numpy()
    trt = ~_is_control(demo)
    drugs_per_mech = pd.DataFrame(_scored(demo)[trt]).groupby(drug[trt]).max().sum(axis=0)
    drugs_per_mech = drugs_per_mech[drugs_per_mech > 0]
    assert drugs_per_mech.median() >= 3
    assert (drugs_per_mech >= 2).mean() > 0.75


def test_full_size_structure_matches_the_real_files(full):
    """Every label/drug statistic of the real train files near the real value at full size (the benchmark
    prints them; most are within 5%). Bounds: 25% (a few tail statistics, such as the 10th percentile of
    positives, sit near 20% and move by that much between seeds), except the share of rows with 4+ labels,
    a dozen drugs whose share moves by a third between seeds."""
    table = structure_table(full, tolerance=0.25)
    off = table[~table["within"] & (table["statistic"] != "rows with 4+ labels (%)")]
    assert off.empty, off.to_string()
    pos = _scored(full).sum(axis=0)
    assert pos.min() >= 1  # every scored target has positives at full size


def test_label_count_distribution(demo):
    n = _scored(demo).sum(axis=1)
    shares = [(n == 0).mean(), (n == 1).mean(), (n == 2).mean(), (n >= 3).mean()]
    assert 0.33 < shares[0] < 0.47
    assert 0.45 < shares[1] < 0.60
    assert 0.03 < shares[2] < 0.10
    assert 0.003 < shares[3] < 0.04


def test_mechanisms_come_in_bundles(demo):
    y = demo["train_targets_scored"]
    proteasome = y["proteasome_inhibitor"].to_numpy() == 1
    assert proteasome.sum() > 20
    assert (y["nfkb_inhibitor"].to_numpy()[proteasome] == 1).mean() > 0.9
    kit = y["kit_inhibitor"].to_numpy() == 1
    assert (y["pdgfr_inhibitor"].to_numpy()[kit] == 1).mean() > 0.3


def test_drug_sizes_mostly_6_to_18_a_few_large(demo):
    sizes = demo["train_drug"][C.DRUG_COL].value_counts()
    assert sizes.index[0] == CONTROL_DRUG
    treated = sizes.drop(CONTROL_DRUG)
    assert treated.between(6, 18).mean() > 0.8
    assert (treated == 6).mean() > 0.5
    assert (treated > 25).sum() >= 3  # hundreds of rows at full size, scaled down here
    assert treated.max() > 50
    drug = demo["train_drug"][C.DRUG_COL]
    y = demo["train_targets_scored"].iloc[:, 1:]
    assert (y.groupby(drug.to_numpy()).nunique() == 1).all().all()  # every row of a drug has its labels


def test_value_ranges(demo):
    feats = demo["train_features"]
    ctl = _is_control(demo)
    g = feats[C.GENE_COLS].to_numpy()
    c = feats[C.CELL_COLS].to_numpy()
    assert np.abs(g).max() <= 10 and np.abs(c).max() <= 10
    assert np.abs(g).max() == 10  # heavy tails reach the clip
    lo, hi = np.quantile(g, [0.01, 0.99])
    assert -2.4 < lo < -1.5 and 1.7 < hi < 2.6
    assert 0.7 < g[ctl].std() < 0.9
    assert abs(np.median(g)) < 0.2
    lo, hi = np.quantile(c[ctl], [0.01, 0.99])
    assert -2.1 < lo < -1.3 and 1.0 < hi < 1.6
    assert 0.55 < c[ctl].std() < 0.75
    assert np.quantile(c[~ctl], 0.01) < -3  # cytotoxic mechanisms push viability down


def test_feature_correlation_structure(demo):
    ctl = _is_control(demo)
    c = demo["train_features"][C.CELL_COLS].to_numpy()[ctl]
    corr = np.corrcoef(c[:, :30].T)[np.triu_indices(30, 1)]
    assert corr.mean() > 0.6
    g = demo["train_features"][C.GENE_COLS].to_numpy()[ctl]
    gcorr = np.abs(np.corrcoef(g.T)[np.triu_indices(C.N_GENES, 1)])
    assert (gcorr > 0.2).mean() > 0.01  # co-regulated blocks, not independent noise


def test_dose_and_time_scale_the_effect(demo):
    feats = demo["train_features"]
    trt = ~_is_control(demo)
    energy = pd.Series((feats[C.GENE_COLS].to_numpy() ** 2).mean(axis=1)[trt])
    dose = feats["cp_dose"].to_numpy()[trt]
    time = feats["cp_time"].to_numpy()[trt]
    by_dose = energy.groupby(dose).mean()
    by_time = energy.groupby(time).mean()
    assert by_dose["D2"] > by_dose["D1"]
    assert by_time[72] > by_time[48] > by_time[24]


def test_nonscored_follow_scored(demo):
    ys = _scored(demo).astype(float)
    yn = demo["train_targets_nonscored"].iloc[:, 1:].to_numpy().astype(float)
    used = yn.sum(axis=0) >= 3
    assert (yn.sum(axis=0) == 0).sum() > 20  # many never observed, as in the real data
    ys_c = (ys - ys.mean(0)) / (ys.std(0) + 1e-12)
    yn_c = (yn[:, used] - yn[:, used].mean(0)) / yn[:, used].std(0)
    best = np.abs(ys_c.T @ yn_c / len(ys)).max(axis=0)
    assert (best > 0.3).mean() > 0.3


def test_test_rows_share_the_generative_process(demo):
    tr = demo["train_features"][C.GENE_COLS].to_numpy()
    te = demo["test_features"][C.GENE_COLS].to_numpy()
    assert abs(tr.std() - te.std()) < 0.1
    assert demo["test_features"]["cp_type"].isin(C.CP_TYPES).all()


def test_signal_beats_prior_and_drug_holdout_is_harder():
    """A ridge model on PCA features beats the prior, also on unseen drugs; holding out drugs scores worse.

    The drug holdout used to be >= 1.2x the row-wise loss, which measured how easily drugs could be
    memorised. On the real data the winners' drug-aware loss was within 1% of the row-wise one (the
    mechanism signal carries over to unseen drugs), so the bounds are now: worse than row-wise, better
    than the prior on the same held-out drugs.
    """
    from sklearn.decomposition import PCA
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import GroupKFold, KFold
    from threadpoolctl import threadpool_limits

    frames = generate(SyntheticSpec(n_train=1500, n_test=10, seed=0))
    trt = ~_is_control(frames)
    x = frames["train_features"][C.GENE_COLS + C.CELL_COLS].to_numpy()[trt]
    y = _scored(frames)[trt].astype(float)
    groups = frames["train_drug"][C.DRUG_COL].to_numpy()[trt]

    def logloss(p):
        p = np.clip(p, 1e-15, 1 - 1e-15)
        return float(np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p))))

    def cross_validate(splitter):
        prior, model = np.zeros_like(y), np.zeros_like(y)
        for tr, va in splitter.split(x, y, groups):
            mu = x[tr].mean(axis=0)
            pca = PCA(40, random_state=0).fit(x[tr] - mu)
            a, b = pca.transform(x[tr] - mu), pca.transform(x[va] - mu)
            prior[va] = np.clip(y[tr].mean(axis=0), 1e-3, 1)
            model[va] = np.clip(Ridge(alpha=30.0).fit(a, y[tr]).predict(b), 1e-3, 1 - 1e-3)
        return logloss(prior), logloss(model)

    # One BLAS thread: on a 2-core machine, threaded BLAS on these small matrices is ~8x slower.
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore", UserWarning)  # KFold ignores groups
        prior_rows, model_rows = cross_validate(KFold(4, shuffle=True, random_state=0))
        prior_drugs, model_drugs = cross_validate(GroupKFold(4))
    assert model_rows < 0.92 * prior_rows
    assert model_drugs < prior_drugs  # mechanism signal transfers to drugs never seen in training
    assert model_drugs > model_rows  # but memorising a drug's own signature helps only row-wise CV


def test_write_raw_csvs(small, tmp_path):
    write_raw_csvs(small, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{n}.csv" for n in C.TABLES)
    back = pd.read_csv(tmp_path / "train_targets_scored.csv")
    assert list(back.columns) == list(small["train_targets_scored"].columns)
    assert (back.iloc[:, 1:].to_numpy() == small["train_targets_scored"].iloc[:, 1:].to_numpy()).all()
