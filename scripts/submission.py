"""Snakemake entry point: the Kaggle submission CSV from the blend's test predictions."""

from moastack.jobs import setup_job
from moastack.submission import write_submission

setup_job(snakemake.log[0], snakemake.threads)
write_submission(snakemake.input.blend, snakemake.input.test_features, snakemake.output[0])
