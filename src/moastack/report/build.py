"""Build the report: gather the data, draw the figures, write index.html and the PNGs beside it."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from moastack import io
from moastack.report import figures as F
from moastack.report.data import ReportData, ReportInputs, gather
from moastack.report.html import render

log = logging.getLogger(__name__)

#: figure name -> file name beside index.html
FIGURES = {
    "correlation": "correlation.png",
    "worst_targets": "worst_targets.png",
    "learning_curves": "learning_curves.png",
    "fold_balance": "fold_balance.png",
}


def draw_figures(data: ReportData) -> dict[str, bytes]:
    """PNG bytes of every figure (placeholders where there is nothing to plot)."""
    figs = {
        "correlation": F.correlation_figure(data.correlations),
        "worst_targets": F.worst_targets_figure(data.worst_targets, data.blend["best_member"], data.metric,
                                                controls=data.summary["n_controls"] > 0),
        "learning_curves": F.learning_curves_figure(data.curves),
        "fold_balance": F.fold_balance_figure(data.fold_balance),
    }
    return {name: F.to_png(fig) for name, fig in figs.items()}


def default_outputs(out_dir: str | os.PathLike) -> dict[str, str]:
    out_dir = Path(out_dir)
    return {"html": str(out_dir / "index.html"), **{k: str(out_dir / v) for k, v in FIGURES.items()}}


def build_report(inputs: ReportInputs, outputs: dict[str, str], worst_targets: int = 20) -> ReportData:
    """Write ``outputs["html"]`` (self-contained) and each figure's PNG to ``outputs[name]``.

    The DeepInsight feature maps (``inputs.feature_maps``) are embedded in the page only: they are written
    by their own rule, so no copy goes to ``outputs``.
    """
    data = gather(inputs, worst_targets)
    log.info("report: metric %s, %d models, %d correlation groups, %d worst targets, %d models with learning "
             "curves, %d feature maps", data.metric.name, len(data.models), len(data.correlations),
             len(data.worst_targets), len(data.curves), len(data.feature_maps))
    pngs = draw_figures(data)
    for name, png in pngs.items():
        if name in outputs:
            with io.atomic_path(outputs[name]) as tmp:
                tmp.write_bytes(png)
    with io.atomic_path(outputs["html"]) as tmp:
        tmp.write_text(render(data, pngs), encoding="utf-8")
    log.info("report written to %s", outputs["html"])
    return data
