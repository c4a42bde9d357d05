import math

import numpy as np
import pytest

from moastack.metrics import mean_log_loss, per_target_log_loss, score_record


def test_log_loss_matches_hand_computed_value():
    y = np.array([[1, 0], [0, 0], [1, 1]], dtype=float)
    p = np.array([[0.9, 0.2], [0.1, 0.3], [0.6, 0.5]])
    t0 = -(math.log(0.9) + math.log(0.9) + math.log(0.6)) / 3
    t1 = -(math.log(0.8) + math.log(0.7) + math.log(0.5)) / 3
    np.testing.assert_allclose(per_target_log_loss(y, p), [t0, t1], rtol=1e-12)
    assert mean_log_loss(y, p) == pytest.approx((t0 + t1) / 2, rel=1e-12)


def test_clipping_at_1e_15_keeps_confident_mistakes_finite():
    y = np.array([[1.0], [0.0]])
    p = np.array([[0.0], [1.0]])
    # 1 - 1e-15 is not exact in float64, hence the looser tolerance.
    assert mean_log_loss(y, p) == pytest.approx(-math.log(1e-15), rel=1e-4)


def test_missing_labels_are_ignored_per_target():
    y = np.array([[1, np.nan], [0, 1], [np.nan, 0]], dtype=float)
    p = np.array([[0.8, 0.5], [0.3, 0.9], [0.99, 0.2]])
    expected0 = -(math.log(0.8) + math.log(0.7)) / 2
    expected1 = -(math.log(0.9) + math.log(0.8)) / 2
    np.testing.assert_allclose(per_target_log_loss(y, p), [expected0, expected1])


def test_score_record_shape():
    y = np.array([[1, 0], [0, 1]], dtype=float)
    rec = score_record(y, np.full((2, 2), 0.5), ["a", "b"], model="m")
    assert rec["metric"] == "mean_log_loss" and rec["n"] == 2 and rec["model"] == "m"
    assert set(rec["per_target"]) == {"a", "b"}
    assert rec["value"] == pytest.approx(math.log(2))
