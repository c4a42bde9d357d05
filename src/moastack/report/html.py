"""Render the report as one self-contained HTML page (figures embedded as base64 PNG)."""

from __future__ import annotations

import base64
import math
from collections.abc import Callable
from html import escape

import pandas as pd

from moastack.report.data import ReportData, method_columns, metric_info, worst_columns

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


def _has_controls(data: ReportData) -> bool:
    return data.summary.get("n_controls", 0) > 0


def _models_section(data: ReportData) -> str:
    m = data.metric
    score_col = f"OOF {m.label}"
    t = data.models.copy()
    t["CV ± std over folds"] = [f"{m.fmt(a)} ± {m.fmt(b)}" for a, b in zip(t["fold mean"], t["fold std"])]
    t = t[["model", "arch", "fold scheme", "targets", "seeds", "folds", "cv", "CV ± std over folds", "epochs",
           "train seconds", "blend weight"]].rename(columns={"cv": score_col, "train seconds": "train time",
                                                            "epochs": "mean epochs"})
    members = set(data.summary["blend_members"])
    table = table_html(
        t,
        {score_col: m.fmt, "train time": fmt_seconds, "blend weight": fmt_weight, "mean epochs": fmt_number},
        text_cols=("model", "arch", "fold scheme", "CV ± std over folds"),
        highlight=lambda r: r["model"] in members,
    )
    return (
        '<section id="models"><h2>Models</h2>'
        f"<p>{escape(score_col)}: the run's metric ({escape(m.direction)}) on each model's out-of-fold "
        "predictions (mean over seeds). CV ± std: mean and standard deviation of the per-fold scores over "
        "seeds × folds. Train time: the sum over the model's jobs. Highlighted rows are blend members.</p>"
        f"{table}</section>"
    )


def _blend_section(data: ReportData) -> str:
    b, m = data.blend, data.metric
    best = b["best_member"]
    gain = ""
    if best is not None and b["best_member_value"] is not None:
        delta = b.get("gain", m.gain(b["value"], b["best_member_value"]))
        if delta >= 5e-6:
            verdict = f"the blend improves on it by {m.fmt(delta)}"
        elif delta > -5e-6:
            verdict = "the blend does no better (the weight is on one model)"
        else:
            verdict = f"the blend scores {m.fmt(-delta)} worse on this metric"
            if b["method"] == "slsqp" and m.name != "log_loss":
                verdict += " (SLSQP searched the weights on log loss, a smooth stand-in for it)"
        gain = (f" The best single member, <b>{escape(best)}</b>, scores {m.fmt(b['best_member_value'])}; "
                f"{verdict}.")
    weights = table_html(data.blend_weights, {c: fmt_weight for c in data.blend_weights.columns}, index=True)
    score_cols = method_columns(m)
    methods = table_html(
        data.blend_methods,
        {score_cols[0]: m.fmt, **{c: fmt_loss for c in score_cols[1:]}, "applied": lambda v: "yes" if v else ""},
        text_cols=("method", "dropped"),
    )
    return (
        '<section id="blend"><h2>Blend</h2>'
        f"<p>Convex weights (non-negative, summing to 1) searched on the OOF predictions of the "
        f"<b>{escape(b['fold_scheme'])}</b> fold scheme. Applied method: <b>{escape(b['method'])}</b>, "
        f"OOF {escape(m.label)} <b>{m.fmt(b['value'])}</b> ({escape(m.direction)}).{gain}</p>"
        f"<h3>Weights per method</h3>{weights}<h3>Methods</h3>{methods}</section>"
    )


def _all_metrics_section(data: ReportData) -> str:
    """Every metric's mean per model, and the run's metric per target (few targets); empty if neither."""
    m = data.metric
    parts = []
    if not data.all_metrics.empty:
        infos = {c: metric_info(c) for c in data.all_metrics.columns[1:]}
        t = data.all_metrics.rename(columns={c: f"{i.label} {i.arrow}" + (" (run metric)" if c == m.name else "")
                                             for c, i in infos.items()})
        formats = {t.columns[k + 1]: i.fmt for k, i in enumerate(infos.values())}
        parts.append(
            "<p>Mean over targets of every metric on the out-of-fold predictions (↓ lower is better, ↑ higher "
            f"is better). The run's metric is {escape(m.label)}: it ranks the models and names the best member.</p>"
            + table_html(t, formats, text_cols=("model",), highlight=lambda r: r["model"] == "blend")
        )
    if not data.per_target.empty:
        value_cols = list(data.per_target.columns[3:])
        heading = f"<h3>{escape(m.label)} per target</h3>" if parts else ""
        parts.append(
            heading
            + f"<p>Each model's OOF {escape(m.label)} ({escape(m.direction)}) on every target, from the target "
            "the blend finds hardest to the easiest. Labelled: rows with a known label; – : no score (e.g. "
            "an AUC of a target with one class among its labels).</p>"
            + table_html(data.per_target, {"labelled": fmt_number, "positives": fmt_number,
                                           **{c: m.fmt for c in value_cols}}, text_cols=("target",))
        )
    if not parts:
        return ""
    title = "All metrics" if not data.all_metrics.empty else f"{escape(m.label)} per target"
    return f'<section id="metrics"><h2>{title}</h2>' + "".join(parts) + "</section>"


#: a thresholds table longer than this shows its best and worst rows, the whole table folded under them
THRESHOLDS_SHOWN = 40
THRESHOLDS_EDGE = 10
METRIC_NAMES = {"f1": "F1", "mcc": "MCC (Matthews correlation coefficient)"}


def fmt_threshold(v) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4g}"


def _thresholds_section(data: ReportData) -> str:
    """Per target: ROC-AUC, PR-AUC, then F1, MCC, precision and recall at the blend's decision threshold."""
    t = data.thresholds
    if t.empty:
        return ""
    key = {"f1": "F1", "mcc": "MCC"}[data.threshold_metric]
    formats = {"labelled": fmt_number, "positives": fmt_number, "threshold": fmt_threshold,
               **{c: fmt_rate for c in ("ROC-AUC", "PR-AUC", "F1", "MCC", "precision", "recall")}}

    def table(frame: pd.DataFrame) -> str:
        return table_html(frame, formats, text_cols=("target",))

    scored = t[t[key].notna()]
    never = t.loc[t[key].isna(), "target"].tolist()
    means = ", ".join(f"{c} {fmt_rate(scored[c].mean())}" for c in ("F1", "MCC", "precision", "recall"))
    n = THRESHOLDS_EDGE
    folded = f"<details><summary>All {len(t)} targets (best {key} first)</summary>{table(t)}</details>"
    if len(t) <= THRESHOLDS_SHOWN:
        body = table(t)
    elif len(scored) <= 2 * n:  # few targets with a positive: all of them, the others only folded
        body = f"<h3>The {len(scored)} targets with a labelled positive</h3>{table(scored)}{folded}"
    else:
        body = (f"<h3>Best {n} targets by {key}</h3>{table(scored.head(n))}"
                f"<h3>Worst {n} targets by {key}</h3>{table(scored.tail(n).iloc[::-1])}{folded}")
    note = ""
    if never:
        shown = ", ".join(never[:20]) + (f" and {len(never) - 20} more" if len(never) > 20 else "")
        note = (f'<p class="note">{len(never)} target{"s" if len(never) != 1 else ""} without a labelled positive '
                f"(threshold 1.0, never called, no F1/MCC): {escape(shown)}.</p>")
    return (
        '<section id="thresholds"><h2>Decision thresholds</h2>'
        f"<p>For a user who has to call a sample positive or not: per target, the threshold on the blend's "
        f"probability that maximises <b>{escape(METRIC_NAMES[data.threshold_metric])}</b> on its out-of-fold "
        "predictions (<code>blend.threshold_metric</code>); a sample is called positive when its probability is "
        ">= the threshold, as <code>moastack predict --labels</code> does. F1, MCC, precision and recall are "
        "measured there; ROC-AUC and PR-AUC are the blend's OOF scores, whatever the threshold. The threshold is "
        "chosen on the rows that score it (the same rows the blend weights were searched on), so these F1/MCC "
        f"are optimistic; expect somewhat less on new samples. Mean over {len(scored)} targets: {means}. "
        f"Best {key} first.</p>"
        + body + note + "</section>"
    )


def _correlation_section(data: ReportData, png: bytes) -> str:
    alone = ""
    if data.correlation_alone:
        alone = (f'<p class="note">Not shown (no other model predicts the same targets): '
                 f"{escape(', '.join(data.correlation_alone))}.</p>")
    rows = ("on treated rows (controls are predicted 0 by every model and would inflate it)"
            if _has_controls(data) else "on every training row")
    mean = ""
    if not data.mean_correlation.empty:
        t = data.mean_correlation
        if t["target set"].nunique() == 1:
            t = t.drop(columns="target set")
        mean = (
            "<h3>Mean correlation with the other models</h3>"
            "<p>Each model's row of the heatmap averaged off the diagonal (pairs with no defined correlation "
            "skipped), least correlated first: the models most likely to add something to a blend.</p>"
            + table_html(t, {"mean r with the others": lambda v: "–" if v != v else f"{v:.3f}"},
                         text_cols=("model", "target set"))
        )
    return (
        '<section id="correlation"><h2>Model correlation</h2>'
        f"<p>Mean over targets of the Pearson correlation between two models' OOF predictions, {rows}. "
        "Targets where either model's predictions are constant are skipped. Models are compared only with "
        "models of the same target set. Less correlated models of similar quality are what a blend gains "
        "from; a model that predicts nearly one value per fold, like the prior, correlates with nothing.</p>"
        + figure_html(png, "correlation heatmap", "Mean target-wise Pearson correlation of OOF predictions.")
        + mean + alone + "</section>"
    )


def _targets_section(data: ReportData, png: bytes) -> str:
    m = data.metric
    n = len(data.worst_targets)
    blend_col, best_col = worst_columns(m)
    table = table_html(
        data.worst_targets,
        {blend_col: m.fmt, best_col: m.fmt, "positives": fmt_number,
         "positive rate": fmt_rate, "mean prediction": fmt_rate},
        text_cols=("target",),
    )
    worst = "lowest" if m.greater_is_better else "highest"
    over = " over treated rows with a label" if _has_controls(data) else " over the rows with a label"
    return (
        f'<section id="targets"><h2>Worst {n} targets</h2>'
        f"<p>The targets where the blend's OOF {escape(m.label)} is {worst} ({escape(m.direction)}); targets "
        f"without a score are left out. Positive rate and mean prediction are{over}; a well-calibrated model "
        "has them close.</p>"
        + figure_html(png, "worst targets", f"Blend OOF {escape(m.label)} on its {n} worst targets.")
        + table + "</section>"
    )


def _feature_maps_section(data: ReportData) -> str:
    if not data.feature_maps:
        return ""
    figures = "".join(
        figure_html(png, f"feature map {name}",
                    f"Feature map <b>{escape(name)}</b>: the pixel each feature lands on in the images the "
                    "DeepInsight CNN sees.")
        for name, png in data.feature_maps
    )
    return (
        '<section id="feature-maps"><h2>DeepInsight feature maps</h2>'
        "<p>DeepInsight turns each row into an image: the features are laid out on a 2-D grid by a "
        "projection of their similarity over the training rows, so related features sit close together and "
        "a CNN can use their neighbourhood. Features that land on one pixel share it.</p>"
        + figures + "</section>"
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
    balance = data.fold_balance
    if not _has_controls(data):
        balance = balance.drop(columns="controls")
    table = table_html(balance, {c: fmt_number for c in ("rows", "controls", "positives")},
                       text_cols=("scheme",))
    rows = "Rows (controls in grey)" if _has_controls(data) else "Rows"
    return (
        '<section id="folds"><h2>Fold balance</h2>'
        "<p>Rows and positive labels (all scored targets) per fold of each fold scheme used by a model. "
        "Drug-aware folds keep small drugs whole, so they balance less evenly than multilabel "
        "stratification.</p>"
        + figure_html(png, "fold balance", f"{rows} and positive labels per fold; dotted: mean.")
        + table + "</section>"
    )


def render(data: ReportData, figures: dict[str, bytes], title: str = "moastack report") -> str:
    """The whole page; ``figures`` holds PNG bytes for correlation, worst_targets, learning_curves, fold_balance
    (the DeepInsight feature maps come with ``data``)."""
    s, m = data.summary, data.metric
    rows = f"{s['n_train']:,}" + (f" ({s['n_controls']:,} controls)" if _has_controls(data) else "")
    kpis = "".join(f'<span class="kpi">{escape(label)}<br><b>{escape(str(value))}</b></span>'
                   for label, value in [
        (f"blend OOF {m.label} ({m.direction})", m.fmt(s["blend_value"])),
        ("models", s["n_models"]),
        ("training jobs", s["n_jobs"]),
        ("training rows", rows),
        ("scored targets", s["n_targets"]),
    ])
    sections = [
        ("models", "Models", _models_section(data)),
        ("blend", "Blend", _blend_section(data)),
        ("metrics", "All metrics" if not data.all_metrics.empty else "Per target", _all_metrics_section(data)),
        ("thresholds", "Thresholds", _thresholds_section(data)),
        ("correlation", "Correlation", _correlation_section(data, figures["correlation"])),
        ("targets", "Worst targets", _targets_section(data, figures["worst_targets"])),
        ("curves", "Learning curves", _curves_section(data, figures["learning_curves"])),
        ("folds", "Fold balance", _folds_section(data, figures["fold_balance"])),
        ("feature-maps", "Feature maps", _feature_maps_section(data)),
    ]
    nav = "".join(f'<a href="#{a}">{t}</a>' for a, t, html in sections if html)
    metric = ("the lish-moa metric (mean column-wise binary log loss, lower is better)" if m.name == "log_loss"
              else f"the run's metric, {escape(m.label)} ({escape(m.description)}, {escape(m.direction)})")
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>'
        f"<body><main><h1>{escape(title)}</h1>"
        f'<p class="lead">Cross-validated results of the pipeline: every model, the blend, and diagnostics. '
        f"All scores are {metric} on out-of-fold predictions, unless a column says otherwise.</p>"
        f"<div>{kpis}</div><nav>{nav}</nav>"
        + "".join(html for _, _, html in sections)
        + "</main></body></html>\n"
    )
