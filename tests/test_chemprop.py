"""The ``chemprop`` arch (chemprop's D-MPNN) on a handful of molecules: shapes, masked labels, the saved
model, determinism, descriptors, and errors that name the problem."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from conftest import molecule_labels, molecule_smiles

pytest.importorskip("chemprop")

from moastack.models.base import FitContext  # noqa: E402
from moastack.models.dmpnn import ChempropModel  # noqa: E402
from moastack.models.registry import load_model  # noqa: E402

TINY = {"hidden": 16, "depth": 2, "ffn_hidden": 16, "epochs": 3, "batch_size": 16, "max_lr": 3e-3}
N, N_TRAIN, N_VALID = 60, 40, 10


@pytest.fixture(scope="module")
def data():
    smiles = np.array(molecule_smiles(N, seed=3), dtype=object)
    Y = molecule_labels(list(smiles), seed=3)
    X = np.random.default_rng(0).normal(size=(N, 5)).astype(np.float32)
    return X, Y, smiles


def ctx(smiles, smiles_valid=None, seed: int = 0) -> FitContext:
    return FitContext(seed=seed, device="cpu", threads=1, logger=logging.getLogger("chemprop-test"),
                      smiles=smiles, smiles_valid=smiles_valid)


def fit(data, seed: int = 0, Y=None, **params) -> ChempropModel:
    X, Y_all, smiles = data
    Y = Y_all if Y is None else Y
    tr, va = slice(0, N_TRAIN), slice(N_TRAIN, N_TRAIN + N_VALID)
    model = ChempropModel(**{**TINY, **params})
    return model.fit(X[tr], Y[tr], X[va], Y[va], ctx(smiles[tr], smiles[va], seed))


def predict(model, data, rows=slice(N_TRAIN + N_VALID, N)) -> np.ndarray:
    X, _, smiles = data
    return model.predict(X[rows], ctx(smiles[rows]))


@pytest.fixture(scope="module")
def fitted(data):
    return fit(data)


def test_predictions_are_probabilities_of_every_target(fitted, data):
    pred = predict(fitted, data)
    assert pred.shape == (N - N_TRAIN - N_VALID, 4) and pred.dtype == np.float32
    assert np.isfinite(pred).all() and ((pred > 0) & (pred < 1)).all()
    assert [r["epoch"] for r in fitted.history_] == [1, 2, 3]
    assert all(np.isfinite(r["valid_loss"]) for r in fitted.history_)
    assert fitted.predict(data[0][:0], ctx(data[2][:0])).shape == (0, 4)


def test_a_target_without_labels_gets_no_gradient(data):
    """NaN cells are skipped: an assay with no training label leaves its output row exactly at its start
    (weights from the seed, bias at logit 0), while the labelled assays' rows move."""
    Y = data[1].copy()
    Y[:, 1] = np.nan
    Y[::3, 0] = np.nan
    model = fit(data, Y=Y)
    start = ChempropModel(**TINY)
    torch = pytest.importorskip("torch")
    from moastack.models.trainer import init_output_bias, seed_everything

    seed_everything(0)
    start_module = start.build_module(0, 4)
    init_output_bias(start_module, Y[:N_TRAIN])
    out, out0 = model.module_.ffn[-1][-1], start_module.ffn[-1][-1]
    w, w0, b, b0 = out.weight.detach(), out0.weight.detach(), out.bias.detach(), out0.bias.detach()
    assert torch.equal(w[1], w0[1]) and b[1].item() == 0.0 == b0[1].item()
    assert not torch.equal(w[0], w0[0]) and not torch.equal(w[2], w0[2])
    assert all(np.isfinite(r["train_loss"]) and np.isfinite(r["valid_loss"]) for r in model.history_)


def test_save_and_load_predict_identically(fitted, data, tmp_path):
    fitted.save(tmp_path / "model.pt")
    loaded = load_model(tmp_path / "model.pt")
    assert isinstance(loaded, ChempropModel) and loaded.params == fitted.params
    np.testing.assert_array_equal(predict(loaded, data), predict(fitted, data))


def test_the_same_seed_gives_the_same_model_on_cpu(fitted, data):
    np.testing.assert_array_equal(predict(fit(data, seed=0), data), predict(fitted, data))
    assert not np.array_equal(predict(fit(data, seed=1), data), predict(fitted, data))


def test_descriptors_are_read_only_when_asked(fitted, data):
    X, _, smiles = data
    rows = slice(N_TRAIN + N_VALID, N)
    shifted = X[rows] + 3.0
    np.testing.assert_array_equal(fitted.predict(shifted, ctx(smiles[rows])), predict(fitted, data))
    with_x = fit(data, descriptors=True)
    assert with_x.n_in_ == X.shape[1]
    assert not np.allclose(with_x.predict(shifted, ctx(smiles[rows])), predict(with_x, data))


def test_missing_or_bad_molecules_are_named(data):
    X, Y, smiles = data
    model = ChempropModel(**TINY)
    with pytest.raises(ValueError, match="without SMILES"):
        model.fit(X[:10], Y[:10], None, None, ctx(None))
    with pytest.raises(ValueError, match="9 SMILES for 10 training rows"):
        model.fit(X[:10], Y[:10], None, None, ctx(smiles[:9]))
    bad = smiles[:10].copy()
    bad[4] = "C1CC"  # an unclosed ring
    with pytest.raises(ValueError, match=r"row 4: 'C1CC'"):
        model.fit(X[:10], Y[:10], None, None, ctx(bad))


def test_bad_params_fail_at_construction():
    for params, match in (({"depth": 0}, "depth"), ({"aggregation": "max"}, "aggregation"),
                          ({"dropout": 1.0}, "dropout"), ({"descriptors": "yes"}, "descriptors")):
        with pytest.raises(ValueError, match=match):
            ChempropModel(**params)
