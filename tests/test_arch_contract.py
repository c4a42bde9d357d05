"""The contract every registered arch passes (as scikit-learn's ``parametrize_with_checks`` does for
estimators): it fits tiny data of its task, its predictions have the right shape, dtype and range, a saved
model predicts exactly as the fitted one, the same seed gives the same predictions on CPU, it beats the
prior on an easy problem, and missing labels are masked where its task allows them.

An arch is registered (``moastack.models.registry.ARCHS``) only once it passes; ``TINY`` must give every
registered arch a small, fast configuration, so registering one without adding it here fails.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import yaml
from conftest import ROOT

from moastack.archs import ARCHS
from moastack.metrics import metric_value
from moastack.models.base import FitContext
from moastack.models.registry import build_model, load_model
from moastack.task import get_task
from moastack.train import predict_rows

N_TRAIN, N_VALID, N_TEST, P, T = 400, 80, 200, 16, 4
NAMES = [f"pca_g_{i}" for i in range(4)] + [f"g-{i}" for i in range(P - 4)]

#: a small, fast configuration of every registered arch
TINY: dict[str, dict] = {
    "prior": {},
    "simple_nn": {"hidden": [32], "epochs": 8, "batch_size": 64, "patience": None},
    "tabnet": {"n_d": 8, "n_a": 8, "n_steps": 1, "max_epochs": 20, "batch_size": 64, "virtual_batch_size": 32,
               "lr": 5e-3, "patience": 10},
    "resnet2h": {"head_a_hidden": [16, 8], "head_b_hidden": [16, 8], "tail_hidden": [8], "epochs": 10,
                 "batch_size": 64, "patience": None, "label_smoothing": 0.0},
    "random_forest": {"n_estimators": 40, "min_samples_leaf": 5, "clip": 1e-3},
    "deepinsight": {"image_size": 12, "perplexity": 5.0, "head_hidden": 32, "epochs": 6, "batch_size": 64,
                    "lr": 1e-3, "patience": None},
    "cnn1d_soft": {"hidden": 256, "channels": 16, "conv_channels": 16, "epochs": 8, "batch_size": 64},
    "cnn1d": {"filters": [4, 4], "dense": [32], "epochs": 8, "batch_size": 64},
    "two_input_nn": {"head1": [16, 8], "head2": [16, 8], "tail": [8], "epochs": 8, "batch_size": 64},
    "logistic": {},
    "svm": {"cv": 2, "C": 0.1},
    "mlknn": {"k": 10},
    "xgboost": {"n_estimators": 60, "learning_rate": 0.2, "early_stopping_rounds": 10},
    "ridge": {"alpha": 1.0},
    "mlp_regressor": {"hidden": [32], "epochs": 30, "batch_size": 32, "patience": None},
}


def ctx(seed: int = 0) -> FitContext:
    return FitContext(seed=seed, device="cpu", threads=1, logger=logging.getLogger("contract"),
                      feature_names=list(NAMES))


def easy_problem(task: str, seed: int = 0):
    """A planted signal: linear logits (multilabel) or linear responses plus noise (regression)."""
    rng = np.random.default_rng(seed)
    n = N_TRAIN + N_VALID + N_TEST
    X = rng.normal(size=(n, P)).astype(np.float32)
    W = rng.normal(size=(P, T)) * (rng.random((P, T)) < 0.4) * 1.5
    signal = X @ W
    if get_task(task).probabilities:
        Y = (rng.random((n, T)) < 1 / (1 + np.exp(-(signal - 1.5)))).astype(np.float32)
    else:
        Y = (signal + rng.normal(scale=0.5, size=(n, T))).astype(np.float32)
    splits = np.split(np.arange(n), [N_TRAIN, N_TRAIN + N_VALID])
    return [(X[rows], Y[rows]) for rows in splits]


def baseline(task: str, Y_train: np.ndarray, n: int) -> np.ndarray:
    """What a model must beat: each target's training mean (the prior, for probabilities)."""
    return np.tile(np.nanmean(Y_train, axis=0), (n, 1)).astype(np.float32)


def fit(arch: str, train, valid, seed: int = 0):
    return build_model(arch, TINY[arch]).fit(*train, *valid, ctx(seed))


ARCH_NAMES = sorted(ARCHS)


@pytest.fixture(scope="module", params=ARCH_NAMES)
def fitted(request):
    arch = request.param
    task = ARCHS[arch].tasks[0]
    train, valid, test = easy_problem(task)
    return arch, task, train, valid, test, fit(arch, train, valid)


def test_every_registered_arch_has_a_tiny_configuration_and_a_schema_entry():
    schema = yaml.safe_load((ROOT / "schema" / "config.schema.yaml").read_text())
    assert set(TINY) == set(ARCHS)
    assert set(schema["definitions"]["model"]["properties"]["arch"]["enum"]) == set(ARCHS)


def test_predictions_have_the_shape_dtype_and_range_of_the_task(fitted):
    arch, task, _, _, (X_test, Y_test), model = fitted
    pred = model.predict(X_test, ctx())
    assert pred.shape == Y_test.shape and pred.dtype == np.float32 and np.isfinite(pred).all()
    if get_task(task).probabilities:
        assert ((pred >= 0) & (pred <= 1)).all()
    written = predict_rows(model, X_test, np.arange(len(X_test)) < 3, get_task(task), ctx())
    assert (written[:3] == 0).all()  # controls at 0
    assert predict_rows(model, X_test[:0], np.zeros(0, bool), get_task(task), ctx()).shape == (0, T)


def test_save_then_load_predicts_identically(fitted, tmp_path):
    arch, _, _, _, (X_test, _), model = fitted
    model.save(tmp_path / "model.pt")
    loaded = load_model(tmp_path / "model.pt")
    assert type(loaded) is type(model) and loaded.params == model.params
    np.testing.assert_array_equal(loaded.predict(X_test, ctx()), model.predict(X_test, ctx()))


def test_the_same_seed_gives_the_same_predictions(fitted):
    arch, _, train, valid, (X_test, _), model = fitted
    again = fit(arch, train, valid, seed=0)
    np.testing.assert_array_equal(again.predict(X_test, ctx()), model.predict(X_test, ctx()))


def test_it_beats_the_prior_on_an_easy_problem(fitted):
    arch, task, (_, Y_train), _, (X_test, Y_test), model = fitted
    metric = get_task(task).validation_metric
    score = metric_value(metric, Y_test, model.predict(X_test, ctx()))
    floor = metric_value(metric, Y_test, baseline(task, Y_train, len(Y_test)))
    if arch == "prior":
        assert score == pytest.approx(floor, rel=1e-3)
    else:
        assert score < floor, (arch, score, floor)


@pytest.mark.parametrize("arch", [a for a in ARCH_NAMES if get_task(ARCHS[a].tasks[0]).missing_labels])
def test_missing_labels_are_masked(arch):
    """NaN cells (a quarter of them, and every cell of one target) neither break training nor are read as
    negatives: the model differs from one fitted with those cells set to 0."""
    (X, Y), (Xv, Yv), (X_test, _) = easy_problem(ARCHS[arch].tasks[0], seed=1)
    rng = np.random.default_rng(2)
    Y, Yv = Y.copy(), Yv.copy()
    Y[rng.random(Y.shape) < 0.25] = np.nan
    Yv[rng.random(Yv.shape) < 0.25] = np.nan
    Y[:, -1] = np.nan
    model = build_model(arch, TINY[arch]).fit(X, Y, Xv, Yv, ctx())
    pred = model.predict(X_test, ctx())
    assert np.isfinite(pred).all() and ((pred >= 0) & (pred <= 1)).all()
    for record in model.history_:
        assert all(np.isfinite(v) for k, v in record.items() if k.endswith("loss") and v is not None), record
    zero_filled = build_model(arch, TINY[arch]).fit(X, np.nan_to_num(Y), Xv, np.nan_to_num(Yv), ctx())
    assert not np.allclose(pred[:, :-1], zero_filled.predict(X_test, ctx())[:, :-1], atol=1e-4)


@pytest.mark.parametrize("arch", ARCH_NAMES)
def test_an_unknown_param_is_refused_at_construction(arch):
    with pytest.raises(ValueError, match="unknown params"):
        build_model(arch, {**TINY[arch], "no_such_param": 1})


@pytest.mark.parametrize("arch", [a for a in ARCH_NAMES if ARCHS[a].sparse])
def test_an_arch_registered_sparse_fits_a_csr_matrix_as_its_dense_copy(arch):
    """``sparse=True`` archs take a float32 CSR ``X`` (a feature set's sparse block) and learn what they learn
    from the dense matrix. A third of the cells are zero, so the CSR matrix stores only the others (XGBoost
    reads an absent entry as missing, not 0: it gets every cell stored)."""
    import scipy.sparse as sp

    (X, Y), (Xv, Yv), (X_test, _) = easy_problem(ARCHS[arch].tasks[0], seed=3)
    if arch != "xgboost":
        rng = np.random.default_rng(4)
        X, Xv, X_test = (np.where(rng.random(a.shape) < 0.33, 0.0, a).astype(np.float32) for a in (X, Xv, X_test))
    on_csr = build_model(arch, TINY[arch]).fit(sp.csr_matrix(X), Y, sp.csr_matrix(Xv), Yv, ctx())
    on_dense = build_model(arch, TINY[arch]).fit(X, Y, Xv, Yv, ctx())
    pred = on_csr.predict(sp.csr_matrix(X_test), ctx())
    assert pred.dtype == np.float32 and pred.shape == (len(X_test), T)
    np.testing.assert_allclose(pred, on_dense.predict(X_test, ctx()), atol=1e-4)
