"""Snakemake entry point: one model's OOF/test predictions over seeds and its CV score."""

import re

from moastack.collect import collect_model
from moastack.jobs import setup_job


def seed_fold(path):
    s, f = re.search(r"/seed(\d+)/fold(\d+)/", path).groups()
    return int(s), int(f)


log = setup_job(snakemake.log[0], snakemake.threads)
score = collect_model(
    snakemake.wildcards.model,
    {seed_fold(p): p for p in snakemake.input.oof},
    {seed_fold(p): p for p in snakemake.input.test},
    {seed_fold(p): p for p in snakemake.input.metrics},
    snakemake.input.targets,
    snakemake.params.collect["folds"],
    dict(snakemake.output.items()),
    metric=snakemake.params.collect["metric"],
    seed_aggregate=snakemake.params.collect.get("seed_aggregate", "mean"),
)
log.info("%s: CV %s %.6f", snakemake.wildcards.model, score["metric"], score["value"])
