"""The report's figures, drawn with matplotlib's Agg backend (no display needed) and returned as PNG.

Figures are built on :class:`matplotlib.figure.Figure` objects directly, never through pyplot's
global state, so building a report leaves no open windows or figures behind.
"""

from __future__ import annotations

import io as _io
import math

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from moastack.report.data import METRICS, CorrelationGroup, MetricInfo, worst_columns  # noqa: E402

DPI = 100
FOLD_COLORS = matplotlib.colormaps["tab10"].colors


def new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def to_png(fig: Figure) -> bytes:
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def placeholder(message: str, width: float = 6.0, height: float = 1.2) -> Figure:
    """A small figure saying why there is nothing to plot (every figure file always exists)."""
    fig = new_figure(width, height)
    fig.text(0.5, 0.5, message, ha="center", va="center", fontsize=11, color="#555555", wrap=True)
    return fig


# ------------------------------------------------------------------------------------- correlation
def correlation_figure(groups: list[CorrelationGroup]) -> Figure:
    """One heatmap per target set: mean target-wise Pearson correlation of OOF predictions."""
    if not groups:
        return placeholder("Fewer than two models share a target set: no correlation to show.")
    sizes = [len(g.matrix) for g in groups]
    cell = 0.55 if max(sizes) <= 12 else 0.35
    width = sum(max(3.5, cell * s + 2.2) for s in sizes)
    height = max(3.2, cell * max(sizes) + 1.8)
    fig = new_figure(width, height)
    axes = fig.subplots(1, len(groups), squeeze=False)[0]
    finite = np.concatenate([g.matrix.to_numpy()[np.isfinite(g.matrix.to_numpy())] for g in groups])
    vmin = float(min(0.0, finite.min())) if finite.size else 0.0
    for ax, group in zip(axes, groups):
        m = group.matrix.to_numpy()
        image = ax.imshow(np.ma.masked_invalid(m), cmap="viridis", vmin=vmin, vmax=1.0)
        names = list(group.matrix.index)
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=9)
        ax.set_yticks(range(len(names)), names, fontsize=9)
        if len(names) <= 12:
            for i in range(len(names)):
                for j in range(len(names)):
                    text = "n/a" if not np.isfinite(m[i, j]) else f"{m[i, j]:.2f}"
                    light = np.isfinite(m[i, j]) and (m[i, j] - vmin) / max(1.0 - vmin, 1e-9) < 0.6
                    ax.text(j, i, text, ha="center", va="center", fontsize=8,
                            color="white" if light else "black")
        ax.set_title(group.label if len(groups) > 1 else "", fontsize=10)
    fig.colorbar(image, ax=list(axes), shrink=0.8, label="mean Pearson r over targets")
    return fig


# ------------------------------------------------------------------------------------ worst targets
def worst_targets_figure(
    table: pd.DataFrame, best_member: str | None, metric: MetricInfo | None = None, controls: bool = True,
) -> Figure:
    """Horizontal bars: the blend's OOF score on its worst targets (worst at the top), best single member
    marked; ``controls``: the training rows include controls (said on the axis)."""
    metric = metric or METRICS["log_loss"]
    blend_col, best_col = worst_columns(metric)
    if table.empty:
        return placeholder(f"No per-target {metric.label}.")
    fig = new_figure(8.0, 1.0 + 0.28 * len(table))
    ax = fig.subplots()
    y = np.arange(len(table))[::-1]
    ax.barh(y, table[blend_col], color="#4C72B0", label="blend")
    if best_member and table[best_col].notna().any():
        ax.scatter(table[best_col], y, marker="|", s=120, color="#DD8452", zorder=3,
                   label=f"best member ({best_member})")
    ax.set_yticks(y, table["target"], fontsize=8)
    rows = "; treated and control rows, as the metric" if controls else ""
    ax.set_xlabel(f"OOF {metric.label} ({metric.direction}{rows})")
    if metric.greater_is_better and table[blend_col].between(0, 1).all():
        ax.set_xlim(0, 1)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)  # beside the bars, never over them
    ax.grid(axis="x", alpha=0.3)
    return fig


# ---------------------------------------------------------------------------------- learning curves
def learning_curves_figure(curves: dict[str, list[dict]]) -> Figure:
    """Per model, the train (dashed) and validation (solid) loss per epoch; one thin line per job."""
    if not curves:
        return placeholder("No model records per-epoch losses.")
    n = len(curves)
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    fig = new_figure(4.4 * ncols, 3.0 * nrows + 0.5)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    folds_seen: set[int] = set()
    for ax, (name, runs) in zip(axes, curves.items()):
        for run in runs:
            hist = pd.DataFrame(run["history"])
            color = FOLD_COLORS[run["fold"] % len(FOLD_COLORS)]
            folds_seen.add(run["fold"])
            ax.plot(hist["epoch"], hist["train_loss"], ls="--", lw=0.8, alpha=0.7, color=color)
            if "valid_loss" in hist and hist["valid_loss"].notna().any():
                ax.plot(hist["epoch"], hist["valid_loss"], ls="-", lw=0.9, alpha=0.9, color=color)
        seeds = len({r["seed"] for r in runs})
        ax.set_title(f"{name} ({len(runs)} jobs, {seeds} seed{'s' if seeds != 1 else ''})", fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel("BCE loss")
        ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
    for ax in axes[n:]:
        ax.set_visible(False)
    handles = [Line2D([], [], color="black", ls="--", lw=1, label="train (smoothed labels)"),
               Line2D([], [], color="black", ls="-", lw=1, label="validation")]
    handles += [Line2D([], [], color=FOLD_COLORS[f % len(FOLD_COLORS)], lw=2, label=f"fold {f}")
                for f in sorted(folds_seen)[:10]]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 7), fontsize=8)
    return fig


# ------------------------------------------------------------------------------------- fold balance
def fold_balance_figure(table: pd.DataFrame) -> Figure:
    """Per fold scheme: rows per fold (controls stacked) and positive labels per fold."""
    if table.empty:
        return placeholder("No fold tables.")
    schemes = list(dict.fromkeys(table["scheme"]))
    fig = new_figure(9.0, 2.6 * len(schemes) + 0.3)
    axes = fig.subplots(len(schemes), 2, squeeze=False)
    for (ax_rows, ax_pos), scheme in zip(axes, schemes):
        t = table[table["scheme"] == scheme]
        x = t["fold"].to_numpy()
        treated = (t["rows"] - t["controls"]).to_numpy()
        has_controls = bool(t["controls"].sum() > 0)
        ax_rows.bar(x, treated, color="#4C72B0", label="treated" if has_controls else "rows")
        if has_controls:
            ax_rows.bar(x, t["controls"], bottom=treated, color="#A0A0A0", label="controls")
        ax_rows.axhline(t["rows"].mean(), color="black", lw=0.8, ls=":")
        ax_rows.set_title(f"{scheme}: rows per fold", fontsize=10)
        ax_pos.bar(x, t["positives"], color="#55A868")
        ax_pos.axhline(t["positives"].mean(), color="black", lw=0.8, ls=":")
        ax_pos.set_title(f"{scheme}: positive labels per fold", fontsize=10)
        for ax in (ax_rows, ax_pos):
            ax.set_xticks(x, [f"fold {k}" for k in x], fontsize=8)
            ax.grid(axis="y", alpha=0.3)
        if has_controls:
            ax_rows.legend(fontsize=8, loc="lower right")
    return fig
