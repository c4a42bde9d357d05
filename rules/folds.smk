rule folds:
    input:
        targets=f"{RESULTS}/data/train_targets_scored.parquet",
        drugs=f"{RESULTS}/data/train_drug.parquet",
        train_features=f"{RESULTS}/data/train_features.parquet",
    output:
        f"{RESULTS}/folds/{{scheme}}.parquet",
    log:
        f"{RESULTS}/logs/folds/{{scheme}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/folds/{{scheme}}.tsv"
    conda:
        "../envs/moastack.yaml"
    threads: rule_resource("folds", "threads")
    resources:
        mem_mb=rule_resource("folds", "mem_mb"),
        runtime=rule_resource("folds", "runtime"),
    params:
        scheme=lambda wildcards: config["folds"][wildcards.scheme],
    script:
        "../scripts/folds.py"
