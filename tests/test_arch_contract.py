"""The contract every registered arch passes (as scikit-learn's ``parametrize_with_checks`` does for
estimators): it fits tiny data of its task, its predictions have the right shape, dtype and range, a saved
model predicts exactly as the fitted one, the same seed gives the same predictions on CPU, it beats the
prior on an easy problem, and missing labels are masked where its task allows them.

An arch is registered (``moastack.models.registry.ARCHS``) only once it passes; ``TINY`` must give every
registered arch a small, fast configuration, so registering one without adding it here fails. An arch that
reads molecules (``Arch.molecules``) gets an easy problem of small molecules with planted structural
labels, their SMILES handed over in its context as a job does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np
import pytest
import yaml
from conftest import ROOT, molecule_labels, molecule_smiles

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
    "chemprop": {"hidden": 32, "depth": 2, "ffn_hidden": 32, "epochs": 8, "batch_size": 32, "max_lr": 3e-3},
    "ridge": {"alpha": 1.0},
    "mlp_regressor": {"hidden": [32], "epochs": 30, "batch_size": 32, "patience": None},
}


@dataclass
class Rows:
    """Rows of an easy problem: features, labels and (for an arch that reads molecules) SMILES."""

    X: np.ndarray
    Y: np.ndarray
    smiles: np.ndarray | None = None


def ctx(seed: int = 0, rows: Rows | None = None, valid: Rows | None = None) -> FitContext:
    """The job's context; with ``rows`` (and ``valid``), it carries their molecules, as a job's does."""
    return FitContext(seed=seed, device="cpu", threads=1, logger=logging.getLogger("contract"),
                      feature_names=list(NAMES), smiles=None if rows is None else rows.smiles,
                      smiles_valid=None if valid is None else valid.smiles)


def easy_problem(arch: str, seed: int = 0) -> list[Rows]:
    """A planted signal: linear logits (multilabel) or linear responses plus noise (regression); an arch that
    reads molecules gets labels planted in its rows' molecules instead."""
    task = ARCHS[arch].tasks[0]
    rng = np.random.default_rng(seed)
    n = N_TRAIN + N_VALID + N_TEST
    X = rng.normal(size=(n, P)).astype(np.float32)
    W = rng.normal(size=(P, T)) * (rng.random((P, T)) < 0.4) * 1.5
    signal = X @ W
    smiles = None
    if ARCHS[arch].molecules:
        smiles = np.array(molecule_smiles(n, seed), dtype=object)
        Y = molecule_labels(list(smiles), seed)
    elif get_task(task).probabilities:
        Y = (rng.random((n, T)) < 1 / (1 + np.exp(-(signal - 1.5)))).astype(np.float32)
    else:
        Y = (signal + rng.normal(scale=0.5, size=(n, T))).astype(np.float32)
    splits = np.split(np.arange(n), [N_TRAIN, N_TRAIN + N_VALID])
    return [Rows(X[rows], Y[rows], None if smiles is None else smiles[rows]) for rows in splits]


def baseline(task: str, Y_train: np.ndarray, n: int) -> np.ndarray:
    """What a model must beat: each target's training mean (the prior, for probabilities)."""
    return np.tile(np.nanmean(Y_train, axis=0), (n, 1)).astype(np.float32)


def fit(arch: str, train: Rows, valid: Rows, seed: int = 0):
    return build_model(arch, TINY[arch]).fit(train.X, train.Y, valid.X, valid.Y, ctx(seed, train, valid))


def predict(model, rows: Rows) -> np.ndarray:
    return model.predict(rows.X, ctx(rows=rows))


ARCH_NAMES = sorted(ARCHS)


@pytest.fixture(scope="module", params=ARCH_NAMES)
def fitted(request):
    arch = request.param
    task = ARCHS[arch].tasks[0]
    train, valid, test = easy_problem(arch)
    return arch, task, train, valid, test, fit(arch, train, valid)


def test_every_registered_arch_has_a_tiny_configuration_and_a_schema_entry():
    schema = yaml.safe_load((ROOT / "schema" / "config.schema.yaml").read_text())
    assert set(TINY) == set(ARCHS)
    assert set(schema["definitions"]["model"]["properties"]["arch"]["enum"]) == set(ARCHS)


def test_predictions_have_the_shape_dtype_and_range_of_the_task(fitted):
    arch, task, _, _, test, model = fitted
    pred = predict(model, test)
    assert pred.shape == test.Y.shape and pred.dtype == np.float32 and np.isfinite(pred).all()
    if get_task(task).probabilities:
        assert ((pred >= 0) & (pred <= 1)).all()
    written = predict_rows(model, test.X, np.arange(len(test.X)) < 3, get_task(task), ctx(), test.smiles)
    assert (written[:3] == 0).all()  # controls at 0
    none = None if test.smiles is None else test.smiles[:0]
    assert predict_rows(model, test.X[:0], np.zeros(0, bool), get_task(task), ctx(), none).shape == (0, T)


def test_save_then_load_predicts_identically(fitted, tmp_path):
    arch, _, _, _, test, model = fitted
    model.save(tmp_path / "model.pt")
    loaded = load_model(tmp_path / "model.pt")
    assert type(loaded) is type(model) and loaded.params == model.params
    np.testing.assert_array_equal(predict(loaded, test), predict(model, test))


def test_the_same_seed_gives_the_same_predictions(fitted):
    arch, _, train, valid, test, model = fitted
    again = fit(arch, train, valid, seed=0)
    np.testing.assert_array_equal(predict(again, test), predict(model, test))


def test_it_beats_the_prior_on_an_easy_problem(fitted):
    arch, task, train, _, test, model = fitted
    metric = get_task(task).validation_metric
    score = metric_value(metric, test.Y, predict(model, test))
    floor = metric_value(metric, test.Y, baseline(task, train.Y, len(test.Y)))
    if arch == "prior":
        assert score == pytest.approx(floor, rel=1e-3)
    else:
        assert score < floor, (arch, score, floor)


@pytest.mark.parametrize("arch", [a for a in ARCH_NAMES if get_task(ARCHS[a].tasks[0]).missing_labels])
def test_missing_labels_are_masked(arch):
    """NaN cells (a quarter of them, and every cell of one target) neither break training nor are read as
    negatives: the model differs from one fitted with those cells set to 0."""
    train, valid, test = easy_problem(arch, seed=1)
    rng = np.random.default_rng(2)
    Y, Yv = train.Y.copy(), valid.Y.copy()
    Y[rng.random(Y.shape) < 0.25] = np.nan
    Yv[rng.random(Yv.shape) < 0.25] = np.nan
    Y[:, -1] = np.nan
    model = fit(arch, replace(train, Y=Y), replace(valid, Y=Yv))
    pred = predict(model, test)
    assert np.isfinite(pred).all() and ((pred >= 0) & (pred <= 1)).all()
    for record in model.history_:
        assert all(np.isfinite(v) for k, v in record.items() if k.endswith("loss") and v is not None), record
    zero_filled = fit(arch, replace(train, Y=np.nan_to_num(Y)), replace(valid, Y=np.nan_to_num(Yv)))
    assert not np.allclose(pred[:, :-1], predict(zero_filled, test)[:, :-1], atol=1e-4)


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

    train, valid, test = easy_problem(arch, seed=3)
    X, Y, Xv, Yv, X_test = train.X, train.Y, valid.X, valid.Y, test.X
    if arch != "xgboost":
        rng = np.random.default_rng(4)
        X, Xv, X_test = (np.where(rng.random(a.shape) < 0.33, 0.0, a).astype(np.float32) for a in (X, Xv, X_test))
    on_csr = build_model(arch, TINY[arch]).fit(sp.csr_matrix(X), Y, sp.csr_matrix(Xv), Yv, ctx())
    on_dense = build_model(arch, TINY[arch]).fit(X, Y, Xv, Yv, ctx())
    pred = on_csr.predict(sp.csr_matrix(X_test), ctx())
    assert pred.dtype == np.float32 and pred.shape == (len(X_test), T)
    np.testing.assert_allclose(pred, on_dense.predict(X_test, ctx()), atol=1e-4)
