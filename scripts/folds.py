"""Snakemake entry point: one fold scheme's sig_id -> fold table."""

from moastack import io
from moastack.folds import make_folds
from moastack.jobs import setup_job

log = setup_job(snakemake.log[0], snakemake.threads)
folds = make_folds(
    snakemake.params.scheme, io.read_parquet(snakemake.input.targets), io.read_parquet(snakemake.input.drugs)
)
log.info("fold sizes: %s", folds["fold"].value_counts().sort_index().to_dict())
io.write_parquet(folds, snakemake.output[0])
