"""The 2nd-place solution's DAG (configs/second-place-smoke.yaml) end to end: the soft-ordering 1-D CNN with its
non-scored warm-up and in-fold quantile transform + PCA, TabNet and a DNN on drug-aware folds, one blend."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import ROOT, run_snakemake, write_config

from moastack.predict import plan_prediction, predict_frame

pytestmark = pytest.mark.slow

SMOKE = ROOT / "configs" / "second-place-smoke.yaml"


@pytest.fixture(scope="module")
def second_place_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("second_place")
    write_config(workdir, yaml.safe_load(SMOKE.read_text()))
    run_snakemake(workdir)
    return workdir


def test_the_three_models_are_blended(second_place_run):
    weights = json.loads((second_place_run / "results" / "blend" / "weights.json").read_text())
    assert weights["members"] == ["cnn1d_soft", "tabnet", "dnn"] and weights["fold_scheme"] == "drug5"
    for method in ("slsqp", "optuna_tpe"):
        assert sum(weights["methods"][method]["weights"].values()) == pytest.approx(1.0)
    for model in weights["members"]:
        score = json.loads((second_place_run / "results" / "models" / model / "score.json").read_text())
        assert np.isfinite(score["value"]) and score["folds_scheme"] == "drug5"


def test_the_cnn_warms_up_on_non_scored_targets_and_fits_its_pca_inside_the_fold(second_place_run):
    job = second_place_run / "results" / "models" / "cnn1d_soft" / "seed0" / "fold0"
    metrics = json.loads((job / "metrics.json").read_text())
    assert [r["phase"] for r in metrics["history"]] == ["warm-up"] + ["main"] * 4
    features = pd.read_parquet(second_place_run / "results" / "features" / "robust" / "train.parquet")
    assert not any(c.startswith("pca_") for c in features.columns)  # no PCA before the folds...
    assert metrics["n_features"] == features.shape[1] - 1 + 5 + 3  # ...but 5 + 3 components inside each


def test_predict_replays_the_in_fold_steps(second_place_run):
    results = second_place_run / "results"
    rows = pd.read_parquet(results / "data" / "test_features.parquet")
    predicted = predict_frame(plan_prediction(results), rows, device="cpu")
    blend = pd.read_parquet(results / "blend" / "test.parquet")
    assert list(predicted["sig_id"]) == list(blend["sig_id"])
    assert float(np.abs(predicted.iloc[:, 1:].to_numpy() - blend.iloc[:, 1:].to_numpy()).max()) < 1e-6
