rule blend:
    input:
        unpack(get_blend_input),
    output:
        weights=f"{RESULTS}/blend/weights.json",
        oof=f"{RESULTS}/blend/oof.parquet",
        test=f"{RESULTS}/blend/test.parquet",
        score=f"{RESULTS}/blend/score.json",
    log:
        f"{RESULTS}/logs/blend.log",
    benchmark:
        f"{RESULTS}/benchmarks/blend.tsv"
    conda:
        "../envs/moastack.yaml"
    threads: rule_resource("blend", "threads")
    resources:
        mem_mb=rule_resource("blend", "mem_mb"),
        runtime=rule_resource("blend", "runtime"),
    params:
        blend=config["blend"],
        metric=config["data"]["metric"],
        members=blend_members(config),
    script:
        "../scripts/blend.py"


rule submission:
    input:
        blend=f"{RESULTS}/blend/test.parquet",
        test_features=f"{RESULTS}/data/test_features.parquet",
    output:
        f"{RESULTS}/submission.csv",
    log:
        f"{RESULTS}/logs/submission.log",
    benchmark:
        f"{RESULTS}/benchmarks/submission.tsv"
    conda:
        "../envs/moastack.yaml"
    threads: rule_resource("submission", "threads")
    resources:
        mem_mb=rule_resource("submission", "mem_mb"),
        runtime=rule_resource("submission", "runtime"),
    script:
        "../scripts/submission.py"
