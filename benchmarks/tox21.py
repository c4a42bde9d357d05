"""Tox21 on the full real file through the DAG: ROC-AUC / PR-AUC per model and blend, random vs scaffold folds.

Runs ``configs/tox21.yaml`` (optionally lighter: ``--trees``, ``--seeds``, ``--epochs``) in a scratch
folder and prints, per model: its split type, mean OOF ROC-AUC, PR-AUC and log loss, and seconds per
fold job; then the per-assay ROC-AUC of the blend (hardest first). Published figures for reference
(../shared/data/tox21/PROVENANCE.md): DeepTox multitask DNN ≈ 0.85 mean test ROC-AUC (challenge test
set); MoleculeNet random split ≈ 0.77 random forest, 0.80–0.83 multitask / graph networks.

    python benchmarks/tox21.py                       # the preset as is (a long run on 2 cores)
    python benchmarks/tox21.py --trees 100 --seeds 1 # lighter
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import yaml
from _common import ROOT, run_workflow


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=ROOT / "results-bench" / "tox21")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "tox21" / "tox21.csv")
    ap.add_argument("--trees", type=int, help="random-forest trees (preset: its own)")
    ap.add_argument("--seeds", type=int, help="NN seeds per fold (preset: its own)")
    ap.add_argument("--epochs", type=int, help="NN epochs (preset: its own)")
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()

    config = yaml.safe_load((ROOT / "configs" / "tox21.yaml").read_text())
    config["data"]["table"]["path"] = str(args.data.resolve())
    for m in config["models"].values():
        if m["arch"] == "random_forest" and args.trees:
            m["params"]["n_estimators"] = args.trees
        if m["arch"] == "simple_nn":
            if args.seeds:
                m["seeds"] = list(range(args.seeds))
            if args.epochs:
                m["params"]["epochs"] = args.epochs
    seconds = run_workflow(args.workdir, config, cores=args.cores)
    results = args.workdir / "results"

    print(f"Tox21 ({args.data.name}), {seconds / 60:.1f} min wall on {args.cores} cores\n")
    print(f"{'model':<14}{'folds':<11}{'ROC-AUC':>9}{'PR-AUC':>9}{'log loss':>10}{'s / fold job':>14}")
    for name, m in config["models"].items():
        score = json.loads((results / "models" / name / "score.json").read_text())
        jobs = [json.loads(p.read_text()) for p in (results / "models" / name).glob("seed*/fold*/metrics.json")]
        per_fold = np.mean([j["seconds"] for j in jobs])
        met = score["metrics"]
        print(f"{name:<14}{m['folds']:<11}{met['roc_auc']:>9.4f}{met['pr_auc']:>9.4f}{met['log_loss']:>10.4f}"
              f"{per_fold:>14.1f}")
    blend = json.loads((results / "blend" / "score.json").read_text())
    met = blend["metrics"]
    print(f"{'blend':<14}{config['blend']['folds']:<11}{met['roc_auc']:>9.4f}{met['pr_auc']:>9.4f}"
          f"{met['log_loss']:>10.4f}{'':>14}")
    weights = json.loads((results / "blend" / "weights.json").read_text())
    applied = weights["methods"][weights["applied"]]["weights"]
    print("blend weights (" + weights["applied"] + "): " + ", ".join(f"{k} {v:.2f}" for k, v in applied.items()))
    print("\nblend ROC-AUC per assay, hardest first:")
    for target, value in sorted(blend["per_target_all"]["roc_auc"].items(), key=lambda kv: kv[1]):
        print(f"  {target:<15}{value:.4f}")


if __name__ == "__main__":
    main()
