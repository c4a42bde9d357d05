"""Snakemake entry point: the HTML report from the collected outputs."""

from moastack.jobs import setup_job
from moastack.report import ReportInputs, build_report

setup_job(snakemake.log[0], snakemake.threads)
inputs = ReportInputs(
    scores=list(snakemake.input.score),
    oofs=list(snakemake.input.oof),
    metrics=list(snakemake.input.metrics),
    folds=list(snakemake.input.folds),
    blend_weights=snakemake.input.blend_weights,
    blend_score=snakemake.input.blend_score,
    blend_oof=snakemake.input.blend_oof,
    targets=snakemake.input.targets,
    train_features=snakemake.input.train_features,
    feature_maps=list(snakemake.input.feature_maps),
)
build_report(inputs, dict(snakemake.output.items()), worst_targets=snakemake.params.report["worst_targets"])
