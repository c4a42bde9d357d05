"""Snakemake entry point: fit one model × seed × fold."""

from moastack.jobs import setup_job
from moastack.stacking import MetaInputs
from moastack.train import FoldJob, run_fold_job
from moastack.tuning import merge_tuned_params

setup_job(snakemake.log[0], snakemake.threads)
model_cfg = dict(snakemake.params.model)
if "tuned_params" in snakemake.input.keys():  # params_from: tune/<study>
    model_cfg["params"] = merge_tuned_params(model_cfg.get("params"), snakemake.input.tuned_params)
job = FoldJob(
    model_name=snakemake.wildcards.model,
    model_cfg=model_cfg,
    seed=int(snakemake.wildcards.seed),
    fold=int(snakemake.wildcards.fold),
    features_train=snakemake.input.features_train,
    features_test=snakemake.input.features_test,
    folds=snakemake.input.folds,
    targets=snakemake.input.targets,
    train_features=snakemake.input.train_features,
    test_features=snakemake.input.test_features,
    meta=[
        MetaInputs(name, snakemake.input[f"meta_oof_{name}"], snakemake.input[f"meta_test_{name}"])
        for name in model_cfg.get("meta", [])
    ],
    threads=snakemake.threads,
    scored_targets=snakemake.input.scored_targets,
    init_model=snakemake.input.get("init_model"),
    feature_map=snakemake.input.get("feature_map"),
    pseudo_test=snakemake.input.get("pseudo_test"),
)
run_fold_job(job, dict(snakemake.output.items()))
