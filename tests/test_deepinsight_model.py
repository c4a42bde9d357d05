"""DeepInsightCNN on tiny planted-signal data: learning, pretrained weights, save/load, NaN labels."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import timm
import torch

from moastack.deepinsight.feature_map import FeatureMap, fit_feature_map
from moastack.models.base import FitContext
from moastack.models.deepinsight import DeepInsightCNN, load_backbone_weights
from moastack.models.registry import read_payload

# timm's own test models train in a fraction of a second on CPU; resnet10t (the default) is ~5× slower
BACKBONE = "test_efficientnet" if timm.is_model("test_efficientnet") else "resnet10t"
OTHER_BACKBONE = "test_resnet" if timm.is_model("test_resnet") else "resnet14t"
SMALL = {"backbone": BACKBONE, "image_size": 12, "epochs": 4, "batch_size": 32, "lr": 1e-2, "head_hidden": 64}
N_TRAIN, P, T = 600, 40, 4


def planted(n: int, groups: int = 8, per: int = 5, t: int = T, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Blocks of ``per`` features share a latent factor; target k's logit is 3 · factor k − 2."""
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n, groups))
    X = (Z.repeat(per, axis=1) + 0.5 * rng.normal(size=(n, groups * per))).astype(np.float32)
    Y = (rng.random((n, t)) < 1.0 / (1.0 + np.exp(-(3.0 * Z[:, :t] - 2.0)))).astype(np.float32)
    return X, Y


def log_loss(Y: np.ndarray, P: np.ndarray) -> float:
    P = np.clip(P.astype(np.float64), 1e-15, 1 - 1e-15)
    return float(np.mean(-(Y * np.log(P) + (1 - Y) * np.log(1 - P))))


def ctx(seed: int = 0, fmap: FeatureMap | None = None, names: list[str] | None = None) -> FitContext:
    return FitContext(seed=seed, device="cpu", threads=1, logger=logging.getLogger("test_deepinsight"),
                      feature_map=fmap, feature_names=names)


NAMES = [f"g-{i}" for i in range(P)]


@pytest.fixture(scope="module")
def data():
    X, Y = planted(N_TRAIN + 400)
    return X[:N_TRAIN], Y[:N_TRAIN], X[N_TRAIN:N_TRAIN + 200], Y[N_TRAIN:N_TRAIN + 200], X[-200:], Y[-200:]


@pytest.fixture(scope="module")
def fmap(data) -> FeatureMap:
    return fit_feature_map(data[0], NAMES, 12, 12, seed=0)


def with_map(fm: FeatureMap, **params) -> DeepInsightCNN:
    """A model for ``fm`` (the map itself comes with the fit context: ``ctx(fmap=fm)``)."""
    return DeepInsightCNN(**{**SMALL, **params})


@pytest.fixture(scope="module")
def fitted(data, fmap) -> DeepInsightCNN:
    Xtr, Ytr, Xva, Yva, _, _ = data
    return with_map(fmap).fit(Xtr, Ytr, Xva, Yva, ctx(fmap=fmap))


# --------------------------------------------------------------------------- params


def test_params_are_validated():
    with pytest.raises(ValueError, match="unknown params.*'swap_prob'"):
        DeepInsightCNN(hiden=3)
    with pytest.raises(ValueError, match="image_size"):
        DeepInsightCNN(image_size=[8])
    with pytest.raises(ValueError, match="epochs"):
        DeepInsightCNN(epochs=0)
    with pytest.raises(ValueError, match="swap_prob"):
        DeepInsightCNN(swap_prob=2.0)
    assert DeepInsightCNN().arch == "deepinsight"


# --------------------------------------------------------------------------- training


def test_learns_planted_signal_better_than_prior(data, fitted):
    Xtr, Ytr, _, _, Xte, Yte = data
    prior = log_loss(Yte, np.tile(Ytr.mean(axis=0), (len(Yte), 1)))
    pred = fitted.predict(Xte, ctx())
    assert pred.dtype == np.float32 and pred.shape == (len(Xte), T)
    assert log_loss(Yte, pred) < prior - 0.05, (log_loss(Yte, pred), prior)
    assert [h["epoch"] for h in fitted.history_] == [1, 2, 3, 4]
    assert set(fitted.history_[0]) == {"epoch", "train_loss", "valid_loss", "lr", "seconds"}
    assert fitted.history_[1]["lr"] < fitted.history_[0]["lr"]  # cosine annealing, stepped per epoch
    assert fitted.predict(Xte[:0]).shape == (0, T)


def test_save_load_round_trip(data, fitted, tmp_path):
    _, _, _, _, Xte, _ = data
    fitted.save(tmp_path / "model.pt")
    payload = read_payload(tmp_path / "model.pt")
    assert payload["arch"] == "deepinsight"
    # the rebuilt model needs neither the map file nor the pretrained weights: both are in the state
    params = {**payload["params"], "pretrained": str(tmp_path / "gone.pt")}
    loaded = DeepInsightCNN.from_state(payload["state"], params)
    assert np.array_equal(loaded.predict(Xte), fitted.predict(Xte))
    assert loaded.feature_map_.feature_names == NAMES and loaded.history_ == fitted.history_


def test_fits_its_own_map_when_none_is_given(data, caplog):
    Xtr, Ytr, _, _, Xte, _ = data
    model = DeepInsightCNN(**{**SMALL, "epochs": 1, "image_size": [8, 10]})
    with caplog.at_level(logging.INFO, logger="test_deepinsight"):
        model.fit(Xtr[:200], Ytr[:200], None, None, ctx(names=NAMES))
    assert "no feature map given" in caplog.text
    assert (model.feature_map_.height, model.feature_map_.width) == (8, 10)
    assert model.feature_map_.feature_names == NAMES
    assert model.history_[0]["valid_loss"] is None and np.isfinite(model.predict(Xte)).all()


def test_columns_must_match_the_map(data, fmap):
    Xtr, Ytr, _, _, _, _ = data
    with pytest.raises(ValueError, match="40 features but X has 39 columns"):
        with_map(fmap).fit(Xtr[:50, :39], Ytr[:50], None, None, ctx(fmap=fmap))
    with pytest.raises(ValueError, match="position 0"):
        with_map(fmap).fit(Xtr[:50], Ytr[:50], None, None, ctx(fmap=fmap, names=NAMES[::-1]))


def test_nan_labels_are_masked(data, fmap):
    Xtr, Ytr, Xva, Yva, Xte, _ = data
    rng = np.random.default_rng(0)
    Ytr, Yva = Ytr[:200].copy(), Yva.copy()
    Ytr[rng.random(Ytr.shape) < 0.2] = np.nan
    Yva[rng.random(Yva.shape) < 0.2] = np.nan
    Ytr[:, 0] = np.nan  # a target with no label at all
    model = with_map(fmap, epochs=1).fit(Xtr[:200], Ytr, Xva, Yva, ctx(fmap=fmap))
    assert np.isfinite([model.history_[0]["train_loss"], model.history_[0]["valid_loss"]]).all()
    assert np.isfinite(model.predict(Xte)).all()


def test_same_seed_same_predictions(data, fmap):
    Xtr, Ytr, _, _, Xte, _ = data
    a = with_map(fmap, epochs=1).fit(Xtr[:200], Ytr[:200], None, None, ctx(5, fmap=fmap)).predict(Xte)
    b = with_map(fmap, epochs=1).fit(Xtr[:200], Ytr[:200], None, None, ctx(5, fmap=fmap)).predict(Xte)
    assert np.array_equal(a, b)


# --------------------------------------------------------------------------- pretrained weights


def seeded_backbone_file(tmp_path, name: str = BACKBONE, seed: int = 123) -> tuple[str, dict]:
    """A state dict with a 7-class classifier, as an ImageNet checkpoint would have one."""
    torch.manual_seed(seed)
    state = timm.create_model(name, pretrained=False, num_classes=7).state_dict()
    path = tmp_path / f"{name}.pth"
    torch.save(state, path)
    return str(path), state


def test_local_pretrained_weights_are_loaded(data, fmap, tmp_path):
    Xtr, Ytr, _, _, Xte, _ = data
    path, saved = seeded_backbone_file(tmp_path)
    loaded = with_map(fmap).build_network(fmap, T, pretrained=path)
    plain = with_map(fmap).build_network(fmap, T, pretrained=False)
    backbone = loaded.backbone.state_dict()
    assert all(torch.equal(backbone[k], saved[k]) for k in backbone)
    assert not any(k in backbone for k in saved if k.startswith("classifier"))  # the 7-class head is dropped
    x = torch.as_tensor(fmap.scale(Xte[:8]))
    assert not torch.allclose(loaded.eval()(x), plain.eval()(x))
    # fit starts from the file's weights (an lr this small leaves them in place)
    model = with_map(fmap, pretrained=path, epochs=1, lr=1e-12).fit(Xtr[:64], Ytr[:64], None, None, ctx(fmap=fmap))
    weights = {k: v for k, v in model.module_.backbone.state_dict().items()
               if "running" not in k and "num_batches" not in k}  # BN statistics do move in train mode
    assert all(torch.allclose(v, saved[k], atol=1e-6) for k, v in weights.items())


def test_pretrained_file_of_another_architecture_is_refused(fmap, tmp_path):
    path, _ = seeded_backbone_file(tmp_path, OTHER_BACKBONE)
    with pytest.raises(ValueError, match=f"{OTHER_BACKBONE}.pth"):
        with_map(fmap).build_network(fmap, T, pretrained=path)
    backbone = timm.create_model(BACKBONE, num_classes=0)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_backbone_weights(backbone, tmp_path / "missing.pt")


# --------------------------------------------------------------------------- the winners' options


def test_fit_on_fold_map_is_refitted_on_the_training_rows(data, tmp_path, caplog):
    """A map with fit_on: fold (the winners' per-fold LogScaler and t-SNE) is only the settings: the model
    fits one like it on its own training rows, renders and saves with that one."""
    Xtr, Ytr, Xva, Yva, Xte, _ = data
    given = fit_feature_map(Xte, NAMES, 12, 12, seed=4, fit_on="fold", scaler_clip=True, placement="pydeepinsight")
    model = with_map(given, epochs=1)
    with caplog.at_level(logging.INFO, logger="test_deepinsight"):
        model.fit(Xtr[:300], Ytr[:300], Xva, Yva, ctx(fmap=given, names=NAMES))
    assert "on this fold's 300 training rows" in caplog.text
    fm = model.feature_map_
    assert fm is not given and fm.settings == given.settings and fm.seed == 4
    np.testing.assert_allclose(fm.scaler.min_, Xtr[:300].min(axis=0))  # the fold's rows, not the map's
    expected = given.refit(Xtr[:300])
    np.testing.assert_array_equal(fm.rows, expected.rows)
    np.testing.assert_array_equal(fm.cols, expected.cols)
    model.save(tmp_path / "m.pt")
    payload = read_payload(tmp_path / "m.pt")
    loaded = DeepInsightCNN.from_state(payload["state"], payload["params"])
    np.testing.assert_array_equal(loaded.feature_map_.rows, fm.rows)
    assert np.array_equal(loaded.predict(Xte), model.predict(Xte))


def test_head_init_and_backbone_dropouts(fmap):
    """head_init goog: the head's Linear weights U(±1/sqrt(fan_out)) and zero biases (geffnet's init the
    winners applied to their head); drop_rate / drop_path_rate reach timm (dropout on the pooled features
    before the head; stochastic depth)."""
    net = DeepInsightCNN(**{**SMALL, "head_init": "goog", "drop_rate": 0.3, "drop_path_rate": 0.2}
                         ).build_network(fmap, 206)
    first, last = [m for m in net.head if isinstance(m, torch.nn.Linear)]
    for layer in (first, last):
        assert layer.weight.abs().max() <= 1.0 / np.sqrt(layer.out_features) and not layer.bias.any()
    assert last.weight.abs().max() > 0.5 / np.sqrt(206)  # spread over the whole range, not torch's 1/sqrt(64)
    assert net.backbone.drop_rate == 0.3
    drop_paths = [m.drop_prob for m in net.backbone.modules() if type(m).__name__ == "DropPath"]
    assert drop_paths and max(drop_paths) > 0
    plain = DeepInsightCNN(**SMALL).build_network(fmap, 206)
    assert plain.backbone.drop_rate == 0.0 and plain.head[0].bias.any()
    assert not any(type(m).__name__ == "DropPath" for m in plain.backbone.modules())
    for key, bad in [("head_init", "xavier"), ("drop_rate", 1.0), ("drop_path_rate", True), ("swap_columns", [])]:
        with pytest.raises(ValueError, match=key):
            DeepInsightCNN(**{key: bad})
