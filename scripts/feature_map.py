"""Snakemake entry point: fit one DeepInsight feature map (t-SNE of the features -> image pixels)."""

from moastack.deepinsight.fit import fit_map_from_table
from moastack.jobs import setup_job

log = setup_job(snakemake.log[0], snakemake.threads)
fit_map_from_table(snakemake.input.train, snakemake.params.spec, snakemake.output.fmap, snakemake.output.png,
                   threads=snakemake.threads)
