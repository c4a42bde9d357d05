rule prepare:
    output:
        **{table: f"{RESULTS}/data/{table}.parquet" for table in TABLES},
    params:
        data=config["data"],
    log:
        f"{RESULTS}/logs/prepare.log",
    benchmark:
        f"{RESULTS}/benchmarks/prepare.tsv"
    threads: rule_resource("prepare", "threads")
    resources:
        mem_mb=rule_resource("prepare", "mem_mb"),
        runtime=rule_resource("prepare", "runtime"),
    conda:
        "../envs/moastack.yaml"
    script:
        "../scripts/prepare.py"
