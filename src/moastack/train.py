"""One training job: one model × seed × fold, and the one function that fits a job.

:func:`load_fold_data` reads the job's tables, fits the model's :class:`~moastack.fold_pipeline.FoldPipeline`
on the fold's training rows (meta-features of stacked models, target encoding, fold steps) and builds the
training, validation and test matrices through it. :func:`fit_job` fits the model on them; the ``train``
rule (:func:`run_fold_job`) and every trial of a ``tune`` study call it, and ``moastack predict`` replays
the saved pipeline and model through :func:`predict_rows`. Controls are predicted 0 everywhere; by default
they are also left out of training. An arch that reads molecules (``Arch.molecules``: ``chemprop``) gets the
rows' SMILES from the prepared features' ``smiles`` column, carried like target encoding's key columns
(:attr:`JobRows.keys`), through its :class:`FitContext` (``smiles``/``smiles_valid``, :meth:`FitContext.for_rows`).

``pseudo_from`` (model key): the test rows, labelled by the upstream model's job of the SAME seed × fold
(a model that never saw this fold's validation rows), are appended to the training rows only — never to
the validation rows, so never to the OOF predictions. The fold pipeline is fitted before they are added
(on measured targets only); the pseudo rows get its ``transform`` like any test row.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from moastack import io
from moastack.archs import arch_info, sparse_refusal
from moastack.columns import ID_COL, SMILES_COL
from moastack.features.feature_table import FeatureTable
from moastack.fold_pipeline import FoldPipeline, JobRows
from moastack.metrics import metric_value
from moastack.models.base import FitContext, TabularModel, resolve_device
from moastack.models.registry import build_model, model_class, read_payload
from moastack.spec import ModelSpec
from moastack.stacking import MetaInputs, load_meta
from moastack.targets import control_rows, prediction_frame, select_target_columns
from moastack.task import Task

log = logging.getLogger(__name__)

#: the layout of what a job saves beside its model (``extras``); ``moastack predict`` refuses others
JOB_FORMAT = 2


@dataclass
class FoldJob:
    """Everything one job needs, as paths and its model's spec (what a Snakemake rule passes)."""

    spec: ModelSpec
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
    #: the model entry's ``aux_targets`` table (its training rows' labels go to the fit context)
    aux_targets: str | None = None


    @classmethod
    def from_inputs(cls, spec: ModelSpec, seed: int, fold: int, inputs: Mapping[str, Any], threads: int = 1) -> FoldJob:
        """The job of ``spec`` × seed × fold from Snakemake-style named inputs (this class's path fields,
        plus ``meta_oof_<model>``/``meta_test_<model>`` per stacked upstream model)."""
        paths = {k: str(inputs[k]) for k in _PATH_FIELDS if inputs.get(k)}
        meta = [MetaInputs(up, str(inputs[f"meta_oof_{up}"]), str(inputs[f"meta_test_{up}"])) for up in spec.meta]
        return cls(spec=spec, seed=int(seed), fold=int(fold), meta=meta, threads=int(threads), **paths)


#: FoldJob fields that are input paths (the train rule's named inputs)
_PATH_FIELDS = ("features_train", "features_test", "folds", "targets", "train_features", "test_features",
                "scored_targets", "init_model", "feature_map", "pseudo_test", "aux_targets")


#: a model's input matrix: dense float32, or float32 CSR when the feature set has a sparse block
Matrix = np.ndarray | sp.csr_matrix


@dataclass
class FoldData:
    """The fold's model inputs, built through its fitted fold pipeline (CSR when the set has sparse steps)."""

    X_train: Matrix
    Y_train: np.ndarray
    X_valid: Matrix
    Y_valid: np.ndarray
    X_test: Matrix
    valid_ids: np.ndarray
    test_ids: np.ndarray
    valid_is_control: np.ndarray
    test_is_control: np.ndarray
    targets: list[str]
    pipeline: FoldPipeline
    n_pseudo: int = 0  # pseudo-labelled test rows appended to X_train / Y_train (the last rows)
    aux_train: np.ndarray | None = None  # the training rows' labels of the aux_targets table
    # the rows' SMILES, for an arch that reads molecules (None otherwise)
    smiles_train: np.ndarray | None = None
    smiles_valid: np.ndarray | None = None
    smiles_test: np.ndarray | None = None

    @property
    def feature_names(self) -> list[str]:
        return self.pipeline.names_out_


def _check_same_ids(what: str, left: np.ndarray, right: np.ndarray) -> None:
    if len(left) != len(right) or not np.array_equal(left, right):
        raise ValueError(f"{what}: sig_id order differs from the prepared train_features table")


def job_rows(features: FeatureTable, meta: np.ndarray | None, meta_names: list[str],
             keys: pd.DataFrame | None) -> JobRows:
    """A job's raw inputs for rows of a feature-set table (dense columns and its sparse block, if any)."""
    return JobRows(features.dense(), features.dense_names, meta, tuple(meta_names), keys,
                   features.sparse, features.sparse_names)


def n_rows(X: Matrix) -> int:
    """Rows of a dense or CSR model input (``len`` is ambiguous on scipy matrices)."""
    return int(X.shape[0])


def stack_rows(top: Matrix, bottom: Matrix) -> Matrix:
    """Rows of ``top`` then ``bottom``, CSR when either is."""
    if sp.issparse(top) or sp.issparse(bottom):
        return sp.vstack([sp.csr_matrix(top), sp.csr_matrix(bottom)], format="csr", dtype=np.float32)
    return np.vstack([top, bottom])


def load_fold_data(job: FoldJob) -> FoldData:
    """Read the job's tables, fit its fold pipeline on the training rows and build every matrix."""
    spec = job.spec
    train = FeatureTable.read(job.features_train)
    test = FeatureTable.read(job.features_test)
    folds = io.read_parquet(job.folds)
    targets = io.read_parquet(job.targets)
    cp_train = io.read_present_columns(job.train_features, [ID_COL, "cp_type"])
    cp_test = io.read_present_columns(job.test_features, [ID_COL, "cp_type"])

    train_ids, test_ids = train.ids, test.ids
    for what, frame in (("folds", folds), ("targets", targets), ("train_features", cp_train)):
        _check_same_ids(what, frame[ID_COL].to_numpy(), train_ids)
    _check_same_ids("test features", cp_test[ID_COL].to_numpy(), test_ids)

    target_cols = select_target_columns(targets, spec.targets)
    Y = targets[target_cols].to_numpy(dtype=np.float32)
    is_valid = folds["fold"].to_numpy() == job.fold
    if not is_valid.any():
        raise ValueError(f"fold {job.fold} has no rows in {job.folds}")
    train_ctl, test_ctl = control_rows(cp_train), control_rows(cp_test)

    meta_train = meta_test = None
    meta_names: list[str] = []
    if job.meta:
        meta_train, meta_test, meta_names = load_meta(job.meta, train_ids, test_ids)
    key_cols = list(spec.target_encoding["columns"]) if spec.target_encoding else []
    if arch_info(spec.arch).molecules and SMILES_COL not in key_cols:
        key_cols.append(SMILES_COL)
    keys_train = read_keys(job.train_features, key_cols, train_ids, spec.name) if key_cols else None
    keys_test = read_keys(job.test_features, key_cols, test_ids, spec.name) if key_cols else None
    rows = job_rows(train, meta_train, meta_names, keys_train)
    test_rows = job_rows(test, meta_test, meta_names, keys_test)

    fit_rows = ~is_valid & ~train_ctl if spec.drop_controls else ~is_valid
    any_moa = _any_moa(job.scored_targets or job.targets, train_ids)[fit_rows] if spec.fold_steps else None
    pipeline = FoldPipeline(spec, seed=job.seed)
    train_part, valid_part = rows.take(fit_rows), rows.take(is_valid)
    X_train = pipeline.fit_transform(train_part, Y[fit_rows], any_moa)
    X_valid = pipeline.transform(valid_part)
    X_test = pipeline.transform(test_rows)
    smiles_train, smiles_valid, smiles_test = train_part.smiles, valid_part.smiles, test_rows.smiles
    Y_train, n_pseudo = Y[fit_rows], 0
    aux_train = None
    if job.aux_targets:
        aux = io.read_parquet(job.aux_targets)
        _check_same_ids("aux targets", aux[ID_COL].to_numpy(), train_ids)
        aux_train = aux[select_target_columns(aux, spec.aux_targets)].to_numpy(dtype=np.float32)[fit_rows]
    if job.pseudo_test:
        labels = read_pseudo_labels(job.pseudo_test, test_ids, target_cols)
        use = ~test_ctl if spec.drop_controls else np.ones(n_rows(X_test), dtype=bool)
        X_train = stack_rows(X_train, X_test[use])
        Y_train = np.vstack([Y_train, labels[use]])
        if smiles_train is not None:
            smiles_train = np.concatenate([smiles_train, smiles_test[use]])
        n_pseudo = int(use.sum())
    return FoldData(
        X_train=X_train, Y_train=Y_train, X_valid=X_valid, Y_valid=Y[is_valid], X_test=X_test,
        valid_ids=train_ids[is_valid], test_ids=test_ids, valid_is_control=train_ctl[is_valid],
        test_is_control=test_ctl, targets=target_cols, pipeline=pipeline, n_pseudo=n_pseudo, aux_train=aux_train,
        smiles_train=smiles_train, smiles_valid=smiles_valid, smiles_test=smiles_test,
    )


def read_keys(path: str, columns: list[str], ids: np.ndarray, model: str = "") -> pd.DataFrame:
    """The string key columns (cell type, compound, SMILES...) of a prepared features table, in ``ids`` order."""
    present = set(io.parquet_columns(path))
    missing = [c for c in columns if c not in present]
    if missing:
        hint = (" (a model that reads molecules needs a table source with data.table.smiles_column)"
                if SMILES_COL in missing else "")
        raise ValueError(f"model {model}: {path} has no columns {missing}{hint}; it has "
                         f"{sorted(present - {ID_COL})[:10]}")
    keys = io.read_parquet(path, columns=[ID_COL, *columns])
    _check_same_ids(f"key columns of {path}", keys[ID_COL].to_numpy(), ids)
    return keys[list(columns)].astype(str).reset_index(drop=True)


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


# --------------------------------------------------------------------------------------------- fitting
def fit_context(job: FoldJob, data: FoldData, logger: logging.Logger | None = None) -> FitContext:
    """What the job's model learns from besides its rows: device, seed, column names, a transfer
    source's weights (``init_from``), the feature map (``feature_map``)."""
    spec = job.spec
    device = resolve_device(spec.device, uses_torch=model_class(spec.arch).uses_torch)
    context = FitContext(seed=job.seed, device=device, threads=job.threads,
                         logger=logger or log, feature_names=list(data.feature_names), aux_targets=data.aux_train,
                         smiles=data.smiles_train, smiles_valid=data.smiles_valid)
    if job.init_model:
        payload = read_payload(job.init_model)
        if payload.get("arch") != spec.arch or not arch_info(spec.arch).transfer:
            raise ValueError(f"model {spec.name}: init_from {job.init_model} holds a {payload.get('arch')!r} model; "
                             f"a {spec.arch} starts only from a {spec.arch} with transfer")
        context.init_state = payload["state"]
        context.logger.info("model %s: starting from the weights in %s", spec.name, job.init_model)
    if job.feature_map:
        from moastack.deepinsight.feature_map import FeatureMap

        context.feature_map = FeatureMap.load(job.feature_map)
        if list(context.feature_map.feature_names) != list(data.feature_names):
            raise ValueError(f"model {spec.name}: feature map {job.feature_map} places other columns than "
                             "the model's inputs; rerun its feature_map rule")
    return context


def check_accepts(X: Matrix, spec: ModelSpec) -> None:
    """Refuse a sparse block for an arch that would have to densify the whole matrix (the config check
    refuses it earlier; this guards jobs built without a config)."""
    if sp.issparse(X) and not arch_info(spec.arch).sparse:
        raise ValueError(sparse_refusal(spec.name, spec.arch, spec.features))


def early_stopping_rows(spec: ModelSpec, valid_is_control: np.ndarray) -> np.ndarray:
    """The validation rows early stopping (and the best epoch) watch: the treated ones, since the controls'
    predictions are forced to 0 anyway; every row with ``valid_controls`` (the winners' DeepInsight CNNs,
    trained with their controls, early-stopped on the whole validation fold)."""
    valid_is_control = np.asarray(valid_is_control, dtype=bool)
    return np.ones(len(valid_is_control), dtype=bool) if spec.valid_controls else ~valid_is_control


def fit_job(job: FoldJob, data: FoldData, logger: logging.Logger | None = None) -> tuple[TabularModel, FitContext]:
    """Fit the job's model on the fold's training rows: the one way a job is fitted (train, tune)."""
    context = fit_context(job, data, logger)
    model = build_model(job.spec.arch, job.spec.params)
    check_accepts(data.X_train, job.spec)
    es_rows = early_stopping_rows(job.spec, data.valid_is_control)
    fit_ctx = context if data.smiles_valid is None else replace(context, smiles_valid=data.smiles_valid[es_rows])
    model.fit(data.X_train, data.Y_train, data.X_valid[es_rows], data.Y_valid[es_rows], fit_ctx)
    return model, context


def predict_rows(model: TabularModel, X: Matrix, is_control: np.ndarray, task: Task,
                 context: FitContext | None = None, smiles: np.ndarray | None = None) -> np.ndarray:
    """A fitted job model's predictions as written to its tables (``Task.postprocess``: float32, controls
    at 0, probabilities clipped to [0, 1]). Used for the job's OOF and test tables and by ``moastack predict``.
    ``smiles``: the rows' molecules, for an arch that reads them (given to the model through its context)."""
    if smiles is not None:
        context = (context or FitContext()).for_rows(smiles)
    if n_rows(X) == 0:  # a task without test rows: shape (0, t) from one dummy row (some estimators refuse 0 rows)
        if smiles is not None:
            context = context.for_rows(np.array(["C"], dtype=object))  # methane, the dummy row's molecule
        return np.asarray(model.predict(np.zeros((1, X.shape[1]), np.float32), context), np.float32)[:0]
    return task.postprocess(model.predict(X, context), is_control)


def valid_score(job: FoldJob, data: FoldData, oof: np.ndarray) -> tuple[str, float]:
    """The fold's validation metric (the task's first) of OOF predictions, as the job's metrics record it."""
    metric = job.spec.task.validation_metric
    return metric, metric_value(metric, data.Y_valid, oof)


def run_fold_job(job: FoldJob, outputs: dict[str, str]) -> dict:
    """Fit, predict and write ``outputs`` (keys: oof, test, model, metrics). Returns the metrics."""
    start = time.perf_counter()
    spec, task = job.spec, job.spec.task
    data = load_fold_data(job)
    log.info(
        "model %s seed %d fold %d: %d train rows (%d pseudo-labelled), %d valid rows, %d features, %d targets, "
        "%d threads", spec.name, job.seed, job.fold, n_rows(data.X_train), data.n_pseudo, n_rows(data.X_valid),
        data.X_train.shape[1], len(data.targets), job.threads,
    )
    model, context = fit_job(job, data)
    oof = predict_rows(model, data.X_valid, data.valid_is_control, task, context, data.smiles_valid)
    test = predict_rows(model, data.X_test, data.test_is_control, task, context, data.smiles_test)
    seconds = time.perf_counter() - start
    metric, value = valid_score(job, data, oof)
    metrics = {
        "model": spec.name, "arch": spec.arch, "seed": job.seed, "fold": job.fold, "device": context.device,
        "threads": job.threads, "n_train": n_rows(data.X_train), "n_valid": n_rows(data.X_valid),
        "n_features": int(data.X_train.shape[1]), "n_targets": len(data.targets), f"valid_{metric}": value,
        "seconds": seconds, "history": model.history_,
    }
    if job.pseudo_test:
        metrics["n_pseudo"] = data.n_pseudo
    log.info("model %s seed %d fold %d: valid %s %.5f in %.1f s", spec.name, job.seed, job.fold,
             metric.replace("_", " "), value, seconds)
    io.write_parquet(prediction_frame(data.valid_ids, oof, data.targets, task=task), outputs["oof"])
    io.write_parquet(prediction_frame(data.test_ids, test, data.targets, task=task), outputs["test"])
    # Enough to predict new samples later without the config: see moastack.predict.
    extras = {"format": JOB_FORMAT, "model_name": spec.name, "spec": spec.to_entry(), "seed": job.seed,
              "fold": job.fold, "targets": data.targets, "pipeline": data.pipeline}
    model.save(outputs["model"], extras=extras)
    io.write_json(metrics, outputs["metrics"])
    return metrics
