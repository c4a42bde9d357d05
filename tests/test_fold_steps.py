"""Fold steps: target-aware transforms fitted on one training fold's rows only."""

from __future__ import annotations

import joblib
import numpy as np
import pytest
from scipy.stats import ttest_ind

from moastack.features.fold_steps import (
    FOLD_STEPS,
    StandardizeFold,
    TTestSelect,
    apply_fold_steps,
    build_fold_steps,
    fit_fold_steps,
)

N_G, N_C = 40, 8


def names() -> list[str]:
    return [f"g-{i}" for i in range(N_G)] + [f"c-{i}" for i in range(N_C)] + ["pca_g_0", "g_mean", "cp_time_24"]


def fold_data(seed: int = 0, n: int = 400):
    """Rows with/without any MoA; g-0..g-4 shift with the MoA in the first half of the rows only,
    g-5..g-9 in the second half only."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, len(names()))).astype(np.float32)
    Y = np.zeros((n, 5), dtype=np.float32)
    pos = rng.random(n) < 0.5
    Y[pos, rng.integers(0, 5, pos.sum())] = 1.0
    first = np.arange(n) < n // 2
    X[first & pos, 0:5] += 1.5
    X[~first & pos, 5:10] += 1.5
    return X, Y, first


def test_ttest_keeps_the_quantile_and_passes_other_columns_through():
    X, Y, _ = fold_data()
    step = TTestSelect(quantile=0.25).fit(X, Y, names())
    tested = [n for n in names() if n.startswith(("g-", "c-"))]
    assert len(step.p_values_) == len(tested) == N_G + N_C
    kept_tested = [n for n in step.names_out_ if n.startswith(("g-", "c-"))]
    assert len(kept_tested) == int(np.sum(np.array(list(step.p_values_.values())) < step.threshold_))
    assert abs(len(kept_tested) - 0.25 * len(tested)) <= 1
    assert step.names_out_[-3:] == ["pca_g_0", "g_mean", "cp_time_24"]  # untouched, in order
    assert {f"g-{i}" for i in range(10)} <= set(step.names_out_)  # the informative columns
    # p-values are scipy's Student t-test between rows with any MoA and rows without
    _, p = ttest_ind(X[Y.any(axis=1), 3], X[~Y.any(axis=1), 3])
    assert step.p_values_["g-3"] == pytest.approx(p)
    out = step.transform(X)
    assert out.dtype == np.float32 and out.shape == (len(X), len(step.names_out_))
    idx = [names().index(n) for n in step.names_out_]
    np.testing.assert_array_equal(out, X[:, idx])


def test_ttest_sees_only_the_rows_it_is_given():
    X, Y, first = fold_data()
    a = TTestSelect(quantile=0.1).fit(X[first], Y[first], names())
    b = TTestSelect(quantile=0.1).fit(X[~first], Y[~first], names())
    assert {f"g-{i}" for i in range(5)} <= set(a.names_out_)
    assert not {f"g-{i}" for i in range(5, 10)} & set(a.names_out_)
    assert {f"g-{i}" for i in range(5, 10)} <= set(b.names_out_)
    assert not {f"g-{i}" for i in range(5)} & set(b.names_out_)
    # rows it was not fitted on change nothing
    X2 = X.copy()
    X2[~first] = 100.0 * np.random.default_rng(1).normal(size=X2[~first].shape)
    a2 = TTestSelect(quantile=0.1).fit(X2[first], Y[first], names())
    assert a2.names_out_ == a.names_out_ and a2.p_values_ == a.p_values_


def test_ttest_blocks_constant_columns_and_errors():
    X, Y, _ = fold_data()
    X[:, 12] = 3.0  # constant: NaN p-value, never kept
    step = TTestSelect(quantile=0.5, blocks="c-").fit(X, Y, names())
    assert all(n in step.names_out_ for n in names() if not n.startswith("c-"))
    assert "g-12" in step.names_out_  # g- columns are not tested with blocks="c-"
    const = TTestSelect(quantile=1.0).fit(X, Y, names())
    assert "g-12" not in const.names_out_
    with pytest.raises(ValueError, match="both rows"):
        TTestSelect().fit(X, np.zeros_like(Y), names())
    with pytest.raises(ValueError, match="no column starts"):
        TTestSelect(blocks=("x-",)).fit(X, Y, names())
    with pytest.raises(ValueError, match="columns"):
        TTestSelect().fit(X[:, :5], Y, names())
    with pytest.raises(ValueError, match="quantile"):
        TTestSelect(quantile=0.0)
    with pytest.raises(RuntimeError, match="before fit"):
        TTestSelect().transform(X)
    with pytest.raises(ValueError, match="columns"):
        step.transform(X[:, :-1])


def test_ttest_ignores_missing_labels():
    X, Y, _ = fold_data()
    Ym = Y.copy()
    Ym[Y == 0] = np.where(np.random.default_rng(2).random(int((Y == 0).sum())) < 0.3, np.nan, 0.0)
    a = TTestSelect().fit(X, Y, names())
    b = TTestSelect().fit(X, Ym, names())
    assert a.names_out_ == b.names_out_


def test_standardize_uses_training_rows_only():
    X, Y, first = fold_data()
    step = StandardizeFold().fit(X[first] * 3 + 1, None, names())
    out = step.transform(X[first] * 3 + 1)
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=0), 1, atol=1e-4)
    assert step.names_out_ == names() and out.dtype == np.float32


def test_build_fit_apply_chain_and_round_trip(tmp_path):
    X, Y, first = fold_data()
    specs = [{"name": "ttest_select", "quantile": 0.25, "blocks": ["g-", "c-"]}, {"name": "standardize"}]
    steps = build_fold_steps(specs)
    assert [type(s) for s in steps] == [TTestSelect, StandardizeFold]
    assert specs[0] == {"name": "ttest_select", "quantile": 0.25, "blocks": ["g-", "c-"]}  # not mutated
    out_names = fit_fold_steps(steps, X[first], Y[first], names())
    assert out_names == steps[-1].names_out_ == steps[0].names_out_
    Xv = apply_fold_steps(steps, X[~first])
    assert Xv.shape == (int((~first).sum()), len(out_names)) and Xv.dtype == np.float32
    Xt = apply_fold_steps(steps, X[first])
    np.testing.assert_allclose(Xt.mean(axis=0), 0, atol=1e-5)
    joblib.dump(steps, tmp_path / "fold_steps.joblib")
    np.testing.assert_array_equal(apply_fold_steps(joblib.load(tmp_path / "fold_steps.joblib"), X[~first]), Xv)
    assert apply_fold_steps([], X) is X
    assert "TTestSelect(quantile=0.25" in repr(steps[0])


def test_build_errors_name_the_problem():
    assert set(FOLD_STEPS) == {"ttest_select", "standardize"}
    assert build_fold_steps(None) == [] and build_fold_steps([]) == []
    with pytest.raises(ValueError, match=r"unknown fold step 'ttest'.*standardize"):
        build_fold_steps([{"name": "ttest", "quantile": 0.2}])
    with pytest.raises(ValueError, match=r"'ttest_select': unknown key 'q'"):
        build_fold_steps([{"name": "ttest_select", "q": 0.2}])
    with pytest.raises(ValueError, match=r"'standardize': unknown key 'with_mean'"):
        build_fold_steps([{"name": "standardize", "with_mean": False}])
    with pytest.raises(ValueError, match="mapping"):
        build_fold_steps(["standardize"])


def test_a_feature_step_fitted_inside_the_fold_sees_only_the_training_rows():
    """``{name: rankgauss}`` / ``{name: pca}`` as fold steps: fitted on the training rows, applied to any rows."""
    from moastack.features.fold_steps import InFoldFeatureStep

    rng = np.random.default_rng(0)
    names = [f"g-{i}" for i in range(6)] + [f"c-{i}" for i in range(3)]
    X = rng.normal(size=(120, 9)).astype(np.float32)
    train, other = X[:80], X[80:] + 10.0  # other rows far away: a fit on them would move everything
    steps = build_fold_steps([{"name": "rankgauss", "blocks": ["genes", "cells"], "n_quantiles": 20},
                              {"name": "pca", "block": "genes", "n_components": 2}])
    assert all(isinstance(s, InFoldFeatureStep) for s in steps)
    out_names = fit_fold_steps(steps, train, None, names)
    assert out_names == [*names, "pca_g_0", "pca_g_1"]
    out = apply_fold_steps(steps, other)
    assert out.shape == (40, 11) and out.dtype == np.float32
    np.testing.assert_allclose(np.median(apply_fold_steps(steps, train)[:, :9], axis=0), 0.0, atol=0.1)
    assert (out[:, :9] > 2).all()  # mapped through the training quantiles: far above the training rows
    with pytest.raises(ValueError, match="unknown fold step 'umapp'"):
        build_fold_steps([{"name": "umapp"}])


def test_row_robust_center_by_hand():
    import pandas as pd

    from moastack.features.transformers import RowRobustCenter

    g = np.array([[0.0, 1.0, 2.0, 3.0, 4.0]])
    c = np.array([[-8.0, -2.0, 0.0, 2.0]])
    frame = pd.DataFrame(np.hstack([g, c]), columns=[f"g-{i}" for i in range(5)] + [f"c-{i}" for i in range(4)])
    out = RowRobustCenter().fit(frame).transform(frame)
    np.testing.assert_allclose(out[[f"g-{i}" for i in range(5)]].to_numpy(), g - (1.0 + 3.0) / 2, rtol=1e-6)
    center = (np.quantile(c, 0.25) + np.quantile(c, 0.72)) / 2
    scale = np.quantile(np.abs(c), 0.75) + 4.0
    np.testing.assert_allclose(out[[f"c-{i}" for i in range(4)]].to_numpy(), (c - center) / scale, rtol=1e-6)


def test_ttest_copy_keeps_every_column_and_appends_the_selected_ones():
    """copy: true (the winners' ResNet input 2): nothing dropped, the plain step's picks appended as tt_*."""
    X, Y, _ = fold_data()
    plain = TTestSelect(quantile=0.25).fit(X, Y, names())
    step = TTestSelect(quantile=0.25, copy=True).fit(X, Y, names())
    picked = [n for n in plain.names_out_ if n.startswith(("g-", "c-"))]
    assert step.names_out_ == names() + [f"tt_{n}" for n in picked]
    out = step.transform(X)
    assert out.shape == (len(X), len(names()) + len(picked))
    np.testing.assert_array_equal(out[:, : len(names())], X)
    np.testing.assert_array_equal(out[:, len(names()):], X[:, [names().index(n) for n in picked]])
    # in a fold pipeline after standardize, the copies are the standardised columns
    steps = build_fold_steps([{"name": "standardize"}, {"name": "ttest_select", "quantile": 0.5, "copy": True}])
    final = fit_fold_steps(steps, X, Y, names())
    Z = apply_fold_steps(steps, X)
    for name in [n for n in final if n.startswith("tt_")]:
        np.testing.assert_array_equal(Z[:, final.index(name)], Z[:, final.index(name[3:])])
    with pytest.raises(ValueError, match="copy"):
        TTestSelect(copy="yes")
