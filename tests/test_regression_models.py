"""Ridge and MLP regressors on the synthetic perturbation task, plus the mixed losses.

The benchmark mirrors the real task: train on all common-cell rows and the few measured rare-cell rows,
predict the rare cell types on compounds never measured in them. Features are a one-hot of the cell
type plus a target encoding (cell type and compound, in SVD space) fitted on the training rows only.
Baselines: the per-cell-type training mean (ignores the compound) and the per-compound training mean
(ignores the cell type; the test compounds are known from the common cell types). Both are honest
"one key only" predictors; the MLP must combine the two keys to beat them. (With compounds held out of
every cell type the compound encoding is the global one, and nothing can beat the per-cell-type mean.)
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from moastack.data.synthetic_perturbation import PerturbationSpec, generate_perturbation, perturbation_test_truth
from moastack.features.target_encoding import TargetEncoder
from moastack.metrics import mrrmse
from moastack.models.base import FitContext
from moastack.models.registry import model_class, read_payload
from moastack.models.regression_losses import log_cosh, mixed_regression_loss
from moastack.models.regressors import MLPRegressor, RidgeRegressor

CTX = FitContext(seed=0, threads=1)
FAST = {"epochs": 5}


@pytest.fixture(scope="module")
def task():
    spec = PerturbationSpec(seed=0)
    frames = generate_perturbation(spec)
    train, test = frames["train_features"], frames["test_features"]
    y = frames["train_targets_scored"].iloc[:, 1:].to_numpy(np.float32)
    y_test = perturbation_test_truth(spec).iloc[:, 1:].to_numpy(np.float32)
    cells = np.array(sorted(train["cell_type"].unique()))

    def one_hot(df):
        return (df["cell_type"].to_numpy()[:, None] == cells[None, :]).astype(np.float32)

    enc = TargetEncoder(columns=("cell_type", "compound"), n_components=16).fit(train, y)
    x = np.hstack([one_hot(train), enc.transform(train)])
    x_test = np.hstack([one_hot(test), enc.transform(test)])
    return {"train": train, "test": test, "x": x, "y": y, "x_test": x_test, "y_test": y_test}


def _group_mean(keys, y, new_keys):
    means = {k: y[keys == k].mean(axis=0) for k in np.unique(keys)}
    return np.stack([means[k] for k in new_keys])


def test_mlp_beats_one_key_baselines_on_unseen_rare_pairs(task):
    tr, te, y = task["train"], task["test"], task["y"]
    by_cell = mrrmse(task["y_test"], _group_mean(tr["cell_type"].to_numpy(), y, te["cell_type"]))
    by_compound = mrrmse(task["y_test"], _group_mean(tr["compound"].to_numpy(), y, te["compound"]))
    model = MLPRegressor().fit(task["x"], y, None, None, CTX)
    pred = model.predict(task["x_test"], CTX)
    assert pred.shape == task["y_test"].shape and pred.dtype == np.float32
    score = mrrmse(task["y_test"], pred)
    # measured: cell-type mean 1.90, compound mean 1.31, MLP 1.02
    assert score < 0.9 * min(by_cell, by_compound)


def test_early_stopping_restores_the_best_epoch(task):
    x, y = task["x"], task["y"]
    valid = np.arange(len(x)) % 5 == 0
    model = MLPRegressor(epochs=30, patience=3, lr=3e-3).fit(x[~valid], y[~valid], x[valid], y[valid], CTX)
    scores = [h["valid_loss"] for h in model.history_]
    assert len(scores) <= 30
    assert mrrmse(y[valid], model.predict(x[valid])) == pytest.approx(min(scores), rel=1e-5)


def test_same_seed_same_predictions(task):
    x, y = task["x"], task["y"]
    a = MLPRegressor(**FAST).fit(x, y, None, None, CTX).predict(task["x_test"])
    b = MLPRegressor(**FAST).fit(x, y, None, None, CTX).predict(task["x_test"])
    c = MLPRegressor(**FAST).fit(x, y, None, None, FitContext(seed=1, threads=1)).predict(task["x_test"])
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("make", [lambda **p: RidgeRegressor(**p), lambda **p: MLPRegressor(**FAST, **p)])
def test_clipping_to_training_range(task, make):
    x, y = task["x"], task["y"]
    far = task["x_test"] * 50.0  # extrapolate far outside the training features
    lo, hi = y.min(axis=0), y.max(axis=0)
    free = make(clip=False).fit(x, y, None, None, CTX).predict(far)
    assert (free < lo).any() or (free > hi).any()
    clipped = make().fit(x, y, None, None, CTX).predict(far)
    assert (clipped >= lo).all() and (clipped <= hi).all()
    np.testing.assert_array_equal(clipped, np.clip(free, lo, hi))


@pytest.mark.parametrize("arch, params", [
    ("ridge", {}),
    ("ridge", {"kernel": "rbf", "alpha": 0.1, "svd_components": 12}),
    ("mlp_regressor", {**FAST, "svd_components": 12, "loss_weights": {"mse": 1.0, "logcosh": 0.5}}),
])
def test_state_round_trip_and_empty_predict(task, arch, params, tmp_path):
    cls = model_class(arch)
    model = cls(**params).fit(task["x"], task["y"], None, None, CTX)
    pred = model.predict(task["x_test"])
    assert pred.shape == task["y_test"].shape and pred.dtype == np.float32
    model.save(tmp_path / "m.pt")
    payload = read_payload(tmp_path / "m.pt")
    assert payload["arch"] == arch
    again = cls.from_state(payload["state"], payload["params"])
    np.testing.assert_array_equal(again.predict(task["x_test"]), pred)
    empty = again.predict(task["x_test"][:0])
    assert empty.shape == (0, task["y"].shape[1]) and empty.dtype == np.float32


def test_svd_components_train_on_scores(task):
    model = MLPRegressor(**FAST, svd_components=10).fit(task["x"], task["y"], None, None, CTX)
    assert model.n_out_ == 10 and model.svd_.components_.shape == (10, task["y"].shape[1])


def test_unknown_and_bad_params():
    with pytest.raises(ValueError, match="known:.*alpha"):
        RidgeRegressor(alhpa=1.0)
    with pytest.raises(ValueError, match="known:.*hidden"):
        MLPRegressor(hiden=[8])
    with pytest.raises(ValueError, match="kernel"):
        RidgeRegressor(kernel="poly")
    with pytest.raises(ValueError, match="loss term"):
        MLPRegressor(loss_weights={"huber": 1.0})
    with pytest.raises(ValueError, match="svd_components"):
        MLPRegressor(svd_components=0)


def test_mixed_loss_values_and_stable_log_cosh():
    pred = torch.tensor([[0.0, 2.0], [1.0, -1.0]])
    target = torch.zeros(2, 2)
    assert mixed_regression_loss(pred, target).item() == pytest.approx((0 + 4 + 1 + 1) / 4)
    mae = mixed_regression_loss(pred, target, {"mse": 0.0, "mae": 1.0}).item()
    assert mae == pytest.approx(1.0)
    lc = mixed_regression_loss(pred, target, {"mse": 0.0, "logcosh": 1.0}).item()
    assert lc == pytest.approx(np.mean(np.log(np.cosh([0.0, 2.0, 1.0, -1.0]))), rel=1e-6)
    big = log_cosh(torch.tensor([1e4, -1e4, 50.0]))
    assert torch.isfinite(big).all()
    assert big[0].item() == pytest.approx(1e4 - np.log(2.0))
    with pytest.raises(ValueError):
        mixed_regression_loss(pred, target, {"mse": 0.0})
