"""Gather the report's content from the pipeline's collected outputs (no plotting, no HTML).

Every function takes loaded tables or JSON records and returns plain pandas/numpy values, so the
numbers in the report are unit-testable without rendering anything.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from moastack import io
from moastack.data.columns import ID_COL
from moastack.targets import control_mask


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
    train_features: str  # data/train_features.parquet (cp_type)

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
        )
        missing = [p for p in inputs.files() if not Path(p).is_file()]
        if not scores:
            missing.insert(0, str(results / "models" / "<model>" / "score.json"))
        if missing:
            raise FileNotFoundError(f"{results}: cannot build the report; missing: {', '.join(missing)}")
        return inputs

    def files(self) -> list[str]:
        return [*self.scores, *self.oofs, *self.metrics, *self.folds, self.blend_weights, self.blend_score,
                self.blend_oof, self.targets, self.train_features]


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


# ------------------------------------------------------------------------------------------ models
def model_table(scores: list[dict], jobs: dict[str, list[dict]], weights: dict) -> pd.DataFrame:
    """One row per model: CV (OOF) log loss, mean ± std over folds, seeds, folds, train time, weight."""
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
def blend_tables(weights: dict, score: dict) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Weights (members × methods), per-method OOF loss and dropped members, and the blend summary."""
    members, methods = weights["members"], list(weights["methods"])
    table = pd.DataFrame(
        {m: [weights["methods"][m]["weights"][x] for x in members] for m in methods}, index=members
    )
    table.index.name = "member"
    per_method = pd.DataFrame([
        {"method": m, "applied": m == weights["applied"], "oof log loss": weights["methods"][m]["oof_log_loss"],
         "dropped": ", ".join(weights["methods"][m].get("dropped", [])) or "none"}
        for m in methods
    ])
    member_scores = score.get("members", {})
    best = score.get("best_member")
    summary = {
        "value": float(score["value"]),
        "method": weights["applied"],
        "fold_scheme": weights.get("fold_scheme", score.get("folds_scheme", "")),
        "best_member": best,
        "best_member_value": member_scores.get(best),
        "member_scores": member_scores,
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


# ---------------------------------------------------------------------------------------- targets
def worst_targets(
    blend_score: dict, blend_oof: pd.DataFrame, targets: pd.DataFrame, treated: pd.Series,
    best_member: dict | None, n: int,
) -> pd.DataFrame:
    """The ``n`` targets where the blend's OOF log loss is highest, with positives and mean prediction."""
    losses = pd.Series(blend_score["per_target"], dtype=np.float64).dropna().sort_values(ascending=False).head(n)
    cols = list(losses.index)
    truth = targets.set_index(ID_COL)[cols]
    oof = blend_oof.set_index(ID_COL).reindex(truth.index)[cols]
    rows = treated.reindex(truth.index).to_numpy()
    table = pd.DataFrame({
        "target": cols,
        "blend log loss": losses.to_numpy(),
        "best member log loss": [np.nan if best_member is None else best_member["per_target"].get(c, np.nan)
                                 for c in cols],
        "positives": truth.sum(axis=0).astype(int).to_numpy(),
        "positive rate": truth[rows].mean(axis=0).to_numpy(),
        "mean prediction": oof[rows].mean(axis=0).to_numpy(),
    })
    return table


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
def gather(inputs: ReportInputs, worst_n: int = 20) -> ReportData:
    """Read every input once and compute the report's tables."""
    scores = [io.read_json(p) for p in inputs.scores]
    names = [s["model"] for s in scores]
    oofs = {s["model"]: io.read_parquet(p) for s, p in zip(scores, inputs.oofs)}
    jobs = group_jobs([io.read_json(p) for p in inputs.metrics])
    weights, blend_score = io.read_json(inputs.blend_weights), io.read_json(inputs.blend_score)
    targets = io.read_parquet(inputs.targets)
    cp = io.read_parquet(inputs.train_features, columns=[ID_COL, "cp_type"]).set_index(ID_COL)["cp_type"]
    is_control = pd.Series(control_mask(cp), index=cp.index)
    treated = ~is_control
    folds = {Path(p).stem: io.read_parquet(p) for p in inputs.folds}

    weights_table, methods_table, blend = blend_tables(weights, blend_score)
    best = blend["best_member"]
    best_score = next((s for s in scores if s["model"] == best), None)
    groups, alone = correlation_groups(oofs, treated)
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
                                    best_score, worst_n),
        curves=learning_curves(jobs, names),
        fold_balance=fold_balance(folds, targets, is_control),
    )
