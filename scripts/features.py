"""Snakemake entry point: fit one feature set and write its train/test tables and fitted state."""

from moastack import io
from moastack.features.feature_set import build_feature_set
from moastack.jobs import setup_job

log = setup_job(snakemake.log[0], snakemake.threads)
fitted, train, test = build_feature_set(
    snakemake.params.spec, io.read_parquet(snakemake.input.train), io.read_parquet(snakemake.input.test)
)
log.info("feature set %s: %d columns", snakemake.wildcards.fset, train.shape[1] - 1)
io.write_parquet(train, snakemake.output.train)
io.write_parquet(test, snakemake.output.test)
io.write_joblib(fitted, snakemake.output.fitted)
