"""Every model of the winning recipe at demo size through the real DAG: CV log loss and time per fold.

Takes configs/winner.yaml's models and feature sets, puts them on synthetic demo-size data (4,000
train / 1,000 test rows), one seed, and the 5-fold multilabel-stratified scheme so that one blend
can hold them all (the drug-aware simple NN keeps its own scheme and is shown for reference). The
prior and the simple NN are the references. Epoch budgets are trimmed where the winners' were set for
full-size data (TabNet 60 epochs, ResNet 30), and the DeepInsight CNNs are the demo's small one (no GPU or
pretrained weights here).

    .venv/bin/python benchmarks/models.py [--workdir /tmp/moastack-models] [--cores 2]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml
from _common import ROOT, read_benchmarks, run_workflow


def demo_config() -> dict:
    config = yaml.safe_load((ROOT / "configs" / "winner.yaml").read_text())
    config["data"] = {"source": "synthetic", "synthetic": {"n_train": 4000, "n_test": 1000, "seed": 42}}
    config["folds"] = {
        "mlsk5": {"method": "multilabel_stratified", "k": 5, "seed": 42},
        "drug5": {"method": "drug_aware", "k": 5, "seed": 42, "drug_threshold": 18},
    }
    for spec in config["features"].values():
        for step in spec["steps"]:
            if step["name"] == "umap":
                step["n_epochs"] = 100
    # DeepInsight: the winners' backbones (EfficientNet-B3 at 300x300, ResNeSt at 224x224, ImageNet weights)
    # need a GPU and a download; at demo size both are stood in for by the demo's CNN (config.yaml's
    # `deepinsight`: a 20x20 map, resnet10t from scratch, 6 epochs), so the table has one DeepInsight row.
    demo = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["feature_maps"] = {"di20": demo["feature_maps"]["di20"]}
    config["models"] = {n: m for n, m in config["models"].items() if m["arch"] != "deepinsight"}
    config["models"]["deepinsight"] = demo["models"]["deepinsight"]
    for model in config["models"].values():
        model["seeds"] = [0]
        model.pop("device", None)
        model.pop("resources", None)
        if model["folds"] != "drug5":
            model["folds"] = "mlsk5"
        params = model.setdefault("params", {})
        if model["arch"] == "tabnet":
            params.update(max_epochs=60, patience=15)
        if model["arch"] == "resnet2h":
            params.update(epochs=30)
    config["models"]["prior"] = {"arch": "prior", "features": "qt_fa_stats", "folds": "mlsk5"}
    config["models"]["prior_drug"] = {"arch": "prior", "features": "qt_fa_stats", "folds": "drug5"}
    config["blend"] = {"folds": "mlsk5", "methods": ["slsqp", "optuna_tpe"], "n_trials": 300}
    config["runtime"] = {"default": {"threads": 1, "mem_mb": 4000, "runtime": 60},
                         "rules": {"train": {"threads": 2}, "features": {"threads": 2}}}
    return config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/moastack-models"))
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    config = demo_config()
    wall = run_workflow(args.workdir, config, cores=args.cores)
    results = args.workdir / "results"
    bench = read_benchmarks(results)
    priors = {scheme: json.loads((results / "models" / name / "score.json").read_text())["value"]
              for scheme, name in (("mlsk5", "prior"), ("drug5", "prior_drug"))}
    prior = priors["mlsk5"]
    print(f"{'model':<20}{'arch':<11}{'targets':<10}{'folds':<7}{'CV log loss':>12}{'x prior':>9}"
          f"{'CPU s/fold':>12}{'wall s/fold':>12}")
    for name, model in config["models"].items():
        score = json.loads((results / "models" / name / "score.json").read_text())
        jobs = bench[bench["job"].str.startswith(f"models/{name}/seed")]
        comparable = model.get("targets", "scored") == "scored"  # against its own scheme's prior
        ratio = f"{score['value'] / priors[model['folds']]:.2f}" if comparable else "-"
        print(f"{name:<20}{model['arch']:<11}{model.get('targets', 'scored'):<10}{model['folds']:<7}"
              f"{score['value']:>12.5f}{ratio:>9}{jobs['cpu_time'].mean():>12.1f}{jobs['s'].mean():>12.1f}")
    blend = json.loads((results / "blend" / "score.json").read_text())
    weights = json.loads((results / "blend" / "weights.json").read_text())
    best = blend["best_member"]
    print(f"\nblend ({weights['applied']}, {weights['fold_scheme']}): {blend['value']:.5f}  "
          f"best member {best} {blend['members'][best]:.5f}  prior {prior:.5f}")
    for method, result in weights["methods"].items():
        kept = {m: round(w, 3) for m, w in result["weights"].items() if w > 0}
        print(f"  {method:<11} OOF {result['oof_log_loss']:.5f}  weights {kept}")
    print(f"\nwhole DAG: {wall / 60:.1f} min on {args.cores} cores")


if __name__ == "__main__":
    main()
