"""Snakemake entry point: fit one model × seed × fold."""

from moastack.jobs import setup_job
from moastack.spec import ModelSpec
from moastack.train import FoldJob, run_fold_job
from moastack.tuning import merge_tuned_params

setup_job(snakemake.log[0], snakemake.threads)
spec = ModelSpec.from_entry(snakemake.wildcards.model, snakemake.params.model)
if "tuned_params" in snakemake.input.keys():  # params_from: tune/<study>
    spec = spec.with_params(merge_tuned_params(spec.params, snakemake.input.tuned_params))
job = FoldJob.from_inputs(spec, snakemake.wildcards.seed, snakemake.wildcards.fold, dict(snakemake.input.items()),
                          snakemake.threads)
run_fold_job(job, dict(snakemake.output.items()))
