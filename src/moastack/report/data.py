"""Gather the report's content from the pipeline's collected outputs (no plotting, no HTML).

Every function takes loaded tables or JSON records and returns plain pandas/numpy values, so the
numbers in the report are unit-testable without rendering anything.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from moastack import io
from moastack.columns import ID_COL
from moastack.metrics import METRICS as METRIC_REGISTRY
from moastack.targets import control_rows

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------- metrics
def _fixed(decimals: int) -> Callable[[object], str]:
    def fmt(v) -> str:
        if v is None or (isinstance(v, (float, np.floating)) and math.isnan(v)):
            return "–"
        return f"{float(v):.{decimals}f}"

    return fmt


@dataclass(frozen=True)
class MetricInfo:
    """How the report names, orders and prints one metric (its direction is the metric registry's)."""

    name: str  # the config name (data.metric)
    label: str  # for people: "log loss", "ROC-AUC"
    fmt: Callable[[object], str]
    description: str  # one phrase for the page's lead paragraph

    @property
    def greater_is_better(self) -> bool:
        return METRIC_REGISTRY[self.name].greater_is_better if self.name in METRIC_REGISTRY else False

    @property
    def direction(self) -> str:
        return "higher is better" if self.greater_is_better else "lower is better"

    @property
    def arrow(self) -> str:
        return "↑" if self.greater_is_better else "↓"

    def gain(self, better: float, than: float) -> float:
        """How much ``better`` improves on ``than`` (positive: an improvement, whatever the direction)."""
        return better - than if self.greater_is_better else than - better

    def worst_first(self, values: pd.Series) -> pd.Series:
        """``values`` from the worst to the best (highest loss / lowest AUC first), NaN last."""
        return values.sort_values(ascending=self.greater_is_better, na_position="last", kind="stable")


#: config metric name -> how the report shows it (the order is the all-metrics table's)
METRICS: dict[str, MetricInfo] = {
    "log_loss": MetricInfo("log_loss", "log loss", _fixed(5), "mean column-wise binary log loss, the lish-moa metric"),
    "roc_auc": MetricInfo("roc_auc", "ROC-AUC", _fixed(4), "mean over targets of the ROC-AUC"),
    "pr_auc": MetricInfo("pr_auc", "PR-AUC (average precision)", _fixed(4),
                         "mean over targets of the average precision (PR-AUC)"),
    "mrrmse": MetricInfo("mrrmse", "MRRMSE", _fixed(4), "mean row-wise root mean squared error"),
}
#: names score.json files use for a metric other than its config name
METRIC_ALIASES = {"mean_log_loss": "log_loss", "mean_roc_auc": "roc_auc", "mean_pr_auc": "pr_auc"}


def _num(v) -> float:
    """A JSON number as float; null (None) as NaN."""
    return np.nan if v is None else float(v)


def metric_info(name: str | None) -> MetricInfo:
    """The :class:`MetricInfo` of a config or score.json metric name (missing: log loss, the old default)."""
    name = METRIC_ALIASES.get(name or "log_loss", name or "log_loss")
    if name not in METRICS:
        log.warning("report: unknown metric %r; labelled as is and taken as lower is better", name)
        return MetricInfo(name, name, _fixed(5), f"mean of {name}")
    return METRICS[name]


def run_metric(blend_score: dict, weights: dict) -> MetricInfo:
    """The run's metric: the blend score.json's, else weights.json's, else log loss."""
    return metric_info(blend_score.get("metric") or weights.get("metric"))


@dataclass
class ReportInputs:
    """Paths of everything the report reads (what the Snakemake rule declares as input)."""

    scores: list[str]  # models/{model}/score.json, one per model
    oofs: list[str]  # models/{model}/oof.parquet, beside its score.json
    metrics: list[str]  # models/{model}/seed{s}/fold{k}/metrics.json, every job
    folds: list[str]  # folds/{scheme}.parquet
    blend_weights: str
    blend_score: str
    blend_oof: str
    targets: str  # data/train_targets_scored.parquet
    train_features: str  # data/train_features.parquet (cp_type, where the task has one)
    feature_maps: list[str] = field(default_factory=list)  # report/feature_maps/{name}.png (DeepInsight)

    @classmethod
    def from_results(cls, results: str | os.PathLike) -> ReportInputs:
        """Discover the inputs in a results folder (for ``moastack report``); names missing files."""
        results = Path(results)
        scores = sorted(str(p) for p in results.glob("models/*/score.json"))
        inputs = cls(
            scores=scores,
            oofs=[str(Path(p).with_name("oof.parquet")) for p in scores],
            metrics=sorted(str(p) for p in results.glob("models/*/seed*/fold*/metrics.json")),
            folds=sorted(str(p) for p in results.glob("folds/*.parquet")),
            blend_weights=str(results / "blend" / "weights.json"),
            blend_score=str(results / "blend" / "score.json"),
            blend_oof=str(results / "blend" / "oof.parquet"),
            targets=str(results / "data" / "train_targets_scored.parquet"),
            train_features=str(results / "data" / "train_features.parquet"),
            feature_maps=sorted(str(p) for p in results.glob("report/feature_maps/*.png")),
        )
        missing = [p for p in inputs.files() if not Path(p).is_file()]
        if not scores:
            missing.insert(0, str(results / "models" / "<model>" / "score.json"))
        if missing:
            raise FileNotFoundError(f"{results}: cannot build the report; missing: {', '.join(missing)}")
        return inputs

    def files(self) -> list[str]:
        return [*self.scores, *self.oofs, *self.metrics, *self.folds, self.blend_weights, self.blend_score,
                self.blend_oof, self.targets, self.train_features, *self.feature_maps]


@dataclass
class CorrelationGroup:
    """Mean target-wise Pearson correlation between the OOF predictions of models sharing targets."""

    label: str
    matrix: pd.DataFrame  # models × models
    n_targets: int


@dataclass
class ReportData:
    summary: dict
    models: pd.DataFrame
    blend_weights: pd.DataFrame  # members × methods
    blend_methods: pd.DataFrame  # one row per method
    blend: dict
    correlations: list[CorrelationGroup]
    correlation_alone: list[str]  # models with no other model on their target set
    worst_targets: pd.DataFrame
    curves: dict[str, list[dict]]  # model -> [{seed, fold, history}]
    fold_balance: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    metric: MetricInfo = field(default_factory=lambda: METRICS["log_loss"])
    mean_correlation: pd.DataFrame = field(default_factory=pd.DataFrame)  # model, its mean r with the others
    all_metrics: pd.DataFrame = field(default_factory=pd.DataFrame)  # models (+ blend) × every metric's mean
    per_target: pd.DataFrame = field(default_factory=pd.DataFrame)  # targets × models (+ blend), run metric
    feature_maps: list[tuple[str, bytes]] = field(default_factory=list)  # (map name, PNG bytes)
    thresholds: pd.DataFrame = field(default_factory=pd.DataFrame)  # targets × threshold, F1, MCC, AUCs
    threshold_metric: str | None = None  # what the thresholds maximise (f1 | mcc); None: no thresholds


# ------------------------------------------------------------------------------------------ models
def model_table(scores: list[dict], jobs: dict[str, list[dict]], weights: dict) -> pd.DataFrame:
    """One row per model: CV (OOF) score of the run's metric, mean ± std over folds, seeds, folds, train
    time, blend weight."""
    applied = weights["methods"][weights["applied"]]["weights"]
    rows = []
    for s in scores:
        name = s["model"]
        model_jobs = jobs.get(name, [])
        epochs = [len(j.get("history") or []) for j in model_jobs]
        rows.append({
            "model": name,
            "arch": model_jobs[0].get("arch", "") if model_jobs else "",
            "fold scheme": s.get("folds_scheme", ""),
            "targets": len(s.get("per_target", {})),
            "seeds": len(s.get("seeds", [])),
            "folds": len(s.get("folds", [])),
            "cv": float(s["value"]),
            "fold mean": float(s.get("fold_mean", np.nan)),
            "fold std": float(s.get("fold_std", np.nan)),
            "epochs": float(np.mean(epochs)) if epochs and max(epochs) > 0 else np.nan,
            "train seconds": float(s.get("train_seconds", np.nan)),
            "blend weight": applied.get(name, np.nan),
        })
    return pd.DataFrame(rows)


def group_jobs(metrics: list[dict]) -> dict[str, list[dict]]:
    """Job metrics by model, each model's jobs sorted by (seed, fold)."""
    out: dict[str, list[dict]] = {}
    for m in metrics:
        out.setdefault(m["model"], []).append(m)
    return {k: sorted(v, key=lambda j: (j["seed"], j["fold"])) for k, v in out.items()}


def learning_curves(jobs: dict[str, list[dict]], models: list[str]) -> dict[str, list[dict]]:
    """Per model (in ``models`` order) the per-epoch histories of its jobs; models without any omitted."""
    curves = {}
    for name in models:
        runs = [{"seed": j["seed"], "fold": j["fold"], "history": j["history"]}
                for j in jobs.get(name, []) if j.get("history")]
        if runs:
            curves[name] = runs
    return curves


# ------------------------------------------------------------------------------------------- blend
def method_columns(metric: MetricInfo) -> list[str]:
    """The score columns of :func:`blend_tables`' per-method table: the run's metric, then the SLSQP
    objective (log loss) when the metric is another one."""
    cols = [f"OOF {metric.label}"]
    return cols if metric.name == "log_loss" else [*cols, "OOF log loss (SLSQP objective)"]


def blend_tables(
    weights: dict, score: dict, metric: MetricInfo | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Weights (members × methods), per-method OOF scores and dropped members, and the blend summary."""
    metric = metric or run_metric(score, weights)
    members, methods = weights["members"], list(weights["methods"])
    table = pd.DataFrame(
        {m: [weights["methods"][m]["weights"][x] for x in members] for m in methods}, index=members
    )
    table.index.name = "member"
    rows = []
    for m in methods:
        result = weights["methods"][m]
        row = {"method": m, "applied": m == weights["applied"]}
        values = [result.get(f"oof_{metric.name}", np.nan), result.get("oof_log_loss", np.nan)]
        row.update({c: float(v) for c, v in zip(method_columns(metric), values)})
        row["dropped"] = ", ".join(result.get("dropped", [])) or "none"
        rows.append(row)
    per_method = pd.DataFrame(rows, columns=["method", "applied", *method_columns(metric), "dropped"])
    member_scores = score.get("members", {})
    best = score.get("best_member")
    summary = {
        "value": float(score["value"]),
        "method": weights["applied"],
        "fold_scheme": weights.get("fold_scheme", score.get("folds_scheme", "")),
        "best_member": best,
        "best_member_value": member_scores.get(best),
        "member_scores": member_scores,
        "gain": (np.nan if best is None or member_scores.get(best) is None
                 else metric.gain(float(score["value"]), float(member_scores[best]))),
    }
    return table, per_method, summary


# ------------------------------------------------------------------------------------- correlation
def mean_target_correlation(preds: dict[str, np.ndarray]) -> pd.DataFrame:
    """Mean over targets of the Pearson correlation between each pair of models' predictions.

    ``preds`` maps model -> rows × targets on the same rows and targets. A target where either model's
    column is constant (correlation undefined) is skipped for that pair; NaN when none is left.
    """
    names = list(preds)
    z, varying = {}, {}
    for name, values in preds.items():
        values = np.asarray(values, dtype=np.float64)
        varying[name] = np.ptp(values, axis=0) > 0 if len(values) else np.zeros(values.shape[1], bool)
        sd = values.std(axis=0)
        z[name] = ((values - values.mean(axis=0)) / np.where(varying[name] & (sd > 0), sd, 1.0)).astype(np.float32)
    out = np.full((len(names), len(names)), np.nan)
    for i, a in enumerate(names):
        for j, b in enumerate(names[: i + 1]):
            both = varying[a] & varying[b]
            if not both.any():
                continue
            r = np.einsum("nt,nt->t", z[a][:, both], z[b][:, both], dtype=np.float64) / len(z[a])
            out[i, j] = out[j, i] = float(np.clip(r, -1.0, 1.0).mean())
    return pd.DataFrame(out, index=names, columns=names)


def correlation_groups(oofs: dict[str, pd.DataFrame], treated: pd.Series) -> tuple[list[CorrelationGroup], list[str]]:
    """Group models by target set and correlate each group's OOF predictions on treated rows only."""
    by_targets: dict[tuple[str, ...], list[str]] = {}
    for name, frame in oofs.items():
        by_targets.setdefault(tuple(c for c in frame.columns if c != ID_COL), []).append(name)
    groups, alone = [], []
    for targets, names in by_targets.items():
        if len(names) < 2:
            alone.extend(names)
            continue
        preds = {}
        for name in names:
            frame = oofs[name].set_index(ID_COL).reindex(treated.index)
            preds[name] = frame.loc[treated.to_numpy(), list(targets)].to_numpy(dtype=np.float64)
        label = f"models on the same {len(targets)} targets"
        groups.append(CorrelationGroup(label, mean_target_correlation(preds), len(targets)))
    return groups, alone


def mean_other_correlation(groups: list[CorrelationGroup]) -> pd.DataFrame:
    """Per model, the mean of its row of the correlation matrix off the diagonal (its mean correlation with
    the other models of its target set; undefined pairs skipped), least correlated first."""
    rows = []
    for group in groups:
        m = group.matrix.to_numpy(dtype=np.float64)
        for i, name in enumerate(group.matrix.index):
            others = np.delete(m[i], i)
            finite = others[np.isfinite(others)]
            rows.append({"model": name, "target set": group.label, "other models": len(others),
                         "mean r with the others": float(finite.mean()) if finite.size else np.nan})
    table = pd.DataFrame(rows, columns=["model", "target set", "other models", "mean r with the others"])
    return table.sort_values("mean r with the others", na_position="last", kind="stable").reset_index(drop=True)


# ---------------------------------------------------------------------------------------- targets
def worst_columns(metric: MetricInfo) -> tuple[str, str]:
    """The names of :func:`worst_targets`' blend and best-member score columns."""
    return f"blend {metric.label}", f"best member {metric.label}"


def target_values(score: dict, oof: pd.DataFrame, targets: pd.DataFrame) -> pd.Series:
    """The score's per-target values of the run's metric. A regression score with thousands of targets
    keeps only quantiles of them (``per_target_summary``); the report then computes each target's RMSE
    from the OOF predictions it already read."""
    names = [c for c in targets.columns if c != ID_COL]
    per_target = score.get("per_target") or {}
    if "per_target_summary" not in score and any(t in per_target for t in names):
        return pd.Series({t: _num(v) for t, v in per_target.items() if t in set(names)}, dtype=np.float64)
    from moastack.metrics import per_target_rmse

    truth = targets.set_index(ID_COL)[names]
    pred = oof.set_index(ID_COL).reindex(truth.index)[names]
    return pd.Series(per_target_rmse(truth.to_numpy(np.float64), pred.to_numpy(np.float64)), index=names)


def worst_targets(
    blend_score: dict, blend_oof: pd.DataFrame, targets: pd.DataFrame, treated: pd.Series,
    best_member: dict | None, n: int, metric: MetricInfo | None = None,
) -> pd.DataFrame:
    """The ``n`` targets where the blend's OOF score is worst (highest loss, lowest AUC), with positives and
    mean prediction; targets without a score (NaN, e.g. no AUC with one class) are left out."""
    metric = metric or metric_info(blend_score.get("metric"))
    blend_col, best_col = worst_columns(metric)
    values = metric.worst_first(target_values(blend_score, blend_oof, targets).dropna()).head(n)
    cols = list(values.index)
    truth = targets.set_index(ID_COL)[cols]
    oof = blend_oof.set_index(ID_COL).reindex(truth.index)[cols]
    rows = treated.reindex(truth.index).fillna(True).to_numpy(dtype=bool)
    table = pd.DataFrame({
        "target": cols,
        blend_col: values.to_numpy(),
        best_col: [np.nan if best_member is None else _num(best_member["per_target"].get(c)) for c in cols],
        "positives": truth.sum(axis=0).astype(int).to_numpy(),
        "positive rate": truth[rows].mean(axis=0).to_numpy(),
        "mean prediction": oof[rows].where(truth[rows].notna()).mean(axis=0).to_numpy(),  # on labelled cells
    })
    return table


def per_target_table(
    scores: list[dict], blend_score: dict, targets: pd.DataFrame, metric: MetricInfo, max_targets: int = 40,
) -> pd.DataFrame:
    """Targets × (models + blend) of the run's metric, hardest target for the blend first; empty when the
    blend scores more than ``max_targets`` targets. Models predicting none of the blend's targets are left
    out; labelled and positives count the known labels of each target."""
    names = set(targets.columns) - {ID_COL}
    blend = pd.Series({t: _num(v) for t, v in (blend_score.get("per_target") or {}).items() if t in names},
                      dtype=np.float64)
    if blend.empty or len(blend) > max_targets:
        return pd.DataFrame()
    order = list(metric.worst_first(blend).index)
    table = pd.DataFrame({"target": order})
    truth = targets.set_index(ID_COL).reindex(columns=order)
    table["labelled"] = truth.notna().sum(axis=0).to_numpy()
    table["positives"] = truth.sum(axis=0, skipna=True).to_numpy()
    for s in scores:
        values = (s.get("per_target_all") or {}).get(metric.name) or s.get("per_target") or {}
        if any(t in values for t in order):
            table[s["model"]] = [_num(values.get(t)) for t in order]
    table["blend"] = blend.reindex(order).to_numpy()
    return table


def all_metrics_table(scores: list[dict], blend_score: dict, metric: MetricInfo) -> pd.DataFrame:
    """Models and the blend × every metric's mean from their score.json ``metrics`` (the run's metric from
    ``value`` where a file lacks it); empty when no file carries ``metrics``. Columns are metric names."""
    records = [*scores, {**blend_score, "model": "blend"}]
    if not any(r.get("metrics") for r in records):
        return pd.DataFrame()
    names = list(dict.fromkeys(metric_info(k).name for r in records for k in r.get("metrics") or {}))
    names = [n for n in METRICS if n in names] + [n for n in names if n not in METRICS]
    rows = []
    for r in records:
        values = {metric_info(k).name: v for k, v in (r.get("metrics") or {}).items()}
        values.setdefault(metric.name, r.get("value", np.nan))
        rows.append({"model": r["model"], **{n: _num(values.get(n)) for n in names}})
    return pd.DataFrame(rows, columns=["model", *names])


# ------------------------------------------------------------------------------------- thresholds
#: :func:`thresholds_table`'s columns after the target (labels for people)
THRESHOLD_COLUMNS = {"labelled": "labelled", "positives": "positives", "roc_auc": "ROC-AUC", "pr_auc": "PR-AUC",
                     "f1": "F1", "mcc": "MCC", "precision": "precision", "recall": "recall",
                     "threshold": "threshold"}


def thresholds_table(weights: dict) -> tuple[pd.DataFrame, str | None]:
    """The blend's per-target decision thresholds (``weights.json`` ``thresholds``) with F1, MCC, precision
    and recall there and the OOF ROC-AUC / PR-AUC, best target first by the metric the thresholds maximise
    (targets without a positive last); empty, with metric None, for a run without thresholds."""
    from moastack.thresholds import threshold_table

    record = weights.get("thresholds")
    if not record or not record.get("targets"):
        return pd.DataFrame(), None
    metric = record["metric"]
    table = threshold_table(record).sort_values(metric, ascending=False, na_position="last", kind="stable")
    table = table[["target", *THRESHOLD_COLUMNS]].rename(columns=THRESHOLD_COLUMNS)
    return table.reset_index(drop=True), metric


# ------------------------------------------------------------------------------------------ folds
def fold_balance(folds: dict[str, pd.DataFrame], targets: pd.DataFrame, is_control: pd.Series) -> pd.DataFrame:
    """Per scheme and fold: rows, controls, positive labels and targets without a positive."""
    truth = targets.set_index(ID_COL)
    rows = []
    for scheme, table in folds.items():
        fold = table.set_index(ID_COL)["fold"].reindex(truth.index)
        for k in sorted(fold.dropna().unique()):
            in_fold = (fold == k).to_numpy()
            y = truth.to_numpy()[in_fold]
            rows.append({
                "scheme": scheme,
                "fold": int(k),
                "rows": int(in_fold.sum()),
                "controls": int(is_control.reindex(truth.index).to_numpy()[in_fold].sum()),
                "positives": int(np.nansum(y)),
                "targets without positive": int((np.nansum(y, axis=0) == 0).sum()),
            })
    return pd.DataFrame(rows, columns=["scheme", "fold", "rows", "controls", "positives",
                                       "targets without positive"])


# -------------------------------------------------------------------------------------------- all
def read_feature_maps(paths: list[str]) -> list[tuple[str, bytes]]:
    """(name, PNG bytes) of each DeepInsight feature-map picture; the name is the file's stem."""
    maps = []
    for path in paths:
        png = Path(path).read_bytes()
        if png[:8] != b"\x89PNG\r\n\x1a\n":
            raise ValueError(f"report: {path} is not a PNG file")
        maps.append((Path(path).stem, png))
    return maps


def gather(inputs: ReportInputs, worst_n: int = 20) -> ReportData:
    """Read every input once and compute the report's tables."""
    scores = [io.read_json(p) for p in inputs.scores]
    names = [s["model"] for s in scores]
    oofs = {s["model"]: io.read_parquet(p) for s, p in zip(scores, inputs.oofs)}
    jobs = group_jobs([io.read_json(p) for p in inputs.metrics])
    weights, blend_score = io.read_json(inputs.blend_weights), io.read_json(inputs.blend_score)
    targets = io.read_parquet(inputs.targets)
    cp = io.read_present_columns(inputs.train_features, [ID_COL, "cp_type"])
    is_control = pd.Series(control_rows(cp), index=cp[ID_COL].to_numpy())
    treated = ~is_control
    folds = {Path(p).stem: io.read_parquet(p) for p in inputs.folds}

    metric = run_metric(blend_score, weights)
    weights_table, methods_table, blend = blend_tables(weights, blend_score, metric)
    best = blend["best_member"]
    best_score = next((s for s in scores if s["model"] == best), None)
    groups, alone = correlation_groups(oofs, treated)
    thresholds, threshold_metric = thresholds_table(weights)
    summary = {
        "n_train": int(len(cp)),
        "n_controls": int(is_control.sum()),
        "n_targets": int(targets.shape[1] - 1),
        "n_models": len(names),
        "n_jobs": sum(len(v) for v in jobs.values()),
        "blend_value": blend["value"],
        "blend_method": blend["method"],
        "blend_scheme": blend["fold_scheme"],
        "blend_members": list(weights["members"]),
        "metric": metric.name,
    }
    return ReportData(
        summary=summary,
        models=model_table(scores, jobs, weights),
        blend_weights=weights_table,
        blend_methods=methods_table,
        blend=blend,
        correlations=groups,
        correlation_alone=alone,
        worst_targets=worst_targets(blend_score, io.read_parquet(inputs.blend_oof), targets, treated,
                                    best_score, worst_n, metric),
        curves=learning_curves(jobs, names),
        fold_balance=fold_balance(folds, targets, is_control),
        metric=metric,
        mean_correlation=mean_other_correlation(groups),
        all_metrics=all_metrics_table(scores, blend_score, metric),
        per_target=per_target_table(scores, blend_score, targets, metric),
        feature_maps=read_feature_maps(inputs.feature_maps),
        thresholds=thresholds,
        threshold_metric=threshold_metric,
    )
