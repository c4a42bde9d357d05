"""The HTML report of a pipeline run: ``data`` gathers the numbers, ``figures`` draws them with
matplotlib, ``html`` renders the page, ``build`` writes it."""

from moastack.report.build import FIGURES, build_report, default_outputs
from moastack.report.data import ReportInputs

__all__ = ["FIGURES", "ReportInputs", "build_report", "default_outputs"]
