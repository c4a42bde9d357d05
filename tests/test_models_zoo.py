"""TabNet and the 2-heads ResNet (with transfer) on tiny planted-signal data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_trainer import ctx, mean_log_loss, planted

from moastack.models.prior import PriorModel
from moastack.models.registry import build_model, load_model, model_class, read_payload
from moastack.models.resnet import ResNet2H, TwoHeadResNetModule, split_blocks
from moastack.models.tabnet import TabNetModel
from moastack.plan import concat_resnet_macs
from moastack.targets import prior_logit

# --------------------------------------------------------------------------- data

N_A = 6  # pca_* / *_mean columns (head A)
P = 30


def feature_names(p: int = P) -> list[str]:
    return [f"pca_g_{i}" for i in range(N_A - 2)] + ["g_mean", "c_mean"] + [f"g-{i}" for i in range(p - N_A)]


@pytest.fixture(scope="module")
def data():
    X, Y = planted(n=1500, p=P, t=6, seed=1)
    return X[:1000], Y[:1000], X[1000:1250], Y[1000:1250], X[1250:], Y[1250:]


@pytest.fixture(scope="module")
def prior_loss(data):
    Xtr, Ytr, _, _, Xte, Yte = data
    return mean_log_loss(Yte, PriorModel().fit(Xtr, Ytr, None, None, ctx()).predict(Xte))


# --------------------------------------------------------------------------- TabNet

TABNET_SMALL = {
    "n_d": 8,
    "n_a": 8,
    "n_steps": 2,
    "lr": 1e-2,
    "batch_size": 128,
    "virtual_batch_size": 64,
    "max_epochs": 40,
    "patience": 10,
}


@pytest.fixture(scope="module")
def tabnet(data):
    Xtr, Ytr, Xva, Yva, _, _ = data
    return TabNetModel(**TABNET_SMALL).fit(Xtr, Ytr, Xva, Yva, ctx(0))


def test_tabnet_beats_the_prior(data, tabnet, prior_loss):
    *_, Xte, Yte = data
    probs = tabnet.predict(Xte)
    assert probs.dtype == np.float32 and probs.shape == Yte.shape and ((probs > 0) & (probs < 1)).all()
    loss = mean_log_loss(Yte, probs)
    assert loss < 0.9 * prior_loss, (loss, prior_loss)


def test_tabnet_history_and_early_stopping_metric(data, tabnet):
    _, _, Xva, Yva, _, _ = data
    h = tabnet.history_
    assert 1 <= len(h) <= 40 and [r["epoch"] for r in h] == list(range(1, len(h) + 1))
    assert set(h[0]) == {"epoch", "train_loss", "valid_loss", "lr", "seconds"}
    assert h[-1]["train_loss"] < h[0]["train_loss"]
    # valid_loss is the log loss of the sigmoid outputs; the best epoch's weights are restored
    best = min(r["valid_loss"] for r in h)
    assert mean_log_loss(Yva, tabnet.predict(Xva)) == pytest.approx(best, rel=1e-4)


def test_tabnet_is_deterministic_for_a_seed(data):
    Xtr, Ytr, Xva, Yva, Xte, _ = data
    params = {**TABNET_SMALL, "max_epochs": 3}
    a = TabNetModel(**params).fit(Xtr, Ytr, Xva, Yva, ctx(7)).predict(Xte)
    b = TabNetModel(**params).fit(Xtr, Ytr, Xva, Yva, ctx(7)).predict(Xte)
    c = TabNetModel(**params).fit(Xtr, Ytr, Xva, Yva, ctx(8)).predict(Xte)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_tabnet_save_load_round_trip(tmp_path, data, tabnet):
    *_, Xte, _ = data
    tabnet.save(tmp_path / "tabnet.pt")
    payload = read_payload(tmp_path / "tabnet.pt")
    assert payload["arch"] == "tabnet" and "module" in payload["state"]  # a plain torch payload, no zip
    loaded = load_model(tmp_path / "tabnet.pt")
    assert isinstance(loaded, TabNetModel) and loaded.history_ == tabnet.history_
    np.testing.assert_array_equal(loaded.predict(Xte), tabnet.predict(Xte))
    assert loaded.predict(Xte[:0]).shape == (0, tabnet.n_out_)


def test_tabnet_small_data_masks_and_params(data):
    Xtr, Ytr, *_ = data
    Ym = Ytr[:100].copy()
    Ym[::7, 2] = np.nan  # missing labels are masked out of the loss
    m = TabNetModel(**{**TABNET_SMALL, "max_epochs": 2, "scheduler": "none", "target_clip": [0.001, 0.999]})
    m.fit(Xtr[:100], Ym, None, None, ctx())  # fewer rows than batch_size; no validation
    assert len(m.history_) == 2 and m.history_[0]["valid_loss"] is None
    assert np.isfinite(m.history_[-1]["train_loss"])
    with pytest.raises(ValueError, match="unknown params"):
        TabNetModel(n_dd=8)
    with pytest.raises(ValueError, match="scheduler"):
        TabNetModel(scheduler="onecycle")
    defaults = TabNetModel.defaults
    assert defaults["n_d"] == 32 and defaults["mask_type"] == "entmax" and defaults["gamma"] == 0.9


def _coded(X: np.ndarray, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """X with two integer-code columns in front (as the ordinal step's cp_time_code 0..2, cp_dose_code 0..1)."""
    rng = np.random.default_rng(seed)
    codes = np.column_stack([rng.integers(0, 3, len(X)), rng.integers(0, 2, len(X))]).astype(np.float32)
    return np.hstack([codes, X]), ["cp_time_code", "cp_dose_code", *[f"g-{i}" for i in range(X.shape[1])]]


def test_tabnet_embeds_categorical_columns_as_pytorch_tabnet_does(tmp_path, data):
    """cat_columns/cat_dims/cat_emb_dim: the named code columns get pytorch-tabnet's embeddings (the winners'
    cat_idxs [0, 1], cat_dims [3, 2], cat_emb_dim 1), found by name wherever they are; saved and reloaded."""
    Xtr, Ytr, Xva, Yva, Xte, _ = data
    (Xtr, names), (Xva, _), (Xte, _) = _coded(Xtr, 0), _coded(Xva, 1), _coded(Xte, 2)
    names_ctx = ctx()
    names_ctx.feature_names = names
    params = {**TABNET_SMALL, "max_epochs": 2, "cat_columns": ["cp_dose_code", "cp_time_code"],
              "cat_dims": [2, 3], "cat_emb_dim": [1, 2]}
    m = TabNetModel(**params).fit(Xtr, Ytr, Xva, Yva, names_ctx)
    embedder = m.module_.network.embedder
    assert m.cat_idxs_ == [1, 0] and not embedder.skip_embedding
    assert [(e.num_embeddings, e.embedding_dim) for e in embedder.embeddings] == [(3, 2), (2, 1)]  # column order
    assert m.module_.network.post_embed_dim == Xtr.shape[1] + 1
    x = torch.as_tensor(Xte[:50])
    with torch.no_grad():
        assert torch.equal(m.module_.embed(x), embedder(x))  # the fast path is pytorch-tabnet's own forward
    probs = m.predict(Xte)
    assert probs.shape == (len(Xte), Ytr.shape[1]) and np.isfinite(probs).all()
    m.save(tmp_path / "tabnet.pt")
    np.testing.assert_array_equal(load_model(tmp_path / "tabnet.pt").predict(Xte), probs)
    bad = Xtr.copy()
    bad[0, 0] = 3  # a cp_time code out of range
    with pytest.raises(ValueError, match="integer codes 0..2"):
        TabNetModel(**params).fit(bad, Ytr, None, None, names_ctx)
    unnamed = ctx()
    unnamed.feature_names = names[2:] + ["a", "b"]
    with pytest.raises(ValueError, match="not among the model's input columns"):
        TabNetModel(**params).fit(Xtr, Ytr, None, None, unnamed)
    for bad_params in ({"cat_dims": [2]}, {"cat_dims": [2, 1]}, {"cat_emb_dim": [1]}, {"cat_emb_dim": 0}):
        with pytest.raises(ValueError, match="cat_"):
            TabNetModel(**{**params, **bad_params})
    assert TabNetModel.defaults["cat_columns"] == [] and TabNetModel.defaults["cat_emb_dim"] == 1


def test_tabnet_multistep_lr_is_times_step_factor_after_each_milestone():
    """scheduler multistep with the winners' milestones [100, 150] and factor 0.9: the 101st epoch runs at
    lr × 0.9 (MultiStepLR stepped per epoch, as pytorch-tabnet's LRSchedulerCallback)."""
    X, Y = planted(n=64, p=6, t=3, seed=2)
    params = {"n_d": 4, "n_a": 4, "batch_size": 64, "virtual_batch_size": 32, "max_epochs": 101, "patience": 200,
              "lr": 0.02, "scheduler": "multistep", "milestones": [100, 150], "step_factor": 0.9}
    h = TabNetModel(**params).fit(X, Y, None, None, ctx()).history_
    assert len(h) == 101 and h[0]["lr"] == h[99]["lr"] == pytest.approx(0.02)
    assert h[100]["lr"] == pytest.approx(0.018)
    with pytest.raises(ValueError, match="milestones"):
        TabNetModel(scheduler="multistep")


def test_tabnet_monitor_and_prior_logit_opt_out(data):
    """monitor smoothed_bce: the history's validation loss (and the restored epoch) is the BCE on the smoothed
    labels; init_output_bias false: no prior logit added to the outputs (pytorch-tabnet's plain head)."""
    Xtr, Ytr, Xva, Yva, _, _ = data
    params = {**TABNET_SMALL, "max_epochs": 2, "label_smoothing": 0.01, "monitor": "smoothed_bce"}
    m = TabNetModel(**params, init_output_bias=False).fit(Xtr, Ytr, Xva, Yva, ctx())
    assert not m.module_.offset.any()
    logits = torch.logit(torch.as_tensor(m.predict(Xva), dtype=torch.float64)).float()
    smoothed = torch.as_tensor(Yva) * (1 - 0.01) + 0.005
    best = min(r["valid_loss"] for r in m.history_)
    assert torch.nn.functional.binary_cross_entropy_with_logits(logits, smoothed).item() == pytest.approx(best, rel=1e-3)
    on = TabNetModel(**{**params, "max_epochs": 1}).fit(Xtr, Ytr, None, None, ctx())
    np.testing.assert_allclose(on.module_.offset.numpy(), prior_logit(Ytr), rtol=1e-5)


# --------------------------------------------------------------------------- 2-heads ResNet

RESNET_SMALL = {
    "head_a_hidden": [32, 16],
    "head_b_hidden": [48, 32, 16],
    "tail_hidden": [16],
    "epochs": 15,
    "batch_size": 64,
    "label_smoothing": 0.0,
    "patience": None,
}


def resnet(**params) -> ResNet2H:
    return ResNet2H(**{**RESNET_SMALL, **params})


def rctx(seed: int = 0, names: list[str] | None = None, init: dict | None = None):
    """The fit context of a ResNet job: the columns' names (default ``feature_names()``), a phase-1 state."""
    context = ctx(seed)
    context.feature_names = feature_names() if names is None else names
    context.init_state = init
    return context


@pytest.fixture(scope="module")
def phase1(data):
    """Two phase-1 models on 'non-scored' targets (another planted target set), seeds 0 and 1."""
    Xtr, _, Xva, _, _, _ = data
    X, Y1 = planted(n=1500, p=P, t=9, seed=1)  # same rows, 9 other targets
    models = []
    for seed in (0, 1):
        m = resnet(epochs=8)
        models.append(m.fit(Xtr, Y1[:1000], Xva, Y1[1000:1250], rctx(seed)))
    return models


@pytest.fixture(scope="module")
def resnet_fitted(data):
    Xtr, Ytr, Xva, Yva, _, _ = data
    return resnet().fit(Xtr, Ytr, Xva, Yva, rctx(0))


def test_blocks_split_by_name():
    a, b = split_blocks(feature_names(), P, ["pca_*", "*_mean"])
    assert a == list(range(N_A)) and b == list(range(N_A, P))
    assert split_blocks(None, 5, ["pca_*"]) == ([], [0, 1, 2, 3, 4])
    with pytest.raises(ValueError, match="30 columns"):
        split_blocks(feature_names()[:-1], P, ["pca_*"])


def test_resnet_default_architecture():
    module = ResNet2H().build_module(10, 7)
    assert isinstance(module, TwoHeadResNetModule) and module.head_a is None  # no names: all head B
    model = ResNet2H()
    model.a_idx_, model.b_idx_ = list(range(60)), list(range(60, 507))
    module = model.build_module(507, 206)
    widths = lambda part: [m.out_features for m in part if isinstance(m, torch.nn.Linear)]  # noqa: E731
    assert widths(module.head_a) == [512, 256]
    assert widths(module.head_b) == [512, 512, 256, 256]
    assert module.head_b[0].num_features == 447 + 256  # t-test-selected B columns + head A's output
    assert widths(module.tail) == [256] and widths(module.output) == [206]
    cfg = model.train_config()
    assert (
        cfg.lr,
        cfg.batch_size,
        cfg.scheduler,
        cfg.plateau_factor,
        cfg.plateau_patience,
        cfg.patience,
        cfg.min_delta,
        cfg.label_smoothing,
    ) == (1e-3, 128, "plateau", 0.5, 4, 10, 1e-5, 5e-4)
    with pytest.raises(ValueError, match="averaged"):
        TwoHeadResNetModule([0, 1], [2, 3], 2, head_a_hidden=[8, 4], head_b_hidden=[8])
    with pytest.raises(ValueError, match="transfer_trainable"):
        ResNet2H(transfer_trainable=["tail"])
    with pytest.raises(ValueError, match="unknown params"):
        ResNet2H(head_c_hidden=[3])


def test_resnet_beats_the_prior(data, resnet_fitted, prior_loss):
    *_, Xte, Yte = data
    assert resnet_fitted.module_.head_a is not None
    loss = mean_log_loss(Yte, resnet_fitted.predict(Xte))
    assert loss < 0.85 * prior_loss, (loss, prior_loss)
    assert [r["phase"] for r in resnet_fitted.history_] == ["1"] * 15


def test_resnet_without_names_trains_head_b_only(data):
    Xtr, Ytr, Xva, Yva, Xte, _ = data
    m = ResNet2H(**{**RESNET_SMALL, "epochs": 2}).fit(Xtr, Ytr, Xva, Yva, ctx())
    assert m.module_.head_a is None and m.predict(Xte).shape == (len(Xte), Ytr.shape[1])


def test_resnet_save_load_round_trip(tmp_path, data, resnet_fitted):
    *_, Xte, _ = data
    resnet_fitted.save(tmp_path / "r.pt")
    loaded = load_model(tmp_path / "r.pt")
    assert isinstance(loaded, ResNet2H) and loaded.feature_names_ == feature_names()
    assert loaded.history_ == resnet_fitted.history_
    np.testing.assert_array_equal(loaded.predict(Xte), resnet_fitted.predict(Xte))


def _phase2(phase1_model, data, seed=0, **params):
    Xtr, Ytr, Xva, Yva, _, _ = data
    return resnet(**params).fit(Xtr, Ytr, Xva, Yva, rctx(seed, init=phase1_model.state()))


def test_transfer_uses_the_phase1_weights(data, phase1):
    *_, Xte, _ = data
    params = {"phase2a_epochs": 2, "phase2b_epochs": 2}
    a = _phase2(phase1[0], data, **params)
    a_again = _phase2(phase1[0], data, **params)
    b = _phase2(phase1[1], data, **params)
    pa, pb = a.predict(Xte), b.predict(Xte)
    assert pa.shape == (len(Xte), 6)
    np.testing.assert_array_equal(pa, a_again.predict(Xte))  # deterministic
    assert not np.allclose(pa, pb, atol=1e-4)  # only the phase-1 weights differ
    assert [r["phase"] for r in a.history_] == ["2a", "2a", "2b", "2b"]
    assert [r["epoch"] for r in a.history_] == [1, 2, 3, 4]
    h = a.history_
    assert h[2]["lr"] == pytest.approx(1e-3 / 5) and h[0]["lr"] == pytest.approx(1e-3 / 3)
    assert a.transferred_ and a.state()["transferred"]


def test_phase2a_trains_only_the_last_layers(data, phase1):
    p1 = phase1[0].state()["module"]
    m = _phase2(phase1[0], data, phase2a_epochs=3, phase2b_epochs=0)
    after = m.state()["module"]
    for key, value in p1.items():
        if key.startswith(("head_a.", "head_b.")):  # frozen: weights and BatchNorm statistics unchanged
            assert torch.equal(after[key], value), key
        elif key.startswith("tail.") and key.endswith("weight"):
            assert not torch.equal(after[key], value), key
    assert after["output.1.weight"].shape == (6, 16) and p1["output.1.weight"].shape == (9, 16)
    assert len(m.history_) == 3 and all(r["phase"] == "2a" for r in m.history_)
    # output only: the tail is frozen too
    m2 = _phase2(phase1[0], data, phase2a_epochs=2, phase2b_epochs=0, transfer_trainable="output")
    assert all(torch.equal(m2.state()["module"][k], v) for k, v in p1.items() if k.startswith("tail."))
    # phase 2b unfreezes everything
    m3 = _phase2(phase1[0], data, phase2a_epochs=1, phase2b_epochs=2)
    assert not torch.equal(m3.state()["module"]["head_a.2.weight"], p1["head_a.2.weight"])
    assert all(p.requires_grad for p in m3.module_.parameters()) and m3.module_.frozen_parts == ()


def test_transfer_refuses_other_features(data, phase1, tmp_path):
    Xtr, Ytr, Xva, Yva, _, _ = data
    init = phase1[0].state()
    with pytest.raises(ValueError, match="same features"):
        resnet().fit(Xtr[:, :-1], Ytr, Xva[:, :-1], Yva, rctx(names=feature_names()[:-1], init=init))
    with pytest.raises(ValueError, match="input blocks differ|names differ"):
        resnet().fit(Xtr, Ytr, Xva, Yva, rctx(names=["pca_x_0", *feature_names()[1:]], init=init))
    with pytest.raises(ValueError, match="tail_hidden"):
        resnet(tail_hidden=[32]).fit(Xtr, Ytr, Xva, Yva, rctx(init=init))


def test_transfer_from_a_model_file(data, phase1, tmp_path):
    *_, Xte, _ = data
    phase1[0].save(tmp_path / "phase1.pt")
    state = read_payload(tmp_path / "phase1.pt")["state"]
    assert state["n_in"] == P and state["feature_names"] == feature_names()
    m = resnet(phase2a_epochs=1, phase2b_epochs=1)
    m.fit(*data[:4], rctx(init=state))
    m.save(tmp_path / "phase2.pt")
    np.testing.assert_array_equal(load_model(tmp_path / "phase2.pt").predict(Xte), m.predict(Xte))


# --------------------------------------------------------------------------- registry


def test_registry_has_the_new_archs():
    assert model_class("tabnet") is TabNetModel and model_class("resnet2h") is ResNet2H
    assert isinstance(build_model("resnet2h", {"epochs": 3}), ResNet2H)
    assert isinstance(build_model("tabnet", {"max_epochs": 3}), TabNetModel)


# --------------------------------------------------------------------------- resnet2h: the Keras graph


def test_concat_layout_keras_batchnorm_and_init(data):
    """layout concat (the winners' Keras graph), bn_momentum/bn_eps and init keras, fitted on tiny data."""
    from moastack.models.resnet import ConcatResNetModule

    Xtr, Ytr, Xva, Yva, Xte, _ = data
    params = {"layout": "concat", "bn_momentum": 0.01, "bn_eps": 1e-3, "init": "keras", "epochs": 2,
              "init_output_bias": False}
    m = ResNet2H(**params).fit(Xtr, Ytr, Xva, Yva, rctx(0))
    assert isinstance(m.module_, ConcatResNetModule) and len(m.history_) == 2
    assert np.isfinite(m.predict(Xte)).all()
    bns = [x for x in m.module_.modules() if isinstance(x, torch.nn.BatchNorm1d)]
    assert {(b.momentum, b.eps) for b in bns} == {(0.01, 1e-3)}
    # the BatchNorm running mean moved 1% per batch towards the batch means, as Keras' momentum 0.99
    fresh = ResNet2H(**params)
    fresh.a_idx_, fresh.b_idx_ = m.a_idx_, m.b_idx_
    module = fresh.build_module(P, 6)
    bn = module.head_a[0]
    x = torch.as_tensor(Xtr[:64])
    module.train()
    module(x)
    expected = 0.01 * x.index_select(1, module.a_idx).mean(0)
    torch.testing.assert_close(bn.running_mean, expected, rtol=1e-4, atol=1e-6)
    # keras init: zero biases, Glorot-uniform bounds, LeCun-normal (truncated at 2 std) before SELU
    linears = {n: x for n, x in module.named_modules() if isinstance(x, torch.nn.Linear)}
    # the planner prices exactly this graph (models/resnet_concat.py is the one description of it)
    n_a, n_b = len(module.a_idx), len(module.b_idx)
    assert sum(x.in_features * x.out_features for x in linears.values()) == concat_resnet_macs(n_a, n_b, [512, 256], 6)
    assert linears["tail.4"].in_features == 256 and linears["output.1"].in_features == 206
    assert all(torch.count_nonzero(x.bias) == 0 for x in linears.values())
    w = linears["head_b.1.1"].weight
    assert w.abs().max() <= (6 / (w.shape[0] + w.shape[1])) ** 0.5
    selu = linears["tail.1"].weight.detach()
    std = (1 / selu.shape[1]) ** 0.5 / 0.87962566103423978
    assert selu.abs().max() <= 2 * std + 1e-6 and abs(float(selu.std()) - 0.88 * std) < 0.1 * std
    # the default (torch) init and BatchNorm are untouched
    plain = ResNet2H().build_module(10, 3)
    assert {(b.momentum, b.eps) for b in plain.modules() if isinstance(b, torch.nn.BatchNorm1d)} == {(0.1, 1e-5)}
    assert any(torch.count_nonzero(x.bias) for x in plain.modules() if isinstance(x, torch.nn.Linear))
    for bad in ({"layout": "dense"}, {"init": "glorot"}, {"bn_momentum": 1.5}, {"phase2a_lr_div": 0}):
        with pytest.raises(ValueError):
            ResNet2H(**bad)


def test_concat_layout_transfers_with_everything_trainable(data):
    """The winners' second fit: a new output head on the phase-1 body, every part trained at the full lr."""
    Xtr, Ytr, Xva, Yva, _, _ = data
    _, Y1 = planted(n=1500, p=P, t=9, seed=1)
    params = {"layout": "concat", "epochs": 2}
    p1 = ResNet2H(**params).fit(Xtr, Y1[:1000], Xva, Y1[1000:1250], rctx(0))
    m = ResNet2H(**params, transfer_trainable=["head_a", "head_b", "tail", "output"], phase2a_lr_div=1.0,
                 phase2b_epochs=0).fit(Xtr, Ytr, Xva, Yva, rctx(0, init=p1.state()))
    before, after = p1.state()["module"], m.state()["module"]
    assert [r["phase"] for r in m.history_] == ["2a", "2a"] and m.history_[0]["lr"] == pytest.approx(1e-3)
    for key in ("head_a.2.weight", "head_b.0.2.weight", "head_b.3.1.weight", "tail.4.weight"):
        assert after[key].shape == before[key].shape and not torch.equal(after[key], before[key]), key
    assert after["output.1.weight"].shape == (6, 206) and before["output.1.weight"].shape == (9, 206)
