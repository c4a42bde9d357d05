"""Render the report as one self-contained HTML page (figures embedded as base64 PNG)."""

from __future__ import annotations

import base64
import math
from collections.abc import Callable
from html import escape

import pandas as pd

from moastack.report.data import ReportData

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 0; color: #222;
       background: #fafafa; }
main { max-width: 1200px; margin: 0 auto; padding: 1.5em 2em 4em; background: #fff; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 2em; }
nav { margin: 1em 0 0.5em; } nav a { margin-right: 1.2em; }
p.lead { color: #444; font-size: 1.05em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { padding: 0.3em 0.7em; border-bottom: 1px solid #e4e4e4; text-align: right; }
th { background: #f0f0f0; } td.text, th.text { text-align: left; }
tr.hl td { background: #eef4ff; }
figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption, .note { color: #555; font-size: 0.9em; }
.kpi { display: inline-block; margin: 0.3em 1.5em 0.3em 0; } .kpi b { font-size: 1.3em; }
"""


def fmt_loss(v) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.5f}"


def fmt_weight(v) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def fmt_seconds(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.1f} s" if v < 120 else f"{v / 60:.1f} min"


def fmt_number(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:,.0f}" if float(v).is_integer() else f"{v:,.1f}"


def fmt_rate(v) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"


def table_html(
    frame: pd.DataFrame,
    formats: dict[str, Callable] | None = None,
    text_cols: tuple[str, ...] = (),
    highlight: Callable[[pd.Series], bool] | None = None,
    index: bool = False,
) -> str:
    """An HTML table; ``formats`` maps column -> formatter, ``text_cols`` are left-aligned."""
    formats = formats or {}
    frame = frame.reset_index() if index else frame
    text = set(text_cols) | ({frame.columns[0]} if index else set())
    head = "".join(f'<th class="{"text" if c in text else ""}">{escape(str(c))}</th>' for c in frame.columns)
    body = []
    for _, row in frame.iterrows():
        cls = ' class="hl"' if highlight is not None and highlight(row) else ""
        cells = "".join(
            f'<td class="{"text" if c in text else ""}">{escape(formats.get(c, str)(row[c]))}</td>'
            for c in frame.columns
        )
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def figure_html(png: bytes, alt: str, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{escape(alt)}">'
            f"<figcaption>{caption}</figcaption></figure>")


def _models_section(data: ReportData) -> str:
    t = data.models.copy()
    t["CV ± std over folds"] = [f"{m:.5f} ± {s:.5f}" for m, s in zip(t["fold mean"], t["fold std"])]
    t = t[["model", "arch", "fold scheme", "targets", "seeds", "folds", "cv", "CV ± std over folds", "epochs",
           "train seconds", "blend weight"]].rename(columns={"cv": "OOF log loss", "train seconds": "train time",
                                                            "epochs": "mean epochs"})
    members = set(data.summary["blend_members"])
    table = table_html(
        t,
        {"OOF log loss": fmt_loss, "train time": fmt_seconds, "blend weight": fmt_weight, "mean epochs": fmt_number},
        text_cols=("model", "arch", "fold scheme", "CV ± std over folds"),
        highlight=lambda r: r["model"] in members,
    )
    return (
        '<section id="models"><h2>Models</h2>'
        "<p>OOF log loss: the competition metric on each model's out-of-fold predictions (mean over seeds). "
        "CV ± std: mean and standard deviation of the per-fold scores over seeds × folds. Train time: the sum "
        f"over the model's jobs. Highlighted rows are blend members.</p>{table}</section>"
    )


def _blend_section(data: ReportData) -> str:
    b = data.blend
    best = b["best_member"]
    gain = ""
    if best is not None and b["best_member_value"] is not None:
        delta = b["best_member_value"] - b["value"]
        verdict = (f"the blend improves on it by {delta:.5f}" if delta >= 5e-6
                   else "the blend does no better (the weight is on one model)")
        gain = (f" The best single member, <b>{escape(best)}</b>, scores {fmt_loss(b['best_member_value'])}; "
                f"{verdict}.")
    weights = table_html(data.blend_weights, {c: fmt_weight for c in data.blend_weights.columns}, index=True)
    methods = table_html(data.blend_methods, {"oof log loss": fmt_loss, "applied": lambda v: "yes" if v else ""},
                         text_cols=("method", "dropped"))
    return (
        '<section id="blend"><h2>Blend</h2>'
        f"<p>Convex weights (non-negative, summing to 1) searched on the OOF predictions of the "
        f"<b>{escape(b['fold_scheme'])}</b> fold scheme. Applied method: <b>{escape(b['method'])}</b>, "
        f"OOF log loss <b>{fmt_loss(b['value'])}</b>.{gain}</p>"
        f"<h3>Weights per method</h3>{weights}<h3>Methods</h3>{methods}</section>"
    )


def _correlation_section(data: ReportData, png: bytes) -> str:
    alone = ""
    if data.correlation_alone:
        alone = (f'<p class="note">Not shown (no other model predicts the same targets): '
                 f"{escape(', '.join(data.correlation_alone))}.</p>")
    return (
        '<section id="correlation"><h2>Model correlation</h2>'
        "<p>Mean over targets of the Pearson correlation between two models' OOF predictions, on treated "
        "rows (controls are predicted 0 by every model and would inflate it). Targets where either model's "
        "predictions are constant are skipped. Models are compared only with models of the same target set. "
        "Less correlated models of similar quality are what a blend gains from; a model that predicts "
        "nearly one value per fold, like the prior, correlates with nothing.</p>"
        + figure_html(png, "correlation heatmap", "Mean target-wise Pearson correlation of OOF predictions.")
        + alone + "</section>"
    )


def _targets_section(data: ReportData, png: bytes) -> str:
    n = len(data.worst_targets)
    table = table_html(
        data.worst_targets,
        {"blend log loss": fmt_loss, "best member log loss": fmt_loss, "positives": fmt_number,
         "positive rate": fmt_rate, "mean prediction": fmt_rate},
        text_cols=("target",),
    )
    return (
        f'<section id="targets"><h2>Worst {n} targets</h2>'
        "<p>The targets where the blend's OOF log loss is highest. Positive rate and mean prediction are "
        "over treated rows; a well-calibrated model has them close.</p>"
        + figure_html(png, "worst targets", f"Blend OOF log loss on its {n} worst targets.")
        + table + "</section>"
    )


def _curves_section(data: ReportData, png: bytes) -> str:
    without = [m for m in data.models["model"] if m not in data.curves]
    note = (f'<p class="note">No per-epoch history (not trained iteratively): {escape(", ".join(without))}.</p>'
            if without else "")
    return (
        '<section id="curves"><h2>Learning curves</h2>'
        "<p>Train (dashed) and validation (solid) loss per epoch of every job, one colour per fold. The "
        "train loss is measured against label-smoothed targets and with dropout on, so it can sit above the "
        "validation loss. Jobs restore their best-validation weights at the end.</p>"
        + figure_html(png, "learning curves", "Per-epoch BCE loss of each model's seed × fold jobs (log scale).")
        + note + "</section>"
    )


def _folds_section(data: ReportData, png: bytes) -> str:
    table = table_html(data.fold_balance, {c: fmt_number for c in ("rows", "controls", "positives")},
                       text_cols=("scheme",))
    return (
        '<section id="folds"><h2>Fold balance</h2>'
        "<p>Rows and positive labels (all scored targets) per fold of each fold scheme used by a model. "
        "Drug-aware folds keep small drugs whole, so they balance less evenly than multilabel "
        "stratification.</p>"
        + figure_html(png, "fold balance", "Rows (controls in grey) and positive labels per fold; dotted: mean.")
        + table + "</section>"
    )


def render(data: ReportData, figures: dict[str, bytes], title: str = "moastack report") -> str:
    """The whole page; ``figures`` holds PNG bytes for correlation, worst_targets, learning_curves, fold_balance."""
    s = data.summary
    kpis = "".join(f'<span class="kpi">{label}<br><b>{value}</b></span>' for label, value in [
        ("blend OOF log loss", fmt_loss(s["blend_value"])),
        ("models", s["n_models"]),
        ("training jobs", s["n_jobs"]),
        ("training rows", f"{s['n_train']:,} ({s['n_controls']:,} controls)"),
        ("scored targets", s["n_targets"]),
    ])
    nav = "".join(f'<a href="#{a}">{t}</a>' for a, t in [
        ("models", "Models"), ("blend", "Blend"), ("correlation", "Correlation"), ("targets", "Worst targets"),
        ("curves", "Learning curves"), ("folds", "Fold balance")])
    sections = [
        _models_section(data),
        _blend_section(data),
        _correlation_section(data, figures["correlation"]),
        _targets_section(data, figures["worst_targets"]),
        _curves_section(data, figures["learning_curves"]),
        _folds_section(data, figures["fold_balance"]),
    ]
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>'
        f"<body><main><h1>{escape(title)}</h1>"
        f'<p class="lead">Cross-validated results of the pipeline: every model, the blend, and diagnostics. '
        f"All scores are the lish-moa metric (mean column-wise binary log loss, lower is better) on "
        f"out-of-fold predictions.</p><div>{kpis}</div><nav>{nav}</nav>"
        + "".join(sections)
        + "</main></body></html>\n"
    )
