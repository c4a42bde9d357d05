"""How real the built-in synthetic data is: its label/drug structure next to the real lish-moa train files,
and its difficulty (the simple NN's CV log loss / the prior's on both fold schemes) next to the winners'.

For each size (full: 23,814 train / 3,982 test rows; demo: 4,000 / 1,000, the default ``data.synthetic``):
prints every structure statistic beside the real value, then runs the prior and the simple NN of
``config.yaml`` (1 seed, 5 folds) through the real DAG on ``mlsk5`` (multilabel-stratified) and ``drug5``
(drug-aware) and prints each scheme's CV log losses, the NN / prior ratio (real: about 0.75 old CV,
0.73 new CV) and the NN's mean per-target ROC-AUC (targets with a positive and a negative in the scored
rows). At full size it also prints each structure statistic's median over ``--structure-seeds`` generator
seeds (one seed's tail statistics scatter). ``--folds 0,1`` scores only those folds (a cheaper screen; the full 5 folds are the measurement).

    .venv/bin/python benchmarks/synthetic_realism.py [--sizes full,demo] [--folds 0,1,2,3,4]
        [--workdir /tmp/moastack-realism] [--cores 2] [--structure-only] [--structure-seeds 42,1,2]
        [--set effect_strength=0.6]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from _common import ROOT, run_workflow

sys.path.insert(0, str(ROOT / "src"))
from moastack.data.realism import structure_table  # noqa: E402
from moastack.data.synthetic import SyntheticSpec, generate  # noqa: E402
from moastack.metrics import mean_log_loss, per_target_roc_auc  # noqa: E402

SIZES = {"full": (23814, 3982), "demo": (4000, 1000)}
SCHEMES = (("mlsk5", "prior", "simple_nn", 0.75), ("drug5", "prior_drug", "simple_nn_drug", 0.73))


def realism_config(n_train: int, n_test: int, knobs: dict | None = None) -> dict:
    """config.yaml's prior and simple NN on both fold schemes, on synthetic data of the given size."""
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["data"]["synthetic"] = {**config["data"]["synthetic"], **(knobs or {}), "n_train": n_train,
                                   "n_test": n_test}
    config["models"] = {name: copy.deepcopy(config["models"][name]) for _, *names, _ in SCHEMES for name in names}
    for model in config["models"].values():
        model["seeds"] = [0]
    config["features"] = {"rankgauss_pca": config["features"]["rankgauss_pca"]}
    config.pop("feature_maps", None)
    config["blend"] = {"folds": "mlsk5"}
    return config


def seed_median(spec: SyntheticSpec, seeds: list[int]) -> pd.Series:
    """Each structure statistic's median over generator seeds: the tail rows (4+ labels, the 10th percentile
    of positives) rest on a few dozen rows or targets, so one seed scatters around the generator's centre."""
    values = [structure_table(generate(dataclasses.replace(spec, seed=s)))["synthetic"] for s in seeds]
    return pd.concat(values, axis=1).median(axis=1)


def fold_predictions(results: Path, model: str, folds: list[int]) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(results / "models" / model / "seed0" / f"fold{f}" / "oof.parquet")
                      for f in folds]).set_index("sig_id")


def difficulty(workdir: Path, config: dict, folds: list[int], cores: int) -> pd.DataFrame:
    """Run the four models' fold jobs through Snakemake; CV log loss, ratio and ROC-AUC per scheme."""
    targets = [f"results/models/{m}/seed0/fold{f}/oof.parquet" for _, *ms, _ in SCHEMES for m in ms for f in folds]
    wall = run_workflow(workdir, config, *targets, cores=cores)
    results = workdir / "results"
    truth = pd.read_parquet(results / "data" / "train_targets_scored.parquet").set_index("sig_id")
    rows = []
    for scheme, prior_name, nn_name, real_ratio in SCHEMES:
        prior, nn = fold_predictions(results, prior_name, folds), fold_predictions(results, nn_name, folds)
        y = truth.loc[nn.index].to_numpy(np.float64)
        p_prior = prior.loc[nn.index, truth.columns].to_numpy(np.float64)
        p_nn = nn[truth.columns].to_numpy(np.float64)
        loss_prior, loss_nn = mean_log_loss(y, p_prior), mean_log_loss(y, p_nn)
        auc = per_target_roc_auc(y, p_nn)
        rows.append({"folds": scheme, "rows": len(y), "prior": loss_prior, "simple NN": loss_nn,
                     "NN / prior": loss_nn / loss_prior, "real NN / prior": real_ratio,
                     "NN ROC-AUC": float(np.nanmean(auc)), "AUC targets": int(np.isfinite(auc).sum())})
    print(f"(DAG wall time {wall / 60:.1f} min)")
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="full,demo")
    parser.add_argument("--folds", default="0,1,2,3,4")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/moastack-realism"))
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], metavar="KNOB=VALUE",
                        help="a SyntheticSpec knob for this run, e.g. effect_strength=0.6 (repeatable)")
    parser.add_argument("--structure-only", action="store_true", help="skip the models")
    parser.add_argument("--structure-seeds", default="42,1,2,3,4,5,6,7",
                        help="full size: also print each statistic's median over these generator seeds ('' skips)")
    args = parser.parse_args()
    folds = [int(f) for f in args.folds.split(",")]
    knobs = {k: yaml.safe_load(v) for k, _, v in (item.partition("=") for item in args.set)}
    args.structure_seeds = [int(s) for s in args.structure_seeds.split(",") if s]
    pd.set_option("display.width", 200)
    for size in args.sizes.split(","):
        n_train, n_test = SIZES[size]
        config = realism_config(n_train, n_test, knobs)
        spec = SyntheticSpec(**config["data"]["synthetic"])
        print(f"\n=== {size} size: {n_train} train / {n_test} test rows, seed {spec.seed} ===")
        table = structure_table(generate(spec))
        within = table.pop("within").map({True: "yes", False: "NO"})
        if size == "full":
            table["within ±20%"] = within
            if args.structure_seeds:
                median = seed_median(spec, args.structure_seeds)
                table[f"median of {len(args.structure_seeds)} seeds"] = median
                table["median within ±20%"] = ((median / table["real"] - 1).abs() <= 0.2 + 1e-9).map(
                    {True: "yes", False: "NO"})
        else:
            print("(the real column is the full-size data: counts scale with the size, shares should not)")
        print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
        if args.structure_only:
            continue
        scores = difficulty(args.workdir / size, config, folds, args.cores)
        print(f"\nprior and simple NN, 1 seed, folds {args.folds} of 5:")
        print(scores.to_string(index=False, float_format=lambda v: f"{v:.5f}" if v < 0.1 else f"{v:.3f}"))


if __name__ == "__main__":
    main()
