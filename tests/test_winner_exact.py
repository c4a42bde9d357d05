"""configs/winner.yaml is the winners' code, setting by setting, for every model made exact so far.

The tables below are read off the winners' public scripts (guitarmind/kaggle_moa_winner_hungry_for_gold,
``final/Best LB/Training/Local/simple-nn-{old,new}-split-train.py`` and ``3stage-nn-train.py``); each
test resolves the preset's
model the way a train job does (schema defaults, ``ModelSpec``, the arch's ``TrainConfig`` and module)
and compares, so an edit of the preset cannot drift from the winners' code silently.
``configs/winner-plus.yaml`` must differ from it in the named opt-ins and nowhere else.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml
from conftest import ROOT
from test_features import make_frame
from threadpoolctl import threadpool_limits

from moastack.columns import CELL_COLS, GENE_COLS
from moastack.config import load_config
from moastack.features import build_feature_set
from moastack.models.registry import build_model
from moastack.models.simple_nn import FastDropout
from moastack.spec import ModelSpec

WINNER = ROOT / "configs" / "winner.yaml"
PLUS = ROOT / "configs" / "winner-plus.yaml"

#: the simple NN's training loop in their code (both CVs): Adam(lr 5e-3, wd 1e-5), OneCycleLR(max 1e-2,
#: pct_start 0.1, div_factor 1e3) stepped per batch, batch 256 shuffled, last batch kept, SmoothBCE 1e-3
#: (no clipping), 25 epochs, EARLY_STOP False, the best validation-BCE epoch's weights kept
WINNERS_SIMPLE_NN_TRAINING = {
    "epochs": 25, "batch_size": 256, "drop_last": False, "optimizer": "adam", "lr": 5e-3,
    "weight_decay": 1e-5, "scheduler": "onecycle", "max_lr": 1e-2, "pct_start": 0.1, "div_factor": 1e3,
    "grad_clip": None, "label_smoothing": 1e-3, "target_clip": None, "patience": None, "restore_best": True,
    "init_output_bias": False, "pos_weight": None,
}
#: their Model: BN → weight_norm(Linear 2048) → leaky_relu → BN → Dropout(0.25) → Linear 2048 → leaky_relu
#: → BN → Dropout(0.25) → weight_norm(Linear n_targets)
WINNERS_SIMPLE_NN_LAYERS = [
    "BatchNorm1d", "ParametrizedLinear", "LeakyReLU", "BatchNorm1d", "FastDropout", "Linear", "LeakyReLU",
    "BatchNorm1d", "FastDropout", "ParametrizedLinear",
]
#: their features, step by step (g-/c- quantile transform on the train rows; the rest on train + test)
WINNERS_SIMPLE_NN_FEATURES = [
    {"name": "rankgauss", "blocks": ["genes", "cells"], "n_quantiles": 100, "fit_on": "train"},
    {"name": "factor_analysis", "block": "genes", "n_components": 90, "random_state": 1903},
    {"name": "factor_analysis", "block": "cells", "n_components": 50, "random_state": 1903},
    {"name": "rankgauss", "blocks": ["genes", "cells", "fa"], "n_quantiles": 100, "random_state": 123},
    {"name": "row_stats", "blocks": ["genes", "cells", "gc"], "stats": ["sum", "mean", "std", "kurt", "skew"]},
    {"name": "onehot"},
]
WINNERS_KMEANS = [  # old CV only, between the second quantile transform and the statistics
    {"name": "kmeans", "block": "genes", "n_clusters": 45, "n_init": 10, "random_state": 123},
    {"name": "kmeans", "block": "cells", "n_clusters": 15, "n_init": 10, "random_state": 123},
]
#: model -> (feature set, fold scheme, its method, seeds × folds, feature columns on the real data)
WINNERS_SIMPLE_NN_MODELS = {
    "simple_nn_old": ("qt_fa_stats_km", "mlsk5", "multilabel_stratified", (6, 5), 1092),
    "simple_nn_new": ("qt_fa_stats", "drug5", "drug_aware", (6, 5), 1032),
}
#: the 3-stage NN's loop (3stage-nn-train.py, every stage): as the simple NN's but OneCycle pct_start 0.2 and
#: plain BCE (no smoothing); per stage: epochs and the clipping of the targets (PMIN/PMAX)
WINNERS_NN3_TRAINING = {
    **WINNERS_SIMPLE_NN_TRAINING, "pct_start": 0.2, "label_smoothing": 0.0,
}
#: stage -> (targets, meta, meta_only, epochs, target_clip, hidden)
WINNERS_NN3_STAGES = {
    "nn3_stage1": ("nonscored", (), False, 15, (0.0005, 0.9995), 2048),
    "nn3_stage2": ("scored", ("nn3_stage1",), False, 25, None, 2048),
    "nn3_stage3": ("scored", ("nn3_stage2",), True, 25, (0.0005, 0.9995), 1024),
}
#: their Model: BN → Dropout(0.15) → weight_norm(Linear) → leaky_relu → BN → Dropout(0.3) → Linear →
#: leaky_relu → BN → Dropout(0.25) → weight_norm(Linear)
WINNERS_NN3_LAYERS = [
    "BatchNorm1d", "FastDropout", "ParametrizedLinear", "LeakyReLU", "BatchNorm1d", "FastDropout", "Linear",
    "LeakyReLU", "BatchNorm1d", "FastDropout", "ParametrizedLinear",
]
#: factor analysis and UMAP of the raw g-/c- (train + test), then the quantile transform of g-/c- alone
WINNERS_NN3_FEATURES = [
    {"name": "factor_analysis", "block": "genes", "n_components": 90, "random_state": 1903},
    {"name": "umap", "block": "genes", "n_components": 45, "random_state": 1903},
    {"name": "factor_analysis", "block": "cells", "n_components": 50, "random_state": 1903},
    {"name": "umap", "block": "cells", "n_components": 25, "random_state": 1903},
    {"name": "rankgauss", "blocks": ["genes", "cells"], "n_quantiles": 100, "random_state": 123},
    {"name": "onehot"},
]
#: winner-plus.yaml's opt-ins: (models, param) -> value; everything else equals winner.yaml
PLUS_OPT_INS = {("simple_nn_old", "init_output_bias"): True, ("simple_nn_new", "init_output_bias"): True}


@pytest.fixture(scope="module")
def winner() -> dict:
    return load_config(WINNER)


def _spec(config: dict, model: str) -> ModelSpec:
    return ModelSpec.from_entry(model, config["models"][model], config["data"].get("task"))


@pytest.mark.parametrize("model", sorted(WINNERS_SIMPLE_NN_MODELS))
def test_simple_nn_training_and_network_are_the_winners(winner, model):
    spec = _spec(winner, model)
    features, folds, method, (n_seeds, k), _ = WINNERS_SIMPLE_NN_MODELS[model]
    assert (spec.arch, spec.features, spec.folds, spec.targets) == ("simple_nn", features, folds, "scored")
    assert spec.drop_controls and not spec.meta and not spec.fold_steps
    assert len(spec.seeds) == n_seeds and winner["folds"][folds]["method"] == method
    assert winner["folds"][folds]["k"] == k
    arch = build_model(spec.arch, spec.params)
    cfg = arch.train_config()
    assert {key: getattr(cfg, key) for key in WINNERS_SIMPLE_NN_TRAINING} == WINNERS_SIMPLE_NN_TRAINING
    module = arch.build_module(1091, 206)
    assert [type(m).__name__ for m in module] == WINNERS_SIMPLE_NN_LAYERS
    linears = [m for m in module if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(1091, 2048), (2048, 2048), (2048, 206)]
    assert all(m.bias is not None for m in linears)
    assert [m.p for m in module if isinstance(m, FastDropout)] == [0.25, 0.25]
    assert {m.negative_slope for m in module if isinstance(m, torch.nn.LeakyReLU)} == {0.01}  # F.leaky_relu's


@pytest.mark.parametrize("model", sorted(WINNERS_SIMPLE_NN_MODELS))
def test_simple_nn_feature_steps_are_the_winners(winner, model):
    features = winner["features"][WINNERS_SIMPLE_NN_MODELS[model][0]]
    expected = list(WINNERS_SIMPLE_NN_FEATURES)
    if model == "simple_nn_old":
        expected[4:4] = WINNERS_KMEANS
    assert features == {"fit_on": "train+test", "steps": expected}


def test_old_cv_feature_set_fits_as_their_code(winner):
    """The old CV's set on small lish-moa-shaped frames: the first quantile transform sees the train rows
    only, the k-means one-hots are one per row, and the width is theirs (1,091) plus g-0 (their slip)."""
    train, test = make_frame(160, seed=0, prefix="tr"), make_frame(40, seed=1, prefix="te")
    with threadpool_limits(limits=1, user_api="blas"):
        fs, tr, te = build_feature_set(winner["features"]["qt_fa_stats_km"], train, test)
    assert tr.shape == (160, 1 + WINNERS_SIMPLE_NN_MODELS["simple_nn_old"][4]) and list(te.columns) == list(tr.columns)
    first, second = fs.steps_[0], fs.steps_[3]
    assert first.columns_ == GENE_COLS + CELL_COLS
    from sklearn.preprocessing import QuantileTransformer

    alone = QuantileTransformer(n_quantiles=100, output_distribution="normal").fit(train[GENE_COLS + CELL_COLS])
    np.testing.assert_allclose(first.quantile_.quantiles_, alone.quantiles_, rtol=1e-6)
    assert second.columns_ == GENE_COLS + CELL_COLS + [f"fa_g_{i}" for i in range(90)] + [f"fa_c_{i}" for i in range(50)]
    km_g = tr[[f"km_g_{i}" for i in range(45)]].to_numpy()
    km_c = tr[[f"km_c_{i}" for i in range(15)]].to_numpy()
    assert (km_g.sum(axis=1) == 1).all() and (km_c.sum(axis=1) == 1).all()
    for block in ("g", "c", "gc"):
        assert {f"{block}_{s}" for s in ("sum", "mean", "std", "kurt", "skew")} <= set(tr.columns)


def test_winner_plus_is_winner_with_the_opt_ins_only():
    winner, plus = yaml.safe_load(WINNER.read_text()), yaml.safe_load(PLUS.read_text())
    load_config(PLUS)  # valid on its own
    for (model, key), value in PLUS_OPT_INS.items():
        assert winner["models"][model]["params"][key] is not value
        assert plus["models"][model]["params"].pop(key) is value
        winner["models"][model]["params"].pop(key)
    assert plus == winner


@pytest.mark.parametrize("stage", sorted(WINNERS_NN3_STAGES))
def test_three_stage_nn_is_the_winners(winner, stage):
    spec = _spec(winner, stage)
    targets, meta, meta_only, epochs, clip, hidden = WINNERS_NN3_STAGES[stage]
    assert (spec.arch, spec.features, spec.folds, spec.targets) == ("simple_nn", "qt_umap_fa", "mlsk5", targets)
    assert (spec.meta, spec.meta_only, len(spec.seeds), spec.drop_controls) == (meta, meta_only, 5, True)
    assert spec.meta_transform == "quantile" or not meta
    arch = build_model(spec.arch, spec.params)
    cfg = arch.train_config()
    expected = {**WINNERS_NN3_TRAINING, "epochs": epochs, "target_clip": clip}
    assert {key: getattr(cfg, key) for key in expected} == expected
    module = arch.build_module(1087, 206)
    assert [type(m).__name__ for m in module] == WINNERS_NN3_LAYERS
    linears = [m for m in module if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linears] == [hidden, hidden, 206]
    assert [m.p for m in module if isinstance(m, FastDropout)] == [0.15, 0.3, 0.25]
    assert winner["features"]["qt_umap_fa"] == {"fit_on": "train+test", "steps": WINNERS_NN3_FEATURES}
