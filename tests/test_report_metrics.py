"""The report labels, orders and compares scores by the run's metric (hand-built inputs, no pipeline)."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pandas as pd
import pytest

from moastack.report import ReportInputs, build_report, default_outputs
from moastack.report.data import (
    CorrelationGroup,
    mean_other_correlation,
    metric_info,
    per_target_table,
    worst_targets,
)
from moastack.report.figures import placeholder, to_png
from moastack.report.html import THRESHOLDS_EDGE, _thresholds_section
from moastack.thresholds import decision_thresholds

N = 40
TARGETS = ["t1", "t2", "t3"]


def section(page: str, sid: str) -> str:
    match = re.search(rf'<section id="{sid}">(.*?)</section>', page, re.S)
    assert match, f"no section {sid}"
    return match.group(1)


def write_run(root, metric: str, *, all_metrics: bool, controls: int = 0, feature_maps=()) -> ReportInputs:
    """A results folder with two models (a, b) and their blend scored by ``metric``."""
    rng = np.random.default_rng(0)
    ids = [f"id_{i:03d}" for i in range(N)]
    y = (rng.random((N, 3)) < 0.3).astype(np.float64)
    y[:, 2] = 0.0  # t3 has one class: no AUC
    y[rng.random((N, 3)) < 0.2] = np.nan  # unlabelled cells
    y[:controls] = 0.0
    targets = pd.DataFrame(y, columns=TARGETS).assign(sig_id=ids)[["sig_id", *TARGETS]]
    features = pd.DataFrame({"sig_id": ids, "f0": rng.normal(size=N)})
    if controls:
        features["cp_type"] = ["ctl_vehicle"] * controls + ["trt_cp"] * (N - controls)
    oofs = {m: pd.DataFrame(rng.random((N, 3)), columns=TARGETS).assign(sig_id=ids)[["sig_id", *TARGETS]]
            for m in ("a", "b")}
    oofs["blend"] = oofs["a"].copy()
    oofs["blend"][TARGETS] = 0.7 * oofs["a"][TARGETS].to_numpy() + 0.3 * oofs["b"][TARGETS].to_numpy()
    if controls:
        for frame in oofs.values():
            frame.loc[:controls - 1, TARGETS] = 0.0

    if metric == "roc_auc":
        per_target = {"a": [0.85, 0.62, np.nan], "b": [0.80, 0.55, np.nan], "blend": [0.90, 0.60, np.nan]}
        name = "roc_auc"
    else:
        per_target = {"a": [0.02, 0.05, 0.01], "b": [0.03, 0.06, 0.01], "blend": [0.015, 0.045, 0.012]}
        name = "mean_log_loss"
    value = {m: float(np.nanmean(v)) for m, v in per_target.items()}
    other = {"a": {"log_loss": 0.41, "roc_auc": value["a"], "pr_auc": 0.33},
             "b": {"log_loss": 0.47, "roc_auc": value["b"], "pr_auc": 0.29},
             "blend": {"log_loss": 0.40, "roc_auc": value["blend"], "pr_auc": 0.35}}

    def score(model: str, **extra) -> dict:
        record = {"metric": name, "value": value[model], "per_target": dict(zip(TARGETS, per_target[model])),
                  "n": N, "model": model, "folds_scheme": "s", **extra}
        if all_metrics:
            record["metrics"] = other[model]
            record["per_target_all"] = {name: dict(zip(TARGETS, per_target[model]))}
        return record

    (root / "data").mkdir(parents=True)
    targets.to_parquet(root / "data" / "train_targets_scored.parquet", index=False)
    features.to_parquet(root / "data" / "train_features.parquet", index=False)
    (root / "folds").mkdir()
    pd.DataFrame({"sig_id": ids, "fold": np.arange(N) % 2}).to_parquet(root / "folds" / "s.parquet", index=False)
    for m in ("a", "b"):
        (root / "models" / m).mkdir(parents=True)
        oofs[m].to_parquet(root / "models" / m / "oof.parquet", index=False)
        rec = score(m, seeds=[0], folds=[0, 1], fold_mean=value[m], fold_std=0.01, train_seconds=1.0)
        (root / "models" / m / "score.json").write_text(json.dumps(rec))
    (root / "blend").mkdir()
    oofs["blend"].to_parquet(root / "blend" / "oof.parquet", index=False)
    best = max if metric == "roc_auc" else min
    blend = score("blend", method="slsqp", members={"a": value["a"], "b": value["b"]},
                  best_member=best(("a", "b"), key=value.get))
    (root / "blend" / "score.json").write_text(json.dumps(blend))
    methods = {"slsqp": {"weights": {"a": 0.7, "b": 0.3}, "oof_log_loss": 0.40, "dropped": []},
               "optuna_tpe": {"weights": {"a": 0.6, "b": 0.4}, "oof_log_loss": 0.41, "dropped": []}}
    weights = {"fold_scheme": "s", "applied": "slsqp", "members": ["a", "b"], "methods": methods}
    if metric == "roc_auc":
        weights["metric"] = "roc_auc"
        weights["thresholds"] = decision_thresholds(y, oofs["blend"][TARGETS].to_numpy(), TARGETS, "mcc")
        methods["slsqp"]["oof_roc_auc"] = value["blend"]
        methods["optuna_tpe"]["oof_roc_auc"] = 0.7444
    (root / "blend" / "weights.json").write_text(json.dumps(weights))
    if feature_maps:
        (root / "report" / "feature_maps").mkdir(parents=True)
        for fmap, png in feature_maps:
            (root / "report" / "feature_maps" / f"{fmap}.png").write_bytes(png)
    return ReportInputs.from_results(root)


@pytest.fixture(scope="module")
def auc_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("auc")
    inputs = write_run(root / "results", "roc_auc", all_metrics=True)
    outputs = default_outputs(root / "out")
    data = build_report(inputs, outputs)
    return inputs, data, (root / "out" / "index.html").read_text()


@pytest.fixture(scope="module")
def loss_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("loss")
    inputs = write_run(root / "results", "log_loss", all_metrics=False, controls=6)
    data = build_report(inputs, default_outputs(root / "out"))
    return inputs, data, (root / "out" / "index.html").read_text()


# ------------------------------------------------------------------------------------- the mapping
def test_metric_mapping_names_and_directions():
    assert metric_info("mean_log_loss") is metric_info("log_loss") is metric_info(None)
    assert metric_info("log_loss").label == "log loss" and not metric_info("log_loss").greater_is_better
    assert metric_info("roc_auc").label == "ROC-AUC" and metric_info("roc_auc").direction == "higher is better"
    assert metric_info("pr_auc").label == "PR-AUC (average precision)" and metric_info("pr_auc").greater_is_better
    assert metric_info("mrrmse").label == "MRRMSE" and metric_info("mrrmse").direction == "lower is better"
    assert metric_info("roc_auc").fmt(float("nan")) == "–" and metric_info("log_loss").fmt(0.1) == "0.10000"
    auc, loss = metric_info("roc_auc"), metric_info("log_loss")
    assert auc.gain(0.8, 0.7) == pytest.approx(0.1) and loss.gain(0.02, 0.03) == pytest.approx(0.01)


# ------------------------------------------------------------------------------------ a ROC-AUC run
def test_auc_run_labels_every_score_by_its_metric(auc_report):
    _, data, page = auc_report
    assert data.metric.name == "roc_auc"
    lead = re.search(r'<p class="lead">(.*?)</p>', page, re.S).group(1)
    assert "ROC-AUC" in lead and "higher is better" in lead and "lish-moa" not in lead
    assert "blend OOF ROC-AUC (higher is better)" in page
    models = section(page, "models")
    assert ">OOF ROC-AUC</th>" in models and "log loss" not in models and "higher is better" in models
    assert ">0.7350</td>" in models  # a's CV, 4 decimals
    blend = section(page, "blend")
    assert "OOF ROC-AUC <b>0.7500</b> (higher is better)" in blend
    assert ">OOF ROC-AUC</th>" in blend and ">OOF log loss (SLSQP objective)</th>" in blend
    assert ">0.7444</td>" in blend
    # best member a (0.735, the highest): the blend (0.75) is better by 0.015 although its value is larger
    assert "<b>a</b>, scores 0.7350; the blend improves on it by 0.0150" in blend
    targets = section(page, "targets")
    assert "log loss" not in targets and "lowest" in targets and ">blend ROC-AUC</th>" in targets


def test_auc_run_worst_targets_are_the_lowest_auc(auc_report):
    _, data, _ = auc_report
    table = data.worst_targets
    assert list(table["target"]) == ["t2", "t1"]  # t3 has no AUC (one class): left out
    assert list(table["blend ROC-AUC"]) == [0.60, 0.90]
    assert list(table["best member ROC-AUC"]) == [0.62, 0.85]


def test_auc_run_all_metrics_and_per_target_tables(auc_report):
    inputs, data, page = auc_report
    assert list(data.all_metrics["model"]) == ["a", "b", "blend"]
    assert list(data.all_metrics.columns) == ["model", "log_loss", "roc_auc", "pr_auc"]
    assert data.all_metrics.set_index("model").loc["b", "pr_auc"] == 0.29
    metrics = section(page, "metrics")
    assert "<h2>All metrics</h2>" in page and '<a href="#metrics">All metrics</a>' in page
    for header in ("log loss ↓", "ROC-AUC ↑ (run metric)", "PR-AUC (average precision) ↑"):
        assert f">{header}</th>" in metrics
    assert ">0.47000</td>" in metrics and ">0.2900</td>" in metrics  # b's log loss and PR-AUC
    # per target: hardest for the blend first (lowest AUC), no-AUC target last
    table = data.per_target
    assert list(table["target"]) == ["t2", "t1", "t3"]
    assert list(table.columns) == ["target", "labelled", "positives", "a", "b", "blend"]
    assert table["a"].iloc[0] == 0.62 and np.isnan(table["blend"].iloc[2])
    truth = pd.read_parquet(inputs.targets).set_index("sig_id")
    assert list(table["labelled"]) == [int(truth[t].notna().sum()) for t in ("t2", "t1", "t3")]
    assert list(table["positives"]) == [truth[t].sum() for t in ("t2", "t1", "t3")]
    per_target = metrics.split("ROC-AUC per target", 1)[1]
    assert per_target.index(">t2</td>") < per_target.index(">t1</td>") < per_target.index(">t3</td>")


def test_auc_run_shows_each_targets_threshold_with_f1_and_mcc(auc_report):
    inputs, data, page = auc_report
    stored = json.loads(open(inputs.blend_weights).read())["thresholds"]["targets"]
    assert data.threshold_metric == "mcc"
    table = data.thresholds
    assert list(table.columns) == ["target", "labelled", "positives", "ROC-AUC", "PR-AUC", "F1", "MCC",
                                   "precision", "recall", "threshold"]
    order = sorted(("t1", "t2"), key=lambda t: -stored[t]["mcc"]) + ["t3"]  # best MCC first, no positive last
    assert list(table["target"]) == order
    assert '<a href="#thresholds">Thresholds</a>' in page
    html = section(page, "thresholds")
    assert "MCC (Matthews correlation coefficient)" in html and "optimistic" in html and "--labels" in html
    for header in ("ROC-AUC", "PR-AUC", "F1", "MCC", "threshold"):
        assert f">{header}</th>" in html
    for t in ("t1", "t2"):
        row = re.search(rf"<tr><td class=\"text\">{t}</td>(.*?)</tr>", html).group(1)
        for key in ("roc_auc", "pr_auc", "f1", "mcc"):
            assert f">{stored[t][key]:.4f}</td>" in row, (t, key)
        assert f">{stored[t]['threshold']:.4g}</td>" in row
    assert html.index(f">{order[0]}</td>") < html.index(f">{order[1]}</td>") < html.index(">t3</td>")
    assert "1 target without a labelled positive (threshold 1.0, never called, no F1/MCC): t3" in html
    assert "<details>" not in html  # 3 targets: one table


def test_many_targets_show_the_best_and_worst_rows_and_fold_the_rest():
    from types import SimpleNamespace

    from moastack.report.data import thresholds_table

    rng = np.random.default_rng(1)
    y = (rng.random((300, 60)) < 0.2).astype(float)
    p = np.clip(y * rng.random(60) + rng.random((300, 60)), 0, 1)
    names = [f"target_{j:02d}" for j in range(60)]
    table, metric = thresholds_table({"thresholds": decision_thresholds(y, p, names, "f1")})
    assert metric == "f1" and table["F1"].is_monotonic_decreasing
    html = _thresholds_section(SimpleNamespace(thresholds=table, threshold_metric=metric))
    assert f"<h3>Best {THRESHOLDS_EDGE} targets by F1</h3>" in html and "<details><summary>All 60 targets" in html
    assert html.count("<tr>") == 3 + 2 * THRESHOLDS_EDGE + 60  # header rows, best, worst, the folded table
    best, worst = table["target"].iloc[0], table["target"].iloc[-1]
    shown = html.split("<details>")[0]
    assert shown.index(f">{best}</td>") < shown.index("Worst") < shown.index(f">{worst}</td>")
    # few targets with a positive among many (the tiny lish-moa run): those in one table, no best/worst overlap
    y[:, 5:] = 0.0
    table, _ = thresholds_table({"thresholds": decision_thresholds(y, p, names, "f1")})
    html = _thresholds_section(SimpleNamespace(thresholds=table, threshold_metric="f1"))
    assert "<h3>The 5 targets with a labelled positive</h3>" in html and "<h3>Best" not in html
    assert html.count("<tr>") == 2 + 5 + 60 and "55 targets without a labelled positive" in html
    empty, no_metric = thresholds_table({"methods": {}})  # a run without thresholds
    assert empty.empty and no_metric is None


def test_auc_run_without_controls_says_nothing_of_them(auc_report):
    _, data, page = auc_report
    assert data.summary["n_controls"] == 0
    assert "treated" not in page and "controls" not in page.split("<nav>")[0]
    assert "controls</th>" not in section(page, "folds")


def test_mean_correlation_with_the_other_models_matches_a_hand_computation(auc_report):
    inputs, data, page = auc_report
    a, b = (pd.read_parquet(p).set_index("sig_id")[TARGETS].to_numpy() for p in inputs.oofs)
    hand = np.mean([np.corrcoef(a[:, t], b[:, t])[0, 1] for t in range(3)])
    table = data.mean_correlation.set_index("model")
    assert table.loc["a", "mean r with the others"] == pytest.approx(hand, abs=1e-6)
    assert table.loc["b", "mean r with the others"] == pytest.approx(hand, abs=1e-6)
    assert f">{hand:.3f}</td>" in section(page, "correlation")
    assert "Mean correlation with the other models" in page


def test_mean_other_correlation_averages_each_row_off_the_diagonal():
    m = pd.DataFrame([[1.0, 0.2, 0.8], [0.2, 1.0, np.nan], [0.8, np.nan, 1.0]],
                     index=list("xyz"), columns=list("xyz"))
    table = mean_other_correlation([CorrelationGroup("g", m, 5)]).set_index("model")
    assert table.loc["x", "mean r with the others"] == pytest.approx(0.5)
    assert table.loc["y", "mean r with the others"] == pytest.approx(0.2)  # the undefined pair is skipped
    assert table.loc["z", "mean r with the others"] == pytest.approx(0.8)
    assert list(table.index) == ["y", "x", "z"]  # least correlated first
    assert (table["other models"] == 2).all()


def test_worst_targets_follow_the_direction():
    ids = ["r0", "r1"]
    targets = pd.DataFrame({"sig_id": ids, "p": [0, 1], "q": [1, 0], "r": [0, 1]})
    oof = targets.astype({"p": float, "q": float, "r": float})
    treated = pd.Series([True, True], index=ids)
    score = {"per_target": {"p": 0.3, "q": 0.9, "r": 0.1}}
    auc = worst_targets({**score, "metric": "roc_auc"}, oof, targets, treated, None, 2)
    loss = worst_targets({**score, "metric": "mean_log_loss"}, oof, targets, treated, None, 2)
    assert list(auc["target"]) == ["r", "p"] and "blend ROC-AUC" in auc.columns
    assert list(loss["target"]) == ["q", "p"] and "blend log loss" in loss.columns


def test_per_target_table_only_for_few_targets():
    many = {f"t{i}": 0.5 for i in range(41)}
    targets = pd.DataFrame({"sig_id": ["r0"], **{t: [1.0] for t in many}})
    assert per_target_table([], {"per_target": many}, targets, metric_info("roc_auc")).empty
    few = dict(list(many.items())[:40])
    assert len(per_target_table([], {"per_target": few}, targets, metric_info("roc_auc"))) == 40


# ------------------------------------------------------------------------------------ a log-loss run
def test_log_loss_run_still_says_log_loss(loss_report):
    _, data, page = loss_report
    assert data.metric.name == "log_loss"
    lead = re.search(r'<p class="lead">(.*?)</p>', page, re.S).group(1)
    assert "lish-moa metric (mean column-wise binary log loss, lower is better)" in lead
    assert "blend OOF log loss (lower is better)" in page
    assert ">OOF log loss</th>" in section(page, "models") and "ROC-AUC" not in page
    blend = section(page, "blend")
    assert "OOF log loss <b>0.02400</b> (lower is better)" in blend
    assert "<b>a</b>, scores 0.02667; the blend improves on it by 0.00267" in blend
    assert "SLSQP objective" not in blend
    assert list(data.worst_targets["target"]) == ["t2", "t1", "t3"]  # highest loss first
    assert "highest" in section(page, "targets")
    # no "metrics" in the score files: no all-metrics table, only the per-target one
    assert data.all_metrics.empty and "<h2>All metrics</h2>" not in page
    assert "<h2>log loss per target</h2>" in page
    assert list(data.per_target["target"]) == ["t2", "t1", "t3"]


def test_a_run_without_thresholds_has_no_thresholds_section(loss_report):
    _, data, page = loss_report
    assert data.thresholds.empty and data.threshold_metric is None
    assert 'id="thresholds"' not in page and "#thresholds" not in page


def test_log_loss_run_with_controls_keeps_the_treated_wording(loss_report):
    _, data, page = loss_report
    assert data.summary["n_controls"] == 6
    assert "40 (6 controls)" in page
    assert "on treated rows" in section(page, "correlation") and "over treated rows" in section(page, "targets")
    assert "controls</th>" in section(page, "folds")


# ------------------------------------------------------------------------------------ feature maps
def test_feature_maps_are_embedded_when_given(tmp_path):
    png = to_png(placeholder("pixels"))
    inputs = write_run(tmp_path / "results", "roc_auc", all_metrics=True, feature_maps=[("tsne_32", png)])
    assert [p.rsplit("/", 1)[1] for p in inputs.feature_maps] == ["tsne_32.png"]
    out = tmp_path / "out"
    data = build_report(inputs, default_outputs(out))
    page = (out / "index.html").read_text()
    maps = section(page, "feature-maps")
    assert "<h2>DeepInsight feature maps</h2>" in maps and "tsne_32" in maps
    assert base64.b64encode(png).decode("ascii") in maps
    assert page.count("data:image/png;base64,") == 4 + 1
    assert data.feature_maps == [("tsne_32", png)]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["index.html", "correlation.png", "worst_targets.png", "learning_curves.png", "fold_balance.png"])


def test_no_feature_map_section_without_maps(auc_report):
    inputs, data, page = auc_report
    assert inputs.feature_maps == [] and data.feature_maps == []
    assert 'id="feature-maps"' not in page and "DeepInsight" not in page
    assert page.count("data:image/png;base64,") == 4


def test_feature_maps_must_be_png(tmp_path):
    inputs = write_run(tmp_path / "results", "roc_auc", all_metrics=True, feature_maps=[("bad", b"not a png")])
    with pytest.raises(ValueError, match="not a PNG"):
        build_report(inputs, default_outputs(tmp_path / "out"))


def test_worst_targets_of_a_wide_regression_score_come_from_the_oof():
    """Beyond 2,000 targets a regression score.json keeps quantiles only; the report computes each
    target's RMSE from the OOF table instead of failing on the quantile keys."""
    import numpy as np
    import pandas as pd

    from moastack.report.data import metric_info, worst_targets

    ids = [f"r{i}" for i in range(4)]
    truth = pd.DataFrame({"sig_id": ids, "g0": [0.0, 1.0, 2.0, 3.0], "g1": [1.0, 1.0, 1.0, 1.0]})
    oof = pd.DataFrame({"sig_id": ids, "g0": [0.0, 1.0, 2.0, 3.0], "g1": [3.0, 1.0, 1.0, -1.0]})
    score = {"metric": "mrrmse", "per_target": {"q00": 0.0, "q100": 1.4}, "per_target_summary": "quantiles"}
    table = worst_targets(score, oof, truth, pd.Series(True, index=ids), None, 5, metric_info("mrrmse"))
    assert list(table["target"]) == ["g1", "g0"]
    assert table.iloc[0, 1] == pytest.approx(np.sqrt(8 / 4))
    assert table.iloc[1, 1] == pytest.approx(0.0)
