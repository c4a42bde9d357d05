"""End to end: the real Snakemake workflow on a tiny synthetic config, every output's contract."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import run_snakemake, tiny_config

pytestmark = pytest.mark.slow

TABLES = ["train_features", "train_targets_scored", "train_targets_nonscored", "train_drug", "test_features"]


def _read(workdir, rel):
    return pd.read_parquet(workdir / "results" / rel)


def test_prepared_tables_are_typed(pipeline_run):
    for table in TABLES:
        assert (pipeline_run / "results" / "data" / f"{table}.parquet").exists()
    train = _read(pipeline_run, "data/train_features.parquet")
    assert train.shape == (360, 876)
    assert train["g-0"].dtype == np.float32 and train["cp_time"].dtype == np.int64
    scored = _read(pipeline_run, "data/train_targets_scored.parquet")
    assert scored.shape[1] == 207 and list(scored["sig_id"]) == list(train["sig_id"])


def test_folds_and_features_follow_the_contract(pipeline_run):
    train_ids = _read(pipeline_run, "data/train_features.parquet")["sig_id"]
    for scheme in ("ml3", "drug3"):
        folds = _read(pipeline_run, f"folds/{scheme}.parquet")
        assert list(folds.columns) == ["sig_id", "fold"]
        assert list(folds["sig_id"]) == list(train_ids) and set(folds["fold"]) == {0, 1, 2}
    for fset in ("small", "other"):
        for split in ("train", "test"):
            table = _read(pipeline_run, f"features/{fset}/{split}.parquet")
            assert table.columns[0] == "sig_id"
            assert all(table[c].dtype == np.float32 for c in table.columns[1:])
        assert (pipeline_run / "results" / "features" / fset / "fitted.joblib").exists()
    small = _read(pipeline_run, "features/small/train.parquet")
    assert {"pca_g_0", "pca_c_3", "cp_time_24", "cp_dose_D2"} <= set(small.columns)


def test_every_job_and_collected_prediction_follows_the_contract(pipeline_run):
    train = _read(pipeline_run, "data/train_features.parquet")
    test_ids = _read(pipeline_run, "data/test_features.parquet")["sig_id"]
    scored = list(_read(pipeline_run, "data/train_targets_scored.parquet").columns[1:])
    controls = set(train.loc[train["cp_type"] == "ctl_vehicle", "sig_id"])
    for model in ("prior", "nn", "nn_drug"):
        scheme = "drug3" if model == "nn_drug" else "ml3"
        folds = _read(pipeline_run, f"folds/{scheme}.parquet")
        for fold in range(3):
            job = pipeline_run / "results" / "models" / model / "seed0" / f"fold{fold}"
            oof = pd.read_parquet(job / "oof.parquet")
            assert set(oof["sig_id"]) == set(folds.loc[folds["fold"] == fold, "sig_id"])
            metrics = json.loads((job / "metrics.json").read_text())
            assert metrics["model"] == model and metrics["fold"] == fold and metrics["seed"] == 0
            assert (job / "model.pt").stat().st_size > 0
        oof = _read(pipeline_run, f"models/{model}/oof.parquet")
        test = _read(pipeline_run, f"models/{model}/test.parquet")
        assert list(oof.columns) == ["sig_id", *scored] and list(oof["sig_id"]) == list(train["sig_id"])
        assert list(test["sig_id"]) == list(test_ids)
        values = oof[scored].to_numpy()
        assert values.dtype == np.float32 and values.min() >= 0 and values.max() <= 1
        assert (oof.loc[oof["sig_id"].isin(controls), scored].to_numpy() == 0).all()
        score = json.loads((pipeline_run / "results" / "models" / model / "score.json").read_text())
        assert score["metric"] == "mean_log_loss" and score["n"] == len(train)
        assert set(score["per_target"]) == set(scored) and len(score["fold_scores"]) == 3


def test_model_beats_prior_and_blend_beats_members(pipeline_run):
    def score(rel):
        return json.loads((pipeline_run / "results" / rel).read_text())["value"]

    assert score("models/nn/score.json") < score("models/prior/score.json")
    blend = json.loads((pipeline_run / "results" / "blend" / "score.json").read_text())
    assert blend["value"] <= min(blend["members"].values()) + 1e-9
    weights = json.loads((pipeline_run / "results" / "blend" / "weights.json").read_text())
    assert weights["members"] == ["prior", "nn"] and weights["fold_scheme"] == "ml3"
    assert sum(weights["methods"]["slsqp"]["weights"].values()) == pytest.approx(1.0)


def test_submission_and_bookkeeping(pipeline_run):
    sub = pd.read_csv(pipeline_run / "results" / "submission.csv")
    test = _read(pipeline_run, "data/test_features.parquet")
    scored = list(_read(pipeline_run, "data/train_targets_scored.parquet").columns[1:])
    assert list(sub.columns) == ["sig_id", *scored]
    assert list(sub["sig_id"]) == list(test["sig_id"])
    assert (sub.loc[test["cp_type"].to_numpy() == "ctl_vehicle", scored].to_numpy() == 0).all()
    results = pipeline_run / "results"
    assert (results / "benchmarks" / "models" / "nn" / "seed0" / "fold0.tsv").exists()
    log = (results / "logs" / "models" / "nn" / "seed0" / "fold0.log").read_text()
    assert "valid log loss" in log
    assert not list(results.rglob("*.part")), "a temporary file was left behind"


def test_same_config_and_seed_give_identical_oof(pipeline_run, tmp_path):
    workdir = tmp_path / "again"
    shutil.copytree(pipeline_run, workdir)
    target = "results/models/nn/seed0/fold1/oof.parquet"
    before = pd.read_parquet(workdir / target)
    run_snakemake(workdir, target, "--forcerun", "train")
    pd.testing.assert_frame_equal(pd.read_parquet(workdir / target), before)


def test_bad_input_stops_prepare_and_writes_nothing(tmp_path):
    from moastack.data.synthetic import SyntheticSpec, generate, write_raw_csvs

    raw = tmp_path / "raw"
    frames = generate(SyntheticSpec(n_train=200, n_test=40, seed=1))
    frames["train_features"].loc[5, "g-3"] = np.nan
    write_raw_csvs(frames, raw)
    config = tiny_config()
    config["data"] = {"source": "dir", "dir": str(raw)}
    (tmp_path / "config.yaml").write_text(__import__("yaml").safe_dump(config))
    proc = run_snakemake(tmp_path, "results/data/train_features.parquet", check=False)
    assert proc.returncode != 0
    log = (tmp_path / "results" / "logs" / "prepare.log").read_text()
    assert "train_features.csv" in log and "g-3" in log
    assert not (tmp_path / "results" / "data").exists() or not list((tmp_path / "results" / "data").iterdir())
