rule features:
    input:
        train=f"{RESULTS}/data/train_features.parquet",
        test=f"{RESULTS}/data/test_features.parquet",
    output:
        train=f"{RESULTS}/features/{{fset}}/train.parquet",
        test=f"{RESULTS}/features/{{fset}}/test.parquet",
        fitted=f"{RESULTS}/features/{{fset}}/fitted.joblib",
    log:
        f"{RESULTS}/logs/features/{{fset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/features/{{fset}}.tsv"
    conda:
        "../envs/moastack.yaml"
    threads: rule_resource("features", "threads")
    resources:
        mem_mb=rule_resource("features", "mem_mb"),
        runtime=rule_resource("features", "runtime"),
    params:
        spec=lambda wildcards: config["features"][wildcards.fset],
    script:
        "../scripts/features.py"


rule feature_map:
    input:
        train=feature_map_input,
    output:
        fmap=f"{RESULTS}/feature_maps/{{fmap}}/map.npz",
        png=f"{RESULTS}/report/feature_maps/{{fmap}}.png",
    log:
        f"{RESULTS}/logs/feature_maps/{{fmap}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/feature_maps/{{fmap}}.tsv"
    conda:
        "../envs/moastack.yaml"
    threads: rule_resource("feature_map", "threads")
    resources:
        mem_mb=rule_resource("feature_map", "mem_mb"),
        runtime=rule_resource("feature_map", "runtime"),
    params:
        spec=lambda wildcards: feature_map_slice(config, wildcards.fmap),
    script:
        "../scripts/feature_map.py"
