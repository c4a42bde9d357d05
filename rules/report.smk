# The HTML report of a run: every model, the blend, correlations, worst targets, learning curves
# and fold balance, from the collected outputs. Its outputs are marked with report() so that
# `snakemake --report report.html` bundles them too.


# Everything the report reads; known at parse time (no wildcards).
REPORT_INPUT = {
    "score": expand(f"{RESULTS}/models/{{model}}/score.json", model=MODELS),
    "oof": expand(f"{RESULTS}/models/{{model}}/oof.parquet", model=MODELS),
    "metrics": [
        f"{job_dir(m, s, f)}/metrics.json"
        for m in MODELS
        for s, f in model_jobs(config, m)
    ],
    "folds": expand(
        f"{RESULTS}/folds/{{scheme}}.parquet",
        scheme=sorted({config["models"][m]["folds"] for m in MODELS}),
    ),
    "blend_weights": f"{RESULTS}/blend/weights.json",
    "blend_score": f"{RESULTS}/blend/score.json",
    "blend_oof": f"{RESULTS}/blend/oof.parquet",
    "targets": f"{RESULTS}/data/train_targets_scored.parquet",
    "train_features": f"{RESULTS}/data/train_features.parquet",
    "feature_maps": expand(
        f"{RESULTS}/report/feature_maps/{{fmap}}.png",
        fmap=sorted(
            {m["feature_map"] for m in config["models"].values() if "feature_map" in m}
        ),
    ),
}


rule report:
    input:
        **REPORT_INPUT,
    output:
        html=report(
            f"{RESULTS}/report/index.html",
            caption="../report/index.rst",
            category="Report",
        ),
        correlation=report(
            f"{RESULTS}/report/correlation.png",
            caption="../report/correlation.rst",
            category="Figures",
        ),
        worst_targets=report(
            f"{RESULTS}/report/worst_targets.png",
            caption="../report/worst_targets.rst",
            category="Figures",
        ),
        learning_curves=report(
            f"{RESULTS}/report/learning_curves.png",
            caption="../report/learning_curves.rst",
            category="Figures",
        ),
        fold_balance=report(
            f"{RESULTS}/report/fold_balance.png",
            caption="../report/fold_balance.rst",
            category="Figures",
        ),
    log:
        f"{RESULTS}/logs/report.log",
    benchmark:
        f"{RESULTS}/benchmarks/report.tsv"
    conda:
        "../envs/moastack.yaml"
    threads: rule_resource("report", "threads")
    resources:
        mem_mb=rule_resource("report", "mem_mb"),
        runtime=rule_resource("report", "runtime"),
    params:
        report=config["report"],
    script:
        "../scripts/report.py"
