"""ROC-AUC / PR-AUC per target on labelled cells, and score records for every metric."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from moastack.metrics import (
    METRICS,
    mean_log_loss,
    metric_value,
    per_target_average_precision,
    per_target_log_loss,
    per_target_roc_auc,
    score_record,
)
from moastack.task import MULTILABEL


def truth_and_predictions(seed: int = 0):
    """Four targets: two ordinary with NaNs, one with a single labelled class, one never labelled."""
    rng = np.random.default_rng(seed)
    n = 200
    y = (rng.random((n, 4)) < 0.3).astype(float)
    p = np.clip(0.35 * y + 0.65 * rng.random((n, 4)), 0.0, 1.0)
    y[rng.random((n, 4)) < 0.25] = np.nan
    y[:, 2] = np.where(np.isnan(y[:, 2]), np.nan, 0.0)
    y[:, 3] = np.nan
    return y, p


@pytest.mark.parametrize(
    ("ours", "sklearns"),
    [(per_target_roc_auc, roc_auc_score), (per_target_average_precision, average_precision_score)],
)
def test_ranking_metrics_equal_sklearn_on_the_labelled_cells(ours, sklearns):
    y, p = truth_and_predictions()
    values = ours(y, p)
    for j in (0, 1):
        labelled = ~np.isnan(y[:, j])
        assert values[j] == pytest.approx(sklearns(y[labelled, j], p[labelled, j]), rel=1e-12)
    assert 0.6 < values[0] < 1.0
    assert np.isnan(values[2]) and np.isnan(values[3])


def test_hand_computed_auc():
    y = np.array([[0.0], [1.0], [np.nan], [1.0], [0.0]])
    p = np.array([[0.1], [0.8], [0.99], [0.3], [0.4]])
    # pairs (pos, neg): (0.8,0.1) (0.8,0.4) (0.3,0.1) ok, (0.3,0.4) wrong -> 3/4
    assert per_target_roc_auc(y, p)[0] == pytest.approx(0.75)


def test_metric_value_is_the_nanmean_over_targets():
    y, p = truth_and_predictions()
    for name in MULTILABEL.metrics:
        assert metric_value(name, y, p) == pytest.approx(np.nanmean(METRICS[name][0](y, p)))
    assert metric_value("log_loss", y, p) == pytest.approx(mean_log_loss(y, p))
    assert [METRICS[m][1] for m in ("log_loss", "roc_auc", "pr_auc")] == [False, True, True]
    with pytest.raises(ValueError, match="unknown metric 'auc'"):
        metric_value("auc", y, p)


def test_score_record_default_is_unchanged_and_lists_every_metric():
    y, p = truth_and_predictions()
    targets = ["a", "b", "c", "d"]
    rec = score_record(y, p, targets, model="m")
    assert rec["metric"] == "mean_log_loss" and rec["greater_is_better"] is False
    assert rec["value"] == pytest.approx(mean_log_loss(y, p))
    losses = per_target_log_loss(y, p)
    assert rec["per_target"]["a"] == pytest.approx(losses[0]) and math.isnan(rec["per_target"]["d"])
    assert set(rec["metrics"]) == {"log_loss", "roc_auc", "pr_auc"}
    assert rec["metrics"]["roc_auc"] == pytest.approx(metric_value("roc_auc", y, p))
    assert rec["per_target_all"]["pr_auc"]["b"] == pytest.approx(per_target_average_precision(y, p)[1])
    assert rec["n"] == 200 and rec["model"] == "m"


def test_score_record_with_roc_auc_as_the_metric():
    y, p = truth_and_predictions()
    rec = score_record(y, p, ["a", "b", "c", "d"], metric="roc_auc")
    assert rec["metric"] == "mean_roc_auc" and rec["greater_is_better"] is True
    assert rec["value"] == pytest.approx(np.nanmean(per_target_roc_auc(y, p)))
    assert rec["per_target"]["a"] == pytest.approx(per_target_roc_auc(y, p)[0])
    assert rec["metrics"]["log_loss"] == pytest.approx(mean_log_loss(y, p))
    with pytest.raises(ValueError, match="unknown metric"):
        score_record(y, p, ["a", "b", "c", "d"], metric="accuracy")
