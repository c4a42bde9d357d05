"""The HTML report: its numbers (unit tests) and the real rule on the tiny pipeline."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import planned_jobs, run_snakemake, tiny_config, write_config

from moastack.report.data import (
    correlation_groups,
    fold_balance,
    mean_target_correlation,
    model_table,
)

FIGURES = ("correlation", "worst_targets", "learning_curves", "fold_balance")


# ---------------------------------------------------------------------------------------- unit tests
def test_mean_target_correlation_skips_constant_columns():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 3))
    b = a.copy()
    b[:, 1] = -a[:, 1]  # perfectly anti-correlated on target 1
    c = a.copy()
    c[:, 2] = 0.5  # constant: target 2 is skipped for every pair with c
    corr = mean_target_correlation({"a": a, "b": b, "c": c})
    assert corr.loc["a", "a"] == pytest.approx(1.0)
    assert corr.loc["a", "b"] == pytest.approx((1 - 1 + 1) / 3)
    assert corr.loc["a", "c"] == pytest.approx(1.0)  # targets 0 and 1 only
    assert corr.loc["b", "c"] == pytest.approx(0.0)  # (1 + -1) / 2
    assert (corr.to_numpy() == corr.to_numpy().T).all()
    const = mean_target_correlation({"x": np.ones((10, 2)), "y": rng.normal(size=(10, 2))})
    assert np.isnan(const.loc["x", "y"]) and np.isnan(const.loc["x", "x"])


def test_correlation_excludes_controls_and_groups_by_target_set():
    rng = np.random.default_rng(1)
    ids = [f"id_{i}" for i in range(100)]
    treated = pd.Series(np.arange(100) >= 10, index=ids)
    base = rng.random((100, 2))
    other = base.copy()
    other[:10] = rng.random((10, 2))  # differs on control rows only
    frame = lambda v, cols=("t1", "t2"): pd.DataFrame(v, columns=list(cols)).assign(sig_id=ids)  # noqa: E731
    oofs = {"m1": frame(base), "m2": frame(other), "ns": frame(base, ("n1", "n2"))}
    groups, alone = correlation_groups(oofs, treated)
    assert alone == ["ns"] and len(groups) == 1
    assert groups[0].matrix.loc["m1", "m2"] == pytest.approx(1.0)


def test_fold_balance_counts_rows_controls_and_positives():
    ids = [f"id_{i}" for i in range(6)]
    targets = pd.DataFrame({"sig_id": ids, "a": [1, 0, 0, 1, 0, 0], "b": [0, 0, 0, 1, 0, 0]})
    folds = pd.DataFrame({"sig_id": ids[::-1], "fold": [0, 0, 0, 1, 1, 1]})  # any row order
    is_control = pd.Series([False, False, False, False, True, True], index=ids)
    table = fold_balance({"s": folds}, targets, is_control).set_index("fold")
    assert table.loc[0, "rows"] == 3 and table.loc[0, "controls"] == 2 and table.loc[0, "positives"] == 2
    assert table.loc[1, "positives"] == 1 and table.loc[1, "targets without positive"] == 1


def test_model_table_lists_every_model_with_weights():
    scores = [
        {"model": "a", "value": 0.02, "folds_scheme": "s", "seeds": [0, 1], "folds": [0, 1, 2],
         "fold_mean": 0.021, "fold_std": 0.001, "train_seconds": 5.0, "per_target": {"t": 0.02}},
        {"model": "b", "value": 0.03, "folds_scheme": "d", "seeds": [0], "folds": [0, 1],
         "fold_mean": 0.03, "fold_std": 0.002, "train_seconds": 1.0, "per_target": {"t": 0.03}},
    ]
    jobs = {"a": [{"arch": "simple_nn", "history": [{"epoch": 1}, {"epoch": 2}]}]}
    weights = {"applied": "slsqp", "methods": {"slsqp": {"weights": {"a": 1.0}}}}
    table = model_table(scores, jobs, weights).set_index("model")
    assert list(table.index) == ["a", "b"]
    assert table.loc["a", "seeds"] == 2 and table.loc["a", "folds"] == 3 and table.loc["a", "epochs"] == 2
    assert table.loc["a", "blend weight"] == 1.0 and np.isnan(table.loc["b", "blend weight"])


# ---------------------------------------------------------------------------------- the real rule
@pytest.fixture()
def report_run(pipeline_run, tmp_path):
    """A copy of the tiny pipeline with its report rebuilt by the report rule alone."""
    workdir = tmp_path / "run"
    shutil.copytree(pipeline_run, workdir)
    shutil.rmtree(workdir / "results" / "report", ignore_errors=True)
    run_snakemake(workdir, "results/report/index.html")
    return workdir


@pytest.mark.slow
def test_report_renders_every_model_the_heatmap_and_the_weights(report_run):
    results = report_run / "results"
    page = (results / "report" / "index.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    models = sorted(p.name for p in (results / "models").iterdir() if (p / "score.json").exists())
    assert models == ["nn", "nn_drug", "prior"]
    models_section = re.search(r'<section id="models">(.*?)</section>', page, re.S).group(1)
    for model in models:
        assert f">{model}</td>" in models_section, model
    # self-contained: every figure embedded, nothing loaded from elsewhere
    images = re.findall(r'<img src="data:image/png;base64,', page)
    assert len(images) == len(FIGURES)
    assert "http://" not in page and "https://" not in page
    for name in FIGURES:
        assert (results / "report" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    assert 'id="correlation"' in page and "Pearson" in page
    # the blend weights, per member and method, and the blend score
    weights = json.loads((results / "blend" / "weights.json").read_text())
    blend_section = re.search(r'<section id="blend">(.*?)</section>', page, re.S).group(1)
    for method, result in weights["methods"].items():
        assert f">{method}</th>" in blend_section
        for member, w in result["weights"].items():
            assert f">{member}</td>" in blend_section and f">{w:.3f}</td>" in blend_section
    score = json.loads((results / "blend" / "score.json").read_text())
    assert f"{score['value']:.5f}" in blend_section
    # worst targets (default 20) and learning curves of the iterative models
    targets_section = re.search(r'<section id="targets">(.*?)</section>', page, re.S).group(1)
    assert targets_section.count("<tr>") == 1 + 20
    assert "No per-epoch history" in page and "prior" in page
    # the blend's decision thresholds, one row per target (more than 40: best and worst rows, the rest folded)
    thresholds = re.search(r'<section id="thresholds">(.*?)</section>', page, re.S).group(1)
    assert ">F1</th>" in thresholds and ">MCC</th>" in thresholds and ">threshold</th>" in thresholds
    for target in weights["thresholds"]["targets"]:
        assert f">{target}</td>" in thresholds, target
    assert (results / "logs" / "report.log").exists() and (results / "benchmarks" / "report.tsv").exists()


@pytest.mark.slow
def test_report_config_edit_reruns_only_the_report(report_run):
    config = tiny_config()
    config["report"] = {"worst_targets": 5}
    write_config(report_run, config)
    assert planned_jobs(report_run) == {("report", "")}
    run_snakemake(report_run)
    page = (report_run / "results" / "report" / "index.html").read_text()
    targets_section = re.search(r'<section id="targets">(.*?)</section>', page, re.S).group(1)
    assert targets_section.count("<tr>") == 1 + 5


@pytest.mark.slow
def test_snakemake_report_bundles_the_marked_outputs(report_run):
    run_snakemake(report_run, "--report", str(report_run / "bundle.html"))
    bundle = (report_run / "bundle.html").read_text()
    for name in ("index.html", *(f"{n}.png" for n in FIGURES)):
        assert name in bundle


@pytest.mark.slow
def test_report_command_builds_the_same_page_from_a_results_folder(report_run, tmp_path):
    from moastack.cli import main

    out = tmp_path / "cli_report"
    assert main(["report", "--results", str(report_run / "results"), "--output-dir", str(out)]) == 0
    page = (out / "index.html").read_text()
    for model in ("prior", "nn", "nn_drug"):
        assert f">{model}</td>" in page
    assert page.count("data:image/png;base64,") == len(FIGURES)
    assert sorted(p.name for p in out.iterdir()) == sorted(["index.html", *(f"{n}.png" for n in FIGURES)])


def test_report_command_names_missing_inputs(tmp_path, capsys):
    from moastack.cli import main

    assert main(["report", "--results", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "blend/weights.json" in err and "train_targets_scored.parquet" in err
