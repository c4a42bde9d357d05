"""Sparse fingerprints end to end: the frequency filter fitted on training rows, the CSR block beside the
dense columns in one Parquet file, the fold pipeline and the models that take it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from conftest import ROOT
from rdkit import Chem
from rdkit.Chem import rdFingerprintGenerator

from moastack.config import SPARSE_STEPS, ConfigError, check_config, load_config
from moastack.features import STEP_CLASSES, FeatureSet, FeatureTable, build_feature_tables
from moastack.fold_pipeline import FoldPipeline, JobRows
from moastack.models.base import FitContext
from moastack.models.linear import LogisticModel
from moastack.models.sklearn_models import RandomForestModel
from moastack.spec import ModelSpec
from moastack.train import check_accepts

TRAIN = ["CCO", "CCCO", "CCCCO", "CCN", "CCCN", "c1ccccc1O", "c1ccccc1N", "c1ccccc1C", "CC(=O)O", "CCC(=O)O",
         "CC(=O)Oc1ccccc1C(=O)O", "CCN(CC)CC", "O=C(O)c1ccccc1", "CC(C)Cc1ccc(C(C)C(=O)O)cc1", "c1ccc2ccccc2c1",
         "CCOC(=O)C", "CCCCCC", "ClCCCl"]
TEST = ["CCO", "BrCCBr", "c1ccccc1CO", "P(=O)(O)(O)O"]


def frame(smiles: list[str], prefix: str = "m") -> pd.DataFrame:
    return pd.DataFrame({"sig_id": [f"{prefix}{i}" for i in range(len(smiles))], "smiles": smiles,
                         "x": np.arange(len(smiles), dtype=np.float32)})


def environments(smiles: str, radius: int) -> set[int]:
    gen = rdFingerprintGenerator.GetMorganGenerator(radius=radius)
    return set(gen.GetSparseCountFingerprint(Chem.MolFromSmiles(smiles)).GetNonzeroElements())


def ecfp_set(min_frequency: int, **extra) -> FeatureSet:
    step = {"name": "sparse_fingerprint", "kind": "morgan", "radius": 1, "n_bits": None,
            "min_frequency": min_frequency, **extra}
    return FeatureSet([step], fit_on="train")


# ----------------------------------------------------------------------------------------- feature steps
def test_the_frequency_filter_is_fitted_on_training_rows_only():
    train, test = frame(TRAIN), frame(TEST, "t")
    fs = ecfp_set(min_frequency=2).fit(train, test)
    table = fs.transform_table(train)
    assert table.sparse.shape == (len(TRAIN), len(fs.sparse_names_out_)) and table.dense_names == ["x"]
    # a column needs min_frequency training molecules ...
    present = np.asarray((table.sparse > 0).sum(axis=0)).ravel()
    assert present.min() >= 2
    frequency: dict[int, int] = {}
    for smi in TRAIN:
        for env in environments(smi, 1):
            frequency[env] = frequency.get(env, 0) + 1
    kept = {int(n.split("_")[1]) for n in fs.sparse_names_out_}
    assert kept == {env for env, f in frequency.items() if f >= 2}
    assert any(f == 1 for f in frequency.values())  # the filter dropped something
    # ... and an environment only in test rows is never a column: bromine's environments are unseen
    bromine = environments("BrCCBr", 1) - set(frequency)
    assert bromine and not bromine & kept
    test_table = fs.transform_table(test)
    assert test_table.sparse.shape[1] == len(kept)
    assert test_table.sparse[1].nnz == len(environments("BrCCBr", 1) & kept)
    assert test_table.sparse[3].nnz == len(environments("P(=O)(O)(O)O", 1) & kept)
    # a molecule seen in training gets the same row whichever rows it comes with
    np.testing.assert_array_equal(test_table.sparse[0].toarray(), table.sparse[0].toarray())


def test_min_frequency_counts_rows_and_an_empty_filter_is_refused():
    assert len(ecfp_set(1).fit(frame(TRAIN)).sparse_names_out_) > len(ecfp_set(3).fit(frame(TRAIN)).sparse_names_out_)
    with pytest.raises(ValueError, match="no ecfp2 environment occurs in 100 of the"):
        ecfp_set(100).fit(frame(TRAIN))
    with pytest.raises(ValueError, match="fit_on: train"):
        FeatureSet([{"name": "sparse_fingerprint"}], fit_on="train+test").fit(frame(TRAIN), frame(TEST, "t"))
    with pytest.raises(ValueError, match="radius must be in"):
        ecfp_set(1, radius=4).fit(frame(TRAIN))


@pytest.mark.parametrize("log_counts", [False, True])
def test_hashed_sparse_counts_equal_the_dense_morgan_counts(log_counts):
    steps = [{"name": "morgan", "radius": 2, "n_bits": 1024, "counts": True, "log_counts": log_counts},
             {"name": "sparse_fingerprint", "kind": "morgan", "radius": 2, "n_bits": 1024, "log_counts": log_counts}]
    fs = FeatureSet(steps, fit_on="train").fit(frame(TRAIN))
    for rows in (frame(TRAIN), frame(TEST, "t")):
        table = fs.transform_table(rows)
        bits = [int(n.rsplit("_", 1)[1]) for n in table.sparse_names]
        assert all(n.startswith("ecfp4_h1024_") for n in table.sparse_names)
        np.testing.assert_array_equal(table.sparse.toarray(), table.frame[[f"morgan_{b}" for b in bits]].to_numpy())
    # the bits left out are never set in training
    dense = fs.transform_table(frame(TRAIN)).frame
    unused = [f"morgan_{b}" for b in range(1024) if f"ecfp4_h1024_{b}" not in set(fs.sparse_names_out_)]
    assert (dense[unused].to_numpy() == 0).all()


def test_other_fingerprints_and_maccs():
    steps = [{"name": "sparse_fingerprint", "kind": "atom_pair", "n_bits": None},
             {"name": "sparse_fingerprint", "kind": "torsion", "n_bits": 4096, "min_frequency": 2},
             {"name": "maccs"}]
    fs, train, test = build_feature_tables({"fit_on": "train", "steps": steps}, frame(TRAIN), frame(TEST, "t"))
    names = fs.sparse_names_out_
    assert any(n.startswith("ap_") for n in names) and any(n.startswith("tt_h4096_") for n in names)
    assert len(names) == len(set(names)) == train.sparse.shape[1] == test.sparse.shape[1]
    assert [c for c in train.dense_names if c.startswith("maccs_")] == [f"maccs_{i}" for i in range(167)]
    assert set(np.unique(train.frame.filter(like="maccs_").to_numpy())) == {0.0, 1.0}
    with pytest.raises(ValueError, match="sparse columns that a DataFrame cannot hold"):
        fs.transform(frame(TEST, "t"))


def test_sparse_steps_are_the_ones_the_config_check_knows():
    assert {n for n, cls in STEP_CLASSES.items() if getattr(cls, "sparse_output", False)} == set(SPARSE_STEPS)


# ----------------------------------------------------------------------------------------------- storage
def test_a_feature_table_round_trips_through_parquet(tmp_path):
    fs = ecfp_set(1, log_counts=True).fit(frame(TRAIN))
    for rows, name in ((frame(TRAIN), "train"), (frame(TEST, "t"), "test"), (frame([], "e"), "empty")):
        table = fs.transform_table(rows)
        table.write(tmp_path / f"{name}.parquet")
        back = FeatureTable.read(tmp_path / f"{name}.parquet")
        pd.testing.assert_frame_equal(back.frame, table.frame)
        assert back.sparse_names == table.sparse_names and back.sparse.dtype == np.float32
        assert back.sparse.shape == table.sparse.shape
        assert (back.sparse != table.sparse).nnz == 0
    # a dense-only table is the plain Parquet file it always was
    dense = FeatureTable(frame(TRAIN).drop(columns=["smiles"]))
    dense.write(tmp_path / "dense.parquet")
    assert list(pd.read_parquet(tmp_path / "dense.parquet").columns) == ["sig_id", "x"]
    assert FeatureTable.read(tmp_path / "dense.parquet").sparse is None


# ----------------------------------------------------------------------------------- pipeline and models
def _tables():
    fs = FeatureSet([{"name": "sparse_fingerprint", "radius": 2, "min_frequency": 2},
                     {"name": "rdkit_descriptors", "names": ["MolWt", "TPSA"]}], fit_on="train").fit(frame(TRAIN))
    return fs.transform_table(frame(TRAIN)), fs.transform_table(frame(TEST, "t"))


def test_the_fold_pipeline_appends_the_sparse_block_after_the_dense_steps():
    train, test = _tables()
    spec = ModelSpec.from_entry("m", {"arch": "logistic", "features": "f", "folds": "k",
                                      "fold_steps": [{"name": "standardize"}]}, "multilabel")
    rows = JobRows(train.dense(), train.dense_names, sparse=train.sparse, sparse_names=train.sparse_names)
    pipeline = FoldPipeline(spec)
    X = pipeline.fit_transform(rows.take(np.arange(12)), np.zeros((12, 1), np.float32))
    assert sp.issparse(X) and X.dtype == np.float32 and X.shape == (12, 3 + len(train.sparse_names))
    assert pipeline.names_out_ == [*train.dense_names, *train.sparse_names]
    dense = X[:, :3].toarray()
    np.testing.assert_allclose(dense.mean(axis=0), 0.0, atol=1e-5)  # the fold step saw the dense columns
    np.testing.assert_array_equal(X[:, 3:].toarray(), train.sparse[:12].toarray())  # the block passed as is
    X_test = pipeline.transform(JobRows(test.dense(), test.dense_names, sparse=test.sparse,
                                        sparse_names=test.sparse_names))
    assert X_test.shape == (len(TEST), X.shape[1])
    with pytest.raises(ValueError, match="sparse"):
        pipeline.transform(JobRows(test.dense(), test.dense_names))


@pytest.mark.parametrize("model_class", [RandomForestModel, LogisticModel])
def test_a_model_fitted_on_sparse_inputs_equals_it_fitted_on_the_dense_matrix(model_class):
    train, test = _tables()
    rng = np.random.default_rng(0)
    X = sp.hstack([sp.csr_matrix(np.log1p(np.abs(train.dense()))), train.sparse], format="csr", dtype=np.float32)
    X_test = sp.hstack([sp.csr_matrix(np.log1p(np.abs(test.dense()))), test.sparse], format="csr", dtype=np.float32)
    Y = (rng.random((X.shape[0], 3)) < 0.5).astype(np.float32)
    Y[[0, 4], 1] = np.nan
    params = {"n_estimators": 20} if model_class is RandomForestModel else {"C": 0.5, "tol": 1e-8, "max_iter": 5000}
    on_sparse = model_class(**params).fit(X, Y, None, None, FitContext(seed=3))
    on_dense = model_class(**params).fit(X.toarray(), Y, None, None, FitContext(seed=3))
    tol = 0.0 if model_class is RandomForestModel else 1e-4  # lbfgs in float32 sums in another order on CSR
    np.testing.assert_allclose(on_sparse.predict(X_test), on_dense.predict(X_test.toarray()), atol=tol)
    np.testing.assert_allclose(on_sparse.predict(X_test), on_sparse.predict(X_test.toarray()), atol=tol)


def test_a_torch_model_trains_on_sparse_inputs_batch_by_batch_as_on_dense_ones():
    from moastack.models.simple_nn import SimpleNN

    train, _ = _tables()
    X = train.sparse
    Y = (np.random.default_rng(1).random((X.shape[0], 2)) < 0.4).astype(np.float32)
    params = {"hidden": [16], "epochs": 3, "batch_size": 5, "patience": None}
    a = SimpleNN(**params).fit(X, Y, X[:6], Y[:6], FitContext(seed=2))
    b = SimpleNN(**params).fit(X.toarray(), Y, X[:6].toarray(), Y[:6], FitContext(seed=2))
    assert [r["train_loss"] for r in a.history_] == pytest.approx([r["train_loss"] for r in b.history_], abs=1e-6)
    np.testing.assert_allclose(a.predict(X), b.predict(X.toarray()), atol=1e-6)


def test_archs_that_cannot_take_a_sparse_block_are_refused():
    train, _ = _tables()
    spec = ModelSpec.from_entry("knn", {"arch": "mlknn", "features": "fp", "folds": "k"}, "multilabel")
    with pytest.raises(ValueError, match="arch mlknn cannot take the sparse block of feature set 'fp'"):
        check_accepts(train.sparse, spec)
    check_accepts(train.dense(), spec)


def test_the_config_check_refuses_sparse_sets_fitted_on_test_rows_or_fed_to_dense_archs():
    config = load_config(ROOT / "configs" / "tox21-smoke.yaml")
    config["features"]["fp"] = {"fit_on": "train", "steps": [{"name": "sparse_fingerprint"}]}
    config["models"]["knn"] = {**config["models"]["prior"], "arch": "mlknn", "features": "fp"}
    with pytest.raises(ConfigError, match=r"models.knn: arch mlknn cannot take the sparse block of feature set 'fp'"):
        check_config(config)
    config["models"]["knn"]["arch"] = "logistic"
    check_config(config)
    config["features"]["fp"]["fit_on"] = "train+test"
    with pytest.raises(ConfigError, match=r"features.fp.fit_on: .* set fit_on: train"):
        check_config(config)

