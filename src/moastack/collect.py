"""Collect one model's jobs: OOF and test predictions averaged over seeds, and its CV score.

Each seed's OOF table is the union of its folds' validation rows and must cover every training
sample exactly once; test predictions are the mean over every seed × fold.

``seed_aggregate: median`` (a model key) takes the element-wise median over seeds instead: of the seeds'
OOF tables, and of the seeds' test predictions, each seed's being the mean over its folds (folds are a
bagging of one seed; the median guards against one diverged seed). With one or two seeds the median is
the mean. The score is always computed on what is written (float32).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from moastack import io
from moastack.data.columns import ID_COL
from moastack.metrics import metric_task, metric_value, score_record
from moastack.targets import prediction_frame


def assemble_seed_oof(parts: list[pd.DataFrame], train_ids: np.ndarray, what: str) -> pd.DataFrame:
    """Stack one seed's fold OOF tables into train order, checking exact coverage."""
    oof = pd.concat(parts, ignore_index=True)
    dup = oof[ID_COL].duplicated()
    if dup.any():
        raise ValueError(f"{what}: sig_ids predicted in more than one fold: {oof.loc[dup, ID_COL].head(5).tolist()}")
    oof = oof.set_index(ID_COL)
    missing = pd.Index(train_ids).difference(oof.index)
    if len(missing):
        raise ValueError(f"{what}: {len(missing)} training rows have no OOF prediction, e.g. {list(missing[:5])}")
    return oof.reindex(train_ids)


def mean_frames(frames: list[pd.DataFrame]) -> np.ndarray:
    return np.mean([f.to_numpy(dtype=np.float64) for f in frames], axis=0)


SEED_AGGREGATES = ("mean", "median")


def median_frames(frames: list[pd.DataFrame]) -> np.ndarray:
    return np.median([f.to_numpy(dtype=np.float64) for f in frames], axis=0)


def seed_median_test(tests: dict[tuple[int, int], pd.DataFrame]) -> np.ndarray:
    """Median over seeds of each seed's mean over its folds (frames without ``sig_id``, same rows)."""
    seeds = sorted({s for s, _ in tests})
    per_seed = [mean_frames([tests[k] for k in sorted(tests) if k[0] == s]) for s in seeds]
    return np.median(per_seed, axis=0)


def collect_model(
    model_name: str,
    oof_paths: dict[tuple[int, int], str],
    test_paths: dict[tuple[int, int], str],
    metrics_paths: dict[tuple[int, int], str],
    targets_path: str,
    fold_scheme: str,
    outputs: dict[str, str],
    metric: str = "log_loss",
    seed_aggregate: str = "mean",
) -> dict:
    """Write the model's oof/test Parquet and score.json; keys of the path dicts are (seed, fold)."""
    if seed_aggregate not in SEED_AGGREGATES:
        raise ValueError(f"unknown seed_aggregate {seed_aggregate!r}; known: {', '.join(SEED_AGGREGATES)}")
    task = metric_task(metric)
    targets_table = io.read_parquet(targets_path)
    train_ids = targets_table[ID_COL].to_numpy()
    seeds = sorted({s for s, _ in oof_paths})
    folds = sorted({f for _, f in oof_paths})

    seed_oofs = []
    fold_ids = {}  # (seed, fold) -> that fold's sig_ids, for the per-fold scores
    for seed in seeds:
        parts = [io.read_parquet(oof_paths[(seed, f)]) for f in folds]
        fold_ids.update({(seed, f): part[ID_COL] for f, part in zip(folds, parts)})
        seed_oofs.append(assemble_seed_oof(parts, train_ids, f"{model_name} seed {seed}"))
    target_cols = list(seed_oofs[0].columns)
    # Score exactly what is written (float32), so the blend and the report see the same numbers.
    aggregate = median_frames if seed_aggregate == "median" else mean_frames
    oof = aggregate(seed_oofs).astype(np.float32)

    tests = [io.read_parquet(p) for p in test_paths.values()]
    test_ids = tests[0][ID_COL].to_numpy()
    if seed_aggregate == "median":
        keyed = {}
        for key, frame in zip(test_paths, tests):
            if not np.array_equal(frame[ID_COL].to_numpy(), test_ids):
                raise ValueError(f"{model_name}: test predictions of seed {key[0]} fold {key[1]} list other rows")
            keyed[key] = frame.drop(columns=[ID_COL])
        test = seed_median_test(keyed).astype(np.float32)
    else:
        test = mean_frames([t.drop(columns=[ID_COL]) for t in tests]).astype(np.float32)

    y = targets_table[target_cols].to_numpy(dtype=np.float64)
    jobs = [io.read_json(metrics_paths[k]) for k in sorted(metrics_paths)]
    fold_losses = {}
    row_of = pd.Index(train_ids)
    for seed, seed_oof in zip(seeds, seed_oofs):
        seed_values = seed_oof.to_numpy()
        for f in folds:
            rows = row_of.get_indexer(fold_ids[(seed, f)])
            fold_losses[f"seed{seed}/fold{f}"] = metric_value(metric, y[rows], seed_values[rows])
    values = np.array(list(fold_losses.values()))
    score = score_record(
        y, oof, target_cols, metric=metric,
        model=model_name,
        folds_scheme=fold_scheme,
        seeds=seeds,
        folds=folds,
        **({"seed_aggregate": seed_aggregate} if seed_aggregate != "mean" else {}),
        fold_scores=fold_losses,
        fold_mean=float(values.mean()),
        fold_std=float(values.std(ddof=0)),
        train_seconds=float(sum(j.get("seconds", 0.0) for j in jobs)),
    )
    io.write_parquet(prediction_frame(train_ids, oof, target_cols, task=task), outputs["oof"])
    io.write_parquet(prediction_frame(test_ids, test, target_cols, task=task), outputs["test"])
    io.write_json(score, outputs["score"])
    return score
