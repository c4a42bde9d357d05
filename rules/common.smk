# Helpers shared by rules/*.smk — config validation, job lists, per-rule config slices and
# resources. The logic lives in moastack.config so that it is unit-tested.

import sys
from pathlib import Path

# This process imports the workflow's own source tree. Job scripts find it through the installed
# package or, inside a `--sdm conda` environment, through the scripts/moastack link to src/moastack.
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from moastack.config import (
    blend_members,
    check_config,
    validate_schema,
    collect_slice,
    data_slice,
    feature_map_slice,
    model_jobs,
    tune_slice,
    resources_for,
    train_slice,
    wants_gpu,
)
from moastack.columns import TABLES

validate_schema(config)  # schema/config.schema.yaml, defaults filled in
check_config(
    config
)  # references between sections, stacking cycles, fold-scheme agreement

RESULTS = "results"
MODELS = list(config["models"])
FOLD_SCHEMES = list(config["folds"])
FEATURE_SETS = list(config["features"])
FEATURE_MAPS = list(config.get("feature_maps", {}))
TUNE_STUDIES = list(config.get("tune", {}))


def get_final_outputs():
    return [
        f"{RESULTS}/submission.csv",
        f"{RESULTS}/blend/score.json",
        f"{RESULTS}/report/index.html",
        *expand(f"{RESULTS}/models/{{model}}/score.json", model=MODELS),
        *expand(f"{RESULTS}/tune/{{study}}/best.json", study=TUNE_STUDIES),
    ]


def job_dir(model, seed, fold):
    return f"{RESULTS}/models/{model}/seed{seed}/fold{fold}"


def model_cfg(wildcards):
    return config["models"][wildcards.model]


def model_inputs(model):
    """What every job of a model reads: its feature set, folds, targets, upstream models, map, study."""
    m = config["models"][model]
    inputs = {
        "features_train": f"{RESULTS}/features/{m['features']}/train.parquet",
        "features_test": f"{RESULTS}/features/{m['features']}/test.parquet",
        "folds": f"{RESULTS}/folds/{m['folds']}.parquet",
        "targets": f"{RESULTS}/data/train_targets_{m['targets']}.parquet",
        "scored_targets": f"{RESULTS}/data/train_targets_scored.parquet",
        "train_features": f"{RESULTS}/data/train_features.parquet",
        "test_features": f"{RESULTS}/data/test_features.parquet",
    }
    for upstream in m["meta"]:
        inputs[f"meta_oof_{upstream}"] = f"{RESULTS}/models/{upstream}/oof.parquet"
        inputs[f"meta_test_{upstream}"] = f"{RESULTS}/models/{upstream}/test.parquet"
    if "feature_map" in m:
        inputs["feature_map"] = f"{RESULTS}/feature_maps/{m['feature_map']}/map.npz"
    if "params_from" in m:
        inputs["tuned_params"] = f"{RESULTS}/{m['params_from']}/best.json"
    if "aux_targets" in m:
        inputs["aux_targets"] = (
            f"{RESULTS}/data/train_targets_{m['aux_targets']}.parquet"
        )
    return inputs


def get_train_input(wildcards):
    """A job's model inputs, plus the outputs of its source jobs of the same seed × fold."""
    m = model_cfg(wildcards)
    inputs = model_inputs(wildcards.model)
    if "init_from" in m:
        inputs["init_model"] = (
            f"{job_dir(m['init_from'], wildcards.seed, wildcards.fold)}/model.pt"
        )
    if (
        "pseudo_from" in m
    ):  # the same seed × fold job's test predictions label the test rows
        inputs["pseudo_test"] = (
            f"{job_dir(m['pseudo_from'], wildcards.seed, wildcards.fold)}/test.parquet"
        )
    return inputs


def feature_map_input(wildcards):
    fset = config["feature_maps"][wildcards.fmap]["features"]
    return f"{RESULTS}/features/{fset}/train.parquet"


def get_tune_input(wildcards):
    """A study fits its base model's folds in-process: the inputs of that model's jobs (the config
    check refuses studies of models that read other jobs of the same seed × fold)."""
    inputs = model_inputs(config["tune"][wildcards.study]["model"])
    inputs.pop("tuned_params", None)  # the study starts from the model's own params
    return inputs


def get_collect_input(wildcards):
    jobs = model_jobs(config, wildcards.model)
    m = model_cfg(wildcards)
    return {
        "oof": [f"{job_dir(wildcards.model, s, f)}/oof.parquet" for s, f in jobs],
        "test": [f"{job_dir(wildcards.model, s, f)}/test.parquet" for s, f in jobs],
        "metrics": [f"{job_dir(wildcards.model, s, f)}/metrics.json" for s, f in jobs],
        "targets": f"{RESULTS}/data/train_targets_{m['targets']}.parquet",
    }


def get_blend_input(wildcards):
    members = blend_members(config)
    return {
        "oof": expand(f"{RESULTS}/models/{{model}}/oof.parquet", model=members),
        "test": expand(f"{RESULTS}/models/{{model}}/test.parquet", model=members),
        "score": expand(f"{RESULTS}/models/{{model}}/score.json", model=members),
        "targets": f"{RESULTS}/data/train_targets_scored.parquet",
    }


def rule_resource(rule, key):
    return resources_for(config, rule)[key]


def model_resource(key):
    return lambda wildcards: resources_for(config, "train", wildcards.model)[key]


def train_gpus(wildcards):
    return 1 if wants_gpu(config, wildcards.model) else 0


def train_group():
    """The `group:` of the train rule: with `runtime.group_train`, the fold jobs of one model × seed
    share a group id, so a cluster executor can run them in one allocation (the profile's
    `group-components` bundles the folds, which are separate components). None: one job each.
    """
    if config["runtime"].get("group_train"):
        return "train_{model}_seed{seed}"
    return None
