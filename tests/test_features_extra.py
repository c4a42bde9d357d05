"""The winners' extra feature steps: UMAP, factor analysis, k-means (and the generated-column blocks)."""

from __future__ import annotations

import pickle

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from test_features import make_frame
from threadpoolctl import threadpool_limits

from moastack.columns import CELL_COLS, GENE_COLS, ID_COL
from moastack.features import STEP_CLASSES, BlockPCA, FeatureSet, block_columns, build_feature_set
from moastack.features.transformers import FactorAnalysisStep, KMeansStep, UMAPStep


@pytest.fixture(scope="module", autouse=True)
def one_blas_thread():
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture(scope="module")
def train() -> pd.DataFrame:
    return make_frame(240, seed=0, prefix="tr")


@pytest.fixture(scope="module")
def test() -> pd.DataFrame:
    return make_frame(60, seed=1, prefix="te")


@pytest.fixture(scope="module")
def with_pca(train) -> pd.DataFrame:
    return BlockPCA("genes", 6).fit_transform(BlockPCA("cells", 3).fit_transform(train))


UMAP_SPEC = {"name": "umap", "block": "cells", "n_components": 2, "n_neighbors": 10, "n_epochs": 30}


@pytest.fixture(scope="module")
def umap_set(train, test):
    """The slowest piece here (numba compiles UMAP's kernels once per process): fitted once."""
    return build_feature_set({"fit_on": "train+test", "steps": [UMAP_SPEC]}, train, test)


def test_new_steps_registered():
    assert STEP_CLASSES["umap"] is UMAPStep
    assert STEP_CLASSES["factor_analysis"] is FactorAnalysisStep
    assert STEP_CLASSES["kmeans"] is KMeansStep


def test_generated_column_blocks(with_pca, train):
    pca_cols = [f"pca_c_{i}" for i in range(3)] + [f"pca_g_{i}" for i in range(6)]
    assert block_columns(with_pca, "pca") == pca_cols
    assert block_columns(with_pca, "genes") == GENE_COLS  # the existing blocks are unchanged
    assert block_columns(with_pca, "all")[-9:] == pca_cols
    with pytest.raises(ValueError, match="selects no columns"):
        KMeansStep("pca", 2).fit(train)  # no pca_* columns yet


def test_factor_analysis_shapes_names_and_separation(train, test, tmp_path):
    step = FactorAnalysisStep("genes", n_components=4, random_state=0)
    with pytest.raises(NotFittedError):
        step.transform(test)
    step.fit(train)
    assert step.columns_ == GENE_COLS
    out = step.transform(test)
    names = [f"fa_g_{i}" for i in range(4)]
    assert list(out.columns) == list(test.columns) + names
    assert (out[names].dtypes == np.float32).all() and np.isfinite(out[names].to_numpy()).all()
    pd.testing.assert_frame_equal(out[list(test.columns)], test)
    before = pickle.dumps(step)
    step.transform(train)
    assert pickle.dumps(step) == before
    # one row transforms the same alone as in a batch (float64 inside)
    np.testing.assert_array_equal(step.transform(test.iloc[[5]])[names].to_numpy(), out[names].to_numpy()[[5]])
    joblib.dump(step, tmp_path / "fa.joblib")
    pd.testing.assert_frame_equal(joblib.load(tmp_path / "fa.joblib").transform(test), out)
    cells = FactorAnalysisStep("cells", 2).fit_transform(out)
    assert list(cells.columns[-2:]) == ["fa_c_0", "fa_c_1"]


def test_factor_analysis_is_deterministic(train):
    a = FactorAnalysisStep("cells", 3, random_state=5).fit_transform(train)
    b = FactorAnalysisStep("cells", 3, random_state=5).fit_transform(train)
    pd.testing.assert_frame_equal(a, b)


def test_kmeans_onehot_and_distance(with_pca, tmp_path):
    step = KMeansStep("pca", n_clusters=4, random_state=0).fit(with_pca)
    assert step.columns_ == block_columns(with_pca, "pca")
    out = step.transform(with_pca)
    names = [f"km_pca_{i}" for i in range(4)]
    assert list(out.columns[-4:]) == names and (out[names].dtypes == np.float32).all()
    hot = out[names].to_numpy()
    assert set(np.unique(hot)) <= {0.0, 1.0} and (hot.sum(axis=1) == 1).all()
    np.testing.assert_array_equal(hot.argmax(axis=1), step.kmeans_.labels_)
    dist = KMeansStep("pca", 4, output="distance", random_state=0).fit(with_pca).transform(with_pca)
    d = dist[names].to_numpy()
    assert (d >= 0).all() and np.array_equal(d.argmin(axis=1), hot.argmax(axis=1))
    genes = KMeansStep("genes", 3).fit_transform(with_pca)
    assert list(genes.columns[-3:]) == ["km_g_0", "km_g_1", "km_g_2"]
    joblib.dump(step, tmp_path / "km.joblib")
    pd.testing.assert_frame_equal(joblib.load(tmp_path / "km.joblib").transform(with_pca), out)
    with pytest.raises(ValueError, match="output must be one of"):
        KMeansStep("genes", 3, output="labels").fit(with_pca)


def test_kmeans_keeps_all_columns_for_new_rows(with_pca):
    step = KMeansStep("pca", 5, random_state=1).fit(with_pca)
    one = step.transform(with_pca.iloc[:1])
    assert one.shape[1] == with_pca.shape[1] + 5 and float(one.iloc[0, -5:].sum()) == 1.0


def test_feature_set_with_new_steps(train, test):
    spec = {
        "fit_on": "train+test",
        "steps": [
            {"name": "pca", "block": "genes", "n_components": 4},
            {"name": "pca", "block": "cells", "n_components": 2},
            {"name": "factor_analysis", "block": "cells", "n_components": 2},
            {"name": "kmeans", "block": "pca", "n_clusters": 3},
            {"name": "kmeans", "block": "cells", "n_clusters": 2, "output": "distance"},
        ],
    }
    fs, tr, te = build_feature_set(spec, train, test)
    for col in ["pca_g_3", "pca_c_1", "fa_c_1", "km_pca_2", "km_c_1"]:
        assert col in fs.feature_names_out_
    assert list(te.columns) == list(tr.columns) and len(tr) == len(train)
    with pytest.raises(ValueError, match=r"'kmeans'.*unknown key 'k'"):
        FeatureSet([{"name": "kmeans", "k": 3}], fit_on="train").fit(train)


UMAP_NAMES = ["umap_c_0", "umap_c_1"]


def test_umap_rows_seen_at_fit_get_the_fitted_embedding(umap_set, train, test, monkeypatch):
    fs, tr, te = umap_set
    step = fs.steps_[0]
    assert isinstance(step, UMAPStep) and step.columns_ == CELL_COLS
    assert fs.feature_names_out_[-2:] == UMAP_NAMES
    assert (tr[UMAP_NAMES].dtypes == np.float32).all()
    emb = step.umap_.embedding_.astype(np.float32)
    np.testing.assert_array_equal(tr[UMAP_NAMES].to_numpy(), emb[: len(train)])
    np.testing.assert_array_equal(te[UMAP_NAMES].to_numpy(), emb[len(train) :])

    def no_transform(values):
        raise AssertionError("UMAP.transform called for rows seen at fit")

    monkeypatch.setattr(step.umap_, "transform", no_transform)
    perm = np.random.default_rng(0).permutation(len(test))
    shuffled = fs.transform(test.iloc[perm])
    np.testing.assert_array_equal(shuffled[UMAP_NAMES].to_numpy(), te[UMAP_NAMES].to_numpy()[perm])


def test_umap_new_rows_use_umap_transform(umap_set, test, tmp_path):
    fs, _, te = umap_set
    step = fs.steps_[0]
    new = make_frame(6, seed=9, prefix="new")
    mixed = pd.concat([test.iloc[:3], new], ignore_index=True)
    before = pickle.dumps(step)
    out = step.transform(mixed)
    assert pickle.dumps(step) == before  # transforming new rows leaves the fitted state alone
    assert list(out[ID_COL]) == list(mixed[ID_COL])
    values = out[UMAP_NAMES].to_numpy()
    np.testing.assert_array_equal(values[:3], te[UMAP_NAMES].to_numpy()[:3])  # seen rows
    assert np.isfinite(values[3:]).all()  # new rows: placed by UMAP.transform
    pd.testing.assert_frame_equal(step.transform(mixed), out)  # repeatable
    joblib.dump(step, tmp_path / "umap.joblib")
    pd.testing.assert_frame_equal(joblib.load(tmp_path / "umap.joblib").transform(mixed), out)
    with pytest.raises(NotFittedError):
        clone(step).transform(test)


def test_umap_is_deterministic_for_a_seed(umap_set, train, test):
    again = build_feature_set({"fit_on": "train+test", "steps": [UMAP_SPEC]}, train, test)
    pd.testing.assert_frame_equal(again[1], umap_set[1])
