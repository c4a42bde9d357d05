"""One training job: one model × seed × fold.

The job reads the feature set, the fold table and the targets, fits the model on the other folds,
and writes the fold's out-of-fold predictions, the test predictions, the fitted model and its
metrics. Controls are predicted 0 everywhere; by default they are also left out of training.

Regression tasks (the archs of :mod:`moastack.regression.models`) add two per-job steps:

* ``target_encoding`` (model key): a :class:`~moastack.regression.encoding.TargetEncoder` of string key
  columns of ``train_features``/``test_features`` (cell type, compound), fitted on the training-fold rows
  and their targets only, appended to every row's features (leave-one-out encodings for the training
  rows with ``loo: true``); saved in the model file, so ``moastack predict`` encodes new rows the same way;
* ``pseudo_from`` (model key): the test rows, labelled by the upstream model's job of the SAME seed × fold
  (a model that never saw this fold's validation rows), are appended to the training rows only — never to
  the validation rows, so never to the OOF predictions. The target encoder is fitted before they are added
  (on measured targets only); the pseudo rows get its ``transform`` like any test row.

Predictions of a regression job are written in target units (the models clip each target to its training
range), not clipped to [0, 1].
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from moastack import io
from moastack.data.columns import ID_COL
from moastack.features.fold_steps import apply_fold_steps, build_fold_steps, fit_fold_steps
from moastack.metrics import mean_log_loss
from moastack.models.base import FitContext, resolve_device
from moastack.models.registry import arch_task, build_model
from moastack.stacking import MetaInputs, add_meta_features, job_inputs
from moastack.targets import control_rows, prediction_frame, select_target_columns

log = logging.getLogger(__name__)


@dataclass
class FoldJob:
    """Everything one job needs, as paths and config values (what a Snakemake rule passes)."""

    model_name: str
    model_cfg: dict
    seed: int
    fold: int
    features_train: str
    features_test: str
    folds: str
    targets: str
    train_features: str
    test_features: str
    meta: list[MetaInputs] = field(default_factory=list)
    threads: int = 1
    #: scored targets: "any MoA" for target-aware fold steps, whatever the model learns
    scored_targets: str | None = None
    #: transfer learning: the source model's file of the same seed × fold
    init_model: str | None = None
    #: DeepInsight: the fitted feature map (features -> pixels) of the model's feature set
    feature_map: str | None = None
    #: pseudo-labels: the ``pseudo_from`` model's test predictions of the same seed × fold
    pseudo_test: str | None = None


@dataclass
class FoldData:
    """The fold's matrices after target selection, control masking and stacking."""

    X_train: np.ndarray
    Y_train: np.ndarray
    X_valid: np.ndarray
    Y_valid: np.ndarray
    X_test: np.ndarray
    valid_ids: np.ndarray
    test_ids: np.ndarray
    valid_is_control: np.ndarray
    test_is_control: np.ndarray
    targets: list[str]
    feature_names: list[str]
    meta_transform: object = None  # fitted on this fold's training rows; saved with the model
    fold_steps: list = field(default_factory=list)  # fitted on this fold's training rows; saved too
    target_encoder: object = None  # fitted on this fold's training rows (regression); saved too
    n_pseudo: int = 0  # pseudo-labelled test rows appended to X_train / Y_train (the last rows)
    task: str = "multilabel"


def _check_same_ids(what: str, left: np.ndarray, right: np.ndarray) -> None:
    if len(left) != len(right) or not np.array_equal(left, right):
        raise ValueError(f"{what}: sig_id order differs from the prepared train_features table")


def load_fold_data(job: FoldJob) -> FoldData:
    """Assemble the fold's training, validation and test matrices."""
    train = io.read_parquet(job.features_train)
    test = io.read_parquet(job.features_test)
    folds = io.read_parquet(job.folds)
    targets = io.read_parquet(job.targets)
    cp_train = io.read_present_columns(job.train_features, [ID_COL, "cp_type"])
    cp_test = io.read_present_columns(job.test_features, [ID_COL, "cp_type"])

    train_ids = train[ID_COL].to_numpy()
    for what, frame in (("folds", folds), ("targets", targets), ("train_features", cp_train)):
        _check_same_ids(what, frame[ID_COL].to_numpy(), train_ids)
    _check_same_ids("test features", cp_test[ID_COL].to_numpy(), test[ID_COL].to_numpy())

    target_cols = select_target_columns(targets, job.model_cfg.get("targets", "scored"))
    Y = targets[target_cols].to_numpy(dtype=np.float32)
    fold = folds["fold"].to_numpy()
    is_valid = fold == job.fold
    if not is_valid.any():
        raise ValueError(f"fold {job.fold} has no rows in {job.folds}")
    train_ctl = control_rows(cp_train)
    test_ctl = control_rows(cp_test)
    task = arch_task(job.model_cfg["arch"])

    feature_cols = [c for c in train.columns if c != ID_COL]
    meta_transform = None
    X = train[feature_cols].to_numpy(dtype=np.float32)
    X_test = test[feature_cols].to_numpy(dtype=np.float32)
    if job.meta:
        X, X_test, feature_cols, meta_transform = add_meta_features(
            X, X_test, feature_cols, train_ids, test[ID_COL].to_numpy(), job.meta, ~is_valid,
            job.model_cfg.get("meta_transform", "quantile"), job.model_cfg.get("meta_only", False),
            seed=job.seed,
        )

    keep_train = ~is_valid
    if job.model_cfg.get("drop_controls", True):
        keep_train &= ~train_ctl
    encoder = None
    if job.model_cfg.get("target_encoding"):
        X, X_test, feature_cols, encoder = add_target_encoding(
            job.model_cfg["target_encoding"], X, X_test, feature_cols, Y, keep_train,
            read_keys(job.train_features, job.model_cfg["target_encoding"]["columns"], train_ids),
            read_keys(job.test_features, job.model_cfg["target_encoding"]["columns"], test[ID_COL].to_numpy()),
            seed=job.seed,
        )
    steps = build_fold_steps(job.model_cfg.get("fold_steps", []))
    if steps:
        any_moa = _any_moa(job.scored_targets or job.targets, train_ids)
        feature_cols = fit_fold_steps(steps, X[keep_train], any_moa[keep_train], feature_cols)
        X, X_test = apply_fold_steps(steps, X), apply_fold_steps(steps, X_test)
    X_train, Y_train, n_pseudo = X[keep_train], Y[keep_train], 0
    if job.pseudo_test:
        labels = read_pseudo_labels(job.pseudo_test, test[ID_COL].to_numpy(), target_cols)
        use = ~test_ctl if job.model_cfg.get("drop_controls", True) else np.ones(len(X_test), dtype=bool)
        X_train = np.vstack([X_train, X_test[use]])
        Y_train = np.vstack([Y_train, labels[use]])
        n_pseudo = int(use.sum())
    return FoldData(
        X_train=X_train,
        Y_train=Y_train,
        X_valid=X[is_valid],
        Y_valid=Y[is_valid],
        X_test=X_test,
        valid_ids=train_ids[is_valid],
        test_ids=test[ID_COL].to_numpy(),
        valid_is_control=train_ctl[is_valid],
        test_is_control=test_ctl,
        targets=target_cols,
        feature_names=feature_cols,
        meta_transform=meta_transform,
        fold_steps=steps,
        target_encoder=encoder,
        n_pseudo=n_pseudo,
        task=task,
    )


def read_keys(path: str, columns: list[str], ids: np.ndarray) -> pd.DataFrame:
    """The string key columns (cell type, compound...) of a prepared features table, in ``ids`` order."""
    present = set(io.parquet_columns(path))
    missing = [c for c in columns if c not in present]
    if missing:
        raise ValueError(f"target_encoding: {path} has no columns {missing}; it has {sorted(present - {ID_COL})[:10]}")
    keys = io.read_parquet(path, columns=[ID_COL, *columns])
    _check_same_ids(f"key columns of {path}", keys[ID_COL].to_numpy(), ids)
    return keys[list(columns)].astype(str).reset_index(drop=True)


def build_target_encoder(cfg: dict, seed: int):
    """An unfitted TargetEncoder from a model's ``target_encoding`` block."""
    from moastack.regression.encoding import TargetEncoder

    return TargetEncoder(columns=cfg["columns"], stats=cfg.get("stats", ("mean", "std", "q25", "q75")),
                         n_components=cfg.get("n_components", 16), loo=cfg.get("loo", False),
                         smoothing=cfg.get("smoothing", 0.0), seed=seed)


def add_target_encoding(
    cfg: dict, X: np.ndarray, X_test: np.ndarray, names: list[str], Y: np.ndarray, fit_rows: np.ndarray,
    keys: pd.DataFrame, keys_test: pd.DataFrame, seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, list[str], object]:
    """Append target encodings fitted on the ``fit_rows`` (the training fold) and their targets only.

    The fit rows get ``fit_transform`` (leave-one-out statistics with ``loo``), every other row (the
    validation fold, left-out controls, the test rows) ``transform``: their targets are never read.
    """
    encoder = build_target_encoder(cfg, seed)
    encoded = np.empty((len(X), len(encoder.get_feature_names_out())), dtype=np.float32)
    encoded[fit_rows] = encoder.fit_transform(keys[fit_rows].reset_index(drop=True), Y[fit_rows])
    if (~fit_rows).any():
        encoded[~fit_rows] = encoder.transform(keys[~fit_rows].reset_index(drop=True))
    X = np.hstack([X, encoded])
    X_test = np.hstack([X_test, encoder.transform(keys_test)])
    return X, X_test, [*names, *encoder.get_feature_names_out().tolist()], encoder


def read_pseudo_labels(path: str, test_ids: np.ndarray, targets: list[str]) -> np.ndarray:
    """The upstream job's test predictions as float32 labels, in ``test_ids`` order and ``targets`` columns."""
    frame = io.read_parquet(path)
    missing = [t for t in targets if t not in frame.columns]
    if missing:
        raise ValueError(f"pseudo_from: {path} lacks the targets {missing[:5]} of this model")
    frame = frame.set_index(ID_COL).reindex(np.asarray(test_ids).astype(str))
    labels = frame[targets].to_numpy(dtype=np.float32)
    if np.isnan(labels).any():
        raise ValueError(f"pseudo_from: {path} does not predict every test row")
    return labels


def _any_moa(scored_path: str, train_ids: np.ndarray) -> np.ndarray:
    """1 for rows with any scored mechanism: what the t-test selector contrasts. Using the scored
    targets whatever the model learns keeps a non-scored phase 1 and its scored phase 2 on the
    same selected features, so transferred weights fit."""
    scored = io.read_parquet(scored_path)
    _check_same_ids("scored targets", scored[ID_COL].to_numpy(), train_ids)
    values = scored.drop(columns=[ID_COL]).to_numpy(dtype=np.float64)
    return (np.nansum(values, axis=1) > 0).astype(np.float32)


def job_input_matrix(
    X: np.ndarray,
    feature_names: list[str],
    meta: np.ndarray | None,
    meta_names: list[str],
    job_state: dict,
    keys: pd.DataFrame | None = None,
) -> tuple[np.ndarray, list[str]]:
    """A fitted job's model inputs for rows with feature-set columns ``X`` and upstream predictions ``meta``.

    ``job_state`` is what the job saved in its model file's extras (``model_cfg``, ``meta_transform``...).
    This is how ``moastack predict`` turns new rows into the job's inputs, exactly as the job built its
    test matrix: every per-job transform fitted in training must be saved in the extras and applied here.
    ``keys`` are the rows' raw string columns, read by a saved target encoder (``target_encoding``).
    """
    cfg = job_state["model_cfg"]
    X, names = job_inputs(X, feature_names, meta, meta_names, job_state.get("meta_transform"),
                          cfg.get("meta_only", False))
    encoder = job_state.get("target_encoder")
    if cfg.get("target_encoding") and encoder is None:
        raise ValueError(f"model {job_state.get('model_name')}: its file lacks the fitted target encoder; retrain it")
    if encoder is not None:
        if keys is None:
            raise ValueError(f"model {job_state.get('model_name')}: its target encoding needs the key columns "
                             f"{list(encoder.columns)} of the rows")
        missing = [c for c in encoder.columns if c not in keys.columns]
        if missing:
            raise ValueError(f"model {job_state.get('model_name')}: the rows lack the key columns {missing}")
        X = np.hstack([X, encoder.transform(keys[list(encoder.columns)].astype(str).reset_index(drop=True))])
        names = [*names, *encoder.get_feature_names_out().tolist()]
    steps = job_state.get("fold_steps") or []
    if cfg.get("fold_steps") and not steps:
        raise ValueError(f"model {job_state.get('model_name')}: its file lacks the fitted fold_steps; retrain it")
    if steps:
        X, names = apply_fold_steps(steps, X), list(steps[-1].names_out_)
    return X, names


def predict_rows(
    model, X: np.ndarray, is_control: np.ndarray, context: FitContext | None = None, task: str | None = None,
) -> np.ndarray:
    """A fitted job model's predictions as written to its tables: float32 in [0, 1], controls at 0.

    Used for the job's OOF and test tables and by ``moastack predict`` on new rows. A regression model's
    (``task`` regression, by default inferred from the model's arch) are left in target units: the model
    clipped them to each target's training range.
    """
    task = task or arch_task(getattr(model, "arch", ""))
    if len(X) == 0:  # a task without test rows: shape (0, t) from one dummy row (some estimators refuse 0 rows)
        return np.asarray(model.predict(np.zeros((1, X.shape[1]), np.float32), context), np.float32)[:0]
    pred = np.asarray(model.predict(X, context), dtype=np.float32)
    pred[np.asarray(is_control, dtype=bool)] = 0.0
    return pred if task == "regression" else np.clip(pred, 0.0, 1.0)


def run_fold_job(job: FoldJob, outputs: dict[str, str]) -> dict:
    """Fit, predict and write ``outputs`` (keys: oof, test, model, metrics). Returns the metrics."""
    start = time.perf_counter()
    data = load_fold_data(job)
    device = resolve_device(job.model_cfg.get("device", "auto"))
    context = FitContext(seed=job.seed, device=device, threads=job.threads, logger=log)
    log.info(
        "model %s seed %d fold %d: %d train rows (%d pseudo-labelled), %d valid rows, %d features, %d targets, "
        "device %s, %d threads",
        job.model_name, job.seed, job.fold, len(data.X_train), data.n_pseudo, len(data.X_valid),
        data.X_train.shape[1], len(data.targets), device, job.threads,
    )
    model = build_model(job.model_cfg["arch"], job.model_cfg.get("params", {}))
    if hasattr(model, "feature_names_in_"):
        model.feature_names_in_ = list(data.feature_names)
    if job.init_model:
        if not hasattr(model, "load_init_state"):
            raise ValueError(f"model {job.model_name}: arch {job.model_cfg['arch']} does not support init_from")
        model.init_state_ = model.load_init_state(job.init_model)
        log.info("model %s: starting from the weights in %s", job.model_name, job.init_model)
    if job.feature_map:
        from moastack.deepinsight.feature_map import FeatureMap

        model.feature_map_ = FeatureMap.load(job.feature_map)
        if list(model.feature_map_.feature_names) != list(data.feature_names):
            raise ValueError(f"model {job.model_name}: feature map {job.feature_map} places other columns than "
                             "the model's feature set; rerun its feature_map rule")
    # Early stopping watches treated validation rows only: controls are forced to 0 anyway.
    es_rows = ~data.valid_is_control
    model.fit(data.X_train, data.Y_train, data.X_valid[es_rows], data.Y_valid[es_rows], context)

    oof = predict_rows(model, data.X_valid, data.valid_is_control, context, task=data.task)
    test = predict_rows(model, data.X_test, data.test_is_control, context, task=data.task)
    seconds = time.perf_counter() - start
    metric = "mrrmse" if data.task == "regression" else "log_loss"
    if data.task == "regression":
        from moastack.regression.metrics import mrrmse

        valid_score = mrrmse(data.Y_valid, oof)
    else:
        valid_score = mean_log_loss(data.Y_valid, oof)

    metrics = {
        "model": job.model_name,
        "arch": job.model_cfg["arch"],
        "seed": job.seed,
        "fold": job.fold,
        "device": device,
        "threads": job.threads,
        "n_train": int(len(data.X_train)),
        "n_valid": int(len(data.X_valid)),
        "n_features": int(data.X_train.shape[1]),
        "n_targets": len(data.targets),
        f"valid_{metric}": valid_score,
        "seconds": seconds,
        "history": model.history_,
    }
    if job.pseudo_test:
        metrics["n_pseudo"] = data.n_pseudo
    log.info("model %s seed %d fold %d: valid %s %.5f in %.1f s", job.model_name, job.seed, job.fold,
             "MRRMSE" if metric == "mrrmse" else "log loss", valid_score, seconds)
    io.write_parquet(prediction_frame(data.valid_ids, oof, data.targets, task=data.task), outputs["oof"])
    io.write_parquet(prediction_frame(data.test_ids, test, data.targets, task=data.task), outputs["test"])
    # Enough to predict new samples later without the config: see moastack.predict.
    extras = {
        "model_name": job.model_name, "model_cfg": job.model_cfg, "seed": job.seed, "fold": job.fold,
        "feature_names": data.feature_names, "targets": data.targets, "meta_transform": data.meta_transform,
        "fold_steps": data.fold_steps,
    }
    if data.target_encoder is not None:
        extras["target_encoder"] = data.target_encoder
    model.save(outputs["model"], extras=extras)
    io.write_json(metrics, outputs["metrics"])
    return metrics
