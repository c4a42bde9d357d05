"""Tox21 through the DAG on the first 400 molecules of the real file (configs/tox21-smoke.yaml):
molecules in, masked multilabel models, ROC-AUC, scaffold folds and a tuning study feeding a model."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import ROOT, planned_jobs, run_snakemake, write_config

from moastack.folds import scaffold_groups
from moastack.models.registry import read_payload

pytestmark = pytest.mark.slow

TOX21 = ROOT.parent / "shared" / "data" / "tox21" / "tox21.csv"
SMOKE = ROOT / "configs" / "tox21-smoke.yaml"
N_ROWS = 400


def smoke_config() -> dict:
    return yaml.safe_load(SMOKE.read_text())


@pytest.fixture(scope="module")
def tox_run(tmp_path_factory):
    if not TOX21.exists():
        pytest.skip(f"{TOX21} not found (the real Tox21 file lives in ../shared/data/tox21)")
    workdir = tmp_path_factory.mktemp("tox21")
    lines = TOX21.read_text().splitlines(keepends=True)
    (workdir / "tox21-400.csv").write_text("".join(lines[: N_ROWS + 1]))
    write_config(workdir, smoke_config())
    run_snakemake(workdir)
    return workdir


def _score(workdir, model):
    return json.loads((workdir / "results" / "models" / model / "score.json").read_text())


def test_tables_keep_missing_labels_and_molecules(tox_run):
    data = tox_run / "results" / "data"
    features = pd.read_parquet(data / "train_features.parquet")
    targets = pd.read_parquet(data / "train_targets_scored.parquet")
    raw = pd.read_csv(tox_run / "tox21-400.csv")
    assert list(features.columns) == ["sig_id", "smiles"] and len(features) == N_ROWS
    assert list(targets.columns[1:]) == smoke_config()["data"]["table"]["label_columns"]
    # empty label cells stay missing (NaN), not negatives
    assert targets.iloc[:, 1:].isna().sum().sum() == raw[targets.columns[1:]].isna().sum().sum() > 0
    assert len(pd.read_parquet(data / "test_features.parquet")) == 0


def test_every_metric_is_scored_and_the_models_beat_the_prior(tox_run):
    prior = _score(tox_run, "prior")
    for model in ("rf", "nn", "rf_scaffold", "xgb", "chemprop"):
        score = _score(tox_run, model)
        assert score["metric"] == "mean_roc_auc"
        assert set(score["metrics"]) == {"log_loss", "roc_auc", "pr_auc"}
        assert score["value"] == pytest.approx(score["metrics"]["roc_auc"])
    assert _score(tox_run, "rf")["value"] > prior["value"] + 0.1
    assert _score(tox_run, "nn")["value"] > prior["value"] + 0.05
    assert _score(tox_run, "xgb")["value"] > prior["value"] + 0.1
    assert _score(tox_run, "chemprop")["value"] > prior["value"] + 0.05  # 12 epochs of a 32-wide D-MPNN
    blend = json.loads((tox_run / "results" / "blend" / "score.json").read_text())
    members = blend["members"]
    assert blend["value"] >= max(members.values()) - 0.01  # TPE searched ROC-AUC itself
    assert blend["best_member"] == max(members, key=members.get)


def test_predict_replays_a_chemprop_job_on_molecules(tox_run):
    """``moastack predict``'s replay of a saved chemprop job (feature set, fold pipeline, the rows' SMILES, in
    other batches) gives back the OOF predictions the job wrote for its validation rows."""
    from moastack.predict import PredictError, plan_prediction, predict_frame

    results = tox_run / "results"
    plan = plan_prediction(results)
    model = plan.models["chemprop"]
    model.jobs = [job for job in model.jobs if job[:2] == (0, 0)]  # seed 0, fold 0
    plan.models, plan.members, plan.weights = {"chemprop": model}, ["chemprop"], np.array([1.0])
    oof = pd.read_parquet(results / "models" / "chemprop" / "seed0" / "fold0" / "oof.parquet")
    rows = pd.read_parquet(results / "data" / "train_features.parquet").set_index("sig_id").loc[oof["sig_id"]]
    out = predict_frame(plan, rows.reset_index(), batch_size=37, device="cpu")
    assert list(out["sig_id"]) == list(oof["sig_id"])
    np.testing.assert_allclose(out[model.targets].to_numpy(), oof[model.targets].to_numpy(), atol=1e-6)
    with pytest.raises(PredictError, match="chemprop read molecules: the input needs a 'smiles' column"):
        predict_frame(plan, rows.reset_index().drop(columns=["smiles"]), device="cpu")


def test_scaffold_folds_keep_every_scaffold_whole(tox_run):
    results = tox_run / "results"
    features = pd.read_parquet(results / "data" / "train_features.parquet")
    folds = pd.read_parquet(results / "folds" / "scaffold3.parquet")
    groups = pd.Series(scaffold_groups(features["smiles"]))
    assert (folds.groupby(groups.to_numpy())["fold"].nunique() == 1).all()
    sizes = folds["fold"].value_counts()
    assert sizes.max() - sizes.min() <= 0.1 * len(folds)


def test_the_tuned_model_trains_with_the_studys_best_params(tox_run):
    results = tox_run / "results"
    best = json.loads((results / "tune" / "nn" / "best.json").read_text())
    assert best["n_trials_complete"] == 2 and best["direction"] == "maximize"
    assert best["best_value"] == max(t["value"] for t in best["trials"])

    saved = read_payload(results / "models" / "nn" / "seed0" / "fold0" / "model.pt")
    assert saved["params"]["hidden"] == [best["best_params"]["width"]]
    assert saved["params"]["max_lr"] == pytest.approx(best["best_params"]["max_lr"])


def test_more_trials_resume_the_study_and_rerun_only_its_model(tox_run, tmp_path):
    workdir = tmp_path / "more"
    shutil.copytree(tox_run, workdir)
    config = smoke_config()
    config["tune"]["nn"]["n_trials"] = 3
    write_config(workdir, config)
    planned = planned_jobs(workdir)
    assert {wc.split(",")[0] for r, wc in planned if r == "train"} == {"model=nn"}
    assert {r for r, _ in planned} == {"tune", "train", "collect", "blend", "submission", "report"}
    run_snakemake(workdir, "--until", "tune")
    best = json.loads((workdir / "results" / "tune" / "nn" / "best.json").read_text())
    assert [t["number"] for t in best["trials"]] == [0, 1, 2]  # two kept from the journal, one new


def test_changing_the_metric_rescores_and_retunes_only(tox_run, tmp_path):
    """The metric is not a training input: models rescore; only the study (it optimises the metric)
    and the model taking its params rerun."""
    workdir = tmp_path / "metric"
    shutil.copytree(tox_run, workdir)
    config = smoke_config()
    config["data"]["metric"] = "pr_auc"
    write_config(workdir, config)
    planned = planned_jobs(workdir)
    assert {wc.split(",")[0] for r, wc in planned if r == "train"} == {"model=nn"}
    assert {r for r, _ in planned} == {"tune", "train", "collect", "blend", "submission", "report"}
    assert {wc for r, wc in planned if r == "collect"} == {f"model={m}" for m in smoke_config()["models"]}


def test_the_report_names_the_assays_by_roc_auc(tox_run):
    page = (tox_run / "results" / "report" / "index.html").read_text()
    assert "ROC-AUC" in page and "higher is better" in page
    for assay in ("NR-AR", "SR-p53"):
        assert assay in page


def test_the_blend_stores_an_f1_optimal_threshold_per_assay_and_the_report_shows_it(tox_run):
    from moastack.thresholds import best_cut

    results = tox_run / "results"
    record = json.loads((results / "blend" / "weights.json").read_text())["thresholds"]
    assays = smoke_config()["data"]["table"]["label_columns"]
    assert record["metric"] == "f1" and list(record["targets"]) == assays  # the schema's default
    truth = pd.read_parquet(results / "data" / "train_targets_scored.parquet").set_index("sig_id")
    oof = pd.read_parquet(results / "blend" / "oof.parquet").set_index("sig_id").reindex(truth.index)
    for assay in assays:
        stored, labelled = record["targets"][assay], truth[assay].notna().to_numpy()
        assert stored["labelled"] == labelled.sum()  # missing labels skipped
        if stored["positives"] == 0:
            assert assay in record["never_called"] and stored["f1"] is None
            continue
        want = best_cut(truth[assay].to_numpy()[labelled], oof[assay].to_numpy()[labelled], "f1")
        assert stored["threshold"] == want["threshold"] and stored["f1"] == pytest.approx(want["f1"])
        assert 0 < stored["f1"] <= 1 and -1 <= stored["mcc"] <= 1
    assert sum(v["labelled"] for v in record["targets"].values()) < len(truth) * len(assays)
    page = (results / "report" / "index.html").read_text()
    assert '<section id="thresholds">' in page and "NR-AR</td>" in page.split('<section id="thresholds">')[1]


def test_submission_has_the_assays_and_no_rows_without_a_test_file(tox_run):
    sub = pd.read_csv(tox_run / "results" / "submission.csv")
    assert list(sub.columns[1:]) == smoke_config()["data"]["table"]["label_columns"]
    assert len(sub) == 0
    assert np.isfinite(_score(tox_run, "nn")["metrics"]["log_loss"])


def test_the_sparse_fingerprint_model_runs_through_the_dag(tox_run):
    from moastack.features.feature_table import FeatureTable

    results = tox_run / "results"
    train = FeatureTable.read(results / "features" / "ecfp_sparse" / "train.parquet")
    assert train.sparse is not None and len(train) == N_ROWS
    prefixes = {n.split("_")[0] for n in train.sparse_names}
    assert prefixes == {"ecfp4", "ap"} and train.dense_names == [f"maccs_{i}" for i in range(167)]
    present = np.asarray((train.sparse > 0).sum(axis=0)).ravel()
    assert present.min() >= 3  # min_frequency: 3 training molecules
    metrics = json.loads((results / "models" / "nn_sparse" / "seed0" / "fold0" / "metrics.json").read_text())
    assert metrics["n_features"] == 167 + len(train.sparse_names)
    assert _score(tox_run, "nn_sparse")["value"] > 0.55


def test_predict_replays_a_sparse_job_on_new_smiles(tox_run):
    """The sparse feature set's fitted state and a job's model, replayed by ``moastack predict``'s code on
    raw SMILES rows: the job's own validation rows give its OOF predictions; unseen molecules are scored."""
    from moastack.predict import Plan, _plan_model, predict_frame
    from moastack.task import MULTILABEL

    results = tox_run / "results"
    model_plan = _plan_model(results, "nn_sparse", [])
    model_plan.jobs = [job for job in model_plan.jobs if job[:2] == (0, 0)]
    plan = Plan(results=results, applied="single", members=["nn_sparse"], weights=np.array([1.0]),
                models={"nn_sparse": model_plan}, task=MULTILABEL)
    oof = pd.read_parquet(results / "models" / "nn_sparse" / "seed0" / "fold0" / "oof.parquet")
    raw = pd.read_parquet(results / "data" / "train_features.parquet").set_index("sig_id").loc[oof["sig_id"]]
    replayed = predict_frame(plan, raw.reset_index(), batch_size=16)
    np.testing.assert_allclose(replayed.iloc[:, 1:].to_numpy(), oof.iloc[:, 1:].to_numpy(), atol=1e-6)
    new = pd.DataFrame({"sig_id": ["a", "b"], "smiles": ["BrC(Br)C(=O)OCCOc1ccc(I)cc1", "CCO"]})
    scored = predict_frame(plan, new)
    values = scored.iloc[:, 1:].to_numpy()
    assert values.shape == (2, 12) and ((values >= 0) & (values <= 1)).all()
