"""One random forest per target on labelled rows only (the Tox21 challenge baseline)."""

from __future__ import annotations

import numpy as np
import pytest

from moastack.metrics import per_target_roc_auc
from moastack.models.base import FitContext
from moastack.models.prior import PriorModel
from moastack.models.registry import read_payload
from moastack.models.sklearn_models import RandomForestModel
from moastack.targets import RATE_CLIP

PARAMS = {"n_estimators": 40, "min_samples_leaf": 2, "n_jobs": 1}


def planted(seed: int = 0, n: int = 500, p: int = 12):
    """Three targets driven by a few columns, 30% of labels missing; a fourth labelled only when positive."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p)).astype(np.float32)
    logits = np.stack([X[:, 0] + X[:, 1], X[:, 2] - X[:, 3], 2 * X[:, 4] * (X[:, 5] > 0)], axis=1)
    Y = (logits + 0.5 * rng.normal(size=logits.shape) > 0.8).astype(np.float64)
    Y[rng.random(Y.shape) < 0.3] = np.nan
    only_pos = np.where(rng.random(n) < 0.2, 1.0, np.nan)
    return X, np.column_stack([Y, only_pos])


def ctx(seed: int = 0) -> FitContext:
    return FitContext(seed=seed, threads=1)


@pytest.fixture(scope="module")
def fitted():
    X, Y = planted()
    return RandomForestModel(**PARAMS).fit(X[:350], Y[:350], None, None, ctx()), X, Y


def test_forest_beats_the_prior_on_roc_auc(fitted):
    model, X, Y = fitted
    probs = model.predict(X[350:])
    assert probs.dtype == np.float32 and probs.shape == (150, 4)
    assert ((probs >= 0) & (probs <= 1)).all()
    prior = PriorModel().fit(X[:350], np.nan_to_num(Y[:350]), None, None, ctx()).predict(X[350:])
    forest_auc = np.nanmean(per_target_roc_auc(Y[350:, :3], probs[:, :3]))
    prior_auc = np.nanmean(per_target_roc_auc(Y[350:, :3], prior[:, :3]))
    assert prior_auc == pytest.approx(0.5)
    assert forest_auc > 0.8 and forest_auc > prior_auc + 0.25


def test_missing_labels_are_skipped_not_read_as_negatives(fitted):
    model, X, _ = fitted
    # the fourth target's labelled rows are all positive: one class, so a constant (1 kept off 1, as the
    # prior keeps it), no forest
    assert model.estimators_[3] is None
    assert (model.predict(X[:5])[:, 3] == np.float32(1 - RATE_CLIP)).all()
    labelled = ~np.isnan(planted()[1][:350, 0])
    # a bootstrap tree's root weight is the number of rows it was fitted on: the labelled ones
    assert model.estimators_[0].estimators_[0].tree_.weighted_n_node_samples[0] == labelled.sum()
    assert model.estimators_[0].n_features_in_ == X.shape[1]


def test_state_round_trip_and_saved_file(fitted, tmp_path):
    model, X, _ = fitted
    again = RandomForestModel.from_state(model.state(), model.params)
    np.testing.assert_array_equal(again.predict(X), model.predict(X))
    path = tmp_path / "rf.pt"
    model.save(path)
    payload = read_payload(path)
    assert payload["arch"] == "random_forest"
    loaded = RandomForestModel.from_state(payload["state"], payload["params"])
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_seeded_and_empty_predictions(fitted):
    model, X, Y = fitted
    same = RandomForestModel(**PARAMS).fit(X[:350], Y[:350], None, None, ctx())
    np.testing.assert_array_equal(same.predict(X[350:]), model.predict(X[350:]))
    other = RandomForestModel(**PARAMS).fit(X[:350], Y[:350], None, None, ctx(seed=1))
    assert not np.array_equal(other.predict(X[350:]), model.predict(X[350:]))
    assert model.predict(X[:0]).shape == (0, 4)


def test_clip_keeps_predictions_off_zero_and_one(fitted):
    model, X, _ = fitted
    clipped = RandomForestModel.from_state(model.state(), {**model.params, "clip": 0.01}).predict(X)
    raw = model.predict(X)
    assert raw.min() == 0.0 and raw.max() >= np.float32(1 - RATE_CLIP)  # unclipped trees reach 0
    assert clipped.min() == pytest.approx(0.01) and clipped.max() == pytest.approx(0.99)
    np.testing.assert_allclose(clipped, np.clip(raw, 0.01, 0.99))


def test_unknown_params_name_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown params \['n_trees'\]; known: \['class_weight', 'clip', 'max_depth'"):
        RandomForestModel(n_trees=10)
    with pytest.raises(ValueError, match="class_weight"):
        RandomForestModel(class_weight="auto")
