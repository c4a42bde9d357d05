"""One Tox21 fold job at full size: a model of ``configs/tox21.yaml`` on one fold of the real file.

Prepares the data, folds and the model's feature set through the DAG (``snakemake --until``, in a scratch
folder, reused across calls), then runs the model's train job for ``--fold`` in this process and prints
its fold ROC-AUC, seconds and peak RSS. Run it under ``/usr/bin/time -v`` for the whole process's figures:

    /usr/bin/time -v python benchmarks/tox21_fold_job.py chemprop_scaffold --fold 0
    python benchmarks/tox21_fold_job.py xgb --fold 0 --set n_estimators=300
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import time
from pathlib import Path

import numpy as np
import yaml
from _common import ROOT, run_workflow

from moastack import io
from moastack.columns import ID_COL
from moastack.metrics import metric_value
from moastack.spec import ModelSpec
from moastack.train import FoldJob, run_fold_job


def fold_scores(oof_path: Path, targets_path: Path) -> dict[str, float]:
    """The fold's mean ROC-AUC and PR-AUC over the assays (labelled validation cells only)."""
    oof = io.read_parquet(oof_path)
    targets = io.read_parquet(targets_path).set_index(ID_COL).loc[oof[ID_COL]]
    names = [c for c in oof.columns if c != ID_COL]
    Y, P = targets[names].to_numpy(dtype=np.float64), oof[names].to_numpy(dtype=np.float64)
    return {f"valid_{m}": round(metric_value(m, Y, P), 4) for m in ("roc_auc", "pr_auc")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="a model of configs/tox21.yaml")
    ap.add_argument("--fold", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override one of the model's params (YAML value)")
    ap.add_argument("--workdir", type=Path, default=ROOT / "results-bench" / "tox21-job")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "tox21" / "tox21.csv")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    config = yaml.safe_load((ROOT / "configs" / "tox21.yaml").read_text())
    config["data"]["table"]["path"] = str(args.data.resolve())
    entry = config["models"][args.model]
    for item in args.set:
        key, value = item.split("=", 1)
        entry.setdefault("params", {})[key] = yaml.safe_load(value)
    results = args.workdir / "results"
    fset, scheme = entry["features"], entry["folds"]
    targets = [f"results/folds/{scheme}.parquet", f"results/features/{fset}/train.parquet"]
    if not all((args.workdir / t).exists() for t in targets):
        run_workflow(args.workdir, config, *targets, cores=args.threads)

    spec = ModelSpec.from_entry(args.model, entry, config["data"]["task"])
    data = results / "data"
    inputs = {"features_train": results / "features" / fset / "train.parquet",
              "features_test": results / "features" / fset / "test.parquet",
              "folds": results / "folds" / f"{scheme}.parquet", "targets": data / "train_targets_scored.parquet",
              "train_features": data / "train_features.parquet", "test_features": data / "test_features.parquet"}
    job = FoldJob.from_inputs(spec, args.seed, args.fold, inputs, args.threads)
    out = args.workdir / "jobs" / f"{args.model}-seed{args.seed}-fold{args.fold}"
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    metrics = run_fold_job(job, {k: str(out / f"{k}.{ext}") for k, ext in
                                 (("oof", "parquet"), ("test", "parquet"), ("model", "pt"), ("metrics", "json"))})
    seconds = time.perf_counter() - start
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"model": args.model, "arch": spec.arch, "folds": scheme, "fold": args.fold,
                      "params": spec.params, **fold_scores(out / "oof.parquet", inputs["targets"]),
                      "n_train": metrics["n_train"], "n_valid": metrics["n_valid"],
                      "epochs_run": len(metrics["history"]) or None, "job_seconds": round(seconds, 1),
                      "peak_rss_mb": round(rss_mb)}, indent=1))


if __name__ == "__main__":
    main()
