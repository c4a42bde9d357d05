"""Every multilabel arch side by side (configs/zoo.yaml) through the real DAG, one seed, one fold scheme.

Per model: CV log loss and its ratio to the prior, mean ROC-AUC and PR-AUC, seconds and peak RSS per fold
job (from the jobs' Snakemake benchmark files), the mean per-target OOF correlation with ``simple_nn``, and
the blend's OOF log loss without that model (SLSQP re-searched on the others). Synthetic data: rankings
measured here need not carry over to the real data (REFERENCE.md has the published numbers).

    .venv/bin/python benchmarks/zoo.py [--rows 4000 --test-rows 1000] [--smoke] [--workdir DIR] [--cores 2]
    .venv/bin/python benchmarks/zoo.py --rows 23814 --test-rows 3982      # full lish-moa size
    .venv/bin/python benchmarks/zoo.py --skip-arch random_forest          # without the slowest arch
    .venv/bin/python benchmarks/zoo.py --second-place --workdir /tmp/moastack-2nd   # 2nd place's CNN vs its DNN

``--second-place`` runs configs/second-place.yaml at its full size instead, with one seed: its 1-D CNN, its
DNN (a ``simple_nn``, the table's reference) and a prior on the same drug-aware folds, one thread per job.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from _common import ROOT, read_benchmarks, run_workflow

from moastack.blend import apply_weights, search_weights
from moastack.metrics import metric_value


def zoo_config(smoke: bool, rows: int, test_rows: int, skip_arch: tuple[str, ...] = ()) -> dict:
    config = yaml.safe_load((ROOT / "configs" / ("zoo-smoke.yaml" if smoke else "zoo.yaml")).read_text())
    if not smoke:
        config["data"]["synthetic"].update(n_train=rows, n_test=test_rows)
    if {"prior", "simple_nn"} & set(skip_arch):
        raise SystemExit("--skip-arch: prior and simple_nn are the table's references")
    unknown = set(skip_arch) - {m["arch"] for m in config["models"].values()}
    if unknown:
        raise SystemExit(f"--skip-arch: no model of arch {sorted(unknown)} in the zoo")
    config["models"] = {n: m for n, m in config["models"].items() if m["arch"] not in skip_arch}
    return config


def second_place_config() -> dict:
    """configs/second-place.yaml, one seed, TabNet left out: does the 1-D CNN beat the simple NN at full size?"""
    config = yaml.safe_load((ROOT / "configs" / "second-place.yaml").read_text())
    models = {name: config["models"][name] for name in ("cnn1d_soft", "dnn")}
    for model in models.values():
        model.update(seeds=[0], resources={**model["resources"], "threads": 1})
    config["models"] = {"prior": {"arch": "prior", "features": "robust", "folds": "drug5"}, **models}
    return config


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over targets of the Pearson correlation of two models' OOF columns (constant columns skipped)."""
    a, b = a - a.mean(axis=0), b - b.mean(axis=0)
    norm = np.sqrt((a**2).sum(axis=0) * (b**2).sum(axis=0))
    ok = norm > 0
    return float(np.mean((a * b).sum(axis=0)[ok] / norm[ok])) if ok.any() else float("nan")


def table(results: Path, config: dict) -> pd.DataFrame:
    models = list(config["models"])
    reference = next(name for name, m in config["models"].items() if m["arch"] == "simple_nn")
    targets = pd.read_parquet(results / "data" / "train_targets_scored.parquet")
    y = targets.drop(columns=["sig_id"]).to_numpy(np.float64)
    oof = {m: pd.read_parquet(results / "models" / m / "oof.parquet").set_index("sig_id")
           .reindex(targets["sig_id"]).to_numpy(np.float64) for m in models}
    bench = read_benchmarks(results)
    rows = []
    prior = json.loads((results / "models" / "prior" / "score.json").read_text())["value"]
    for m in models:
        score = json.loads((results / "models" / m / "score.json").read_text())
        jobs = bench[bench["job"].str.match(rf"models/{m}/seed\d+/fold\d+$")]
        others = [o for o in models if o != m]
        w = search_weights(y, [oof[o] for o in others], "slsqp")
        rows.append({
            "model": m, "log_loss": score["value"], "x_prior": score["value"] / prior,
            "roc_auc": score["metrics"]["roc_auc"], "pr_auc": score["metrics"]["pr_auc"],
            "s_per_fold": jobs["s"].mean(), "peak_rss_mb": jobs["max_rss"].max(),
            "r_simple_nn": correlation(oof[m], oof[reference]) if m != reference else 1.0,
            "blend_without": metric_value("log_loss", y, apply_weights(w, [oof[o] for o in others])),
        })
    return pd.DataFrame(rows).sort_values("log_loss")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--test-rows", type=int, default=1000)
    parser.add_argument("--smoke", action="store_true", help="configs/zoo-smoke.yaml (checks the script in minutes)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/moastack-zoo"))
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--second-place", action="store_true",
                        help="configs/second-place.yaml at full size, one seed, without TabNet (hours on 2 cores)")
    parser.add_argument("--skip-arch", action="append", default=[], metavar="ARCH",
                        help="leave this arch's models out (e.g. random_forest: 206 forests per fold job)")
    args = parser.parse_args()
    if args.second_place:
        config = second_place_config()
    else:
        config = zoo_config(args.smoke, args.rows, args.test_rows, tuple(args.skip_arch))
    seconds = run_workflow(args.workdir, config, cores=args.cores)
    results = args.workdir / "results"
    out = table(results, config)
    blend = json.loads((results / "blend" / "score.json").read_text())
    print(f"zoo: {config['data']['synthetic']['n_train']} train rows, whole DAG {seconds / 60:.1f} min "
          f"on {args.cores} cores; blend of all: log loss {blend['value']:.5f}")
    print(out.to_string(index=False, float_format=lambda v: f"{v:.5g}"))


if __name__ == "__main__":
    main()
