rule features:
    input:
        train=f"{RESULTS}/data/train_features.parquet",
        test=f"{RESULTS}/data/test_features.parquet",
    output:
        train=f"{RESULTS}/features/{{fset}}/train.parquet",
        test=f"{RESULTS}/features/{{fset}}/test.parquet",
        fitted=f"{RESULTS}/features/{{fset}}/fitted.joblib",
    params:
        spec=lambda wildcards: config["features"][wildcards.fset],
    log:
        f"{RESULTS}/logs/features/{{fset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/features/{{fset}}.tsv"
    threads: rule_resource("features", "threads")
    resources:
        mem_mb=rule_resource("features", "mem_mb"),
        runtime=rule_resource("features", "runtime"),
    conda:
        "../envs/moastack.yaml"
    script:
        "../scripts/features.py"
