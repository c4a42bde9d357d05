"""configs/winner.yaml is the winners' code, setting by setting, for every model made exact so far.

The tables below are read off the winners' public scripts (guitarmind/kaggle_moa_winner_hungry_for_gold,
``final/Best LB/Training/Local/simple-nn-{old,new}-split-train.py``, ``3stage-nn-train.py``,
``2stage-nn-tabnet-train.py``, ``2heads-ResNest-train.py``, ``deepinsight-efficientnet-lightning-v7-b3-train.py``
and ``deepinsight-resnest-lightning-v2-train.py``); each test resolves the preset's
model the way a train job does (schema defaults, ``ModelSpec``, the arch's ``TrainConfig`` and module)
and compares, so an edit of the preset cannot drift from the winners' code silently.
``configs/winner-plus.yaml`` must differ from it in the named opt-ins and nowhere else.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import ROOT
from test_features import make_frame
from threadpoolctl import threadpool_limits

from moastack.columns import CELL_COLS, GENE_COLS
from moastack.config import load_config
from moastack.features import build_feature_set
from moastack.models.base import FitContext
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
#: 2stage-nn-tabnet-train.py, stage 1 (its "203" part, lines 267-285 and 416-463): Adam(lr 5e-4, wd 1e-5) under
#: OneCycleLR(max 1e-2, pct_start 0.2, div_factor 1e3) stepped per batch, batch 256 shuffled, last batch kept,
#: BCEWithLogitsLoss (no smoothing or clipping), 15 epochs, the best validation-loss epoch kept (no early stop)
WINNERS_TABNET_STAGE1_TRAINING = {
    "epochs": 15, "batch_size": 256, "drop_last": False, "optimizer": "adam", "lr": 5e-4, "weight_decay": 1e-5,
    "scheduler": "onecycle", "max_lr": 1e-2, "pct_start": 0.2, "div_factor": 1e3, "grad_clip": None,
    "label_smoothing": 0.0, "target_clip": None, "patience": None, "restore_best": True, "monitor": "bce",
    "init_output_bias": False, "pos_weight": None,
}
#: its Model (lines 390-410): BN → Dropout(0.2) → weight_norm(Linear 2048) → relu → BN → Dropout(0.25) →
#: weight_norm(Linear n_targets)
WINNERS_TABNET_STAGE1_LAYERS = [
    "BatchNorm1d", "FastDropout", "ParametrizedLinear", "ReLU", "BatchNorm1d", "FastDropout", "ParametrizedLinear",
]
#: its features (lines 116-225): g-/c- quantile transform on train + test; PCA 50/15 and UMAP 15/5 (seed 512)
#: fitted on the train rows; VarianceThreshold(0.5) fitted on the train rows over every column after the
#: four key/meta columns (g-, c-, PCA, UMAP); get_dummies of cp_time/cp_dose
WINNERS_TABNET_STAGE1_FEATURES = [
    {"name": "rankgauss", "blocks": ["genes", "cells"], "n_quantiles": 100, "random_state": 0},
    {"name": "pca", "block": "genes", "n_components": 50, "random_state": 512, "fit_on": "train"},
    {"name": "umap", "block": "genes", "n_components": 15, "n_neighbors": 15, "random_state": 512, "fit_on": "train"},
    {"name": "pca", "block": "cells", "n_components": 15, "random_state": 512, "fit_on": "train"},
    {"name": "umap", "block": "cells", "n_components": 5, "n_neighbors": 15, "random_state": 512, "fit_on": "train"},
    {"name": "variance_threshold", "threshold": 0.5, "blocks": ["genes", "cells", "pca", "umap"], "fit_on": "train"},
    {"name": "onehot"},
]
#: stage 2 ("503", lines 716-853 and 1024-1028): from the raw data again: g-/c- quantile transform on the train
#: rows (use_test_for_preprocessing False); FactorAnalysis 90/50 (seed 42) and KMeans 35/5 one-hots (seed 123,
#: scikit-learn 0.23's n_init 10) on train + test; g/c/gc mean, std, kurtosis, skew; cp_time/cp_dose mapped to
#: 0..2 / 0..1 for TabNet's embeddings. 1,066 columns before the stage-1 predictions
WINNERS_TABNET_STAGE2_FEATURES = [
    {"name": "rankgauss", "blocks": ["genes", "cells"], "n_quantiles": 100, "random_state": 0, "fit_on": "train"},
    {"name": "factor_analysis", "block": "genes", "n_components": 90, "random_state": 42},
    {"name": "factor_analysis", "block": "cells", "n_components": 50, "random_state": 42},
    {"name": "kmeans", "block": "genes", "n_clusters": 35, "n_init": 10, "random_state": 123},
    {"name": "kmeans", "block": "cells", "n_clusters": 5, "n_init": 10, "random_state": 123},
    {"name": "row_stats", "blocks": ["genes", "cells", "gc"], "stats": ["mean", "std", "kurt", "skew"]},
    {"name": "ordinal"},
]
WINNERS_TABNET_STAGE2_WIDTH = 1066
#: its TabNetRegressor (lines 1043-1061): n_d = n_a = 32, n_steps 1, lambda_sparse 0, mask entmax, and
#: pytorch-tabnet's defaults (2.0's, its fit API, and 4.1's alike) for what it does not set (gamma 1.3, 2 independent + 2 shared GLU layers,
#: momentum 0.02, clip_value 1); ghost batches of 128
WINNERS_TABNET_NETWORK = {
    "n_d": 32, "n_a": 32, "n_steps": 1, "gamma": 1.3, "n_independent": 2, "n_shared": 2, "mask_type": "entmax",
    "virtual_batch_size": 128,
}
#: ... Adam(lr 2e-2, wd 1e-5), MultiStepLR(milestones [100, 150], gamma 0.9) stepped per epoch; fit(max_epochs
#: 200, patience 50, batch 1024, drop_last False, loss LabelSmoothing(0.001)); early stopping on the last
#: eval_metric, SmoothedLogLossMetric(0.001), the best weights restored; clip_value 1 (gradient norm)
WINNERS_TABNET_TRAINING = {
    "epochs": 200, "batch_size": 1024, "drop_last": False, "optimizer": "adam", "lr": 2e-2, "weight_decay": 1e-5,
    "scheduler": "multistep", "milestones": (100, 150), "step_factor": 0.9, "grad_clip": 1.0,
    "label_smoothing": 1e-3, "target_clip": None, "patience": 50, "min_delta": 0.0, "monitor": "smoothed_bce",
    "restore_best": True, "pos_weight": None,
}
#: cat_idxs [0, 1] = cp_time, cp_dose (their first feature columns), cat_dims [3, 2], cat_emb_dim [1, 1]
WINNERS_TABNET_CATEGORICAL = {"cp_time_code": (3, 1), "cp_dose_code": (2, 1)}
#: model -> (arch, feature set, targets, meta, seeds: NSEEDS 5 for stage 1, 3 for stage 2), 10 folds each
WINNERS_TABNET_CHAIN = {
    "nn_tabnet_stage1": ("simple_nn", "qt_pca_umap_var", "nonscored", (), 5),
    "nn_tabnet_stage2": ("tabnet", "qt_fa_km_stats_codes", "scored", ("nn_tabnet_stage1",), 3),
}
#: 2heads-ResNest-train.py (lines 275-289, 350-361, 379-406): Adam(lr 1e-3; Keras: eps 1e-7, no weight decay),
#: batch 128 (--batch-size default, line 19), 50 epochs, BinaryCrossentropy(label_smoothing=0.0005) on sigmoid
#: outputs; EarlyStopping(min_delta 1e-5, val_loss, patience 10, restore_best_weights) and a best-val_loss
#: checkpoint; ReduceLROnPlateau(factor 0.5, patience 4) with Keras' min_delta 1e-4 (absolute): torch's
#: patience 3 (it drops the lr after patience + 1 stale epochs); Dense biases start at 0
WINNERS_RESNET_TRAINING = {
    "epochs": 50, "batch_size": 128, "drop_last": False, "optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0,
    "adam_eps": 1e-7, "scheduler": "plateau", "plateau_factor": 0.5, "plateau_patience": 3,
    "plateau_threshold": 1e-4, "plateau_threshold_mode": "abs", "min_lr": 0.0, "grad_clip": None,
    "label_smoothing": 5e-4, "target_clip": None, "patience": 10, "min_delta": 1e-5, "monitor": "smoothed_bce",
    "restore_best": True, "init_output_bias": False, "pos_weight": None,
}
#: its graph (lines 293-346), part by part: layer types, Linear widths (in, out) for 976 + 447 inputs
WINNERS_RESNET_LAYERS = {
    "head_a": (["BatchNorm1d", "FastDropout", "Linear", "ELU", "BatchNorm1d", "Linear", "ELU"],
               [(976, 512), (512, 256)]),
    "head_b.0": (["BatchNorm1d", "FastDropout", "Linear", "ReLU"], [(256 + 447, 512)]),
    "head_b.1": (["BatchNorm1d", "Linear", "ELU", "BatchNorm1d", "Linear", "ReLU"], [(256 + 447 + 512, 512), (512, 256)]),
    "head_b.2": (["BatchNorm1d", "Linear", "ELU"], [(512 + 256, 256)]),
    "head_b.3": (["BatchNorm1d", "Linear", "ReLU"], [(512 + 256 + 256, 256)]),
    "tail": (["BatchNorm1d", "Linear", "SELU", "BatchNorm1d", "Linear", "SELU"], [(1024, 256), (256, 206)]),
    "output": (["BatchNorm1d", "Linear"], [(206, 206)]),
}
#: dropout 0.2 (head A) and 0.3 (answer1) only; Keras BatchNormalization(momentum 0.99, epsilon 1e-3)
WINNERS_RESNET_DROPOUT = [0.2, 0.3]
#: input 1 (lines 151-207): the g-/c- columns (cp_time/cp_dose dropped) and their row means, StandardScaler
#: on the fold's training rows, then PCA 2 genes / 100 cells of the scaled values, fitted on those rows,
#: appended unscaled; input 2 (lines 106-120, 210-217, 264-266): 447 t-test-picked g-/c- columns, their own
#: StandardScaler on the same rows (the same values as input 1's)
WINNERS_RESNET_FEATURES = [{"name": "row_stats", "blocks": ["genes", "cells"], "stats": ["mean"]}]
WINNERS_RESNET_FOLD_STEPS = [
    {"name": "standardize"},
    {"name": "pca", "block": "genes", "n_components": 2},
    {"name": "pca", "block": "cells", "n_components": 100},
    {"name": "ttest_select", "quantile": 0.513, "copy": True},  # 447 of 872 columns
]
#: model -> (targets, init_from); 7 seeds x 10 folds (SEEDS, KFOLDS, lines 59-60)
WINNERS_RESNET_CHAIN = {"resnet_nonscored": ("nonscored", None), "resnet_transfer": ("scored", "resnet_nonscored")}
#: the scored fit (lines 371-406): new BN + Dense head on the phase-1 body, nothing frozen, Adam(1e-3) afresh
WINNERS_RESNET_TRANSFER = {
    "transfer_trainable": ["head_a", "head_b", "tail", "output"], "phase2a_lr_div": 1.0, "phase2a_epochs": None,
    "phase2b_epochs": 0, "transfer_min_delta": 1e-5,
}
#: the DeepInsight CNNs' loop (both scripts): torch_optimizer.RAdam(lr 3.52e-4, betas (0.9, 0.999), eps 1e-8,
#: weight_decay 1e-6: p *= 1 - lr · wd), CosineAnnealingLR(T_max 5, eta_min 0) stepped per epoch (Lightning's
#: default interval), Trainer(max_epochs 200, gradient_clip_val 10, precision 16, accumulate 1), shuffled
#: batches with the last kept, SmoothBCEwLogits(0.001) to train; EarlyStopping(val_loss_epoch, min_delta 1e-6)
#: and a best-val_loss checkpoint that predicts, val_loss the plain BCE; their head's biases start at 0
WINNERS_DEEPINSIGHT_TRAINING = {
    "epochs": 200, "drop_last": False, "optimizer": "radam", "lr": 3.52e-4, "weight_decay": 1e-6,
    "decoupled_weight_decay": True, "adam_eps": 1e-8, "scheduler": "cosine", "t_max": 5, "grad_clip": 10.0,
    "label_smoothing": 1e-3, "target_clip": None, "min_delta": 1e-6, "monitor": "bce", "restore_best": True,
    "amp": True, "amp_dtype": "fp16", "init_output_bias": False, "pos_weight": None,
}
#: ... their network and augmentation: the backbone's classifier replaced by Linear(fc 512) → ELU → Linear,
#: initialised as geffnet's 'goog' (both scripts); MoAImageSwapDataset(swap_prob 0.1, swap_portion 0.15) over
#: columns 3.. (the g-/c-, never cp_type/cp_dose/cp_time); ImageNet-pretrained backbones
WINNERS_DEEPINSIGHT_ARCH = {
    "pretrained": True, "head_hidden": 512, "head_dropout": 0.0, "head_init": "goog", "swap_prob": 0.1,
    "swap_fraction": 0.15, "swap_columns": ["g-*", "c-*"],
}
#: model -> (feature map, image side, batch_size, patience, timm backbone, drop_rate, drop_path_rate, pooled width):
#: geffnet tf_efficientnet_b3_ns(drop_rate 0.3, drop_connect_rate 0.2), --batch-size 48, patience 12, resolution
#: 300; resnest50_fast_2s2x40d(final_drop 0.2) -> timm's resnest50d (the nearest in timm), --batch-size 128,
#: patience 16, resolution 224
WINNERS_DEEPINSIGHT_MODELS = {
    "deepinsight_effnet": ("di300", 300, 48, 12, "tf_efficientnet_b3.ns_jft_in1k", 0.3, 0.2, 1536),
    "deepinsight_resnest": ("di224", 224, 128, 16, "resnest50d", 0.2, None, 2048),
}
#: DeepInsightTransformer('tsne_exact', perplexity 5, random_state 1120) = TSNE(metric cosine, method exact,
#: scikit-learn 0.23's init random and learning rate 200, cosine distances not squared), pyDeepInsight's
#: rectangle and np.digitize; LogScaler with its clips; both fitted on each fold's training rows
WINNERS_DEEPINSIGHT_MAP = {
    "features": "raw_codes", "perplexity": 5, "seed": 1120, "metric": "cosine", "method": "exact", "init": "random",
    "learning_rate": 200, "square_distances": False, "placement": "pydeepinsight", "scaler_clip": True,
    "fit_on": "fold",
}
#: their inputs (all_features): cp_type ctl_vehicle 0 / trt_cp 1, cp_dose D1 0 / D2 1, cp_time 24/48/72 ->
#: 0/0.5/1, and the raw g-/c- columns: 875
WINNERS_DEEPINSIGHT_FEATURES = [
    {"name": "ordinal", "scale": True,
     "categories": {"cp_type": ["ctl_vehicle", "trt_cp"], "cp_dose": ["D1", "D2"], "cp_time": [24, 48, 72]}},
]
WINNERS_DEEPINSIGHT_WIDTH = 875
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
    differ = {m for m in winner["models"] if winner["models"][m] != plus["models"].get(m)}
    assert differ == {model for model, _ in PLUS_OPT_INS}  # the TabNet chain, 3-stage NN... are winner.yaml's
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


@pytest.mark.parametrize("model", sorted(WINNERS_TABNET_CHAIN))
def test_tabnet_chain_specs_are_the_winners(winner, model):
    spec = _spec(winner, model)
    arch, features, targets, meta, n_seeds = WINNERS_TABNET_CHAIN[model]
    assert (spec.arch, spec.features, spec.folds, spec.targets) == (arch, features, "mlsk10", targets)
    assert (spec.meta, spec.meta_only, len(spec.seeds), spec.drop_controls) == (meta, False, n_seeds, True)
    assert spec.meta_transform == "quantile" or not meta
    assert not spec.fold_steps and winner["folds"]["mlsk10"]["k"] == 10


def test_tabnet_stage1_network_loop_and_features_are_the_winners(winner):
    spec = _spec(winner, "nn_tabnet_stage1")
    arch = build_model(spec.arch, spec.params)
    cfg = arch.train_config()
    assert {key: getattr(cfg, key) for key in WINNERS_TABNET_STAGE1_TRAINING} == WINNERS_TABNET_STAGE1_TRAINING
    module = arch.build_module(900, 332)
    assert [type(m).__name__ for m in module] == WINNERS_TABNET_STAGE1_LAYERS
    assert [(m.in_features, m.out_features) for m in module if isinstance(m, torch.nn.Linear)] == [(900, 2048),
                                                                                                   (2048, 332)]
    assert [m.p for m in module if isinstance(m, FastDropout)] == [0.2, 0.25]
    assert winner["features"]["qt_pca_umap_var"] == {"fit_on": "train+test", "steps": WINNERS_TABNET_STAGE1_FEATURES}


def test_tabnet_stage1_variance_threshold_covers_pca_and_umap_on_the_train_rows(winner):
    """Their VarianceThreshold(0.5) sees every column after PCA/UMAP, fitted on the train rows. On small frames
    (the UMAP steps left out: numba compiles for a minute) the step selects g-, c- and PCA columns alike and
    keeps exactly the train rows' columns of variance > 0.5."""
    steps = [s for s in winner["features"]["qt_pca_umap_var"]["steps"] if s["name"] != "umap"]
    steps[-2] = {**steps[-2], "blocks": ["genes", "cells", "pca"]}
    train, test = make_frame(120, seed=0, prefix="tr"), make_frame(60, seed=1, prefix="te", scale=3.0)
    with threadpool_limits(limits=1, user_api="blas"):
        fs, tr, _ = build_feature_set({"fit_on": "train+test", "steps": steps}, train, test)
    vt = fs.steps_[3]
    assert vt.columns_[-65:] == [f"pca_g_{i}" for i in range(50)] + [f"pca_c_{i}" for i in range(15)]
    before = fs.steps_[2].transform(fs.steps_[1].transform(fs.steps_[0].transform(train)))
    variances = before[vt.columns_].to_numpy(dtype=np.float64).var(axis=0)
    np.testing.assert_allclose(vt.selector_.variances_, variances, rtol=1e-4)  # the train rows' variances ...
    both = pd.concat([before, fs.steps_[2].transform(fs.steps_[1].transform(fs.steps_[0].transform(test)))])
    assert not np.allclose(both[vt.columns_].to_numpy(dtype=np.float64).var(axis=0), variances, rtol=1e-2)  # ... alone
    assert vt.dropped_ == [c for c, v in zip(vt.columns_, variances, strict=True) if v <= 0.5]
    assert any(c.startswith("pca_") for c in vt.dropped_) and any(c.startswith("pca_") for c in tr.columns)


def test_tabnet_stage2_network_and_loop_are_the_winners(winner):
    spec = _spec(winner, "nn_tabnet_stage2")
    arch = build_model(spec.arch, spec.params)
    cfg = arch.train_config(20_000)
    assert {key: getattr(cfg, key) for key in WINNERS_TABNET_TRAINING} == WINNERS_TABNET_TRAINING
    assert arch.param("init_output_bias") is False and arch.param("lambda_sparse") == 0  # raw outputs, no penalty
    cols, dims, emb = arch.cat_spec()
    assert dict(zip(cols, zip(dims, emb, strict=True), strict=True)) == WINNERS_TABNET_CATEGORICAL
    n_in = WINNERS_TABNET_STAGE2_WIDTH + 332
    module = arch.build_module(n_in, 206, int(arch.param("virtual_batch_size")), np.zeros(206), [1064, 1065])
    net = module.network
    assert {key: getattr(net, key) for key in WINNERS_TABNET_NETWORK} == WINNERS_TABNET_NETWORK
    assert {m.bn.momentum for m in net.modules() if type(m).__name__ == "GBN"} == {0.02}
    assert [(e.num_embeddings, e.embedding_dim) for e in net.embedder.embeddings] == [(3, 1), (2, 1)]
    assert net.post_embed_dim == n_in and not module.offset.any()


def test_tabnet_stage2_features_are_the_winners_and_feed_the_embeddings(winner):
    """Stage 2's own feature set (none of stage 1's columns): theirs, step by step; on small frames its width is
    theirs and a TabNet with the preset's params finds cp_time_code/cp_dose_code by name and embeds them."""
    spec = winner["features"]["qt_fa_km_stats_codes"]
    assert spec == {"fit_on": "train+test", "steps": WINNERS_TABNET_STAGE2_FEATURES}
    train, test = make_frame(160, seed=0, prefix="tr"), make_frame(40, seed=1, prefix="te")
    with threadpool_limits(limits=1, user_api="blas"):
        fs, tr, _ = build_feature_set(spec, train, test)
    assert tr.shape == (160, 1 + WINNERS_TABNET_STAGE2_WIDTH)
    assert fs.steps_[0].columns_ == GENE_COLS + CELL_COLS and fs.steps_[0].quantile_.n_quantiles_ == 100
    for block in ("g", "c", "gc"):
        assert {f"{block}_{s}" for s in ("mean", "std", "kurt", "skew")} <= set(tr.columns)
    assert not any(c.startswith(("pca_", "umap_")) for c in tr.columns)
    np.testing.assert_array_equal(tr["cp_time_code"], train["cp_time"].map({24: 0, 48: 1, 72: 2}))
    params = {**winner["models"]["nn_tabnet_stage2"]["params"], "max_epochs": 1, "n_d": 8, "n_a": 8}
    names = list(tr.columns[1:])
    context = FitContext(feature_names=names)
    X = tr[names].to_numpy(dtype=np.float32)
    Y = (np.random.default_rng(0).random((160, 5)) < 0.2).astype(np.float32)
    model = build_model("tabnet", params).fit(X, Y, X[:40], Y[:40], context)
    assert model.cat_idxs_ == [names.index("cp_time_code"), names.index("cp_dose_code")]
    assert np.isfinite(model.predict(X[:10])).all()


@pytest.mark.parametrize("model", sorted(WINNERS_RESNET_CHAIN))
def test_resnet_chain_is_the_winners(winner, model):
    spec = _spec(winner, model)
    targets, init_from = WINNERS_RESNET_CHAIN[model]
    assert (spec.arch, spec.features, spec.folds, spec.targets) == ("resnet2h", "gc_means", "mlsk10", targets)
    assert (len(spec.seeds), spec.drop_controls, spec.meta, spec.init_from) == (7, True, (), init_from)
    assert winner["folds"]["mlsk10"]["k"] == 10
    assert [dict(s) for s in spec.fold_steps] == WINNERS_RESNET_FOLD_STEPS
    assert winner["features"]["gc_means"] == {"fit_on": "train+test", "steps": WINNERS_RESNET_FEATURES}
    arch = build_model(spec.arch, spec.params)
    cfg = arch.train_config()
    assert {key: getattr(cfg, key) for key in WINNERS_RESNET_TRAINING} == WINNERS_RESNET_TRAINING
    if init_from:
        assert {key: arch.param(key) for key in WINNERS_RESNET_TRANSFER} == WINNERS_RESNET_TRANSFER
    names = ([f"g-{i}" for i in range(772)] + [f"c-{i}" for i in range(100)] + ["g_mean", "c_mean"]
             + [f"pca_g_{i}" for i in range(2)] + [f"pca_c_{i}" for i in range(100)] + [f"tt_g-{i}" for i in range(447)])
    from moastack.models.resnet import split_blocks

    arch.a_idx_, arch.b_idx_ = split_blocks(names, len(names), arch.param("head_a_patterns"))
    assert (len(arch.a_idx_), len(arch.b_idx_)) == (976, 447)
    module = arch.build_module(len(names), 206)
    for part, (types, widths) in WINNERS_RESNET_LAYERS.items():
        block = module.get_submodule(part)
        assert [type(m).__name__ for m in block] == types, part
        assert [(m.in_features, m.out_features) for m in block if isinstance(m, torch.nn.Linear)] == widths, part
    assert [m.p for m in module.modules() if isinstance(m, FastDropout)] == WINNERS_RESNET_DROPOUT
    assert {(m.momentum, m.eps) for m in module.modules() if isinstance(m, torch.nn.BatchNorm1d)} == {(0.01, 1e-3)}
    assert all(not m.bias.any() for m in module.modules() if isinstance(m, torch.nn.Linear))  # Keras' zeros
    assert arch.param("init") == "keras"


def test_resnet_fold_steps_give_their_two_inputs(winner):
    """On small lish-moa-shaped frames: input 1 = the fold-standardised g-/c- and means + PCA 2/100 of them,
    input 2 = standardised copies of 447 t-test-picked g-/c- columns (here of 872, as on the real data)."""
    from moastack.features.fold_steps import apply_fold_steps, build_fold_steps, fit_fold_steps
    from moastack.models.resnet import split_blocks

    train = make_frame(300, seed=0, prefix="tr")
    with threadpool_limits(limits=1, user_api="blas"):
        _, tr, _ = build_feature_set(winner["features"]["gc_means"], train, train.iloc[:10])
        names = list(tr.columns[1:])
        assert names == GENE_COLS + CELL_COLS + ["g_mean", "c_mean"]
        X = tr[names].to_numpy(dtype=np.float32)
        Y = (np.random.default_rng(0).random((300, 5)) < 0.1).astype(np.float32)
        steps = build_fold_steps(winner["models"]["resnet_nonscored"]["fold_steps"])
        out_names = fit_fold_steps(steps, X[:250], Y[:250], names)
        Z = apply_fold_steps(steps, X)
    a, b = split_blocks(out_names, len(out_names), winner["models"]["resnet_nonscored"]["params"]["head_a_patterns"])
    assert (len(a), len(b)) == (976, 447)
    assert all(out_names[i].startswith("tt_") for i in b)
    np.testing.assert_allclose(Z[:250, :874].mean(0), 0, atol=1e-4)  # scaled on the fold's training rows
    for i in b[:20]:
        np.testing.assert_array_equal(Z[:, i], Z[:, out_names.index(out_names[i][3:])])
    pca_c = [out_names.index(f"pca_c_{i}") for i in range(100)]
    assert Z[:250, pca_c].std(0)[0] > 2  # the components stay unscaled


@pytest.mark.parametrize("model", sorted(WINNERS_DEEPINSIGHT_MODELS))
def test_deepinsight_cnns_are_the_winners(winner, model):
    """Spec, feature map, loop and network of each CNN as their script has them; the backbone is built without
    its ImageNet weights (no download here) to check the head, the dropouts and the widths."""
    from moastack.deepinsight.feature_map import FeatureMap, LogNorm2Scaler
    from moastack.models.deepinsight import swap_column_index

    fmap_name, side, batch, patience, backbone, drop_rate, drop_path, width = WINNERS_DEEPINSIGHT_MODELS[model]
    spec = _spec(winner, model)
    assert (spec.arch, spec.features, spec.folds, spec.targets) == ("deepinsight", "raw_codes", "mlsk10", "scored")
    assert (len(spec.seeds), spec.drop_controls, spec.valid_controls, spec.meta, spec.fold_steps) == (
        1, False, True, (), ())
    assert winner["folds"]["mlsk10"]["k"] == 10 and spec.feature_map == fmap_name
    assert winner["feature_maps"][fmap_name] == {**WINNERS_DEEPINSIGHT_MAP, "height": side, "width": side}
    arch = build_model(spec.arch, spec.params)
    cfg = arch.train_config()
    expected = {**WINNERS_DEEPINSIGHT_TRAINING, "batch_size": batch, "patience": patience}
    assert {key: getattr(cfg, key) for key in expected} == expected
    assert {key: arch.param(key) for key in WINNERS_DEEPINSIGHT_ARCH} == WINNERS_DEEPINSIGHT_ARCH
    assert (arch.param("backbone"), arch.param("drop_rate"), arch.param("drop_path_rate")) == (
        backbone, drop_rate, drop_path)
    names = [f"g-{i}" for i in range(772)] + [f"c-{i}" for i in range(100)] + [
        "cp_type_code", "cp_dose_code", "cp_time_code"]
    assert len(swap_column_index(names, arch.param("swap_columns"))) == 872 and round(0.15 * 875) == 131
    pixel = np.arange(len(names)) * 97 % (side * side)
    X = np.random.default_rng(0).random((5, len(names)))
    fmap = FeatureMap(names, side, side, pixel // side, pixel % side, LogNorm2Scaler(clip=True).fit(X))
    net = build_model(spec.arch, {**spec.params, "pretrained": False}).build_network(fmap, 206)
    assert [type(m).__name__ for m in net.head] == ["Linear", "ELU", "Identity", "Linear"]
    assert [(m.in_features, m.out_features) for m in net.head if isinstance(m, torch.nn.Linear)] == [(width, 512),
                                                                                                   (512, 206)]
    assert net.backbone.drop_rate == drop_rate
    # stochastic depth as geffnet's drop_connect: rate × block index / blocks (block 0 has none): B3's 26 blocks
    drop_paths = [m.drop_prob for m in net.backbone.modules() if type(m).__name__ == "DropPath"]
    if drop_path is None:
        assert not drop_paths
    else:
        assert len(drop_paths) == 25 and max(drop_paths) == pytest.approx(drop_path * 25 / 26)


def test_deepinsight_inputs_are_their_875_columns(winner):
    """On small lish-moa-shaped frames: the raw g-/c- columns and the three codes, cp_type 1 for treated rows,
    cp_time 0/0.5/1 (their map), all untouched by any scaling here (the feature map's scaler comes per fold)."""
    spec = winner["features"]["raw_codes"]
    assert spec == {"fit_on": "train+test", "steps": WINNERS_DEEPINSIGHT_FEATURES}
    train = make_frame(120, seed=0, prefix="tr")
    _, tr, _ = build_feature_set(spec, train, train.iloc[:10])
    assert tr.shape == (120, 1 + WINNERS_DEEPINSIGHT_WIDTH)
    np.testing.assert_array_equal(tr[GENE_COLS + CELL_COLS].to_numpy(), train[GENE_COLS + CELL_COLS].to_numpy())
    np.testing.assert_array_equal(tr["cp_type_code"], (train["cp_type"] == "trt_cp").astype(np.float32))
    np.testing.assert_array_equal(tr["cp_time_code"], train["cp_time"].map({24: 0.0, 48: 0.5, 72: 1.0}))
    np.testing.assert_array_equal(tr["cp_dose_code"], train["cp_dose"].map({"D1": 0.0, "D2": 1.0}))
