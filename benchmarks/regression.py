"""The regression (single-cell perturbation) models on synthetic data at the real task's size: MRRMSE per model.

Runs the pipeline's own code in-process, without Snakemake: ``prepare`` (synthetic_perturbation), the fold
scheme, the feature sets, one :func:`moastack.train.run_fold_job` per model × seed × fold (target encoding,
SVD targets and pseudo-labels exactly as in the DAG), :func:`moastack.collect.collect_model` and the MRRMSE
blend. Each model runs in a fresh process, so its peak RSS (``resource.getrusage``) is its own.

Printed per model: CV MRRMSE (OOF, the fold scheme's validation rows), test MRRMSE (the generator's truth of
the test rows: rare cell type × compound pairs never measured, as in the real task), mean seconds per fold
job and peak RSS. The baseline is the per-cell-type training mean (a ridge on the one-hot cell type).

    .venv/bin/python benchmarks/regression.py                      # full size: 6 × 146, 18,211 genes
    .venv/bin/python benchmarks/regression.py --genes 2000 --only baseline,mlp_te_svd
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing
import resource
import sys
import time
from pathlib import Path

import numpy as np

SRC = Path(__file__).resolve().parents[1] / "src"
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))

FEATURE_SETS = {
    "cell": {"fit_on": "train+test", "steps": [{"name": "onehot_columns", "columns": ["cell_type"]}]},
    "keys": {"fit_on": "train+test", "steps": [{"name": "onehot_columns", "columns": ["cell_type", "compound"]}]},
}


def variants(args) -> dict[str, dict]:
    """Model entries (as in a config) keyed by name; a pseudo model follows its source."""
    te = {"columns": ["cell_type", "compound"], "stats": args.te_stats.split(","), "n_components": args.te_components}
    mlp = {"epochs": args.epochs, "patience": args.patience, "hidden": [512, 512], "dropout": 0.2, "lr": 1e-3,
           "batch_size": 64}
    svd = {"svd_components": args.svd}
    return {
        "baseline": {"arch": "ridge", "features": "cell", "params": {"alpha": 1e-3}},
        "ridge": {"arch": "ridge", "features": "keys", "params": {"alpha": 1.0}},
        "ridge_svd": {"arch": "ridge", "features": "keys", "params": {"alpha": 1.0, **svd}},
        "ridge_te": {"arch": "ridge", "features": "cell", "target_encoding": te, "params": {"alpha": 1.0}},
        "mlp": {"arch": "mlp_regressor", "features": "keys", "params": dict(mlp)},
        "mlp_svd": {"arch": "mlp_regressor", "features": "keys", "params": {**mlp, **svd}},
        "mlp_te": {"arch": "mlp_regressor", "features": "cell", "target_encoding": te, "params": dict(mlp)},
        "mlp_te_svd": {"arch": "mlp_regressor", "features": "cell", "target_encoding": te,
                       "params": {**mlp, **svd}},
        "mlp_te_svd_pseudo": {"arch": "mlp_regressor", "features": "cell", "target_encoding": te,
                              "pseudo_from": "mlp_te_svd", "params": {**mlp, **svd}},
    }


def paths(workdir: Path) -> dict[str, str]:
    d = workdir / "results"
    out = {t: str(d / "data" / f"{t}.parquet") for t in ("train_features", "test_features", "train_targets_scored",
                                                        "train_targets_nonscored", "train_drug")}
    out["folds"] = str(d / "folds" / "folds.parquet")
    for fset in FEATURE_SETS:
        out[f"{fset}_train"] = str(d / "features" / fset / "train.parquet")
        out[f"{fset}_test"] = str(d / "features" / fset / "test.parquet")
    return out


def prepare_inputs(workdir: Path, data_cfg: dict, scheme: dict) -> None:
    from moastack import io
    from moastack.data.prepare import prepare
    from moastack.features.feature_set import build_feature_set
    from moastack.folds import make_folds

    p = paths(workdir)
    tables = prepare(data_cfg, {t: p[t] for t in ("train_features", "test_features", "train_targets_scored",
                                                  "train_targets_nonscored", "train_drug")})
    folds = make_folds(scheme, tables["train_targets_scored"], tables["train_drug"],
                       cell_types=tables["train_features"]["cell_type"])
    io.write_parquet(folds, p["folds"])
    for fset, spec in FEATURE_SETS.items():
        _, train, test = build_feature_set(spec, tables["train_features"], tables["test_features"])
        io.write_parquet(train, p[f"{fset}_train"])
        io.write_parquet(test, p[f"{fset}_test"])


def job_dir(workdir: Path, model: str, seed: int, fold: int) -> Path:
    return workdir / "results" / "models" / model / f"seed{seed}" / f"fold{fold}"


def run_model(workdir: str, name: str, cfg: dict, seeds: list[int], k: int, threads: int,
              truth_spec: dict) -> dict:
    """All jobs of one model, its collect and its test MRRMSE; runs in its own process."""
    import logging

    from moastack import io
    from moastack.collect import collect_model
    from moastack.data.synthetic_perturbation import PerturbationSpec, perturbation_test_truth
    from moastack.metrics import mrrmse
    from moastack.spec import ModelSpec
    from moastack.train import FoldJob, run_fold_job

    logging.basicConfig(level=logging.WARNING)
    wd, p = Path(workdir), paths(Path(workdir))
    seconds, n_train = [], []
    for seed in seeds:
        for fold in range(k):
            out = job_dir(wd, name, seed, fold)
            outputs = {key: str(out / f"{key}.{ext}") for key, ext in
                       (("oof", "parquet"), ("test", "parquet"), ("model", "pt"), ("metrics", "json"))}
            up = cfg.get("pseudo_from")
            spec = ModelSpec.from_entry(name, {"folds": "bench", **cfg, "task": "regression"})
            job = FoldJob(spec=spec, seed=seed, fold=fold,
                          features_train=p[f"{cfg['features']}_train"], features_test=p[f"{cfg['features']}_test"],
                          folds=p["folds"], targets=p["train_targets_scored"], train_features=p["train_features"],
                          test_features=p["test_features"], threads=threads,
                          scored_targets=p["train_targets_scored"],
                          pseudo_test=str(job_dir(wd, up, seed, fold) / "test.parquet") if up else None)
            metrics = run_fold_job(job, outputs)
            seconds.append(metrics["seconds"])
            n_train.append(metrics["n_train"])
    m = wd / "results" / "models" / name
    keys = [(s, f) for s in seeds for f in range(k)]
    score = collect_model(
        name, {key: str(job_dir(wd, name, *key) / "oof.parquet") for key in keys},
        {key: str(job_dir(wd, name, *key) / "test.parquet") for key in keys},
        {key: str(job_dir(wd, name, *key) / "metrics.json") for key in keys},
        p["train_targets_scored"], "folds",
        {"oof": str(m / "oof.parquet"), "test": str(m / "test.parquet"), "score": str(m / "score.json")},
        metric="mrrmse", seed_aggregate=cfg.get("seed_aggregate", "mean"),
    )
    truth = perturbation_test_truth(PerturbationSpec(**truth_spec))
    test = io.read_parquet(m / "test.parquet").set_index("sig_id").reindex(truth["sig_id"])
    genes = list(truth.columns[1:])
    return {
        "model": name, "cv": score["value"], "rmse_col": score["metrics"]["rmse_col_mean"],
        "test": mrrmse(truth[genes].to_numpy(np.float64), test[genes].to_numpy(np.float64)),
        "sec_per_fold": float(np.mean(seconds)), "n_train": int(np.mean(n_train)),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }


def blend(workdir: Path, members: list[str], truth_spec: dict) -> dict:
    from moastack import io
    from moastack.blend import run_blend
    from moastack.data.synthetic_perturbation import PerturbationSpec, perturbation_test_truth
    from moastack.metrics import mrrmse

    m = workdir / "results" / "models"
    b = workdir / "results" / "blend"
    score = run_blend({x: {k: str(m / x / f"{k}.{e}") for k, e in (("oof", "parquet"), ("test", "parquet"),
                                                                    ("score", "json"))} for x in members},
                      paths(workdir)["train_targets_scored"], {"methods": ["slsqp"]},
                      {"weights": str(b / "weights.json"), "oof": str(b / "oof.parquet"),
                       "test": str(b / "test.parquet"), "score": str(b / "score.json")}, metric="mrrmse")
    truth = perturbation_test_truth(PerturbationSpec(**truth_spec))
    test = io.read_parquet(b / "test.parquet").set_index("sig_id").reindex(truth["sig_id"])
    genes = list(truth.columns[1:])
    weights = io.read_json(b / "weights.json")["methods"]["slsqp"]["weights"]
    return {"cv": score["value"], "test": mrrmse(truth[genes].to_numpy(np.float64), test[genes].to_numpy(np.float64)),
            "weights": {k: round(v, 3) for k, v in weights.items() if v > 0}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--genes", type=int, default=18211)
    parser.add_argument("--cell-types", type=int, default=6)
    parser.add_argument("--compounds", type=int, default=146)
    parser.add_argument("--rare-fraction", type=float, default=17 / 146)
    parser.add_argument("--test-fraction", type=float, default=255 / 876)
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--fold-method", choices=["rare_cell_type", "group"], default="rare_cell_type")
    parser.add_argument("--seeds", type=int, default=1, help="seeds per model (0..n-1)")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--patience", type=int, default=10)
    parser.add_argument("--svd", type=int, default=45, help="svd_components of the SVD variants")
    parser.add_argument("--te-stats", default="mean", help="target-encoding statistics, comma-separated")
    parser.add_argument("--te-components", type=int, default=16, help="target-encoding SVD components")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads per job (more than the free cores makes torch spin: much slower)")
    parser.add_argument("--only", default="", help="comma-separated model names (default: all)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/moastack-regression"))
    args = parser.parse_args()

    spec = {"n_cell_types": args.cell_types, "n_compounds": args.compounds, "n_genes": args.genes,
            "rare_fraction": args.rare_fraction, "test_fraction": args.test_fraction, "seed": args.data_seed}
    data_cfg = {"task": "regression", "source": "synthetic_perturbation", "synthetic_perturbation": spec}
    scheme = {"method": args.fold_method, "k": args.folds, "seed": 42}
    models = variants(args)
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = sorted(set(wanted) - set(models))
        if unknown:
            sys.exit(f"unknown models {unknown}; known: {list(models)}")
        for n in list(wanted):  # a pseudo model needs its source
            up = models[n].get("pseudo_from")
            if up and up not in wanted:
                wanted.insert(wanted.index(n), up)
        models = {n: models[n] for n in models if n in wanted}

    start = time.perf_counter()
    prepare_inputs(args.workdir, data_cfg, scheme)
    prep = time.perf_counter() - start
    print(f"data: {args.cell_types} cell types × {args.compounds} compounds × {args.genes} genes; folds "
          f"{args.fold_method} k={args.folds}; seeds {args.seeds}; prepare+folds+features {prep:.1f} s", flush=True)
    rows = []
    ctx = multiprocessing.get_context("spawn")
    for name, cfg in models.items():
        with cf.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
            rows.append(pool.submit(run_model, str(args.workdir), name, cfg, list(range(args.seeds)), args.folds,
                                    args.threads, spec).result())
        r = rows[-1]
        print(f"  {name}: CV {r['cv']:.4f} test {r['test']:.4f} {r['sec_per_fold']:.1f} s/fold "
              f"{r['peak_rss_mb']:.0f} MB", flush=True)
    b = blend(args.workdir, list(models), spec) if len(models) > 1 else None

    base = next((r for r in rows if r["model"] == "baseline"), None)
    print()
    print(f"{'model':<20}{'CV MRRMSE':>10}{'test MRRMSE':>12}{'test/base':>10}{'train rows':>11}{'s/fold':>8}"
          f"{'peak RSS MB':>12}")
    for r in rows:
        rel = f"{r['test'] / base['test']:.3f}" if base else "-"
        print(f"{r['model']:<20}{r['cv']:>10.4f}{r['test']:>12.4f}{rel:>10}{r['n_train']:>11}"
              f"{r['sec_per_fold']:>8.1f}{r['peak_rss_mb']:>12.0f}")
    if b:
        rel = f"{b['test'] / base['test']:.3f}" if base else "-"
        print(f"{'blend (SLSQP)':<20}{b['cv']:>10.4f}{b['test']:>12.4f}{rel:>10}")
        print(f"blend weights: {b['weights']}")
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
