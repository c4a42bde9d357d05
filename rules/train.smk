rule train:
    input:
        unpack(get_train_input),
    output:
        oof=f"{RESULTS}/models/{{model}}/seed{{seed}}/fold{{fold}}/oof.parquet",
        test=f"{RESULTS}/models/{{model}}/seed{{seed}}/fold{{fold}}/test.parquet",
        model=f"{RESULTS}/models/{{model}}/seed{{seed}}/fold{{fold}}/model.pt",
        metrics=f"{RESULTS}/models/{{model}}/seed{{seed}}/fold{{fold}}/metrics.json",
    log:
        f"{RESULTS}/logs/models/{{model}}/seed{{seed}}/fold{{fold}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/models/{{model}}/seed{{seed}}/fold{{fold}}.tsv"
    group:
        train_group()
    conda:
        "../envs/moastack.yaml"
    threads: model_resource("threads")
    resources:
        mem_mb=model_resource("mem_mb"),
        runtime=model_resource("runtime"),
        gpu=train_gpus,
    params:
        model=lambda wildcards: train_slice(config, wildcards.model),
    script:
        "../scripts/train.py"


rule collect:
    input:
        unpack(get_collect_input),
    output:
        oof=f"{RESULTS}/models/{{model}}/oof.parquet",
        test=f"{RESULTS}/models/{{model}}/test.parquet",
        score=f"{RESULTS}/models/{{model}}/score.json",
    log:
        f"{RESULTS}/logs/models/{{model}}/collect.log",
    benchmark:
        f"{RESULTS}/benchmarks/models/{{model}}/collect.tsv"
    conda:
        "../envs/moastack.yaml"
    threads: rule_resource("collect", "threads")
    resources:
        mem_mb=rule_resource("collect", "mem_mb"),
        runtime=rule_resource("collect", "runtime"),
    params:
        collect=lambda wildcards: collect_slice(config, wildcards.model),
    script:
        "../scripts/collect.py"
