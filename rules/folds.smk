rule folds:
    input:
        targets=f"{RESULTS}/data/train_targets_scored.parquet",
        drugs=f"{RESULTS}/data/train_drug.parquet",
    output:
        f"{RESULTS}/folds/{{scheme}}.parquet",
    params:
        scheme=lambda wildcards: config["folds"][wildcards.scheme],
    log:
        f"{RESULTS}/logs/folds/{{scheme}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/folds/{{scheme}}.tsv"
    threads: rule_resource("folds", "threads")
    resources:
        mem_mb=rule_resource("folds", "mem_mb"),
        runtime=rule_resource("folds", "runtime"),
    conda:
        "../envs/moastack.yaml"
    script:
        "../scripts/folds.py"
