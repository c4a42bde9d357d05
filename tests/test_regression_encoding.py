"""In-fold target encoding: no validation leakage, exact leave-one-out, unseen categories, smoothing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from moastack.features.target_encoding import TargetEncoder


def _data(seed: int = 0, n: int = 60, t: int = 12):
    rng = np.random.default_rng(seed)
    keys = pd.DataFrame({"cell_type": rng.choice(["a", "b", "c"], size=n),
                         "compound": rng.choice([f"d{i}" for i in range(8)], size=n)})
    return keys, rng.standard_normal((n, t)).astype(np.float32)


def test_shapes_and_names():
    keys, y = _data()
    enc = TargetEncoder(n_components=5)
    x = enc.fit(keys, y).transform(keys)
    assert x.shape == (60, 2 * 4 * 5) and x.dtype == np.float32
    names = enc.get_feature_names_out()
    assert len(names) == x.shape[1] and names[0] == "te_cell_type_mean_00" and names[-1] == "te_compound_q75_04"
    assert enc.transform(keys.iloc[:0]).shape == (0, 40)


def test_validation_targets_never_reach_the_encoding():
    keys, y = _data()
    valid = np.arange(45, 60)
    train = np.arange(45)
    y_outlier = y.copy()
    y_outlier[valid] = 1e6  # validation rows' targets are huge outliers
    honest = [TargetEncoder(n_components=4).fit(keys.iloc[train], yy[train]).transform(keys.iloc[valid])
              for yy in (y, y_outlier)]
    np.testing.assert_array_equal(honest[0], honest[1])
    # a leaky fit on all rows does see them: the same check would then fail
    leaky = [TargetEncoder(n_components=4).fit(keys, yy).transform(keys.iloc[valid]) for yy in (y, y_outlier)]
    assert np.abs(leaky[0] - leaky[1]).max() > 1e3


def test_loo_two_row_category_gets_the_other_row():
    keys = pd.DataFrame({"cell_type": ["x", "x", "y", "y", "y"], "compound": ["p", "q", "p", "q", "r"]})
    y = np.array([[1, 0, 0], [0, 2, 0], [0, 0, 3], [4, 1, 0], [1, 1, 1]], dtype=np.float32)
    enc = TargetEncoder(columns=("cell_type",), stats=("mean", "std", "q25"), n_components=3, loo=True)
    x = enc.fit_transform(keys, y).reshape(5, 3, 3)  # rows × stats × components
    z = enc.svd_.transform(y)
    np.testing.assert_allclose(x[0, 0], z[1], atol=1e-5)  # row 0 sees only row 1
    np.testing.assert_allclose(x[1, 0], z[0], atol=1e-5)
    np.testing.assert_allclose(x[0, 1], 0.0, atol=1e-5)  # std of one value
    np.testing.assert_allclose(x[0, 2], z[1], atol=1e-5)  # any quantile of one value is the value
    # the 3-row category: row 2 sees rows 3 and 4
    np.testing.assert_allclose(x[2, 0], z[[3, 4]].mean(axis=0), atol=1e-5)
    # and transform (new rows) uses all fitted rows of the category
    np.testing.assert_allclose(enc.transform(keys.iloc[:1]).reshape(3, 3)[0], z[:2].mean(axis=0), atol=1e-5)


def test_loo_matches_brute_force():
    keys, y = _data(seed=1, n=40)
    stats = ("mean", "std", "q10", "median", "q75", "min", "max")
    enc = TargetEncoder(stats=stats, n_components=4, loo=True, smoothing=2.0)
    x = enc.fit_transform(keys, y)
    z = enc.svd_.transform(y).astype(np.float64)
    qs = {"q10": 0.1, "median": 0.5, "q75": 0.75, "min": 0.0, "max": 1.0}
    for i in (0, 7, 23):
        expected = []
        for col in enc.columns:
            others = np.flatnonzero((keys[col] == keys[col].iloc[i]).to_numpy() & (np.arange(40) != i))
            zo = z[others]
            raw = np.stack([zo.mean(0), zo.std(0), *[np.quantile(zo, qs[s], axis=0) for s in stats[2:]]])
            expected.append((len(others) * raw + 2.0 * enc.global_) / (len(others) + 2.0))
        np.testing.assert_allclose(x[i], np.concatenate(expected, axis=None), rtol=1e-4, atol=1e-5)


def test_unseen_category_gets_global_stats_and_smoothing_shrinks():
    keys, y = _data()
    enc = TargetEncoder(columns=("compound",), stats=("mean", "std"), n_components=3).fit(keys, y)
    unseen = enc.transform(pd.DataFrame({"compound": ["never-seen"]})).reshape(2, 3)
    np.testing.assert_allclose(unseen, enc.global_, atol=1e-6)
    assert np.allclose(enc.global_[0], 0.0, atol=1e-5)  # SVD scores are centred
    raw = TargetEncoder(columns=("compound",), stats=("mean",), n_components=3).fit(keys, y).transform(keys)
    smooth = TargetEncoder(columns=("compound",), stats=("mean",), n_components=3, smoothing=5.0)
    shrunk = smooth.fit(keys, y).transform(keys)
    counts = keys["compound"].map(keys["compound"].value_counts()).to_numpy()[:, None]
    np.testing.assert_allclose(shrunk, raw * counts / (counts + 5.0), atol=1e-5)  # global mean is 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown stat"):
        TargetEncoder(stats=("mean", "kurtosis"))
    keys, y = _data()
    with pytest.raises(ValueError, match="lack"):
        TargetEncoder(columns=("donor",)).fit(keys, y)
