rule prepare:
    output:
        **{table: f"{RESULTS}/data/{table}.parquet" for table in TABLES},
    log:
        f"{RESULTS}/logs/prepare.log",
    benchmark:
        f"{RESULTS}/benchmarks/prepare.tsv"
    conda:
        "../envs/moastack.yaml"
    threads: rule_resource("prepare", "threads")
    resources:
        mem_mb=rule_resource("prepare", "mem_mb"),
        runtime=rule_resource("prepare", "runtime"),
    params:
        data=data_slice(config),
    script:
        "../scripts/prepare.py"
