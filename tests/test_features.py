"""Feature steps and feature sets: shapes, names, fit/transform separation, leakage, determinism."""

from __future__ import annotations

import io
import pickle

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from threadpoolctl import threadpool_limits

from moastack.columns import CELL_COLS, CONTROL, GENE_COLS, ID_COL, META_COLS
from moastack.features import (
    STEP_CLASSES,
    BlockPCA,
    FeatureSet,
    OneHot,
    RankGauss,
    RowStats,
    Standardize,
    VarianceSelector,
    block_columns,
    build_feature_set,
)

DEFAULT_SPEC = {
    "fit_on": "train+test",
    "steps": [
        {"name": "rankgauss", "blocks": ["genes", "cells"], "n_quantiles": 100},
        {"name": "pca", "block": "genes", "n_components": 50},
        {"name": "pca", "block": "cells", "n_components": 15},
        {"name": "row_stats", "blocks": ["genes", "cells"]},
        {"name": "onehot"},
        {"name": "variance_threshold", "threshold": 0.5, "blocks": ["genes", "cells"]},
    ],
}


def make_frame(n: int = 300, seed: int = 0, prefix: str = "id", scale: float = 1.0) -> pd.DataFrame:
    """A small frame with the real lish-moa columns: heavy-tailed, correlated cell block, some controls."""
    rng = np.random.default_rng(seed)
    genes = rng.standard_t(4, size=(n, len(GENE_COLS)))
    cells = rng.normal(size=(n, 1)) + 0.5 * rng.normal(size=(n, len(CELL_COLS)))
    values = (scale * np.hstack([genes, cells])).astype(np.float32)
    df = pd.DataFrame(values, columns=GENE_COLS + CELL_COLS)
    meta = pd.DataFrame(
        {
            ID_COL: [f"{prefix}_{i:06x}" for i in range(n)],
            "cp_type": rng.choice(["trt_cp", CONTROL], n, p=[0.9, 0.1]),
            "cp_time": rng.choice([24, 48, 72], n),
            "cp_dose": rng.choice(["D1", "D2"], n),
        }
    )
    return pd.concat([meta, df], axis=1)


@pytest.fixture(scope="module", autouse=True)
def one_blas_thread():
    """Small matrices: threaded OpenBLAS only adds overhead, and on a busy machine it spins for seconds."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture(scope="module")
def train() -> pd.DataFrame:
    return make_frame(300, seed=0, prefix="tr")


@pytest.fixture(scope="module")
def test() -> pd.DataFrame:
    return make_frame(100, seed=1, prefix="te")


@pytest.fixture(scope="module")
def fitted(train, test):
    return build_feature_set(DEFAULT_SPEC, train, test)


def state(obj) -> bytes:
    return pickle.dumps(obj)


# --- single steps -------------------------------------------------------------------------------------


def test_blocks_select_current_columns(train):
    assert block_columns(train, "genes") == GENE_COLS
    assert block_columns(train, "cells") == CELL_COLS
    assert block_columns(train, "all") == GENE_COLS + CELL_COLS
    later = OneHot().fit_transform(BlockPCA("cells", 3).fit_transform(train))
    all_cols = block_columns(later, "all")
    assert all_cols[-3:] == ["pca_c_0", "pca_c_1", "pca_c_2"]
    assert not any(c.startswith("cp_") or c == ID_COL for c in all_cols)
    with pytest.raises(ValueError, match="unknown or empty blocks"):
        RankGauss(blocks="proteins").fit(train)


def test_rankgauss_in_place_and_normal(train):
    out = RankGauss(["genes", "cells"], n_quantiles=100).fit_transform(train)
    assert list(out.columns) == list(train.columns)
    assert (out[GENE_COLS + CELL_COLS].dtypes == np.float32).all()
    pd.testing.assert_frame_equal(out[[ID_COL, *META_COLS]], train[[ID_COL, *META_COLS]])
    v = out[GENE_COLS + CELL_COLS].to_numpy(dtype=np.float64)
    assert np.abs(v.mean(axis=0)).max() < 0.1
    assert np.abs(v.std(axis=0) - 1).max() < 0.15
    # quartiles of N(0, 1) are +-0.674 (the heavy-tailed t(4) input's are +-0.741); the extremes are
    # clipped at about +-5.2 by QuantileTransformer, so moments beyond the variance are not a fair check
    q1, q3 = np.percentile(v, [25, 75], axis=0)
    assert np.abs(q1 + 0.674).max() < 0.05 and np.abs(q3 - 0.674).max() < 0.05
    assert np.abs(v).max() < 5.3


def test_rankgauss_one_block_only_touches_it(train):
    step = RankGauss("cells").fit(train)
    out = step.transform(train)
    assert step.columns_ == CELL_COLS
    assert step.quantile_.quantiles_.shape == (100, len(CELL_COLS))
    pd.testing.assert_frame_equal(out[GENE_COLS], train[GENE_COLS])
    assert not np.allclose(out[CELL_COLS], train[CELL_COLS])


def test_block_pca_adds_named_components(train):
    out = BlockPCA("genes", 10).fit_transform(train)
    out = BlockPCA("cells", 4).fit_transform(out)
    names = [f"pca_g_{i}" for i in range(10)] + [f"pca_c_{i}" for i in range(4)]
    assert list(out.columns) == list(train.columns) + names
    assert (out[names].dtypes == np.float32).all()
    pd.testing.assert_frame_equal(out[list(train.columns)], train)
    with pytest.raises(ValueError, match="overwrite"):
        BlockPCA("genes", 10).fit_transform(out)


def test_row_stats_match_pandas(train):
    out = RowStats(["genes", "cells"]).fit_transform(train)
    names = [f"{b}_{s}" for b in "gc" for s in ("mean", "std", "skew", "kurt")]
    assert list(out.columns) == list(train.columns) + names
    g = train[GENE_COLS].astype(np.float64)
    np.testing.assert_allclose(out["g_mean"], g.mean(axis=1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["g_std"], g.std(axis=1), rtol=1e-5)
    np.testing.assert_allclose(out["g_skew"], g.skew(axis=1), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out["g_kurt"], g.kurt(axis=1), rtol=1e-4, atol=1e-5)
    flat = train.assign(**{c: np.float32(0.5) for c in CELL_COLS})
    flat_stats = RowStats("cells").fit_transform(flat)[["c_mean", "c_std", "c_skew", "c_kurt"]]
    assert (flat_stats.to_numpy() == [[0.5, 0, 0, 0]]).all()  # constant rows: zeros, never NaN
    extra = RowStats("cells", stats=("min", "max", "median", "sum")).fit_transform(train)
    assert list(extra.columns[-4:]) == ["c_min", "c_max", "c_median", "c_sum"]
    with pytest.raises(ValueError, match="unknown stats"):
        RowStats("cells", stats=("mode",)).fit(train)


def test_gc_block_is_genes_and_cells_as_one(train):
    """``gc``: the g- and c- columns as one block (the winners' ``gc_sum``, ``gc_mean``... over 872 values)."""
    assert block_columns(train, "gc") == GENE_COLS + CELL_COLS
    out = RowStats(["genes", "cells", "gc"], stats=("sum", "mean", "std", "kurt", "skew")).fit_transform(train)
    assert list(out.columns[-15:]) == [f"{b}_{s}" for b in ("g", "c", "gc") for s in ("sum", "mean", "std", "kurt", "skew")]
    both = train[GENE_COLS + CELL_COLS].astype(np.float64)
    np.testing.assert_allclose(out["gc_sum"], both.sum(axis=1), rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(out["gc_std"], both.std(axis=1), rtol=1e-5)
    np.testing.assert_allclose(out["gc_kurt"], both.kurt(axis=1), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out["gc_skew"], both.skew(axis=1), rtol=1e-4, atol=1e-5)
    assert not np.allclose(out["gc_mean"], out["g_mean"])


def test_onehot_categories_fixed_even_if_absent(train):
    only = train.assign(cp_time=24, cp_dose="D1")
    step = OneHot().fit(only)
    out = step.transform(only)
    names = ["cp_time_24", "cp_time_48", "cp_time_72", "cp_dose_D1", "cp_dose_D2"]
    assert list(out.columns[-5:]) == names
    assert (out[names].dtypes == np.float32).all()
    assert out[names].sum().tolist() == [len(only), 0, 0, len(only), 0]
    full = step.transform(train)  # categories absent at fit still come out right
    np.testing.assert_array_equal(full["cp_time_48"], (train["cp_time"] == 48).astype(np.float32))
    np.testing.assert_array_equal(full["cp_dose_D2"], (train["cp_dose"] == "D2").astype(np.float32))
    assert set(META_COLS) <= set(out.columns)  # raw columns stay until the feature set drops them
    with pytest.raises(ValueError, match="cp_time has values outside"):
        step.transform(train.assign(cp_time=12))


def test_ordinal_codes_cp_time_and_cp_dose_by_fixed_position(train):
    """ordinal: cp_time 24/48/72 -> 0/1/2 and cp_dose D1/D2 -> 0/1 (the winners' TabNet mapping), float columns
    named cp_*_code that the feature set keeps and ``all``-block steps leave alone."""
    from moastack.features import build_feature_set
    from moastack.features.transformers import Ordinal

    step = Ordinal().fit(train.assign(cp_time=24))  # categories are fixed, not learned
    out = step.transform(train)
    assert list(out.columns[-2:]) == ["cp_time_code", "cp_dose_code"] and (out[step.names_out_].dtypes == np.float32).all()
    np.testing.assert_array_equal(out["cp_time_code"], train["cp_time"].map({24: 0, 48: 1, 72: 2}).astype(np.float32))
    np.testing.assert_array_equal(out["cp_dose_code"], train["cp_dose"].map({"D1": 0, "D2": 1}).astype(np.float32))
    assert "cp_time_code" not in Standardize("all").fit(out).columns_
    with pytest.raises(ValueError, match="ordinal: cp_dose has values outside"):
        step.transform(train.assign(cp_dose="D3"))
    _, tr, _ = build_feature_set({"fit_on": "train", "steps": [{"name": "ordinal"}, {"name": "onehot"}]}, train, train)
    assert list(tr.columns) == [ID_COL, *GENE_COLS, *CELL_COLS, "cp_time_code", "cp_dose_code", "cp_time_24",
                                "cp_time_48", "cp_time_72", "cp_dose_D1", "cp_dose_D2"]


def test_ordinal_scaled_codes_with_cp_type_as_the_deepinsight_cnns(train):
    """categories picks the columns and their order of values; scale divides each code by its categories - 1:
    the winners' DeepInsight inputs, cp_type ctl_vehicle 0 / trt_cp 1, cp_dose D1 0 / D2 1, cp_time 0/0.5/1."""
    from moastack.features.transformers import Ordinal

    cats = {"cp_type": ["ctl_vehicle", "trt_cp"], "cp_dose": ["D1", "D2"], "cp_time": [24, 48, 72]}
    frame = train.assign(cp_type=np.where(np.arange(len(train)) % 3 == 0, "ctl_vehicle", "trt_cp"))
    out = Ordinal(categories=cats, scale=True).fit(frame).transform(frame)
    assert list(out.columns[-3:]) == ["cp_type_code", "cp_dose_code", "cp_time_code"]
    np.testing.assert_array_equal(out["cp_type_code"], (frame["cp_type"] == "trt_cp").astype(np.float32))
    np.testing.assert_array_equal(out["cp_dose_code"], frame["cp_dose"].map({"D1": 0, "D2": 1}).astype(np.float32))
    np.testing.assert_array_equal(out["cp_time_code"], frame["cp_time"].map({24: 0, 48: 0.5, 72: 1}).astype(np.float32))
    unscaled = Ordinal(categories=cats).fit(frame).transform(frame)
    np.testing.assert_array_equal(unscaled["cp_time_code"], frame["cp_time"].map({24: 0, 48: 1, 72: 2}).astype(np.float32))
    with pytest.raises(ValueError, match="scale"):
        Ordinal(scale="yes").fit(frame)


def test_variance_selector_drops_constant_column(train, test):
    constant = train.assign(**{"g-5": np.float32(1.0), "c-7": np.float32(0.0)})
    step = VarianceSelector(threshold=0.0, blocks=["genes", "cells"]).fit(constant)
    assert step.dropped_ == ["g-5", "c-7"]
    out = step.transform(test)  # the fitted choice applies to new rows, whatever their variance
    assert "g-5" not in out.columns and "c-7" not in out.columns
    assert out.shape == (len(test), test.shape[1] - 2)
    high = VarianceSelector(threshold=0.5, blocks="cells").fit(train)
    cell_var = train[CELL_COLS].var(axis=0, ddof=0)
    assert high.dropped_ == [c for c in CELL_COLS if cell_var[c] <= 0.5]


def test_standardize_all_skips_onehots(train):
    frame = OneHot().fit_transform(BlockPCA("cells", 3).fit_transform(train))
    step = Standardize("all").fit(frame)
    out = step.transform(frame)
    assert "pca_c_0" in step.columns_ and "cp_time_24" not in step.columns_
    v = out[step.columns_].to_numpy(dtype=np.float64)
    np.testing.assert_allclose(v.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(v.std(axis=0), 1, atol=1e-3)
    pd.testing.assert_series_equal(out["cp_time_24"], frame["cp_time_24"])


ALL_STEPS = [
    RankGauss(["genes", "cells"]),
    BlockPCA("genes", 5),
    RowStats(["genes", "cells"]),
    OneHot(),
    VarianceSelector(0.9, "all"),
    Standardize("all"),
]


@pytest.mark.parametrize("step", ALL_STEPS, ids=lambda s: type(s).__name__)
def test_step_fit_transform_separation(step, train, test, tmp_path):
    with pytest.raises(NotFittedError):
        clone(step).transform(test)
    fitted = clone(step).fit(train)
    before = state(fitted)
    out = fitted.transform(test)
    assert state(fitted) == before  # transforming new rows does not touch the fitted state
    assert list(out[ID_COL]) == list(test[ID_COL])
    joblib.dump(fitted, tmp_path / "step.joblib")
    pd.testing.assert_frame_equal(joblib.load(tmp_path / "step.joblib").transform(test), out)


def test_registry_names():
    assert {"rankgauss", "pca", "row_stats", "onehot", "variance_threshold", "standardize"} <= set(
        STEP_CLASSES
    )
    assert all(cls.step_name == name for name, cls in STEP_CLASSES.items())


# --- feature sets -------------------------------------------------------------------------------------


def test_feature_set_output_contract(fitted, train, test):
    fs, tr, te = fitted
    assert list(tr.columns) == [ID_COL, *fs.feature_names_out_]
    assert list(te.columns) == list(tr.columns)
    assert not any(c in META_COLS for c in tr.columns)
    assert (tr[fs.feature_names_out_].dtypes == np.float32).all()
    assert list(tr[ID_COL]) == list(train[ID_COL]) and list(te[ID_COL]) == list(test[ID_COL])
    assert len(tr) == len(train)  # controls kept
    names = fs.feature_names_out_
    assert names[: len(GENE_COLS)] == GENE_COLS
    for col in ["pca_g_49", "pca_c_14", "g_kurt", "c_mean", "cp_time_72", "cp_dose_D2"]:
        assert col in names
    assert len(names) == 872 + 50 + 15 + 8 + 5  # rankgauss output has variance ~1 > 0.5: nothing dropped
    assert np.isfinite(tr[names].to_numpy()).all()
    assert list(fs.get_feature_names_out()) == names


def test_feature_set_keeps_row_order_and_ignores_index(fitted, test):
    fs, _, te = fitted
    perm = np.random.default_rng(3).permutation(len(test))
    shuffled = test.iloc[perm].set_index(pd.Index(np.arange(len(test)) * 7 + 5))
    out = fs.transform(shuffled)
    assert out.index.equals(pd.RangeIndex(len(test)))
    pd.testing.assert_frame_equal(out, te.iloc[perm].reset_index(drop=True))


def test_feature_set_transform_is_pure_and_reloadable(fitted, test, tmp_path):
    fs = fitted[0]
    new = make_frame(50, seed=9, prefix="new")
    original = new.copy()
    before = state(fs)
    out = fs.transform(new)
    assert state(fs) == before
    pd.testing.assert_frame_equal(new, original)  # the input frame is not modified
    path = tmp_path / "fitted.joblib"
    joblib.dump(fs, path)
    pd.testing.assert_frame_equal(joblib.load(path).transform(new), out)


def test_fit_on_train_never_sees_test(train, test):
    spec = {"fit_on": "train", "steps": DEFAULT_SPEC["steps"][:2]}
    extreme = test.copy()
    extreme[GENE_COLS + CELL_COLS] = make_frame(len(test), seed=1, prefix="te", scale=50.0)[
        GENE_COLS + CELL_COLS
    ]
    fs_a, tr_a, _ = build_feature_set(spec, train, test)
    fs_b, tr_b, _ = build_feature_set(spec, train, extreme)
    assert state(fs_a) == state(fs_b)
    pd.testing.assert_frame_equal(tr_a, tr_b)
    assert fs_a.n_fit_rows_ == len(train)

    both = {**spec, "fit_on": "train+test"}
    fs_c, _, _ = build_feature_set(both, train, test)
    fs_d, _, _ = build_feature_set(both, train, extreme)
    assert fs_c.n_fit_rows_ == len(train) + len(test)
    q_train = fs_a.steps_[0].quantile_.quantiles_
    q_both, q_extreme = fs_c.steps_[0].quantile_.quantiles_, fs_d.steps_[0].quantile_.quantiles_
    assert not np.allclose(q_train, q_both)
    assert q_extreme.max() > 10 * q_both.max()  # the extreme test rows reach the quantiles only here


def test_a_step_can_narrow_fit_on_to_the_train_rows(train, test):
    """The winners' simple NN: the first quantile transform on the train rows, the next steps on
    train + test. The narrowed step's quantiles ignore the test rows; the set's other steps see them."""
    extreme = test.copy()
    extreme[GENE_COLS + CELL_COLS] = make_frame(len(test), seed=1, prefix="te", scale=50.0)[
        GENE_COLS + CELL_COLS
    ]
    steps = [{"name": "rankgauss", "blocks": ["genes", "cells"], "fit_on": "train"},
             {"name": "pca", "block": "genes", "n_components": 3}]
    spec = {"fit_on": "train+test", "steps": steps}
    fs_a, tr_a, te_a = build_feature_set(spec, train, test)
    fs_b, _, _ = build_feature_set(spec, train, extreme)
    q_a, q_b = fs_a.steps_[0].quantile_.quantiles_, fs_b.steps_[0].quantile_.quantiles_
    np.testing.assert_array_equal(q_a, q_b)  # the test rows never reach the narrowed step
    alone = RankGauss(["genes", "cells"]).fit(train)
    np.testing.assert_array_equal(q_a, alone.quantile_.quantiles_)
    assert fs_a.n_fit_rows_ == len(train) + len(test)
    assert not np.allclose(fs_a.steps_[1].pca_.components_, fs_b.steps_[1].pca_.components_)  # PCA saw them
    assert len(te_a) == len(test) and list(te_a.columns) == list(tr_a.columns)
    assert steps[0]["fit_on"] == "train"  # the spec is not mutated
    with pytest.raises(ValueError, match="fit_on 'train\\+test' in a feature set fitted on 'train'"):
        FeatureSet([{"name": "onehot", "fit_on": "train+test"}], fit_on="train").fit(train)
    with pytest.raises(ValueError, match="'onehot': fit_on must be one of"):
        FeatureSet([{"name": "onehot", "fit_on": "test"}], fit_on="train+test").fit(train, test)


def test_feature_set_is_deterministic(train, test):
    _, tr1, te1 = build_feature_set(DEFAULT_SPEC, train, test)
    _, tr2, te2 = build_feature_set(DEFAULT_SPEC, train, test)
    pd.testing.assert_frame_equal(tr1, tr2)
    pd.testing.assert_frame_equal(te1, te2)


def test_feature_set_config_errors(train, test):
    with pytest.raises(ValueError, match=r"unknown feature step 'umapp'.*rankgauss"):
        FeatureSet([{"name": "umapp"}], fit_on="train").fit(train)
    with pytest.raises(ValueError, match=r"'pca'.*unknown key 'n_comp'"):
        FeatureSet([{"name": "pca", "n_comp": 3}], fit_on="train").fit(train)
    with pytest.raises(ValueError, match="fit_on"):
        FeatureSet([], fit_on="test").fit(train, test)
    with pytest.raises(ValueError, match="needs the test frame"):
        FeatureSet([{"name": "onehot"}], fit_on="train+test").fit(train)
    with pytest.raises(ValueError, match="unknown keys"):
        build_feature_set({"fit_on": "train", "step": []}, train, test)
    with pytest.raises(NotFittedError):
        FeatureSet([{"name": "onehot"}]).transform(test)


def test_feature_set_params_follow_sklearn(train):
    steps = [{"name": "rankgauss", "blocks": "genes"}, {"name": "onehot"}]
    fs = FeatureSet(steps, fit_on="train")
    assert fs.get_params() == {"steps": steps, "fit_on": "train"}
    assert not hasattr(clone(fs), "steps_")
    fs.fit(train)
    assert steps == [{"name": "rankgauss", "blocks": "genes"}, {"name": "onehot"}]  # spec not mutated
    buf = io.BytesIO()
    joblib.dump(fs, buf)
    assert buf.tell() > 0
