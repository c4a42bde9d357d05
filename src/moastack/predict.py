"""Predict new samples from a finished pipeline's artifacts, without retraining or refitting.

``moastack predict --results results/ --input new.csv --output predictions.csv`` replays, for new
rows, exactly what the pipeline did for its test rows:

1. the input is validated like ``prepare`` validates the raw tables (:func:`validate_features`);
2. every feature set a model needs is applied from its saved fitted state
   (``features/{set}/fitted.joblib``);
3. every seed × fold model of every blend member, and of every model they stack on, predicts the
   rows (``models/{model}/seed{s}/fold{k}/model.pt``); a model's predictions are the mean over its
   jobs, like ``collect``, and stand in for its collected test predictions when a downstream model
   uses them as meta-features (through the job's saved ``meta_transform``);
4. the members are combined with the applied method's weights from ``blend/weights.json`` and
   controls are set to 0, as in the submission;
5. with ``--labels``, one 0/1 column ``<target>_label`` per target follows the probabilities: 1 where the
   probability is >= the target's decision threshold stored with the blend (``weights.json``
   ``thresholds``, :mod:`moastack.thresholds`). A results folder without them (an older run, a
   regression task) is refused.

A regression run (``blend/weights.json`` metric ``mrrmse``) reads new rows in the perturbation layout
(``sig_id``, ``cell_type``, ``compound``, ``smiles``...: :mod:`moastack.data.perturbation`), re-applies each
job's saved target encoder to their key columns and clips nothing to [0, 1]. Seeds are combined as the
model's ``score.json`` says (``seed_aggregate`` median: the median over seeds of the per-seed fold means).

A run of molecules (``data.source: table``) reads new rows by the columns ``prepare`` recorded in
``data/train_features.parquet``'s footer (:func:`table_source_record`): an id and a SMILES column (and
its numeric feature columns, if it had any), validated by the table source's own code (unparsable
SMILES name their rows, or are dropped with a logged count under ``--invalid-smiles drop``; an aromatic
``n`` written without its H is repaired as in ``prepare``); the output's id column keeps the run's name.

What a results folder must hold is derived from the artifacts themselves (``weights.json`` names the
members, each ``score.json`` its seeds and folds, each ``model.pt`` its feature set and upstream
models), so no config is needed; every missing file is named in one error.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from moastack import io
from moastack.archs import arch_info
from moastack.blend import apply_weights
from moastack.collect import SeedFoldAggregate
from moastack.columns import ID_COL, SMILES_COL
from moastack.data.validate import InputError, _read_csv, validate_features
from moastack.fold_pipeline import JobRows
from moastack.models.base import FitContext, resolve_device
from moastack.models.registry import model_from_payload, read_payload
from moastack.spec import ModelSpec
from moastack.stacking import meta_feature_names
from moastack.targets import control_rows, prediction_frame
from moastack.task import MULTILABEL, Task, task_of_metric
from moastack.thresholds import apply_thresholds
from moastack.train import JOB_FORMAT, predict_rows

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 4096
MAX_LISTED = 20


class PredictError(Exception):
    """``predict`` cannot run as asked (the message says why)."""


class ArtifactError(PredictError, FileNotFoundError):
    """The results folder lacks files ``predict`` needs, or they contradict each other."""


def _device(requested: str) -> str:
    try:
        return resolve_device(requested)
    except RuntimeError as err:
        raise PredictError(f"--device {requested}: torch sees no CUDA device here") from err


# ------------------------------------------------------------------------------------------- plan
@dataclass
class ModelPlan:
    """One model to replay: its job files and what its jobs were trained on."""

    name: str
    feature_set: str
    meta: list[str]
    targets: list[str]
    jobs: list[tuple[int, int, Path]]  # (seed, fold, model.pt)
    seed_aggregate: str = "mean"
    uses_keys: bool = False  # its fold pipeline encodes raw key columns (target encoding)
    molecules: bool = False  # its arch reads the rows' SMILES (``Arch.molecules``)


@dataclass
class Plan:
    results: Path
    applied: str
    members: list[str]
    weights: np.ndarray
    models: dict[str, ModelPlan] = field(default_factory=dict)  # dependency order: upstream first
    task: Task = MULTILABEL

    @property
    def n_jobs(self) -> int:
        return sum(len(m.jobs) for m in self.models.values())

    def fitted_path(self, feature_set: str) -> Path:
        return self.results / "features" / feature_set / "fitted.joblib"


def _missing_error(results: Path, missing: list[Path]) -> ArtifactError:
    shown = "\n".join(f"  {p}" for p in missing[:MAX_LISTED])
    more = f"\n  ... and {len(missing) - MAX_LISTED} more" if len(missing) > MAX_LISTED else ""
    return ArtifactError(
        f"{results}: not a complete moastack results folder; {len(missing)} file"
        f"{'s' if len(missing) != 1 else ''} missing:\n{shown}{more}\n"
        "Run the pipeline (snakemake --cores N) to produce them."
    )


def load_payload(path: Path) -> dict[str, Any]:
    """What :meth:`TabularModel.save` wrote, refused when an older moastack wrote it (its job layout differs)."""
    payload = read_payload(path)
    if payload.get("extras", {}).get("format") != JOB_FORMAT:
        raise ArtifactError(f"{path}: written by an older moastack (job format "
                            f"{payload.get('extras', {}).get('format', 1)}, this version reads {JOB_FORMAT}); "
                            "rerun the pipeline (snakemake --cores N) to refit its models")
    return payload


def plan_prediction(results: str | os.PathLike) -> Plan:
    """Find every artifact the blend needs, recursively through the stacking chain.

    Raises :class:`ArtifactError` naming every missing file (and files that disagree).
    """
    results = Path(results)
    if not results.is_dir():
        raise ArtifactError(f"{results}: results folder not found")
    weights_path = results / "blend" / "weights.json"
    if not weights_path.is_file():
        raise _missing_error(results, [weights_path])
    weights = io.read_json(weights_path)
    applied = weights["applied"]
    members = list(weights["members"])
    w = np.array([weights["methods"][applied]["weights"][m] for m in members], dtype=np.float64)
    plan = Plan(results=results, applied=applied, members=members, weights=w,
                task=task_of_metric(weights["metric"]))

    missing: list[Path] = []
    found: dict[str, ModelPlan] = {}
    queue, seen = list(members), set()
    while queue:
        name = queue.pop(0)
        if name in seen:
            continue
        seen.add(name)
        model_plan = _plan_model(results, name, missing)
        if model_plan is None:
            continue
        found[name] = model_plan
        queue.extend(model_plan.meta)
        fitted = plan.fitted_path(model_plan.feature_set)
        if not fitted.is_file() and fitted not in missing:
            missing.append(fitted)
    if missing:
        raise _missing_error(results, missing)

    for name in _dependency_order(found):
        plan.models[name] = found[name]
    targets = {m: found[m].targets for m in members}
    for m in members[1:]:
        if targets[m] != targets[members[0]]:
            raise ArtifactError(f"{results}: blend members {members[0]} and {m} predict different targets")
    return plan


def _plan_model(results: Path, name: str, missing: list[Path]) -> ModelPlan | None:
    model_dir = results / "models" / name
    score_path = model_dir / "score.json"
    if not score_path.is_file():
        missing.append(score_path)
        return None
    score = io.read_json(score_path)
    jobs = [
        (int(s), int(f), model_dir / f"seed{s}" / f"fold{f}" / "model.pt")
        for s in score["seeds"] for f in score["folds"]
    ]
    absent = [p for _, _, p in jobs if not p.is_file()]
    missing.extend(absent)
    if absent:
        return None
    extras = load_payload(jobs[0][2])["extras"]
    spec = ModelSpec.from_entry(name, extras["spec"])
    return ModelPlan(
        name=name,
        feature_set=spec.features,
        meta=list(spec.meta),
        targets=list(extras["targets"]),
        jobs=jobs,
        seed_aggregate=score.get("seed_aggregate", "mean"),  # collect records it when it is not the mean
        uses_keys=bool(spec.target_encoding),
        molecules=arch_info(spec.arch).molecules,
    )


def _dependency_order(models: dict[str, ModelPlan]) -> list[str]:
    order: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        for upstream in models[name].meta:
            visit(upstream)
        order.append(name)

    for name in models:
        visit(name)
    return order


# --------------------------------------------------------------------------------------- progress
class Progress:
    """A one-line progress display on stderr, drawn only when stderr is a terminal."""

    def __init__(self, total: int, enabled: bool | None = None, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.total, self.done, self.start = max(total, 1), 0, time.perf_counter()

    def step(self, label: str, n: int = 1) -> None:
        self.done += n
        if not self.enabled:
            return
        frac = min(self.done / self.total, 1.0)
        bar = "#" * int(frac * 30)
        elapsed = time.perf_counter() - self.start
        self.stream.write(f"\r\033[Kpredict [{bar:<30}] {frac:4.0%} {elapsed:5.1f}s {label}")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def _batches(n: int, batch_size: int) -> Iterator[slice]:
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


# ------------------------------------------------------------------------------------------ input
def read_input(path: str | os.PathLike, task: Task = MULTILABEL) -> pd.DataFrame:
    """Read new samples (CSV, or Parquet by extension) and validate them like ``prepare`` does (the
    perturbation layout for a regression task)."""
    path = Path(path)
    if path.suffix == ".parquet":
        if not path.is_file():
            raise InputError(f"{path}: file not found")
        frame = io.read_parquet(path)
    else:
        frame = _read_csv(path)
    if task.layout == "perturbation":
        from moastack.data.perturbation import validate_perturbation_features

        return validate_perturbation_features(frame, str(path))
    return validate_features(frame, str(path))


def table_source_record(results: str | os.PathLike) -> dict[str, Any] | None:
    """The columns a ``table``-source run was prepared with (id, SMILES, features, labels), as ``prepare``
    recorded them in ``data/train_features.parquet``'s footer; None for a run of another source (or a
    folder without its prepared tables, read as lish-moa rows)."""
    from moastack.data.table import RECORD_KEY

    path = Path(results) / "data" / "train_features.parquet"
    if not path.is_file():
        return None
    footer = io.parquet_metadata(path)
    if RECORD_KEY in footer:
        return json.loads(footer[RECORD_KEY])
    if "cp_type" not in io.parquet_columns(path) and results_task(results).layout != "perturbation":
        raise ArtifactError(f"{path}: prepared by an older moastack, which did not record the table source's "
                            "columns; rerun the pipeline from prepare (snakemake --forcerun prepare --cores N)")
    return None


def read_molecules(path: str | os.PathLike, record: dict[str, Any], invalid_smiles: str = "refuse") -> pd.DataFrame:
    """New molecules (ids + SMILES, CSV or Parquet by extension) validated like ``prepare``'s table source,
    by the columns ``record`` names: ``sig_id``, canonical ``smiles`` and the feature columns."""
    from moastack.data.table import load_new_rows

    return load_new_rows(str(path), record, invalid_smiles, drop_hint="--invalid-smiles drop skips them")


def results_task(results: str | os.PathLike) -> Task:
    """The task of a results folder, from its blend's metric (multilabel when there is no blend yet)."""
    weights = Path(results) / "blend" / "weights.json"
    if not weights.is_file():
        return MULTILABEL
    return task_of_metric(io.read_json(weights)["metric"])


def load_thresholds(results: str | os.PathLike) -> dict:
    """The per-target decision thresholds stored with the blend, for ``--labels``; refused with the reason
    when the results folder has none (a regression task, or a blend written before thresholds existed)."""
    path = Path(results) / "blend" / "weights.json"
    if not path.is_file():
        raise _missing_error(Path(results), [path])
    weights = io.read_json(path)
    if "thresholds" in weights:
        return weights["thresholds"]
    if not task_of_metric(weights["metric"]).probabilities:
        why = (f"its task ({task_of_metric(weights['metric']).name}, metric {weights['metric']}) predicts values, "
               "not probabilities, so there is nothing to call 0 or 1")
    else:
        why = ("its blend was written by an older moastack, before thresholds were stored; rerun the blend "
               "(snakemake --cores N --forcerun blend) to add them")
    raise PredictError(f"{path}: --labels needs the decision thresholds stored with the blend, and this results "
                       f"folder has none: {why}. Without --labels the probabilities are written as usual.")


# ---------------------------------------------------------------------------------------- predict
def predict_frame(
    plan: Plan,
    features: pd.DataFrame,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: str = "auto",
    threads: int = 0,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Blend predictions for validated raw feature rows: ``sig_id`` + the members' targets.

    Matches the pipeline's ``blend/test.parquet`` (and the submission) on the pipeline's own test
    rows: per-job float32 predictions with controls at 0, their float64 mean per model (collect),
    the applied blend weights, controls at 0.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    readers = [name for name, m in plan.models.items() if m.molecules]
    if readers and SMILES_COL not in features.columns:
        raise PredictError(f"models {', '.join(readers)} read molecules: the input needs a {SMILES_COL!r} column")
    n = len(features)
    batches = list(_batches(n, batch_size))
    context = FitContext(seed=0, device=_device(device), threads=threads, logger=log)
    is_control = control_rows(features)
    feature_sets = sorted({m.feature_set for m in plan.models.values()})
    progress = progress or Progress(0, enabled=False)
    progress.total = max((len(feature_sets) + plan.n_jobs) * len(batches), 1)  # one step per batch
    tag = (lambda i: f" batch {i + 1}/{len(batches)}") if len(batches) > 1 else (lambda i: "")

    transformed: dict[str, JobRows] = {}  # each feature set's rows (dense columns and sparse block)
    for fset in feature_sets:
        fitted = io.read_joblib(plan.fitted_path(fset))
        names = list(fitted.feature_names_out_)
        X = np.empty((n, len(names)), dtype=np.float32)
        blocks = []
        for i, rows in enumerate(batches):
            table = fitted.transform_table(features.iloc[rows].reset_index(drop=True))
            X[rows] = table.dense()
            if table.sparse is not None:
                blocks.append(table.sparse)
            progress.step(f"features {fset}{tag(i)}")
        sparse_names = tuple(getattr(fitted, "sparse_names_out_", ()))
        sparse = sp.vstack(blocks, format="csr") if blocks else None
        if sparse_names and sparse is None:  # no input rows: an empty block of the fitted width
            sparse = sp.csr_matrix((n, len(sparse_names)), dtype=np.float32)
        transformed[fset] = JobRows(X, names, sparse=sparse, sparse_names=sparse_names)

    collected: dict[str, np.ndarray] = {}
    for name, model_plan in plan.models.items():
        fset_rows = transformed[model_plan.feature_set]
        meta = np.hstack([collected[m] for m in model_plan.meta]) if model_plan.meta else None
        meta_names = [c for m in model_plan.meta for c in meta_feature_names(m, plan.models[m].targets)]
        keys = features if model_plan.uses_keys or model_plan.molecules else None
        rows = JobRows(fset_rows.X, fset_rows.names, meta, tuple(meta_names), keys, fset_rows.sparse,
                       fset_rows.sparse_names)
        combined = SeedFoldAggregate(model_plan.seed_aggregate)
        for seed, fold, path in model_plan.jobs:
            model, pipeline = _load_job(path, name, seed, fold)
            pred = np.empty((n, len(model_plan.targets)), dtype=np.float32)
            for i, batch in enumerate(batches):
                part = rows.take(np.arange(batch.start, batch.stop))
                try:
                    inputs = pipeline.transform(part)
                except ValueError as err:
                    raise ArtifactError(f"{path}: {err}") from err
                smiles = part.smiles if model_plan.molecules else None
                pred[batch] = predict_rows(model, inputs, is_control[batch], plan.task, context, smiles)
                progress.step(f"{name} seed{seed} fold{fold}{tag(i)}")
            combined.add(seed, pred)
        collected[name] = plan.task.postprocess(combined.result())  # as collect writes it

    blend = apply_weights(plan.weights, [collected[m] for m in plan.members])
    out = prediction_frame(features[ID_COL].to_numpy(), blend, plan.models[plan.members[0]].targets, task=plan.task)
    out.loc[is_control, out.columns[1:]] = 0.0  # as in the submission
    return out


def _load_job(path: Path, name: str, seed: int, fold: int):
    """A job's fitted model and fold pipeline, checked to be the job ``path`` should hold."""
    payload = load_payload(path)
    extras = payload["extras"]
    if (extras.get("model_name"), extras.get("seed"), extras.get("fold")) != (name, seed, fold):
        raise ArtifactError(
            f"{path}: holds model {extras.get('model_name')} seed {extras.get('seed')} fold "
            f"{extras.get('fold')}, expected {name} seed {seed} fold {fold}"
        )
    return model_from_payload(payload), extras["pipeline"]


def predict(
    results: str | os.PathLike,
    input_path: str | os.PathLike,
    output: str | os.PathLike,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: str = "auto",
    threads: int = 0,
    progress: bool | None = None,
    invalid_smiles: str | None = None,
    labels: bool = False,
) -> pd.DataFrame:
    """Validate ``input_path``, replay the pipeline from ``results`` and write the CSV ``output``.

    For a results folder of a ``table`` source the input is molecules (the run's id and SMILES columns,
    plus its feature columns if it had any), ``invalid_smiles`` (``refuse`` by default, or ``drop``) says
    what to do with SMILES RDKit cannot read, and the output's id column takes the run's id column name.
    With ``labels``, each target's 0/1 call at the blend's stored threshold follows the probabilities.
    """
    thresholds = load_thresholds(results) if labels else None  # refuse before any work
    record = table_source_record(results)
    if record is None:
        if invalid_smiles is not None:
            raise PredictError(f"--invalid-smiles: {results} is not a run of molecules (a table source); its "
                               "input rows have no SMILES")
        features = read_input(input_path, task=results_task(results))
    else:
        features = read_molecules(input_path, record, invalid_smiles or "refuse")
    plan = plan_prediction(results)
    bar = Progress(0, enabled=progress)
    try:
        out = predict_frame(plan, features, batch_size=batch_size, device=device, threads=threads, progress=bar)
    finally:
        bar.close()
    if thresholds is not None:
        try:
            out = apply_thresholds(out, thresholds, list(out.columns[1:]))
        except ValueError as err:
            raise ArtifactError(f"{Path(results) / 'blend' / 'weights.json'}: {err}") from err
    if record is not None:
        out = out.rename(columns={ID_COL: record["id_column"]})
    io.write_csv(out, output, float_format="%.8g")
    return out
