"""The 1-D CNNs and the two-input NN: their layouts, the 2nd place's loss weights and non-scored warm-up."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_trainer import ctx, mean_log_loss, planted

from moastack.models.conv1d import PlainCNN1d, SoftCNN1d, TwoInputNN, warmup_targets
from moastack.models.losses import log_shrink_pos_weight
from moastack.spec import ModelSpec
from moastack.train import FoldJob, fit_job, load_fold_data


def test_soft_ordering_cnn_has_the_2nd_place_layout():
    module = SoftCNN1d().build_module(875, 206)
    assert module.expand[-1].in_features == 875 and module.expand[-1].out_features == 4096
    conv1 = module.conv1[-1]
    assert (conv1.in_channels, conv1.out_channels, conv1.kernel_size, conv1.bias) == (256, 512, (5,), None)
    assert module.pool1.output_size == 8 and module.conv4[-1].kernel_size == (5,)
    assert module.head[-1].in_features == 2048 and module.head[-1].out_features == 206  # 512 × 4 after pooling
    assert [m.p for m in module.modules() if m.__class__.__name__ == "FastDropout"] == [0.1, 0.1, 0.1, 0.3, 0.2, 0.2]
    out = module.eval()(torch.zeros(3, 875))
    assert out.shape == (3, 206)
    cfg = SoftCNN1d().train_config()
    assert (cfg.epochs, cfg.batch_size, cfg.lr, cfg.max_lr, cfg.pct_start, cfg.div_factor, cfg.label_smoothing,
            cfg.pos_weight) == (25, 128, 1e-3, 1e-2, 0.1, 1e3, 1e-3, "log_shrink")
    with pytest.raises(ValueError, match="even length"):
        SoftCNN1d(hidden=256 * 3).build_module(10, 2)


def test_log_shrink_weights_by_hand():
    Y = torch.tensor([[1, 0, 1], [1, 0, 0], [1, 1, 0], [0, 0, float("nan")]])
    got = log_shrink_pos_weight(Y)
    logs = np.log(np.array([3, 1, 1]) + 100.0)
    np.testing.assert_allclose(got.numpy(), logs.min() / logs, rtol=1e-6)
    assert got[1] == pytest.approx(1.0) and got[0] < 1.0  # the frequent target's positives weigh less


def test_warmup_targets_keep_the_most_correlated_columns_with_a_positive():
    rng = np.random.default_rng(0)
    Y = (rng.random((200, 3)) < 0.2).astype(np.float32)
    aux = np.column_stack([Y[:, 0], 1 - Y[:, 1], rng.random(200) < 0.1, np.zeros(200)] +
                          [rng.random(200) < 0.3 for _ in range(16)]).astype(np.float32)
    kept = warmup_targets(aux, Y, top_fraction=0.1)
    assert kept.shape == (200, 2)  # 10% of the 19 columns with a positive, rounded up by the quantile
    np.testing.assert_array_equal(kept[:, 0], Y[:, 0])
    np.testing.assert_array_equal(kept[:, 1], 1 - Y[:, 1])


def test_cnn1d_soft_warms_up_on_aux_targets_then_learns_the_scored_ones():
    X, Y = planted(n=700, p=20, t=4, seed=3)
    aux = np.column_stack([Y, planted(n=700, p=20, t=6, seed=4)[1]])  # 4 aux columns equal the targets
    params = {"hidden": 128, "channels": 16, "conv_channels": 16, "epochs": 6, "batch_size": 64,
              "warmup_epochs": 2, "warmup_top_fraction": 0.5}
    context = ctx(0)
    context.aux_targets = aux[:500]
    model = SoftCNN1d(**params).fit(X[:500], Y[:500], X[500:600], Y[500:600], context)
    assert [r["phase"] for r in model.history_] == ["warm-up"] * 2 + ["main"] * 6
    assert [r["epoch"] for r in model.history_] == list(range(1, 9))
    pred = model.predict(X[600:])
    assert pred.shape == (100, 4)
    prior = np.tile(Y[:500].mean(axis=0), (100, 1))
    assert mean_log_loss(Y[600:], pred) < mean_log_loss(Y[600:], prior)
    no_aux = SoftCNN1d(**params).fit(X[:500], Y[:500], X[500:600], Y[500:600], ctx(0))
    assert [r.get("phase") for r in no_aux.history_] == [None] * 6  # no aux labels: no warm-up, a warning


def test_two_input_nn_routes_the_pca_columns_to_head_one():
    X, Y = planted(n=300, p=12, t=3, seed=5)
    names = [f"pca_g_{i}" for i in range(4)] + [f"g-{i}" for i in range(8)]
    context = ctx(0)
    context.feature_names = names
    model = TwoInputNN(head1=[8, 4], head2=[8, 4], tail=[4], epochs=2).fit(X, Y, None, None, context)
    assert model.a_idx_ == [0, 1, 2, 3] and model.b_idx_ == list(range(4, 12))
    assert model.module_.head1[2].in_features == 4 and model.module_.head2[2].in_features == 8 + 4
    with pytest.raises(ValueError, match="both heads"):
        TwoInputNN(head1_patterns=["umap_*"], epochs=1).fit(X, Y, None, None, context)


def test_plain_cnn1d_reads_the_features_as_one_channel():
    module = PlainCNN1d().build_module(872, 206)
    convs = [m for m in module.modules() if isinstance(m, torch.nn.Conv1d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(1, 32), (32, 16), (16, 8)]
    linears = [m for m in module.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(8 * 866, 2048), (2048, 1048), (1048, 206)]


def test_a_job_with_aux_targets_passes_their_training_rows_to_the_model(inputs):
    spec = ModelSpec.from_entry("cnn", {"arch": "cnn1d_soft", "features": "small", "folds": "ml3",
                                        "aux_targets": "nonscored", "device": "cpu",
                                        "params": {"hidden": 64, "channels": 8, "conv_channels": 8, "epochs": 1,
                                                   "warmup_epochs": 1, "warmup_top_fraction": 0.5}})
    job = FoldJob.from_inputs(spec, 0, 1, {**inputs, "aux_targets": inputs["train_targets_nonscored"]})
    data = load_fold_data(job)
    assert data.aux_train is not None and len(data.aux_train) == len(data.X_train)
    model, context = fit_job(job, data)
    assert context.aux_targets is data.aux_train
    assert [r["phase"] for r in model.history_] == ["warm-up", "main"]
