"""Target SVD: exact on low-rank data, small error with noise, fixed output width, deterministic."""

from __future__ import annotations

import numpy as np
import pytest

from moastack.target_svd import TargetSVD


def _low_rank(n=80, t=300, rank=5, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, rank)) @ rng.standard_normal((rank, t)) + rng.standard_normal(t)).astype(np.float32)


@pytest.mark.parametrize("k", [5, 45])  # min(n, t) = 80: k = 5 takes the randomized path, k = 45 the exact one
def test_round_trip_exact_on_low_rank(k):
    y = _low_rank()
    svd = TargetSVD(k, seed=0).fit(y)
    z = svd.transform(y)
    assert z.shape == (80, k) and z.dtype == np.float32
    back = svd.inverse_transform(z)
    assert back.shape == y.shape and back.dtype == np.float32
    assert np.abs(back - y).max() < 1e-3 * np.abs(y).max()
    assert svd.explained_variance_ratio_.sum() == pytest.approx(1.0, abs=1e-4)
    assert svd.explained_variance_ratio_[5:].max(initial=0) < 1e-6


def test_round_trip_small_with_noise():
    y = _low_rank()
    noisy = y + np.random.default_rng(1).normal(0, 0.05, y.shape).astype(np.float32)
    svd = TargetSVD(5, seed=0).fit(noisy)
    err = np.sqrt(np.mean((svd.inverse_transform(svd.transform(noisy)) - y) ** 2))
    assert err < 0.05  # denoised: closer to the clean signal than the noise level
    assert 0.99 < svd.explained_variance_ratio_.sum() <= 1.0


def test_exact_path_and_padding_beyond_rank():
    y = _low_rank(n=6, t=10, rank=2)
    svd = TargetSVD(12, seed=0).fit(y)  # more components than min(n, t): zero-padded
    assert svd.components_.shape == (12, 10)
    assert np.allclose(svd.components_[6:], 0.0)
    np.testing.assert_allclose(svd.inverse_transform(svd.transform(y)), y, atol=1e-4)


def test_deterministic_and_state_round_trip():
    y = _low_rank(t=500)
    a, b = TargetSVD(8, seed=3).fit(y), TargetSVD(8, seed=3).fit(y)
    np.testing.assert_array_equal(a.components_, b.components_)
    c = TargetSVD.from_state(a.state())
    np.testing.assert_array_equal(c.transform(y), a.transform(y))


def test_shape_checks():
    svd = TargetSVD(3).fit(_low_rank())
    with pytest.raises(ValueError):
        svd.transform(np.zeros((2, 7), dtype=np.float32))
    with pytest.raises(ValueError):
        svd.inverse_transform(np.zeros((2, 4), dtype=np.float32))
    with pytest.raises(ValueError):
        TargetSVD(0)
