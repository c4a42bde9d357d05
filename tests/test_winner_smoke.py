"""The winning models' DAG (configs/winner-smoke.yaml) end to end, and its stacking/transfer wiring."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
import yaml
from conftest import ROOT, planned_jobs, run_snakemake, write_config

pytestmark = pytest.mark.slow

SMOKE = ROOT / "configs" / "winner-smoke.yaml"


def smoke_config() -> dict:
    return yaml.safe_load(SMOKE.read_text())


@pytest.fixture(scope="module")
def winner_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("winner")
    write_config(workdir, smoke_config())
    run_snakemake(workdir)
    return workdir


def _score(workdir, model):
    return json.loads((workdir / "results" / "models" / model / "score.json").read_text())


def test_every_stage_has_its_own_oof_and_test_predictions(winner_run):
    config = smoke_config()
    train_rows = len(pd.read_parquet(winner_run / "results" / "data" / "train_features.parquet"))
    for model, m in config["models"].items():
        oof = pd.read_parquet(winner_run / "results" / "models" / model / "oof.parquet")
        assert len(oof) == train_rows
        score = _score(winner_run, model)
        assert score["n"] == train_rows
        if m.get("targets") == "nonscored":  # only non-scored columns with a positive
            assert 0 < oof.shape[1] - 1 <= 402
        else:
            assert oof.shape[1] - 1 == 206
    assert (winner_run / "results" / "submission.csv").exists()
    assert (winner_run / "results" / "report" / "index.html").exists()


def test_stacked_and_transferred_jobs_read_their_sources(winner_run):
    log = (winner_run / "results" / "logs" / "models" / "resnet_transfer" / "seed0" / "fold1.log").read_text()
    assert "starting from the weights in results/models/resnet_nonscored/seed0/fold1/model.pt" in log
    metrics = json.loads(
        (winner_run / "results" / "models" / "nn3_stage3" / "seed0" / "fold0" / "metrics.json").read_text()
    )
    assert metrics["n_features"] == _score(winner_run, "nn3_stage2")["per_target"].__len__()  # meta only


def test_scored_models_beat_the_prior(winner_run):
    prior = _score(winner_run, "prior")["value"]
    for model in ("nn3_stage2", "simple_nn_old"):
        assert _score(winner_run, model)["value"] < prior


def _plan_after_edit(winner_run, tmp_path, model: str, **params) -> set[tuple[str, str]]:
    """Jobs a copy of the finished run would rerun after editing one model's params."""
    workdir = tmp_path / "edit"
    shutil.copytree(winner_run, workdir)
    config = smoke_config()
    config["models"][model]["params"].update(params)
    write_config(workdir, config)
    return planned_jobs(workdir)


def test_editing_stage_one_reruns_the_whole_chain_and_nothing_else(winner_run, tmp_path):
    planned = _plan_after_edit(winner_run, tmp_path, "nn3_stage1", epochs=5)
    trained = {wc.split(",")[0] for rule, wc in planned if rule == "train"}
    assert trained == {"model=nn3_stage1", "model=nn3_stage2", "model=nn3_stage3"}
    assert {r for r, _ in planned} == {"train", "collect", "blend", "submission", "report"}


def test_editing_the_transfer_source_reruns_the_transfer_model(winner_run, tmp_path):
    planned = _plan_after_edit(winner_run, tmp_path, "resnet_nonscored", epochs=3)
    trained = {wc.split(",")[0] for rule, wc in planned if rule == "train"}
    assert trained == {"model=resnet_nonscored", "model=resnet_transfer"}


def test_predict_replays_the_whole_chain(winner_run, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    test = pd.read_parquet(winner_run / "results" / "data" / "test_features.parquet")
    test.to_csv(tmp_path / "new.csv", index=False)
    moastack = str(Path(sys.executable).with_name("moastack"))
    subprocess.run([moastack, "predict", "--results", str(winner_run / "results"), "--input",
                    str(tmp_path / "new.csv"), "--output", str(tmp_path / "pred.csv")], check=True)
    pred = pd.read_csv(tmp_path / "pred.csv")
    blend = pd.read_parquet(winner_run / "results" / "blend" / "test.parquet")
    assert list(pred["sig_id"]) == list(blend["sig_id"])
    assert (pred.iloc[:, 1:].to_numpy() - blend.iloc[:, 1:].to_numpy()).__abs__().max() < 1e-6


def test_full_winner_preset_plans(tmp_path):
    """configs/winner.yaml plans the full job set on the real data layout (dry run, no data needed)."""
    config = yaml.safe_load((ROOT / "configs" / "winner.yaml").read_text())
    write_config(tmp_path, config)
    proc = run_snakemake(tmp_path, "--dry-run", "--quiet", "rules")
    assert "train" in proc.stdout


def test_deepinsight_joins_the_blend_and_the_report(winner_run):
    """The CNN trains through the DAG from its fitted feature map, is a blend member, and its OOF
    correlation with the NN models is on the report page (the winners' diversity diagnostic)."""
    results = winner_run / "results"
    assert (results / "feature_maps" / "di12" / "map.npz").exists()
    assert (results / "report" / "feature_maps" / "di12.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    log = (results / "logs" / "models" / "deepinsight" / "seed0" / "fold0.log").read_text()
    assert "deepinsight epoch 1/3" in log
    def n_train(model):
        return json.loads((results / "models" / model / "seed0" / "fold0" / "metrics.json").read_text())["n_train"]

    features = pd.read_parquet(results / "data" / "train_features.parquet")
    folds = pd.read_parquet(results / "folds" / "mlsk5.parquet")
    training_controls = int(((features["cp_type"] == "ctl_vehicle") & (folds["fold"] != 0)).sum())
    assert training_controls > 0
    # same folds; the NN leaves the controls out, the CNN keeps them (drop_controls: false)
    assert n_train("deepinsight") - n_train("simple_nn_old") == training_controls
    weights = json.loads((results / "blend" / "weights.json").read_text())
    assert "deepinsight" in weights["members"]
    page = (results / "report" / "index.html").read_text()
    assert "DeepInsight feature maps" in page
    assert page.count(">deepinsight<") >= 2  # model table and mean-correlation table


def test_editing_a_feature_map_reruns_only_the_cnn(winner_run, tmp_path):
    workdir = tmp_path / "edit"
    shutil.copytree(winner_run, workdir)
    config = smoke_config()
    config["feature_maps"]["di12"]["perplexity"] = 10
    write_config(workdir, config)
    planned = planned_jobs(workdir)
    trained = {wc.split(",")[0] for rule, wc in planned if rule == "train"}
    assert trained == {"model=deepinsight"}
    assert {r for r, _ in planned} == {"feature_map", "train", "collect", "blend", "submission", "report"}
