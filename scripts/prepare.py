"""Snakemake entry point: validate the raw lish-moa tables and write them as Parquet."""

from moastack.data.prepare import prepare
from moastack.jobs import setup_job

setup_job(snakemake.log[0], snakemake.threads)
prepare(snakemake.params.data, dict(snakemake.output.items()))
