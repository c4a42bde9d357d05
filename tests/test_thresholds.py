"""Per-target decision thresholds: the F1/MCC-optimal cut on hand-made scores, missing labels, applying them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score, matthews_corrcoef, precision_score, recall_score

from moastack.thresholds import NEVER, apply_thresholds, best_cut, decision_thresholds, sweep, threshold_table


def _known_case(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """100 rows, 4 positives, scores 1.00, 0.99, ... 0.01 (shuffled). By score, the labels read 1, 0, 0, 0, 1,
    then 93 negatives, then the last 2 positives. Calling the top row: TP 1, FP 0 (precision 1, recall 1/4):
    F1 = 2/5 = 0.4, MCC = 96/sqrt(1·4·96·99) = 0.4924. Calling the top 5: TP 2, FP 3 (precision 0.4, recall
    0.5): F1 = 4/9 = 0.444, MCC = (2·93 − 3·2)/sqrt(5·4·96·95) = 0.4215. Every other cut is worse on both,
    so F1 picks 0.96 and MCC picks 1.0 (F1 is the harmonic, MCC about the geometric mean of precision
    and recall)."""
    y = np.zeros(100)
    y[[0, 4, 98, 99]] = 1
    p = 1.0 - np.arange(100) / 100
    order = np.random.default_rng(seed).permutation(100)
    return y[order], p[order]


def test_the_f1_and_the_mcc_optimal_thresholds_of_a_hand_made_case():
    y, p = _known_case()
    f1 = best_cut(y, p, "f1")
    assert f1["threshold"] == pytest.approx(0.96)
    assert f1["f1"] == pytest.approx(4 / 9)
    assert (f1["tp"], f1["fp"], f1["precision"], f1["recall"]) == (2, 3, pytest.approx(0.4), pytest.approx(0.5))
    assert f1["mcc"] == pytest.approx(180 / np.sqrt(5 * 4 * 96 * 95))
    mcc = best_cut(y, p, "mcc")
    assert mcc["threshold"] == pytest.approx(1.0)
    assert mcc["mcc"] == pytest.approx(96 / np.sqrt(4 * 96 * 99))
    assert (mcc["f1"], mcc["precision"], mcc["recall"]) == (pytest.approx(0.4), 1.0, 0.25)
    with pytest.raises(ValueError, match="unknown threshold metric"):
        best_cut(y, p, "accuracy")


def test_the_sweep_matches_scikit_learn_at_every_distinct_score_ties_included():
    rng = np.random.default_rng(3)
    y = (rng.random(400) < 0.15).astype(float)
    p = np.round(np.clip(0.3 * y + rng.random(400) * 0.7, 0, 1), 2)  # rounded: many tied scores
    curve = sweep(y, p)
    assert np.array_equal(curve["threshold"], np.unique(p)[::-1])  # every distinct score, highest first
    for k in range(0, len(curve["threshold"]), 7):
        called = (p >= curve["threshold"][k]).astype(int)
        assert curve["f1"][k] == pytest.approx(f1_score(y, called))
        assert curve["mcc"][k] == pytest.approx(matthews_corrcoef(y, called))
        assert curve["precision"][k] == pytest.approx(precision_score(y, called))
        assert curve["recall"][k] == pytest.approx(recall_score(y, called))
    for metric, score in (("f1", f1_score), ("mcc", matthews_corrcoef)):
        best = best_cut(y, p, metric)
        brute = max(score(y, (p >= t).astype(int)) for t in np.unique(p))
        assert best[metric] == pytest.approx(brute)
        assert score(y, (p >= best["threshold"]).astype(int)) == pytest.approx(brute)


def test_missing_labels_are_skipped_and_a_target_without_positive_is_never_called():
    y, p = _known_case(1)
    y2 = y.copy()
    y2[::3] = np.nan  # a third of the cells unlabelled
    truth = np.column_stack([y, y2, np.where(np.arange(100) % 2, 0.0, np.nan)])  # third: no positive
    pred = np.column_stack([p, p, p])
    record = decision_thresholds(truth, pred, ["a", "b", "none"], "f1")
    assert record["metric"] == "f1" and record["never_called"] == ["none"]
    assert "optimistic" in record["chosen_on"]
    a, b, none = (record["targets"][t] for t in ("a", "b", "none"))
    assert a["threshold"] == pytest.approx(0.96) and a["f1"] == pytest.approx(4 / 9)
    assert (a["labelled"], a["positives"]) == (100, 4)
    labelled = ~np.isnan(y2)
    assert b["labelled"] == labelled.sum()
    assert b["threshold"] == best_cut(y2[labelled], p[labelled], "f1")["threshold"]
    assert b["f1"] == pytest.approx(f1_score(y2[labelled], p[labelled] >= b["threshold"]))
    from sklearn.metrics import average_precision_score, roc_auc_score

    assert a["roc_auc"] == pytest.approx(roc_auc_score(y, p))
    assert b["pr_auc"] == pytest.approx(average_precision_score(y2[labelled], p[labelled]))
    assert none["threshold"] == NEVER and none["positives"] == 0 and none["labelled"] == 50
    assert none["f1"] is none["mcc"] is none["precision"] is none["recall"] is none["roc_auc"] is None
    table = threshold_table(record)
    assert list(table["target"]) == ["a", "b", "none"] and np.isnan(table.loc[2, "f1"])


def test_soft_or_mismatched_labels_are_refused():
    with pytest.raises(ValueError, match="0/1 labels"):
        sweep(np.array([0.0, 0.5, 1.0]), np.array([0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match="shape mismatch"):
        decision_thresholds(np.zeros((3, 2)), np.zeros((3, 2)), ["only_one"])


def test_apply_thresholds_calls_probability_at_or_above_the_threshold():
    record = {"never_called": ["c"], "targets": {"a": {"threshold": 0.5}, "b": {"threshold": 0.2},
                                                  "c": {"threshold": NEVER}}}
    frame = pd.DataFrame({"sig_id": ["x", "y", "z"], "a": [0.5, 0.49, 0.9], "b": [0.1, 0.2, 1.0],
                          "c": [1.0, 0.0, 0.5]})
    out = apply_thresholds(frame, record, ["a", "b", "c"])
    assert list(out.columns) == ["sig_id", "a", "b", "c", "a_label", "b_label", "c_label"]
    assert out["a_label"].tolist() == [1, 0, 1] and out["b_label"].tolist() == [0, 1, 1]
    assert out["c_label"].tolist() == [0, 0, 0]  # no positive in training: never called, even at 1.0
    assert out["a_label"].dtype == np.int8
    pd.testing.assert_frame_equal(out[frame.columns], frame)
    with pytest.raises(ValueError, match="no decision threshold for target.*d"):
        apply_thresholds(frame.assign(d=0.3), record, ["a", "d"])
    with pytest.raises(ValueError, match="a_label would overwrite"):
        apply_thresholds(frame.assign(a_label=0.3), record, ["a"])
