"""MRRMSE and the regression score record against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from moastack.metrics import (
    MAX_PER_TARGET,
    mrrmse,
    per_row_rmse,
    per_target_mae,
    per_target_rmse,
    regression_score_record,
)

# row 0 errors (0, 0, 3) → RMSE √3; row 1 errors (1, 1, 1) → RMSE 1
Y_TRUE = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
Y_PRED = np.array([[1.0, 2.0, 6.0], [5.0, 6.0, 7.0]])


def test_mrrmse_hand_computed():
    assert per_row_rmse(Y_TRUE, Y_PRED) == pytest.approx([math.sqrt(3), 1.0])
    assert mrrmse(Y_TRUE, Y_PRED) == pytest.approx((math.sqrt(3) + 1) / 2)
    assert per_target_rmse(Y_TRUE, Y_PRED) == pytest.approx([math.sqrt(0.5), math.sqrt(0.5), math.sqrt(5)])
    assert per_target_mae(Y_TRUE, Y_PRED) == pytest.approx([0.5, 0.5, 2.0])
    assert mrrmse(Y_TRUE, Y_TRUE) == 0.0


def test_mrrmse_is_not_the_global_rmse():
    # the global RMSE pools cells: √((9 + 3) / 6) = √2 ≠ (√3 + 1) / 2
    assert mrrmse(Y_TRUE, Y_PRED) != pytest.approx(math.sqrt(2))


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="shape mismatch"):
        mrrmse(Y_TRUE, Y_PRED[:, :2])
    with pytest.raises(ValueError, match="shape mismatch"):
        regression_score_record(Y_TRUE, Y_PRED.T, ["a", "b", "c"])


def test_score_record_small():
    rec = regression_score_record(Y_TRUE, Y_PRED, ["a", "b", "c"], model="m")
    assert rec["metric"] == "mrrmse"
    assert rec["value"] == pytest.approx((math.sqrt(3) + 1) / 2)
    assert rec["metrics"]["mrrmse"] == rec["value"]
    assert rec["metrics"]["rmse_col_mean"] == pytest.approx((2 * math.sqrt(0.5) + math.sqrt(5)) / 3)
    assert rec["metrics"]["mae_col_mean"] == pytest.approx(1.0)
    assert rec["per_target"] == pytest.approx({"a": math.sqrt(0.5), "b": math.sqrt(0.5), "c": math.sqrt(5)})
    assert rec["per_row_rmse_quantiles"]["q00"] == pytest.approx(1.0)
    assert rec["per_row_rmse_quantiles"]["q100"] == pytest.approx(math.sqrt(3))
    assert rec["n"] == 2 and rec["model"] == "m"


def test_score_record_wide_keeps_quantiles_only():
    t = MAX_PER_TARGET + 1
    y = np.zeros((2, t))
    p = np.tile(np.arange(t, dtype=float), (2, 1))  # target j has RMSE j
    rec = regression_score_record(y, p, [f"g{j}" for j in range(t)])
    assert set(rec["per_target"]) == {"q00", "q05", "q25", "q50", "q75", "q95", "q100"}
    assert rec["per_target"]["q100"] == pytest.approx(t - 1)
    assert rec["per_target"]["q50"] == pytest.approx((t - 1) / 2)
    assert "per_target_summary" in rec
