"""`moastack predict`: new samples through the saved artifacts reproduce the pipeline's predictions."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run_snakemake, tiny_config, write_config

from moastack.cli import main
from moastack.fold_pipeline import FoldPipeline, JobRows
from moastack.predict import Progress
from moastack.spec import ModelSpec

MOASTACK = str(Path(sys.executable).with_name("moastack"))
TOL = 1e-6


def _cli(*args: str) -> subprocess.CompletedProcess:
    if not Path(MOASTACK).exists():
        pytest.fail(f"{MOASTACK} not found: reinstall the package (pip install -e .) for its console script")
    return subprocess.run([MOASTACK, *args], capture_output=True, text=True)


def _test_rows_csv(results: Path, path: Path) -> Path:
    pd.read_parquet(results / "data" / "test_features.parquet").to_csv(path, index=False)
    return path


def _max_diff(a: pd.DataFrame, b: pd.DataFrame) -> float:
    assert list(a.columns) == list(b.columns)
    assert list(a["sig_id"]) == list(b["sig_id"])
    return float(np.abs(a.iloc[:, 1:].to_numpy(np.float64) - b.iloc[:, 1:].to_numpy(np.float64)).max())


# ---------------------------------------------------------------------------------------- unit tests
def test_help_lists_the_commands():
    proc = _cli("--help")
    assert proc.returncode == 0
    assert "predict" in proc.stdout and "report" in proc.stdout
    sub = _cli("predict", "--help")
    for option in ("--results", "--input", "--output", "--batch-size", "--device", "--labels"):
        assert option in sub.stdout


def test_fold_pipeline_gives_new_rows_the_inputs_training_gave_its_test_rows(tmp_path):
    """One builder: the fold pipeline fitted on training rows, then pickled (as in the model file), gives
    the same matrix for the test rows as in training, with and without meta_only."""
    import joblib

    rng = np.random.default_rng(0)
    X, X_test = rng.normal(size=(50, 3)).astype(np.float32), rng.normal(size=(9, 3)).astype(np.float32)
    meta, meta_test = rng.random((50, 2)).astype(np.float32), rng.random((9, 2)).astype(np.float32)
    names, meta_names = ["f0", "f1", "f2"], ("up__t1", "up__t2")
    fit = np.arange(50) < 35
    for meta_only in (False, True):
        spec = ModelSpec.from_entry("m", {"arch": "simple_nn", "features": "f", "folds": "k", "meta": ["up"],
                                          "meta_only": meta_only, "fold_steps": [{"name": "standardize"}]})
        pipeline = FoldPipeline(spec, seed=1)
        train_rows = JobRows(X, names, meta, meta_names).take(fit)
        X_train = pipeline.fit_transform(train_rows, np.zeros((35, 2), np.float32))
        want = pipeline.transform(JobRows(X_test, names, meta_test, meta_names))
        joblib.dump(pipeline, tmp_path / "pipeline.joblib")
        replayed = joblib.load(tmp_path / "pipeline.joblib")
        np.testing.assert_array_equal(replayed.transform(JobRows(X_test, names, meta_test, meta_names)), want)
        np.testing.assert_array_equal(replayed.transform(train_rows), X_train)
        assert pipeline.names_out_ == ([*meta_names] if meta_only else [*names, *meta_names])
        assert want.shape == (9, 2 if meta_only else 5)
        # standardised on the 35 training rows only
        np.testing.assert_allclose(X_train.mean(axis=0), 0.0, atol=1e-5)
        with pytest.raises(ValueError, match="different config"):
            pipeline.transform(JobRows(X_test, ["f0", "f1", "x"], meta_test, meta_names))


def test_progress_draws_only_on_a_terminal():
    stream = io.StringIO()
    bar = Progress(4, stream=stream)  # StringIO is not a TTY
    bar.step("job")
    bar.close()
    assert stream.getvalue() == ""
    bar = Progress(2, enabled=True, stream=stream)
    bar.step("nn seed0 fold1")
    bar.close()
    assert "\r" in stream.getvalue() and "50%" in stream.getvalue() and "nn seed0 fold1" in stream.getvalue()


# ----------------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_predict_on_the_test_rows_reproduces_the_blend(pipeline_run, tmp_path):
    results = pipeline_run / "results"
    out = tmp_path / "predictions.csv"
    proc = _cli("predict", "--results", str(results), "--input", str(_test_rows_csv(results, tmp_path / "new.csv")),
                "--output", str(out), "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stderr  # no progress line when stderr is not a terminal
    predicted = pd.read_csv(out)
    assert _max_diff(predicted, pd.read_parquet(results / "blend" / "test.parquet")) < TOL
    assert _max_diff(predicted, pd.read_csv(results / "submission.csv")) < TOL


@pytest.mark.slow
def test_predict_replays_the_stacking_chain_in_small_batches(pipeline_run, tmp_path):
    """A stacked model on a scored NN and a non-scored model, blended: same test predictions."""
    workdir = tmp_path / "run"
    shutil.copytree(pipeline_run, workdir)
    config = tiny_config()
    config["models"]["ns"] = {"arch": "prior", "features": "other", "folds": "ml3", "targets": "nonscored"}
    config["models"]["stack"] = {
        "arch": "simple_nn", "features": "other", "folds": "ml3", "seeds": [0, 1], "meta": ["nn", "ns"],
        "params": {"hidden": [32], "epochs": 3, "batch_size": 64, "patience": None},
    }
    config["blend"]["members"] = ["prior", "nn", "stack"]
    write_config(workdir, config)
    run_snakemake(workdir, "results/submission.csv")
    results = workdir / "results"
    out = tmp_path / "stacked.csv"
    args = ["predict", "--results", str(results), "--input", str(_test_rows_csv(results, tmp_path / "new.csv")),
            "--output", str(out), "--batch-size", "7", "--quiet"]
    assert main(args) == 0
    predicted = pd.read_csv(out)
    assert _max_diff(predicted, pd.read_parquet(results / "blend" / "test.parquet")) < TOL
    assert _max_diff(predicted, pd.read_csv(results / "submission.csv")) < TOL


@pytest.mark.slow
@pytest.mark.parametrize(
    "corrupt, expected",
    [
        (lambda df: df.assign(**{"g-3": df["g-3"].where(df.index != 4, np.nan)}), ["new.csv", "'g-3'", "row 5"]),
        (lambda df: df.drop(columns=["c-7"]), ["new.csv", "missing columns", "'c-7'"]),
        (lambda df: df.assign(cp_type=df["cp_type"].where(df.index != 0, "drug")), ["new.csv", "'cp_type'", "'drug'"]),
    ],
    ids=["nan", "missing-column", "unknown-category"],
)
def test_malformed_input_gives_the_validation_error(pipeline_run, tmp_path, capsys, corrupt, expected):
    frame = pd.read_parquet(pipeline_run / "results" / "data" / "test_features.parquet")
    path = tmp_path / "new.csv"
    corrupt(frame).to_csv(path, index=False)
    out = tmp_path / "predictions.csv"
    assert main(["predict", "--results", str(pipeline_run / "results"), "--input", str(path),
                 "--output", str(out)]) == 1
    err = capsys.readouterr().err
    for text in expected:
        assert text in err, err
    assert not out.exists()


@pytest.mark.slow
def test_malformed_input_through_the_console_script(pipeline_run, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("sig_id,cp_type\nid_1,trt_cp\n")
    proc = _cli("predict", "--results", str(pipeline_run / "results"), "--input", str(path),
                "--output", str(tmp_path / "p.csv"))
    assert proc.returncode == 1
    assert "bad.csv" in proc.stderr and "missing columns" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_missing_artifacts_are_named(pipeline_run, tmp_path, capsys):
    results = tmp_path / "results"
    shutil.copytree(pipeline_run / "results", results)
    new = _test_rows_csv(results, tmp_path / "new.csv")
    (results / "models" / "nn" / "seed0" / "fold1" / "model.pt").unlink()
    (results / "features" / "other" / "fitted.joblib").unlink()
    args = ["predict", "--results", str(results), "--input", str(new), "--output", str(tmp_path / "p.csv")]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert str(Path("models") / "nn" / "seed0" / "fold1" / "model.pt") in err
    assert str(Path("features") / "other" / "fitted.joblib") in err
    assert "2 files missing" in err
    (results / "blend" / "weights.json").unlink()
    assert main(args) == 1
    assert str(Path("blend") / "weights.json") in capsys.readouterr().err


# --------------------------------------------------------------------------------------- --labels
def test_labels_are_refused_without_thresholds_saying_why(tmp_path):
    """A regression task has nothing to call; an older blend has no thresholds yet: both refused with the reason."""
    from moastack.predict import PredictError, load_thresholds

    (tmp_path / "blend").mkdir()
    weights = tmp_path / "blend" / "weights.json"
    weights.write_text(json.dumps({"metric": "mrrmse", "applied": "slsqp", "members": [], "methods": {}}))
    with pytest.raises(PredictError, match=r"weights.json: --labels needs the decision thresholds.*regression"):
        load_thresholds(tmp_path)
    weights.write_text(json.dumps({"metric": "log_loss", "applied": "slsqp", "members": [], "methods": {}}))
    with pytest.raises(PredictError, match="older moastack.*--forcerun blend"):
        load_thresholds(tmp_path)
    weights.unlink()
    with pytest.raises(PredictError, match="weights.json"):
        load_thresholds(tmp_path)


@pytest.mark.slow
def test_predict_labels_apply_the_blends_thresholds_to_its_test_rows(pipeline_run, tmp_path):
    results = pipeline_run / "results"
    out = tmp_path / "labelled.csv"
    new = _test_rows_csv(results, tmp_path / "new.csv")
    assert main(["predict", "--results", str(results), "--input", str(new), "--output", str(out), "--labels",
                 "--quiet"]) == 0
    predicted = pd.read_csv(out)
    blend = pd.read_parquet(results / "blend" / "test.parquet")
    targets = list(blend.columns[1:])
    assert list(predicted.columns) == ["sig_id", *targets, *(f"{t}_label" for t in targets)]
    assert _max_diff(predicted[blend.columns], blend) < TOL  # the probabilities are unchanged
    record = json.loads((results / "blend" / "weights.json").read_text())["thresholds"]
    never = set(record["never_called"])
    for t in targets:
        labels = predicted[f"{t}_label"].to_numpy()
        assert set(np.unique(labels)) <= {0, 1}
        want = np.zeros(len(blend), int) if t in never else (blend[t].to_numpy() >= record["targets"][t]["threshold"])
        assert np.array_equal(labels, want.astype(int)), t
    calls = predicted[[f"{t}_label" for t in targets]].to_numpy()
    assert 0 < calls.sum() < calls.size  # some rows called, not all
    # an older results folder (no thresholds) is refused before any work, and nothing is written
    old = tmp_path / "old"
    shutil.copytree(results / "blend", old / "blend")
    weights = json.loads((old / "blend" / "weights.json").read_text())
    del weights["thresholds"]
    (old / "blend" / "weights.json").write_text(json.dumps(weights))
    proc = _cli("predict", "--results", str(old), "--input", str(new), "--output", str(tmp_path / "p.csv"), "--labels")
    assert proc.returncode == 1 and "older moastack" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "p.csv").exists()
