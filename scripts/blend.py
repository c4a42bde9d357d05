"""Snakemake entry point: search blend weights on OOF and apply them to the test predictions."""

from moastack.blend import run_blend
from moastack.jobs import setup_job

log = setup_job(snakemake.log[0], snakemake.threads)
members = {
    name: {"oof": oof, "test": test, "score": score}
    for name, oof, test, score in zip(
        snakemake.params.members, snakemake.input.oof, snakemake.input.test, snakemake.input.score
    )
}
score = run_blend(members, snakemake.input.targets, snakemake.params.blend, dict(snakemake.output.items()),
                  metric=snakemake.params.metric)
log.info("blend CV %s %.6f (best member %s)", score["metric"], score["value"], score["best_member"])
