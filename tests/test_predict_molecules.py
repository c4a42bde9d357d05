"""`moastack predict` on new molecules: a Tox21 results folder (table source) scores a CSV/Parquet of ids
+ SMILES through the fitted feature sets and every blend member, validated like prepare's table source."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import BROKEN_ROW, REPAIRED_ROW, TOX21_ASSAYS

from moastack import io
from moastack.cli import main
from moastack.predict import ArtifactError, PredictError, predict, table_source_record

MOASTACK = str(Path(sys.executable).with_name("moastack"))
TOL = 1e-6


def _max_diff(predicted: pd.DataFrame, blend: pd.DataFrame) -> float:
    assert list(predicted.columns) == ["sample_id", *TOX21_ASSAYS]  # the run's id column, then the assays
    assert list(blend.columns) == ["sig_id", *TOX21_ASSAYS]
    assert predicted["sample_id"].astype(str).tolist() == blend["sig_id"].tolist()
    return float(np.abs(predicted[TOX21_ASSAYS].to_numpy(np.float64) - blend[TOX21_ASSAYS].to_numpy(np.float64)).max())


# ----------------------------------------------------------------------------- without a pipeline run
def _prepared(tmp_path: Path, frame: pd.DataFrame, metadata=None) -> Path:
    results = tmp_path / "results"
    io.write_parquet(frame, results / "data" / "train_features.parquet", metadata=metadata)
    return results


def test_a_run_without_molecules_refuses_invalid_smiles(tmp_path):
    results = _prepared(tmp_path, pd.DataFrame({"sig_id": ["a"], "cp_type": ["trt_cp"], "g-0": [0.1]}))
    assert table_source_record(results) is None
    with pytest.raises(PredictError, match=r"--invalid-smiles: .*results is not a run of molecules"):
        predict(results, tmp_path / "new.csv", tmp_path / "out.csv", invalid_smiles="drop")


def test_a_table_run_prepared_before_the_record_is_named(tmp_path):
    results = _prepared(tmp_path, pd.DataFrame({"sig_id": ["a"], "smiles": ["CCO"]}))
    with pytest.raises(ArtifactError, match=r"train_features\.parquet: prepared by an older moastack.*--forcerun prepare"):
        table_source_record(results)


# ---------------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_predict_on_the_score_file_reproduces_the_blend(tox21_challenge_run, tmp_path):
    """The run's own test compounds (one repaired, one unreadable and dropped) through the console script."""
    results = tox21_challenge_run / "results"
    out = tmp_path / "predictions.csv"
    proc = subprocess.run([MOASTACK, "predict", "--results", str(results), "--input",
                           str(tox21_challenge_run / "challenge-score.csv"), "--output", str(out), "--device", "cpu",
                           "--invalid-smiles", "drop"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert f"dropped 1 rows whose SMILES RDKit cannot parse: row 42 (sample_id {BROKEN_ROW[0]})" in proc.stderr
    assert "repaired 1 SMILES" in proc.stderr
    predicted = pd.read_csv(out, dtype={"sample_id": str})
    assert _max_diff(predicted, pd.read_parquet(results / "blend" / "test.parquet")) < TOL
    assert REPAIRED_ROW[0] in set(predicted["sample_id"])


@pytest.mark.slow
def test_predict_reads_parquet_in_any_column_order_and_batches(tox21_challenge_run, tmp_path):
    results = tox21_challenge_run / "results"
    score = pd.read_csv(tox21_challenge_run / "challenge-score.csv", dtype=str)
    score = score[score["sample_id"] != BROKEN_ROW[0]]
    new = tmp_path / "new.parquet"
    score.assign(note="x")[["note", "smiles", "sample_id"]].to_parquet(new)
    out = tmp_path / "p.csv"
    assert main(["predict", "--results", str(results), "--input", str(new), "--output", str(out),
                 "--batch-size", "7", "--quiet"]) == 0
    predicted = pd.read_csv(out, dtype={"sample_id": str})
    assert _max_diff(predicted, pd.read_parquet(results / "blend" / "test.parquet")) < TOL


@pytest.mark.slow
@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("sample_id,smiles\nx1,CCO\nx2,C1CC\nx3,Cc1ccc2ncnc2c1\n",
         ["new.csv", "column 'smiles' has SMILES RDKit cannot parse in 2 rows", "row 2 (sample_id x2) 'C1CC'",
          "ambiguous", "--invalid-smiles drop skips them"]),
        ("sample_id,smiles\n", ["new.csv", "no rows"]),
        ("", ["new.csv", "file is empty"]),
        ("mol_id,smiles\nx1,CCO\n", ["new.csv", "missing columns: 'sample_id'"]),
        ("sample_id,SMILES\nx1,CCO\n", ["new.csv", "missing columns: 'smiles'"]),
        ("sample_id,smiles\nx1,CCO\nx1,CCN\n", ["new.csv", "column 'sample_id' has duplicate values", "row 2 'x1'"]),
    ],
    ids=["unparsable", "header-only", "empty", "no-id-column", "no-smiles-column", "duplicate-ids"],
)
def test_bad_molecule_input_gives_the_table_sources_error(tox21_challenge_run, tmp_path, capsys, content, expected):
    path = tmp_path / "new.csv"
    path.write_text(content)
    out = tmp_path / "p.csv"
    assert main(["predict", "--results", str(tox21_challenge_run / "results"), "--input", str(path),
                 "--output", str(out)]) == 1
    err = capsys.readouterr().err
    for text in expected:
        assert text in err, err
    assert "Traceback" not in err and not out.exists()


@pytest.mark.slow
def test_every_row_dropped_is_an_error(tox21_challenge_run, tmp_path, capsys):
    path = tmp_path / "new.csv"
    path.write_text("sample_id,smiles\nx1,C1CC\n")
    args = ["predict", "--results", str(tox21_challenge_run / "results"), "--input", str(path),
            "--output", str(tmp_path / "p.csv"), "--invalid-smiles", "drop"]
    assert main(args) == 1
    assert "no rows left after dropping rows with unparsable SMILES" in capsys.readouterr().err


@pytest.mark.slow
def test_a_missing_fitted_feature_set_is_named(tox21_challenge_run, tmp_path, capsys):
    results = tmp_path / "results"
    shutil.copytree(tox21_challenge_run / "results", results)
    (results / "features" / "ecfp_desc" / "fitted.joblib").unlink()
    path = tmp_path / "new.csv"
    path.write_text("sample_id,smiles\nx1,CCO\n")
    assert main(["predict", "--results", str(results), "--input", str(path), "--output", str(tmp_path / "p.csv")]) == 1
    assert str(Path("features") / "ecfp_desc" / "fitted.joblib") in capsys.readouterr().err


@pytest.mark.slow
def test_labels_call_each_assay_of_new_molecules_at_the_blends_threshold(tox21_challenge_run, tmp_path):
    """--labels on molecules: the run's id column, the 12 probabilities, then the 12 0/1 calls."""
    import json

    results = tox21_challenge_run / "results"
    score = pd.read_csv(tox21_challenge_run / "challenge-score.csv", dtype=str)
    new = tmp_path / "new.csv"
    score[score["sample_id"] != BROKEN_ROW[0]].to_csv(new, index=False)
    out = tmp_path / "calls.csv"
    assert main(["predict", "--results", str(results), "--input", str(new), "--output", str(out), "--labels",
                 "--quiet"]) == 0
    predicted = pd.read_csv(out, dtype={"sample_id": str})
    labels = [f"{a}_label" for a in TOX21_ASSAYS]
    assert list(predicted.columns) == ["sample_id", *TOX21_ASSAYS, *labels]
    blend = pd.read_parquet(results / "blend" / "test.parquet")
    assert _max_diff(predicted.drop(columns=labels), blend) < TOL
    record = json.loads((results / "blend" / "weights.json").read_text())["thresholds"]
    for assay in TOX21_ASSAYS:
        want = (blend[assay].to_numpy() >= record["targets"][assay]["threshold"]) & (assay not in record["never_called"])
        assert np.array_equal(predicted[f"{assay}_label"].to_numpy(), want.astype(int)), assay
