"""Snakemake entry point: run or resume one hyper-parameter search (config ``tune.<name>``)."""

from moastack.jobs import setup_job
from moastack.tuning import run_study

log = setup_job(snakemake.log[0], snakemake.threads)
run_study(
    study_name=snakemake.wildcards.study,
    tune_cfg=snakemake.params.tune["tune"],
    model_cfg=snakemake.params.tune["model"],  # the model entry before any params_from merge
    job_inputs=dict(snakemake.input.items()),
    storage_path=snakemake.params.storage,
    output_path=snakemake.output.best,
    threads=snakemake.threads,
    log=log,
)
