# Hyper-parameter searches (Optuna TPE) on a model's OOF score. The study's trials live in a journal
# beside the result, not declared as an output, so that a killed or failed search resumes where it
# stopped instead of being deleted by Snakemake.


rule tune:
    input:
        unpack(get_tune_input),
    output:
        best=f"{RESULTS}/tune/{{study}}/best.json",
    log:
        f"{RESULTS}/logs/tune/{{study}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/tune/{{study}}.tsv"
    conda:
        "../envs/moastack.yaml"
    threads: rule_resource("tune", "threads")
    resources:
        mem_mb=rule_resource("tune", "mem_mb"),
        runtime=rule_resource("tune", "runtime"),
    params:
        tune=lambda wildcards: tune_slice(config, wildcards.study),
        storage=lambda wildcards: f"{RESULTS}/tune/{wildcards.study}/study.journal",
    script:
        "../scripts/tune.py"
