"""The classic per-target models: logistic regression, a calibrated linear SVM, ML-KNN and XGBoost."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from moastack.metrics import mean_log_loss
from moastack.models.base import FitContext
from moastack.models.linear import LogisticModel, SVMModel
from moastack.models.mlknn import MLKNNModel
from moastack.models.prior import PriorModel
from moastack.models.registry import read_payload
from moastack.targets import RATE_CLIP

try:
    from moastack.models.boosting import XGBoostModel, _xgb

    _xgb()
    HAVE_XGB = True
except ImportError:  # the xgboost cases are skipped where the package is missing
    HAVE_XGB = False

needs_xgb = pytest.mark.skipif(not HAVE_XGB, reason="xgboost is not installed")

# arch id -> (class, params small enough for a few seconds per fit)
CASES = {
    "logistic": ("LogisticModel", {"C": 0.3}),
    "svm": ("SVMModel", {"C": 0.1}),
    "mlknn": ("MLKNNModel", {"k": 10}),
    "xgboost": ("XGBoostModel", {"n_estimators": 60, "learning_rate": 0.2, "early_stopping_rounds": 10}),
    "xgboost_multi": ("XGBoostModel", {"strategy": "multi_output", "n_estimators": 60, "learning_rate": 0.2,
                                       "early_stopping_rounds": 10}),
}
PER_TARGET = ["logistic", "svm", "xgboost"]


def model_class(case: str):
    name = CASES[case][0]
    return {"LogisticModel": LogisticModel, "SVMModel": SVMModel, "MLKNNModel": MLKNNModel}.get(name) or XGBoostModel


def make(case: str, **extra):
    return model_class(case)(**{**CASES[case][1], **extra})


def case_params(names=tuple(CASES)):
    return [pytest.param(c, marks=needs_xgb) if c.startswith("xgboost") else c for c in names]


def planted(seed: int = 0, n: int = 400, p: int = 20, t: int = 5):
    """An easy problem: each target is a noisy threshold of a sum of three features (prevalence 10-25%)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p)).astype(np.float32)
    logits = np.stack([X[:, 3 * j] + X[:, 3 * j + 1] - X[:, 3 * j + 2] for j in range(t)], axis=1)
    Y = (logits + 0.5 * rng.normal(size=logits.shape) > np.linspace(1.2, 2.0, t)).astype(np.float64)
    return X, Y


def ctx(seed: int = 0) -> FitContext:
    return FitContext(seed=seed, threads=1)


TRAIN, VALID = slice(0, 250), slice(250, 300)  # rows 300: are held out


@pytest.fixture(scope="module")
def data():
    return planted()


@pytest.fixture(scope="module")
def fitted(data):
    X, Y = data
    cache = {}

    def get(case: str):
        if case not in cache:
            cache[case] = make(case).fit(X[TRAIN], Y[TRAIN], X[VALID], Y[VALID], ctx())
        return cache[case]

    return get


# ------------------------------------------------------------------------------------ every arch
@pytest.mark.parametrize("case", case_params())
def test_predictions_are_float32_probabilities(case, fitted, data):
    X, _ = data
    probs = fitted(case).predict(X[300:])
    assert probs.dtype == np.float32 and probs.shape == (100, 5)
    assert np.isfinite(probs).all() and ((probs >= 0) & (probs <= 1)).all()
    assert fitted(case).predict(X[:0]).shape == (0, 5)


@pytest.mark.parametrize("case", case_params())
def test_beats_the_prior_on_held_out_rows(case, fitted, data):
    X, Y = data
    prior = PriorModel().fit(X[TRAIN], Y[TRAIN], None, None, ctx()).predict(X[300:])
    base, loss = mean_log_loss(Y[300:], prior), mean_log_loss(Y[300:], fitted(case).predict(X[300:]))
    # ML-KNN weighs all 20 columns alike while 3 carry each target: the weakest here, as on lish-moa
    assert loss < (0.92 if case == "mlknn" else 0.8) * base, (loss, base)


@pytest.mark.parametrize("case", case_params())
def test_state_round_trip_and_saved_file(case, fitted, data, tmp_path):
    X, _ = data
    model = fitted(case)
    again = type(model).from_state(model.state(), model.params)
    np.testing.assert_array_equal(again.predict(X), model.predict(X))
    path = tmp_path / "model.pt"
    model.save(path)
    payload = read_payload(path)
    assert payload["arch"] == model.arch and payload["params"] == model.params
    loaded = type(model).from_state(payload["state"], payload["params"])
    np.testing.assert_array_equal(loaded.predict(X, ctx()), model.predict(X))


@pytest.mark.parametrize("case", case_params())
def test_same_seed_same_predictions(case, fitted, data):
    X, Y = data
    same = make(case).fit(X[TRAIN], Y[TRAIN], X[VALID], Y[VALID], ctx())
    np.testing.assert_array_equal(same.predict(X[300:]), fitted(case).predict(X[300:]))


@pytest.mark.parametrize("case", case_params(["xgboost", "xgboost_multi"]))
def test_xgboost_seed_changes_the_subsample(case, fitted, data):
    X, Y = data
    other = make(case).fit(X[TRAIN], Y[TRAIN], X[VALID], Y[VALID], ctx(seed=1))
    assert not np.array_equal(other.predict(X[300:]), fitted(case).predict(X[300:]))


@pytest.mark.parametrize("case", case_params())
def test_single_class_targets_predict_their_rate(case, data, caplog):
    X, Y = data
    Y = Y[:300].copy()
    Y[:, 1] = 0.0  # no positive
    Y[:, 2] = np.where(Y[:, 2] == 1, 1.0, np.nan)  # labelled only where positive
    Y[:, 3] = np.nan  # never labelled
    with caplog.at_level(logging.INFO):
        model = make(case).fit(X[TRAIN], Y[TRAIN], X[VALID], Y[VALID], ctx())
    probs = model.predict(X[300:])
    # kept off an exact 0/1 as the prior is: a held-out positive of a target unseen in training costs
    # -log(1e-5) = 11.5, not the metric's clip of 34.5
    floor, ceiling = np.float32(RATE_CLIP), np.float32(1 - RATE_CLIP)
    assert (probs[:, 1] == floor).all() and (probs[:, 2] == ceiling).all() and (probs[:, 3] == 0.5).all()
    assert probs[:, 0].std() > 0.01 and probs[:, 4].std() > 0.01  # the others are still fitted
    assert "target 1 has one class in training" in caplog.text


@pytest.mark.parametrize("case", case_params())
def test_missing_labels_are_not_read_as_negatives(case, data):
    X, Y = data
    Y = Y[:300].copy()
    rng = np.random.default_rng(1)
    hidden = rng.random(300) < 0.4
    Y[hidden, 0] = np.nan
    masked = make(case).fit(X[TRAIN], Y[TRAIN], X[VALID], Y[VALID], ctx()).predict(X[300:])
    zeros = np.nan_to_num(Y)
    as_negatives = make(case).fit(X[TRAIN], zeros[TRAIN], X[VALID], zeros[VALID], ctx()).predict(X[300:])
    assert not np.allclose(masked[:, 0], as_negatives[:, 0], atol=1e-4)
    assert ((masked >= 0) & (masked <= 1)).all()


@pytest.mark.parametrize("case", case_params(PER_TARGET))
def test_per_target_fit_sees_only_the_targets_labelled_rows(case, data):
    X, Y = data
    Y = Y[:300].copy()
    hidden = np.random.default_rng(2).random(300) < 0.4
    Y[hidden, 0] = np.nan
    first = make(case).fit(X[TRAIN], Y[TRAIN], X[VALID], Y[VALID], ctx()).predict(X[300:])
    # rows unlabelled for target 0 get other features: target 0 is unchanged, the others are not
    X2 = X.copy()
    X2[:300][hidden] = np.random.default_rng(3).normal(size=(int(hidden.sum()), X.shape[1]))
    second = make(case).fit(X2[TRAIN], Y[TRAIN], X2[VALID], Y[VALID], ctx()).predict(X[300:])
    np.testing.assert_array_equal(second[:, 0], first[:, 0])
    assert not np.array_equal(second[:, 1:], first[:, 1:])


@pytest.mark.parametrize("case", case_params())
def test_unknown_and_bad_params_fail_at_construction(case):
    cls = model_class(case)
    with pytest.raises(ValueError, match=r"unknown params \['n_trees'\]"):
        cls(n_trees=10)
    bad = {"logistic": {"C": 0}, "svm": {"cv": 1}, "mlknn": {"k": 0}, "xgboost": {"max_depth": 0},
           "xgboost_multi": {"strategy": "one_vs_rest"}}[case]
    with pytest.raises(ValueError, match=next(iter(bad))):
        cls(**bad)


# --------------------------------------------------------------------------------- per arch
def test_logistic_class_weight_and_strength():
    with pytest.raises(ValueError, match="class_weight"):
        LogisticModel(class_weight="auto")
    X, Y = planted()
    weak = LogisticModel(C=1e-4).fit(X[:300], Y[:300], None, None, ctx()).predict(X[300:])
    strong = LogisticModel(C=1.0).fit(X[:300], Y[:300], None, None, ctx()).predict(X[300:])
    assert weak.std(axis=0).max() < strong.std(axis=0).min()  # a heavy penalty flattens towards the rate


def test_svm_is_calibrated_and_falls_back_for_rare_targets(caplog):
    X, Y = planted()
    Y = Y[:300].copy()
    Y[:, 3] = 0.0
    Y[[5, 9], 3] = 1.0  # two positives: calibrated on 2 folds
    Y[:, 4] = 0.0
    Y[7, 4] = 1.0  # one positive: cannot be calibrated, predicts its rate
    with caplog.at_level(logging.INFO):
        model = SVMModel(cv=3).fit(X[:300], Y, None, None, ctx())
    assert len(model.estimators_[0].calibrated_classifiers_) == 3
    assert len(model.estimators_[3].calibrated_classifiers_) == 2
    assert model.estimators_[4] is None and model.constant_[4] == pytest.approx(1 / 300)
    assert "target 3 has 2 row(s) of its rarer class; calibrating on 2 folds" in caplog.text
    assert "target 4 has 1 row(s) of its rarer class, too few to calibrate" in caplog.text
    probs = model.predict(X[:300])
    # calibrated: the mean prediction of a frequent target is near its rate (raw margins are not)
    assert probs[:, 0].mean() == pytest.approx(Y[:, 0].mean(), abs=0.05)
    assert (probs[:, 4] == np.float32(1 / 300)).all()


def test_mlknn_matches_a_hand_computation():
    # six points on a line, two clusters; k = 2, s = 1
    X = np.array([[0.0], [1.0], [2.0], [10.0], [11.0], [12.0]], dtype=np.float32)
    nan = np.nan
    Y = np.array([[1, 1], [1, nan], [0, 0], [0, 0], [0, nan], [1, 1]], dtype=np.float64)
    model = MLKNNModel(k=2, s=1.0).fit(X, Y, None, None, ctx())
    # neighbours without the row itself: 0:{1,2} 1:{0,2} 2:{1,0} 3:{4,5} 4:{3,5} 5:{4,3}
    # target 0, y = 1 1 0 0 0 1: delta = 1 1 2 1 1 0; positives have delta 1, 1, 0 -> c1 = [1, 2, 0];
    #   negatives 2, 1, 1 -> c0 = [0, 2, 1]; prior (1 + 3) / (2 + 6) = 1/2;
    #   P(d | H1) = (1 + c1) / (3 + 3) = [2, 3, 1] / 6;  P(d | H0) = [1, 3, 2] / 6
    # target 1, y = 1 ? 0 0 ? 1 (an unlabelled neighbour is no positive): delta = 0 1 1 1 1 0; labelled
    #   rows 0 (pos, 0), 2 (neg, 1), 3 (neg, 1), 5 (pos, 0) -> c1 = [2, 0, 0], c0 = [0, 2, 0];
    #   prior (1 + 2) / (2 + 4) = 1/2; P(d | H1) = [3, 1, 1] / 5, P(d | H0) = [1, 3, 1] / 5
    np.testing.assert_allclose(model.prior_, [0.5, 0.5])
    np.testing.assert_allclose(model.likelihood1_, [[2 / 6, 3 / 6, 1 / 6], [3 / 5, 1 / 5, 1 / 5]])
    np.testing.assert_allclose(model.likelihood0_, [[1 / 6, 3 / 6, 2 / 6], [1 / 5, 3 / 5, 1 / 5]])
    # query 0.4 -> neighbours 0, 1: target 0 delta 2 -> (1/6) / (1/6 + 2/6) = 1/3; target 1 delta 1 -> 1/4
    # query 5.9 -> neighbours 2, 3: delta 0 and 0 -> 2/3 and 3/4
    # query 11.2 -> neighbours 4, 5: delta 1 and 1 -> 1/2 and 1/4
    queries = np.array([[0.4], [5.9], [11.2]], dtype=np.float32)
    np.testing.assert_allclose(model.predict(queries), [[1 / 3, 1 / 4], [2 / 3, 3 / 4], [1 / 2, 1 / 4]], rtol=1e-6)


def test_mlknn_excludes_the_row_itself_even_among_duplicates():
    X = np.zeros((5, 2), dtype=np.float32)  # all rows identical
    Y = np.array([[1], [0], [0], [0], [1]], dtype=np.float64)
    model = MLKNNModel(k=3, s=1.0).fit(X, Y, None, None, ctx())
    # whichever 3 others are picked, a positive sees <= 1 other positive and a negative <= 2 positives;
    # a row counted as its own neighbour would let a positive see 2
    c1 = model.likelihood1_[0] * (1 * 4 + 2) - 1  # back to counts: (s + c1) / (s (k + 1) + n_pos)
    assert c1.sum() == pytest.approx(2) and c1[2:].sum() == pytest.approx(0)


@needs_xgb
def test_xgboost_early_stops_on_validation_rows_and_sets_device():
    X, Y = planted()
    model = XGBoostModel(n_estimators=300, learning_rate=0.3, early_stopping_rounds=5)
    model.fit(X[:250], Y[:250], X[250:300], Y[250:300], ctx())
    n_trees = [e[1] for e in model.estimators_]
    assert max(n_trees) < 300  # stopped early on the validation rows
    no_valid = XGBoostModel(n_estimators=40).fit(X[:250], Y[:250], None, None, ctx())
    assert [e[1] for e in no_valid.estimators_] == [40] * 5
    assert model._booster_params(FitContext(device="cuda"), 0)["device"] == "cuda"
    assert model._booster_params(FitContext(device="cpu"), 0)["device"] == "cpu"


@needs_xgb
def test_xgboost_balanced_weight_and_multi_output_start():
    X, Y = planted()
    plain = XGBoostModel(n_estimators=30).fit(X[:300], Y[:300], None, None, ctx()).predict(X[300:])
    balanced = XGBoostModel(n_estimators=30, scale_pos_weight="balanced")
    balanced = balanced.fit(X[:300], Y[:300], None, None, ctx()).predict(X[300:])
    assert (balanced.mean(axis=0) > plain.mean(axis=0)).all()  # positives weigh more: higher probabilities
    with pytest.raises(ValueError, match="scale_pos_weight"):
        XGBoostModel(strategy="multi_output", scale_pos_weight="balanced")
    # multi_output starts from each target's training rate: one tiny step stays there
    tiny = XGBoostModel(strategy="multi_output", n_estimators=1, learning_rate=1e-6)
    probs = tiny.fit(X[:300], Y[:300], None, None, ctx()).predict(X[300:])
    np.testing.assert_allclose(probs, np.broadcast_to(Y[:300].mean(axis=0), probs.shape), rtol=1e-4)


@needs_xgb
def test_xgboost_fits_each_assay_on_its_labelled_rows_only():
    """Missing labels (NaN) are skipped, never read as negatives: each target's booster is the one a
    single-target model fits on that target's labelled training and validation rows alone."""
    X, Y = planted()
    Y = Y.copy()
    Y[np.random.default_rng(5).random(Y.shape) < 0.3] = np.nan
    params = {"n_estimators": 40, "learning_rate": 0.3, "early_stopping_rounds": 5}
    model = XGBoostModel(**params).fit(X[:250], Y[:250], X[250:300], Y[250:300], ctx())
    pred = model.predict(X[300:])
    for j in range(Y.shape[1]):
        lab, lab_v = ~np.isnan(Y[:250, j]), ~np.isnan(Y[250:300, j])
        alone = XGBoostModel(**params).fit(X[:250][lab], Y[:250][lab, j], X[250:300][lab_v], Y[250:300][lab_v, j],
                                           ctx(seed=j))  # target j's booster is seeded seed + j
        np.testing.assert_array_equal(pred[:, j], alone.predict(X[300:])[:, 0])
    zero_filled = XGBoostModel(**params).fit(X[:250], np.nan_to_num(Y[:250]), X[250:300], np.nan_to_num(Y[250:300]),
                                             ctx()).predict(X[300:])
    assert (pred.mean(axis=0) > zero_filled.mean(axis=0)).all()  # NaN read as 0 would pull every rate down
