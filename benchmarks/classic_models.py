"""The classic per-target models (logistic, calibrated SVM, ML-KNN, XGBoost) against the prior.

Synthetic lish-moa-like data (moastack's generator, 4,000 train rows, 206 scored targets), treated rows
only (moastack forces controls to 0 outside the models), g-/c- columns quantile-transformed to a normal
(fitted inside each training fold), one seed, 5 multilabel-stratified folds (seed 42). Each model ×
fold runs in its own process on one thread, so its peak RSS is its own. Reports the mean OOF log loss,
its ratio to the prior, the mean per-target ROC-AUC (targets with an OOF positive), seconds per fold
(fit + predict) and the largest peak RSS of the fold jobs.

    PYTHONPATH=src nice -n 5 .venv/bin/python benchmarks/classic_models.py [--models logistic,svm] [--folds 5]

One thread, 4,000 rows: logistic ~8 s per fold, ML-KNN ~3 s, the SVM ~7 min (206 targets x 3
calibration folds), XGBoost per target ~12 min at its defaults; a multi-output XGBoost grows ~12 s
per round (one 206-wide histogram per node) and peaks at ~5 GB, hence the ``*_fast`` pair that
compares the two strategies at 60 rounds of learning rate 0.3. ``--folds 1`` runs fold 0 only.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

# name -> (module:Class, params)
MODELS: dict[str, tuple[str, dict]] = {
    "prior": ("moastack.models.prior:PriorModel", {}),
    "logistic": ("moastack.models.linear:LogisticModel", {}),
    "logistic_C0.1": ("moastack.models.linear:LogisticModel", {"C": 0.1}),
    "logistic_C0.01": ("moastack.models.linear:LogisticModel", {"C": 0.01}),
    "svm": ("moastack.models.linear:SVMModel", {}),
    "mlknn": ("moastack.models.mlknn:MLKNNModel", {}),
    "mlknn_k30": ("moastack.models.mlknn:MLKNNModel", {"k": 30}),
    "xgboost": ("moastack.models.boosting:XGBoostModel", {"strategy": "per_target"}),
    "xgboost_multi": ("moastack.models.boosting:XGBoostModel", {"strategy": "multi_output"}),
    # the two strategies at a budget a multi-output model can afford (it costs ~12 s per round here)
    "xgb_fast": ("moastack.models.boosting:XGBoostModel",
                 {"strategy": "per_target", "learning_rate": 0.3, "n_estimators": 60, "early_stopping_rounds": 10}),
    "xgb_multi_fast": ("moastack.models.boosting:XGBoostModel",
                       {"strategy": "multi_output", "learning_rate": 0.3, "n_estimators": 60,
                        "early_stopping_rounds": 10}),
}


def make_data(path: Path, n_train: int, seed: int) -> None:
    """Synthetic treated rows, their scored targets and 5 multilabel-stratified folds, saved as .npz."""
    from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

    from moastack import columns as C
    from moastack.data.synthetic import SyntheticSpec, generate

    frames = generate(SyntheticSpec(n_train=n_train, seed=seed))
    features, targets = frames["train_features"], frames["train_targets_scored"]
    treated = (features["cp_type"] == C.TREATED).to_numpy()
    X = features.loc[treated, C.GENE_COLS + C.CELL_COLS].to_numpy(np.float32)
    Y = targets.loc[treated].drop(columns=[C.ID_COL]).to_numpy(np.float32)
    fold = np.full(len(X), -1)
    splitter = MultilabelStratifiedKFold(n_splits=5, shuffle=True, random_state=42)
    for f, (_, valid) in enumerate(splitter.split(X, Y)):
        fold[valid] = f
    np.savez(path, X=X, Y=Y, fold=fold)


def fold_job(data: str, name: str, fold: int) -> dict:
    """Fit one model on one fold (in a fresh process); returns OOF predictions, seconds and peak RSS."""
    import importlib

    from sklearn.preprocessing import QuantileTransformer
    from threadpoolctl import threadpool_limits

    from moastack.models.base import FitContext

    arrays = np.load(data)
    X, Y, folds = arrays["X"], arrays["Y"], arrays["fold"]
    train, valid = folds != fold, folds == fold
    module, cls = MODELS[name][0].split(":")
    model_cls = getattr(importlib.import_module(module), cls)
    context = FitContext(seed=0, threads=1, device="cpu")
    with threadpool_limits(1):
        start = time.perf_counter()
        qt = QuantileTransformer(n_quantiles=100, output_distribution="normal", random_state=0).fit(X[train])
        x_train, x_valid = qt.transform(X[train]).astype(np.float32), qt.transform(X[valid]).astype(np.float32)
        model = model_cls(**MODELS[name][1]).fit(x_train, Y[train], x_valid, Y[valid], context)
        pred = model.predict(x_valid, context)
        seconds = time.perf_counter() - start
    return {"pred": pred, "seconds": seconds, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="prior,logistic,svm,mlknn,xgboost",
                        help=f"comma-separated, from {list(MODELS)}")
    parser.add_argument("--folds", type=int, default=5, help="run the first N of the 5 folds (OOF on those rows)")
    parser.add_argument("--n-train", type=int, default=4000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/moastack-classic"))
    args = parser.parse_args()
    from moastack.metrics import mean_log_loss, per_target_roc_auc

    args.workdir.mkdir(parents=True, exist_ok=True)
    data = args.workdir / f"data_{args.n_train}.npz"
    if not data.exists():
        make_data(data, args.n_train, seed=42)
    arrays = np.load(data)
    Y, folds = arrays["Y"], arrays["fold"]
    rows = np.isin(folds, range(args.folds))
    print(f"{int(rows.sum())} treated OOF rows of {len(Y)}, {Y.shape[1]} targets, {args.folds} of 5 folds", flush=True)
    names = args.models.split(",")
    results = {}
    for name in names:
        oof = np.zeros(Y.shape, dtype=np.float32)
        seconds, rss = [], []
        for fold in range(args.folds):
            with ProcessPoolExecutor(max_workers=1) as pool:  # a fresh process: its own peak RSS
                out = pool.submit(fold_job, str(data), name, fold).result()
            oof[folds == fold] = out["pred"]
            seconds.append(out["seconds"])
            rss.append(out["rss_mb"])
            print(f"  {name} fold {fold}: log loss {mean_log_loss(Y[folds == fold], out['pred']):.5f}, "
                  f"{out['seconds']:.1f} s, {out['rss_mb']:.0f} MB", flush=True)
        y, p = Y[rows], oof[rows]
        results[name] = {"log_loss": mean_log_loss(y, p), "auc": float(np.nanmean(per_target_roc_auc(y, p))),
                         "s_per_fold": float(np.mean(seconds)), "peak_rss_mb": float(max(rss))}
        print(name, json.dumps(results[name]), flush=True)
    prior = results.get("prior", {}).get("log_loss")
    print(f"\n{'model':<15}{'OOF log loss':>13}{'x prior':>9}{'ROC-AUC':>9}{'s/fold':>9}{'peak RSS MB':>13}")
    for name, r in results.items():
        ratio = f"{r['log_loss'] / prior:.3f}" if prior else "-"
        print(f"{name:<15}{r['log_loss']:>13.5f}{ratio:>9}{r['auc']:>9.3f}{r['s_per_fold']:>9.1f}{r['peak_rss_mb']:>13.0f}")
    (args.workdir / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    sys.exit(main())
