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
from moastack.columns import ID_COL
from moastack.metrics import metric_value, score_record
from moastack.targets import prediction_frame
from moastack.task import task_of_metric


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


SEED_AGGREGATES = ("mean", "median")


class SeedFoldAggregate:
    """How one model's seed × fold predictions of the same rows become its predictions: their mean, or
    (``seed_aggregate: median``) the median over seeds of each seed's mean over its folds.

    Fed one job at a time (a running float64 sum per seed), so ``collect`` and ``moastack predict``
    combine jobs the same way without holding every job's predictions at once.
    """

    def __init__(self, how: str = "mean") -> None:
        if how not in SEED_AGGREGATES:
            raise ValueError(f"unknown seed_aggregate {how!r}; known: {', '.join(SEED_AGGREGATES)}")
        self.how = how
        self._sums: dict[int, np.ndarray] = {}
        self._counts: dict[int, int] = {}

    def add(self, seed: int, values: np.ndarray) -> None:
        """One job's predictions (a fold's test predictions, or one seed's whole OOF table)."""
        values = np.asarray(values, dtype=np.float64)
        if self._sums and values.shape != next(iter(self._sums.values())).shape:
            raise ValueError(f"seed {seed}: predictions of shape {values.shape}, others {next(iter(self._sums.values())).shape}")
        self._sums[seed] = self._sums[seed] + values if seed in self._sums else values.copy()
        self._counts[seed] = self._counts.get(seed, 0) + 1

    def result(self) -> np.ndarray:
        """The combined float64 predictions."""
        if not self._sums:
            raise ValueError("no predictions to combine")
        if self.how == "median":
            return np.median([self._sums[s] / self._counts[s] for s in sorted(self._sums)], axis=0)
        return sum(self._sums[s] for s in sorted(self._sums)) / sum(self._counts.values())


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
    task = task_of_metric(metric)
    targets_table = io.read_parquet(targets_path)
    train_ids = targets_table[ID_COL].to_numpy()
    seeds = sorted({s for s, _ in oof_paths})
    folds = sorted({f for _, f in oof_paths})

    seed_oofs = []
    fold_ids = {}  # (seed, fold) -> that fold's sig_ids, for the per-fold scores
    oof_agg = SeedFoldAggregate(seed_aggregate)
    for seed in seeds:
        parts = [io.read_parquet(oof_paths[(seed, f)]) for f in folds]
        fold_ids.update({(seed, f): part[ID_COL] for f, part in zip(folds, parts)})
        seed_oofs.append(assemble_seed_oof(parts, train_ids, f"{model_name} seed {seed}"))
        oof_agg.add(seed, seed_oofs[-1].to_numpy())
    target_cols = list(seed_oofs[0].columns)
    # Score exactly what is written (float32), so the blend and the report see the same numbers.
    oof = oof_agg.result().astype(np.float32)

    test_agg = SeedFoldAggregate(seed_aggregate)
    test_ids = None
    for (seed, fold), path in test_paths.items():
        frame = io.read_parquet(path)
        if test_ids is None:
            test_ids = frame[ID_COL].to_numpy()
        elif not np.array_equal(frame[ID_COL].to_numpy(), test_ids):
            raise ValueError(f"{model_name}: test predictions of seed {seed} fold {fold} list other rows")
        test_agg.add(seed, frame[target_cols].to_numpy())
    test = test_agg.result().astype(np.float32)

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
