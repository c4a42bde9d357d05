# moastack: the lish-moa winning recipe as a reproducible DAG.
#
# Paths (all under results/, see README "Outputs"):
#   data/{table}.parquet -> folds/{scheme}.parquet -> features/{set}/{train,test}.parquet
#   -> models/{model}/seed{s}/fold{k}/{oof,test}.parquet -> models/{model}/{oof,test}.parquet
#   -> blend/{weights.json,oof,test}.parquet -> submission.csv, report/index.html
# Logs mirror the outputs under results/logs/, job times and memory under results/benchmarks/.

import re

from snakemake.utils import min_version

min_version("9.0")


# config.yaml is the default; a --configfile (configs/winner.yaml, configs/tox21.yaml...) replaces it
# instead of being merged into it, so a preset never inherits the demo's models or fold schemes.
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/folds.smk"
include: "rules/features.smk"
include: "rules/train.smk"
include: "rules/tune.smk"
include: "rules/blend.smk"
include: "rules/report.smk"


wildcard_constraints:
    model="|".join(map(re.escape, MODELS)),
    scheme="|".join(map(re.escape, FOLD_SCHEMES)),
    fset="|".join(map(re.escape, FEATURE_SETS)),
    fmap="|".join(map(re.escape, FEATURE_MAPS)) or "(?!)",
    study="|".join(map(re.escape, TUNE_STUDIES)) or "(?!)",
    seed=r"\d+",
    fold=r"\d+",


rule all:
    default_target: True
    input:
        get_final_outputs(),
