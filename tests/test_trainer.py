"""The generic trainer, its losses and the simple NN, on tiny planted-signal data."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch

from moastack.archs import ARCHS
from moastack.models.base import FitContext
from moastack.models.losses import SmoothBCEWithLogits, bce_with_logits, label_mask, smooth_targets
from moastack.models.prior import PriorModel
from moastack.models.registry import build_model, load_model
from moastack.models.simple_nn import FastDropout, SimpleNN, build_mlp
from moastack.models.trainer import (
    TrainConfig,
    batch_bounds,
    evaluate_module,
    fit_module,
    predict_module,
    seed_everything,
    set_threads,
)
from moastack.targets import prior_logit

SMALL = {"hidden_size": 64, "epochs": 12, "batch_size": 64, "patience": None, "label_smoothing": 0.0}


def planted(n: int = 600, p: int = 40, t: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose label logits are a sparse linear function of the features; two targets are rare."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p)).astype(np.float32)
    W = np.zeros((p, t))
    for j in range(t):
        W[rng.choice(p, 3, replace=False), j] = rng.choice([-2.0, 2.0], 3)
    bias = np.full(t, -1.5)
    bias[-2:] = -5.0  # rare targets
    prob = 1.0 / (1.0 + np.exp(-(X @ W + bias)))
    return X, (rng.random((n, t)) < prob).astype(np.float32)


def mean_log_loss(Y: np.ndarray, P: np.ndarray) -> float:
    """The competition metric: mean over targets of binary log loss, clipped like Kaggle."""
    P = np.clip(P.astype(np.float64), 1e-15, 1 - 1e-15)
    return float(np.mean(-(Y * np.log(P) + (1 - Y) * np.log(1 - P))))


def ctx(seed: int = 0) -> FitContext:
    return FitContext(seed=seed, device="cpu", threads=1, logger=logging.getLogger("test_trainer"))


@pytest.fixture(scope="module")
def data():
    X, Y = planted()
    return X[:400], Y[:400], X[400:500], Y[400:500], X[500:], Y[500:]


@pytest.fixture(scope="module")
def fitted(data):
    Xtr, Ytr, Xva, Yva, _, _ = data
    return SimpleNN(**SMALL).fit(Xtr, Ytr, Xva, Yva, ctx(0))


# --------------------------------------------------------------------------- losses


def test_smoothing_and_clip_match_hand_values():
    logits = torch.tensor([[2.0, -1.0]])
    targets = torch.tensor([[1.0, 0.0]])
    s, clip = 0.1, (0.06, 0.9)
    # smoothed: 1·0.9 + 0.05 = 0.95 → clipped 0.9; 0·0.9 + 0.05 = 0.05 → clipped 0.06
    expected_targets = [0.9, 0.06]
    sig = [1 / (1 + math.exp(-2.0)), 1 / (1 + math.exp(1.0))]
    expected = -sum(y * math.log(q) + (1 - y) * math.log(1 - q) for y, q in zip(expected_targets, sig)) / 2
    got = SmoothBCEWithLogits(s, clip)(logits, targets)
    assert smooth_targets(targets, s, clip)[0].tolist() == pytest.approx(expected_targets)
    assert float(got) == pytest.approx(expected, rel=1e-6)
    # without clip: 0.95 / 0.05
    sm = [0.95, 0.05]
    expected_noclip = -sum(y * math.log(q) + (1 - y) * math.log(1 - q) for y, q in zip(sm, sig)) / 2
    assert float(SmoothBCEWithLogits(s)(logits, targets)) == pytest.approx(expected_noclip, rel=1e-6)


def test_unmasked_loss_is_plain_bce():
    g = torch.Generator().manual_seed(0)
    logits, targets = torch.randn(5, 3, generator=g), (torch.rand(5, 3, generator=g) > 0.5).float()
    plain = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets)
    assert torch.equal(SmoothBCEWithLogits()(logits, targets), plain)


def test_masked_loss_counts_labelled_cells_only():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(6, 4, generator=g)
    targets = (torch.rand(6, 4, generator=g) > 0.5).float()
    targets[0, 1] = targets[3, 2] = targets[5, 0] = float("nan")
    mask = label_mask(targets)
    assert mask is not None and int(mask.sum()) == 21
    got = SmoothBCEWithLogits(0.02)(logits, targets, mask)
    keep = ~torch.isnan(targets)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        logits[keep], targets[keep] * 0.98 + 0.01
    )
    assert torch.isfinite(got) and float(got) == pytest.approx(float(expected), rel=1e-6)
    assert label_mask(torch.zeros(2, 2)) is None
    unsmoothed = torch.nn.functional.binary_cross_entropy_with_logits(
        logits[keep], targets[keep], reduction="sum"
    )
    assert float(bce_with_logits(logits, targets, mask, reduction="sum")) == pytest.approx(float(unsmoothed))


# --------------------------------------------------------------------------- trainer pieces


def test_batches_cover_every_row_without_singletons():
    for n, bs in [(600, 64), (513, 256), (257, 256), (256, 256), (5, 2), (1, 4)]:
        b = batch_bounds(n, bs)
        assert b[0][0] == 0 and b[-1][1] == n
        assert all(s1 == e0 for (_, e0), (s1, _) in zip(b, b[1:]))
        assert n == 1 or all(e - s >= 2 for s, e in b)


def test_fast_dropout_keeps_the_right_fraction_and_scale():
    torch.manual_seed(0)
    drop = FastDropout(0.3).train()
    out = drop(torch.ones(200, 500))
    kept = out != 0
    assert float(kept.float().mean()) == pytest.approx(0.7, abs=0.01)
    assert torch.allclose(out[kept], torch.full_like(out[kept], 1 / 0.7))
    x = torch.randn(4, 5)
    assert torch.equal(drop.eval()(x), x)


def test_threads_setting_is_honoured():
    before = torch.get_num_threads()
    try:
        set_threads(1)
        assert torch.get_num_threads() == 1
        X, Y = planted(n=64, p=8, t=3)
        SimpleNN(hidden_size=8, epochs=1, batch_size=32).fit(X, Y, None, None, FitContext(seed=0, threads=2))
        assert torch.get_num_threads() == 2
    finally:
        set_threads(before)


# --------------------------------------------------------------------------- learning


def test_loss_falls_and_history_is_complete(fitted):
    h = fitted.history_
    assert [r["epoch"] for r in h] == list(range(1, 13))
    assert set(h[0]) == {"epoch", "train_loss", "valid_loss", "lr", "seconds"}
    assert h[-1]["train_loss"] < 0.7 * h[0]["train_loss"]
    assert h[-1]["valid_loss"] < 0.8 * h[0]["valid_loss"]


def test_simple_nn_beats_the_prior(data, fitted):
    Xtr, Ytr, _, _, Xte, Yte = data
    prior = PriorModel().fit(Xtr, Ytr, None, None, ctx())
    nn_loss = mean_log_loss(Yte, fitted.predict(Xte))
    prior_loss = mean_log_loss(Yte, prior.predict(Xte))
    assert nn_loss < 0.85 * prior_loss, (nn_loss, prior_loss)


def test_early_stopping_restores_best_weights(data):
    Xtr, Ytr, Xva, Yva, _, _ = data
    # constant high lr overfits quickly, so the best epoch is not the last
    model = SimpleNN(hidden_size=128, dropout=0.0, epochs=30, batch_size=32, scheduler="none", lr=3e-2,
                     patience=3).fit(Xtr, Ytr, Xva, Yva, ctx(3))
    losses = [r["valid_loss"] for r in model.history_]
    assert len(losses) < 30, "expected an early stop"
    best = int(np.argmin(losses))
    assert len(losses) == best + 1 + 3
    assert evaluate_module(model.module_, Xva, Yva) == pytest.approx(min(losses), rel=1e-6, abs=1e-9)


def test_same_seed_is_bitwise_identical_and_seeds_differ(data):
    Xtr, Ytr, Xva, Yva, Xte, _ = data
    params = {**SMALL, "epochs": 3}
    a = SimpleNN(**params).fit(Xtr, Ytr, Xva, Yva, ctx(7)).predict(Xte)
    b = SimpleNN(**params).fit(Xtr, Ytr, Xva, Yva, ctx(7)).predict(Xte)
    c = SimpleNN(**params).fit(Xtr, Ytr, Xva, Yva, ctx(8)).predict(Xte)
    assert a.dtype == np.float32 and a.shape == (len(Xte), Ytr.shape[1])
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_save_load_round_trip(tmp_path, data, fitted):
    *_, Xte, _ = data
    path = tmp_path / "m.pt"
    fitted.save(path)
    loaded = load_model(path)
    assert isinstance(loaded, SimpleNN) and loaded.history_ == fitted.history_
    assert np.array_equal(loaded.predict(Xte), fitted.predict(Xte))
    prior = PriorModel().fit(*data[:2], None, None, ctx())
    prior.save(tmp_path / "p.pt")
    assert np.array_equal(load_model(tmp_path / "p.pt").predict(Xte), prior.predict(Xte))


def test_missing_labels_are_masked(data):
    Xtr, Ytr, Xva, Yva, _, _ = data
    rng = np.random.default_rng(0)
    Ym, Yvm = Ytr.copy(), Yva.copy()
    Ym[rng.random(Ym.shape) < 0.2] = np.nan
    Yvm[rng.random(Yvm.shape) < 0.2] = np.nan
    model = SimpleNN(**{**SMALL, "epochs": 4}).fit(Xtr, Ym, Xva, Yvm, ctx())
    assert all(np.isfinite(r["train_loss"]) and np.isfinite(r["valid_loss"]) for r in model.history_)


def test_fit_module_on_a_custom_module_without_validation(data):
    Xtr, Ytr, *_ = data
    torch.manual_seed(0)
    module = build_mlp(Xtr.shape[1], Ytr.shape[1], [32], dropout=0.1, activation="elu", weight_norm=True)
    cfg = TrainConfig(epochs=3, batch_size=50, scheduler="plateau", label_smoothing=0.01,
                      target_clip=(0.0005, 0.9995))
    history = fit_module(module, Xtr, Ytr, None, None, cfg, ctx())
    assert len(history) == 3 and all(r["valid_loss"] is None for r in history)
    probs = predict_module(module, Xtr[:7], ctx(), batch_size=3)
    assert probs.shape == (7, Ytr.shape[1]) and probs.dtype == np.float32
    assert ((probs > 0) & (probs < 1)).all()


# --------------------------------------------------------------------------- registry / params


def test_registry_builds_and_rejects():
    assert set(ARCHS) >= {"prior", "simple_nn"}
    model = build_model("simple_nn", {"hidden": [16, 8, 4], "dropout": 0.1})
    module = model.build_module(5, 2)
    linears = [m for m in module if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(5, 16), (16, 8), (8, 4), (4, 2)]
    default = SimpleNN().build_module(875, 206)
    assert [m.out_features for m in default if isinstance(m, torch.nn.Linear)] == [2048, 2048, 206]
    assert [m.p for m in default if isinstance(m, FastDropout)] == [0.2, 0.5, 0.5]
    cfg = SimpleNN(target_clip=[0.0005, 0.9995], epochs=3).train_config()
    assert cfg.target_clip == (0.0005, 0.9995) and cfg.epochs == 3 and cfg.label_smoothing == 1e-3
    with pytest.raises(ValueError, match="simple_nn"):
        build_model("nope", {})
    with pytest.raises(ValueError, match="unknown params"):
        build_model("simple_nn", {"hiden_size": 3})
    with pytest.raises(ValueError, match="scheduler"):
        build_model("simple_nn", {"scheduler": "warm_restarts"})


def test_weight_norm_per_layer_and_the_winners_layout():
    """One weight_norm flag per Linear layer; with dropout [0, 0.25, 0.25] and LeakyReLU this is the
    winners' simple NN (old CV): BN → WN Linear → LeakyReLU → BN → Drop → Linear → LeakyReLU → BN → Drop
    → WN Linear."""
    module = SimpleNN(hidden=[16, 16], dropout=[0.0, 0.25, 0.25], activation="leaky_relu",
                      weight_norm=[True, False, True]).build_module(10, 3)
    kinds = [type(m).__name__ for m in module]
    assert kinds == ["BatchNorm1d", "ParametrizedLinear", "LeakyReLU", "BatchNorm1d", "FastDropout", "Linear",
                     "LeakyReLU", "BatchNorm1d", "FastDropout", "ParametrizedLinear"]
    normed = [torch.nn.utils.parametrize.is_parametrized(m) for m in module if isinstance(m, torch.nn.Linear)]
    assert normed == [True, False, True]
    assert [m.p for m in module if isinstance(m, FastDropout)] == [0.25, 0.25]
    everywhere = build_mlp(10, 3, [8], weight_norm=True)
    assert all(torch.nn.utils.parametrize.is_parametrized(m) for m in everywhere if isinstance(m, torch.nn.Linear))
    with pytest.raises(ValueError, match="weight_norm needs"):
        build_mlp(10, 3, [8], weight_norm=[True])
    with pytest.raises(ValueError, match="weight_norm needs"):
        build_mlp(10, 3, [8], weight_norm=[1, 0])
    with pytest.raises(ValueError, match="weight_norm needs"):
        build_mlp(10, 3, [8], weight_norm=1)


def test_no_early_stopping_runs_every_epoch_and_keeps_the_best(data):
    """patience null + restore_best: the winners' simple NN loop (all epochs, the best epoch's weights)."""
    Xtr, Ytr, Xva, Yva, _, _ = data
    model = SimpleNN(hidden_size=128, dropout=0.0, epochs=12, batch_size=32, scheduler="none", lr=3e-2,
                     patience=None).fit(Xtr, Ytr, Xva, Yva, ctx(3))
    losses = [r["valid_loss"] for r in model.history_]
    assert len(losses) == 12 and int(np.argmin(losses)) < 11, "expected the best epoch before the last"
    assert evaluate_module(model.module_, Xva, Yva) == pytest.approx(min(losses), rel=1e-6, abs=1e-9)


def test_init_output_bias_is_an_opt_in_the_exact_presets_turn_off(data):
    """On (moastack's default): the output bias starts at each target's prior logit. Off (the winners'
    code): torch's default init, untouched. A vanishing lr keeps the start visible."""
    Xtr, Ytr, *_ = data
    frozen = {"hidden_size": 16, "epochs": 1, "scheduler": "none", "lr": 1e-12, "patience": None}
    on = SimpleNN(**frozen).fit(Xtr, Ytr, None, None, ctx()).module_[-1].bias.detach().numpy()
    off = SimpleNN(**frozen, init_output_bias=False).fit(Xtr, Ytr, None, None, ctx()).module_[-1].bias.detach().numpy()
    seed_everything(0)  # as fit does before building the module
    untouched = SimpleNN(**frozen).build_module(Xtr.shape[1], Ytr.shape[1])[-1].bias.detach().numpy()
    np.testing.assert_allclose(on, prior_logit(Ytr), atol=1e-3)
    np.testing.assert_allclose(off, untouched, atol=1e-6)
    assert np.abs(off - on).max() > 1.0


def test_multistep_scheduler_multiplies_the_lr_after_each_milestone(data):
    """scheduler multistep (pytorch-tabnet's MultiStepLR as the winners' TabNet used it): stepped per epoch,
    the lr of epoch e + 1 is lr × step_factor^(milestones <= e)."""
    Xtr, Ytr, *_ = data
    module = build_mlp(Xtr.shape[1], Ytr.shape[1], [8])
    cfg = TrainConfig(epochs=5, batch_size=100, scheduler="multistep", milestones=[2, 4], step_factor=0.5,
                      lr=0.1, patience=None)
    assert cfg.milestones == (2, 4)
    history = fit_module(module, Xtr[:200], Ytr[:200], None, None, cfg, ctx())
    assert [r["lr"] for r in history] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])
    for bad in (None, [], [3, 2], [0, 2], [1.5]):
        with pytest.raises(ValueError, match="milestones"):
            TrainConfig(scheduler="multistep", milestones=bad)
    with pytest.raises(ValueError, match="step_factor"):
        TrainConfig(scheduler="multistep", milestones=[2], step_factor=0.0)


def test_monitor_smoothed_bce_scores_validation_on_the_smoothed_labels(data):
    """monitor: smoothed_bce puts the validation rows' BCE against their smoothed, clipped labels (the training
    loss on them) in the history, and early stopping watches it; bce (the default) the 0/1 labels."""
    Xtr, Ytr, Xva, Yva = data[0][:200], data[1][:200], data[2], data[3]
    smooth, clip = 0.05, (0.01, 0.99)
    runs = {}
    for monitor in ("bce", "smoothed_bce"):
        torch.manual_seed(0)
        module = build_mlp(Xtr.shape[1], Ytr.shape[1], [8])
        cfg = TrainConfig(epochs=2, batch_size=100, scheduler="none", label_smoothing=smooth, target_clip=clip,
                          monitor=monitor, patience=None)
        history = fit_module(module, Xtr, Ytr, Xva, Yva, cfg, ctx())
        logits = torch.as_tensor(predict_module(module, Xva, ctx(), sigmoid=False))
        runs[monitor] = (history, logits)
    plain = bce_with_logits(runs["bce"][1], torch.as_tensor(Yva)).item()
    smoothed_y = smooth_targets(torch.as_tensor(Yva), smooth, clip)
    smoothed = bce_with_logits(runs["smoothed_bce"][1], smoothed_y).item()
    assert min(r["valid_loss"] for r in runs["bce"][0]) == pytest.approx(plain, rel=1e-5)
    assert min(r["valid_loss"] for r in runs["smoothed_bce"][0]) == pytest.approx(smoothed, rel=1e-5)
    assert [r["train_loss"] for r in runs["bce"][0]] == [r["train_loss"] for r in runs["smoothed_bce"][0]]
    with pytest.raises(ValueError, match="monitor"):
        TrainConfig(monitor="auc")


def test_adam_eps_and_keras_style_plateau_threshold():
    """adam_eps reaches the optimizer; plateau_threshold_mode abs (Keras' min_delta) cuts the lr after small
    relative gains that torch's default (rel 1e-4) counts as improvements, and plateau_patience p waits
    p + 1 stale epochs (Keras' patience p + 1)."""
    from moastack.models.trainer import TrainConfig, make_optimizer, make_scheduler

    module = torch.nn.Linear(3, 2)
    cfg = TrainConfig(adam_eps=1e-7, lr=1e-3, scheduler="plateau", plateau_patience=1)
    assert make_optimizer(module, cfg).param_groups[0]["eps"] == 1e-7
    assert make_optimizer(module, TrainConfig()).param_groups[0]["eps"] == 1e-8  # torch's default kept

    def lrs(**kw):
        c = TrainConfig(lr=1e-3, scheduler="plateau", plateau_patience=1, **kw)
        opt = make_optimizer(torch.nn.Linear(3, 2), c)
        sched, per_batch = make_scheduler(opt, c, 1)
        out = []
        for loss in (0.02, 0.01999, 0.01998, 0.01997, 0.01996):  # gains of 1e-5: 5e-4 relative
            sched.step(loss)
            out.append(opt.param_groups[0]["lr"])
        return per_batch, out

    assert lrs() == (False, [1e-3] * 5)
    _, keras = lrs(plateau_threshold=1e-4, plateau_threshold_mode="abs")
    assert keras == pytest.approx([1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4])
    with pytest.raises(ValueError, match="plateau_threshold_mode"):
        TrainConfig(plateau_threshold_mode="keras")
    with pytest.raises(ValueError, match="adam_eps"):
        TrainConfig(adam_eps=0.0)


def test_radam_decoupled_weight_decay_is_torch_optimizers():
    """decoupled_weight_decay (radam): each step multiplies the weights by 1 - lr · wd, as torch_optimizer's
    RAdam (the winners' DeepInsight CNNs) does, instead of adding wd · w to the gradient. With zero gradients
    the weights then shrink by exactly that factor per step; the L2 form goes through the moments instead
    (the same first step, RAdam's warm-up being a bias-corrected momentum step, then apart)."""
    from moastack.models.trainer import TrainConfig, make_optimizer

    def two_steps(**kw) -> torch.Tensor:
        module = torch.nn.Linear(2, 1, bias=False)
        with torch.no_grad():
            module.weight.copy_(torch.tensor([[1.0, -2.0]]))
        opt = make_optimizer(module, TrainConfig(optimizer="radam", lr=0.1, weight_decay=0.5, **kw))
        for _ in range(2):
            module.weight.grad = torch.zeros_like(module.weight)
            opt.step()
        return module.weight.detach().clone()

    torch.testing.assert_close(two_steps(decoupled_weight_decay=True), torch.tensor([[0.95**2, -2 * 0.95**2]]))
    m2 = 0.9 * 0.1 * 0.5 + 0.1 * 0.5 * 0.95  # the L2 form's second-step momentum of the first weight
    torch.testing.assert_close(two_steps()[0, 0], torch.tensor(0.95 - 0.1 * m2 / (1 - 0.9**2)))
    assert TrainConfig(optimizer="radam").decoupled_weight_decay is False
    with pytest.raises(ValueError, match="decoupled_weight_decay"):
        TrainConfig(optimizer="adam", decoupled_weight_decay=True)
    with pytest.raises(ValueError, match="decoupled_weight_decay"):
        TrainConfig(optimizer="radam", decoupled_weight_decay="yes")
