"""The simple NN on full lish-moa-sized synthetic data through the real DAG, on this machine's cores.

23,814 × 875 train, 3,982 test, 1 seed × 5 folds, plus the prior for the blend. Prints every job's
wall time and peak RSS from the rules' Snakemake ``benchmark:`` files. Targets: < 15 minutes in all,
peak RSS < 4 GB per job.

    .venv/bin/python benchmarks/full_size.py [--workdir /tmp/moastack-full] [--cores 2]
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import yaml
from _common import ROOT, read_benchmarks, run_workflow


def full_config() -> dict:
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["data"]["synthetic"] = {"n_train": 23814, "n_test": 3982, "seed": 42}
    nn = copy.deepcopy(config["models"]["simple_nn"])
    nn["seeds"] = [0]
    config["models"] = {"prior": config["models"]["prior"], "simple_nn": nn}
    config["folds"] = {"mlsk5": config["folds"]["mlsk5"]}
    config["blend"] = {"folds": "mlsk5"}
    return config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/moastack-full-size"))
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    wall = run_workflow(args.workdir, full_config(), cores=args.cores)
    table = read_benchmarks(args.workdir / "results")
    table["max_rss_gb"] = table["max_rss"] / 1024
    print(table[["job", "s", "max_rss_gb", "mean_load", "cpu_time"]].to_string(index=False, float_format="%.2f"))
    train = table[table["job"].str.startswith("models/simple_nn/seed")]
    print(f"\nsimple_nn: {len(train)} folds, mean {train['s'].mean():.1f} s per fold, "
          f"peak RSS {train['max_rss_gb'].max():.2f} GB")
    print(f"whole DAG: {wall / 60:.1f} min wall on {args.cores} cores (target < 15 min: "
          f"{'met' if wall < 900 else 'MISSED'}); largest job RSS {table['max_rss_gb'].max():.2f} GB "
          f"(target < 4 GB: {'met' if table['max_rss_gb'].max() < 4 else 'MISSED'})")


if __name__ == "__main__":
    main()
