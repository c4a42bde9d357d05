"""Tox21 on the full real file through the DAG: ROC-AUC / PR-AUC, seconds and peak RSS per fold job for every
model, on random and scaffold folds, and a blend on each fold scheme with its per-assay F1 / MCC at the
decision thresholds stored with it.

Every model it runs is a blend member on its own fold scheme (the preset itself blends a subset). Runs ``configs/tox21.yaml`` (optionally lighter: ``--trees``, ``--seeds``, ``--epochs``, ``--set``) in a
scratch folder. The preset blends its random-fold models; the benchmark then blends the scaffold-fold
models too (the same run with ``blend.folds: scaffold5``: only the blend, submission and report rerun).

Protocols, so that numbers are compared with their like (README, "Tox21"): here 5-fold CV on
MoleculeNet's ``tox21.csv`` (7,831 compounds), random (multilabel-stratified) or scaffold folds. The Tox21
Data Challenge 2014's own protocol scores a held-out set of 647 compounds (DeepTox 0.846, SNN 0.844,
RF 0.829, XGBoost 0.823, Chemprop 0.815 mean ROC-AUC); published scaffold-split figures on tox21.csv
run 0.74-0.80 (D-MPNN 0.759, Uni-Mol 0.796) with other split seeds and fold counts.

    python benchmarks/tox21.py                                   # the preset as is (hours on 2 cores)
    python benchmarks/tox21.py --trees 100 --seeds 1 --set chemprop.epochs=15
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import yaml
from _common import ROOT, read_benchmarks, run_workflow


def _override(config: dict, settings: list[str]) -> None:
    """``--set ARCH.PARAM=VALUE``: that param of every model of that arch (VALUE read as YAML)."""
    for item in settings:
        key, _, value = item.partition("=")
        arch, _, param = key.partition(".")
        if not param or not value:
            raise SystemExit(f"--set {item!r}: expected ARCH.PARAM=VALUE")
        hits = [m for m in config["models"].values() if m["arch"] == arch]
        if not hits:
            raise SystemExit(f"--set {item!r}: no model of arch {arch!r} in the preset")
        for m in hits:
            m.setdefault("params", {})[param] = yaml.safe_load(value)


def _model_table(config: dict, results: Path) -> None:
    bench = read_benchmarks(results)
    print(f"{'model':<16}{'arch':<15}{'folds':<11}{'ROC-AUC':>9}{'PR-AUC':>9}{'log loss':>10}"
          f"{'s / fold job':>14}{'peak RSS GB':>13}")
    for name, m in config["models"].items():
        score = json.loads((results / "models" / name / "score.json").read_text())
        jobs = bench[bench["job"].str.startswith(f"models/{name}/seed")]
        met = score["metrics"]
        print(f"{name:<16}{m['arch']:<15}{m['folds']:<11}{met['roc_auc']:>9.4f}{met['pr_auc']:>9.4f}"
              f"{met['log_loss']:>10.4f}{jobs['s'].mean():>14.1f}{jobs['max_rss'].max() / 1024:>13.2f}")


def _blend_table(config: dict, results: Path) -> None:
    blend = json.loads((results / "blend" / "score.json").read_text())
    weights = json.loads((results / "blend" / "weights.json").read_text())
    met = blend["metrics"]
    print(f"\nblend on {config['blend']['folds']}: ROC-AUC {met['roc_auc']:.4f}, PR-AUC {met['pr_auc']:.4f}, "
          f"log loss {met['log_loss']:.4f}")
    applied = weights["methods"][weights["applied"]]["weights"]
    print("  weights (" + weights["applied"] + "): " + ", ".join(f"{k} {v:.2f}" for k, v in applied.items()))
    thresholds = weights["thresholds"]
    print(f"  per assay, hardest first (decision threshold maximising {thresholds['metric']} on the OOF rows):")
    print(f"  {'assay':<15}{'ROC-AUC':>9}{'PR-AUC':>9}{'F1':>7}{'MCC':>7}{'threshold':>11}{'positives':>11}")
    rows = sorted(thresholds["targets"].items(), key=lambda kv: kv[1]["roc_auc"])
    for target, t in rows:
        print(f"  {target:<15}{t['roc_auc']:>9.4f}{t['pr_auc']:>9.4f}{t['f1']:>7.3f}{t['mcc']:>7.3f}"
              f"{t['threshold']:>11.3f}{t['positives']:>11d}")
    print(f"  {'mean':<15}{np.mean([t['roc_auc'] for _, t in rows]):>9.4f}{np.mean([t['pr_auc'] for _, t in rows]):>9.4f}"
          f"{np.mean([t['f1'] for _, t in rows]):>7.3f}{np.mean([t['mcc'] for _, t in rows]):>7.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=ROOT / "results-bench" / "tox21")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "tox21" / "tox21.csv")
    ap.add_argument("--trees", type=int, help="random-forest trees (preset: its own)")
    ap.add_argument("--seeds", type=int, help="seeds per fold of every model (preset: its own)")
    ap.add_argument("--epochs", type=int, help="simple_nn epochs (preset: its own)")
    ap.add_argument("--set", action="append", default=[], metavar="ARCH.PARAM=VALUE",
                    help="a param of every model of an arch, e.g. chemprop.epochs=15 (repeatable)")
    ap.add_argument("--skip-arch", action="append", default=[], metavar="ARCH",
                    help="leave out every model of this arch (e.g. chemprop: about 15 CPU-minutes per fold job)")
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()

    config = yaml.safe_load((ROOT / "configs" / "tox21.yaml").read_text())
    config["data"]["table"]["path"] = str(args.data.resolve())
    config["models"] = {n: m for n, m in config["models"].items() if m["arch"] not in args.skip_arch}
    # every model it ran blends on its fold scheme (the preset's own members are a subset of the random ones)
    config["blend"]["members"] = [n for n, m in config["models"].items()
                                  if m["folds"] == config["blend"]["folds"] and m["arch"] != "prior"]
    for m in config["models"].values():
        if m["arch"] == "random_forest" and args.trees:
            m["params"]["n_estimators"] = args.trees
        if args.seeds and "seeds" in m:
            m["seeds"] = list(range(args.seeds))
        if m["arch"] == "simple_nn" and args.epochs:
            m["params"]["epochs"] = args.epochs
    _override(config, args.set)
    seconds = run_workflow(args.workdir, config, cores=args.cores)
    results = args.workdir / "results"
    print(f"Tox21 ({args.data.name}), {seconds / 60:.1f} min wall on {args.cores} cores; 5-fold CV, OOF scores\n")
    _model_table(config, results)
    _blend_table(config, results)

    scaffold = [n for n, m in config["models"].items() if m["folds"] == "scaffold5" and m["arch"] != "prior"]
    if scaffold and config["blend"]["folds"] != "scaffold5":
        config["blend"] = {**config["blend"], "folds": "scaffold5", "members": scaffold}
        run_workflow(args.workdir, config, cores=args.cores)
        _blend_table(config, results)


if __name__ == "__main__":
    main()
