"""Snakemake entry point: fit one feature set and write its train/test tables and fitted state."""

from moastack import io
from moastack.features.feature_set import build_feature_tables
from moastack.jobs import setup_job

log = setup_job(snakemake.log[0], snakemake.threads)
fitted, train, test = build_feature_tables(
    snakemake.params.spec, io.read_parquet(snakemake.input.train), io.read_parquet(snakemake.input.test)
)
log.info("feature set %s: %d dense and %d sparse columns (%d non-zeros in train)", snakemake.wildcards.fset,
         len(train.dense_names), len(train.sparse_names), 0 if train.sparse is None else train.sparse.nnz)
train.write(snakemake.output.train)
test.write(snakemake.output.test)
io.write_joblib(fitted, snakemake.output.fitted)
