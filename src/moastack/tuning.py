"""A resumable Optuna search over one model's hyper-parameters, scored on its out-of-fold predictions.

Each trial trains the model with suggested params on some folds of its fold scheme (the same inputs and
preparation as a training job: :func:`moastack.train.load_fold_data`) and returns the mean validation
metric. Trials live in an Optuna journal file, so a killed search resumes where it stopped; the study's
name carries a hash of the search definition and the model entry, so editing either starts a new study in
the same file instead of mixing incomparable trials. The result is a JSON file whose ``params`` a model
entry with ``params_from: tune/<name>`` merges over its own (:func:`merge_tuned_params`).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from moastack import io
from moastack.metrics import metric_value, optuna_direction
from moastack.spec import ModelSpec
from moastack.train import FoldData, FoldJob, fit_job, load_fold_data, predict_rows

#: pseudo-params that set the layer layout of an MLP instead of naming a model param
STRUCTURAL = ("width", "depth", "dropout")
#: archs whose ``hidden``/``dropout`` lists the structural pseudo-params map onto
MLP_ARCHS = ("simple_nn",)
SPACE_TYPES = ("int", "float", "categorical")
#: model-entry keys that do not change what a trial computes: editing them keeps the study
_NEUTRAL_MODEL_KEYS = ("seeds", "resources", "params_from", "device")

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------- space
def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def _suggest_one(trial, name: str, spec: Mapping[str, Any]) -> Any:
    """One suggestion; list/dict choices go through JSON strings because Optuna stores scalars only."""
    kind = spec.get("type")
    if kind == "int":
        return trial.suggest_int(name, int(spec["low"]), int(spec["high"]), step=int(spec.get("step") or 1),
                                 log=bool(spec.get("log", False)))
    if kind == "float":
        step = spec.get("step")
        return trial.suggest_float(name, float(spec["low"]), float(spec["high"]),
                                   step=None if step is None else float(step), log=bool(spec.get("log", False)))
    if kind == "categorical":
        choices = list(spec["choices"])
        if all(_scalar(c) for c in choices):
            return trial.suggest_categorical(name, choices)
        return json.loads(trial.suggest_categorical(name, [json.dumps(c, sort_keys=True) for c in choices]))
    raise ValueError(f"tune space {name}: type must be one of {list(SPACE_TYPES)}, got {kind!r}")


def suggestions(trial, space: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The trial's value of every space param (decoded), in the space's order."""
    return {name: _suggest_one(trial, name, spec) for name, spec in space.items()}


def apply_suggestions(base_params: Mapping[str, Any], suggested: Mapping[str, Any]) -> dict[str, Any]:
    """Base params overridden by the suggestions, the structural ones turned into ``hidden``/``dropout`` lists."""
    params = copy.deepcopy(dict(base_params))
    params.update({k: v for k, v in suggested.items() if k not in STRUCTURAL})
    if not any(k in suggested for k in STRUCTURAL):
        return params
    from moastack.models.simple_nn import SimpleNN, hidden_sizes

    base_hidden = hidden_sizes(dict(base_params), SimpleNN.defaults)
    if "width" in suggested or "depth" in suggested:
        depth = int(suggested.get("depth", len(base_hidden)))
        width = int(suggested.get("width", base_hidden[0] if base_hidden else 0))
        if depth < 0 or (depth > 0 and width < 1):
            raise ValueError(f"tune space: depth {depth} and width {width} make no network")
        params["hidden"] = [width] * depth
        for key in ("hidden_size", "n_hidden"):  # `hidden` wins anyway; dropping them avoids a misleading file
            params.pop(key, None)
    n_linear = len(params.get("hidden", base_hidden)) + 1
    if "dropout" in suggested:
        params["dropout"] = [float(suggested["dropout"])] * n_linear
    else:
        base_drop = params.get("dropout")
        if isinstance(base_drop, (list, tuple)) and len(base_drop) != n_linear:
            # keep the input dropout, repeat the last one for every later Linear layer
            params["dropout"] = [float(base_drop[0])] + [float(base_drop[-1])] * (n_linear - 1)
    return params


def suggest_params(trial, space: Mapping[str, Mapping[str, Any]], base_params: Mapping[str, Any]) -> dict[str, Any]:
    """The full model params for this trial: ``base_params`` with the space's suggestions mapped on."""
    return apply_suggestions(base_params, suggestions(trial, space))


def check_space(space: Mapping[str, Mapping[str, Any]], arch: str) -> None:
    """Refuse a space the model cannot use before any trial is spent on it."""
    if not space:
        raise ValueError("tune space: no params to search")
    for name, spec in space.items():
        if spec.get("type") not in SPACE_TYPES:
            raise ValueError(f"tune space {name}: type must be one of {list(SPACE_TYPES)}, got {spec.get('type')!r}")
        if spec["type"] == "categorical" and not spec.get("choices"):
            raise ValueError(f"tune space {name}: categorical needs choices")
        if spec["type"] != "categorical" and ("low" not in spec or "high" not in spec):
            raise ValueError(f"tune space {name}: {spec['type']} needs low and high")
        if name in STRUCTURAL and arch not in MLP_ARCHS:
            raise ValueError(f"tune space {name}: structural params apply to {list(MLP_ARCHS)} only, not {arch}")


# ----------------------------------------------------------------------------------------------- study
def study_hash(tune_cfg: Mapping[str, Any], model_cfg: Mapping[str, Any]) -> str:
    """8 hex digits of what defines a trial's value: editing the space, metric, folds, seed or the model's
    entry changes it; n_trials and timeout_minutes do not (raising n_trials continues the study)."""
    tune_part = {k: v for k, v in tune_cfg.items() if k not in ("n_trials", "timeout_minutes")}
    model_part = {k: v for k, v in model_cfg.items() if k not in _NEUTRAL_MODEL_KEYS}
    blob = json.dumps({"tune": tune_part, "model": model_part}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:8]


def study_id(study_name: str, tune_cfg: Mapping[str, Any], model_cfg: Mapping[str, Any]) -> str:
    """The Optuna study name: the config's name plus :func:`study_hash`."""
    return f"{study_name}-{study_hash(tune_cfg, model_cfg)}"


def journal_storage(path: str | Path):
    """An Optuna journal file at ``path``: appended per trial event, so a killed process loses at most its
    running trial."""
    import optuna

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        from optuna.storages.journal import JournalFileBackend
    except ImportError:  # optuna < 4.0
        JournalFileBackend = optuna.storages.JournalFileStorage  # noqa: N806
    return optuna.storages.JournalStorage(JournalFileBackend(str(path)))


def _fail_stale_trials(study, logger: logging.Logger) -> int:
    """Mark trials left RUNNING by a killed process as FAIL. One job owns a study at a time (Snakemake
    runs each output once), so a RUNNING trial at start-up is a dead one."""
    from optuna.trial import TrialState

    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in stale:
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    if stale:
        logger.info("study %s: marked %d trial(s) left running by a killed search as failed",
                    study.study_name, len(stale))
    return len(stale)


def open_study(study_name: str, tune_cfg: Mapping[str, Any], model_cfg: Mapping[str, Any],
               storage_path: str | Path, logger: logging.Logger | None = None):
    """The study in ``storage_path`` (created if new), its TPE sampler seeded by the config's seed plus the
    number of trials already stored: a resumed search then draws new points instead of replaying the first
    ones, and the same history always gives the same next trials."""
    import optuna

    logger = logger or log
    storage = journal_storage(storage_path)
    name = study_id(study_name, tune_cfg, model_cfg)
    direction = optuna_direction(tune_cfg["metric"])
    study = optuna.create_study(study_name=name, storage=storage, direction=direction, load_if_exists=True)
    _fail_stale_trials(study, logger)
    n_stored = len(study.get_trials(deepcopy=False))
    study.sampler = optuna.samplers.TPESampler(seed=int(tune_cfg.get("seed", 0)) + n_stored)
    return study


def _complete_trials(study) -> list:
    from optuna.trial import TrialState

    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


# ------------------------------------------------------------------------------------------- objective
def fold_jobs(spec: ModelSpec, job_inputs: Mapping[str, Any], folds: list[int], seed: int,
              threads: int) -> list[FoldJob]:
    """One job per tuned fold, from the inputs of the model's train jobs (what the tune rule passes)."""
    return [FoldJob.from_inputs(spec, seed, f, job_inputs, threads) for f in folds]


def tuned_folds(tune_cfg: Mapping[str, Any], folds_path: str) -> list[int]:
    """The config's ``folds`` or, when absent, every fold of the scheme."""
    listed = tune_cfg.get("folds")
    if listed:
        return [int(f) for f in listed]
    return sorted(int(f) for f in io.read_parquet(folds_path, columns=["fold"])["fold"].unique())


def fit_and_score(job: FoldJob, data: FoldData, metric: str, logger: logging.Logger | None = None) -> float:
    """Fit the job (:func:`moastack.train.fit_job`, as a train job does) and score its fold's OOF predictions."""
    model, context = fit_job(job, data, logger)
    oof = predict_rows(model, data.X_valid, data.valid_is_control, job.spec.task, context, data.smiles_valid)
    return metric_value(metric, data.Y_valid, oof)


def make_objective(space: Mapping[str, Mapping[str, Any]], jobs: Mapping[int, tuple[FoldJob, FoldData]],
                   metric: str, logger: logging.Logger):
    """The trial function: suggested params, one fit per fold (data loaded once by the caller), mean metric."""

    def objective(trial) -> float:
        start = time.perf_counter()
        params = suggest_params(trial, space, next(iter(jobs.values()))[0].spec.params)
        values = [fit_and_score(dataclasses.replace(job, spec=job.spec.with_params(params)), data, metric, logger)
                  for job, data in jobs.values()]
        trial.set_user_attr("fold_values", {str(f): v for f, v in zip(jobs, values)})
        value = float(np.mean(values))
        logger.info("trial %d: %s = %.5f (folds %s) in %.1f s with %s", trial.number, metric, value,
                    [round(v, 5) for v in values], time.perf_counter() - start, trial.params)
        return value

    return objective


# -------------------------------------------------------------------------------------------- run + io
def study_summary(study, study_name: str, tune_cfg: Mapping[str, Any], model_name: str,
                  base_params: Mapping[str, Any]) -> dict[str, Any]:
    """The result file's body: best trial, its full model params and every complete trial."""
    from optuna.trial import FixedTrial

    space = tune_cfg["space"]
    complete = sorted(_complete_trials(study), key=lambda t: t.number)
    if not complete:
        raise RuntimeError(f"study {study.study_name}: no complete trial")
    best = study.best_trial
    best_suggested = suggestions(FixedTrial(best.params), space)
    return {
        "study": study.study_name,
        "name": study_name,
        "model": model_name,
        "metric": tune_cfg["metric"],
        "direction": optuna_direction(tune_cfg["metric"]),
        "best_value": float(best.value),
        "best_trial": best.number,
        "best_params": best_suggested,
        "params": apply_suggestions(base_params, best_suggested),
        "n_trials_complete": len(complete),
        "trials": [
            {"number": t.number, "value": float(t.value), "params": suggestions(FixedTrial(t.params), space),
             "fold_values": t.user_attrs.get("fold_values", {})}
            for t in complete
        ],
    }


def run_study(
    study_name: str,
    tune_cfg: Mapping[str, Any],
    model_cfg: Mapping[str, Any],
    job_inputs: Mapping[str, Any],
    storage_path: str | Path,
    output_path: str | Path,
    threads: int = 1,
    log: logging.Logger | None = None,
) -> dict[str, Any]:
    """Run (or resume) the search until ``n_trials`` trials are complete, then write ``output_path``.

    ``tune_cfg`` is one entry of the config's ``tune:`` (model, n_trials, seed, folds, metric,
    timeout_minutes, space); ``model_cfg`` is the tuned model's entry *without* tuned params merged in.
    ``storage_path`` must outlive failed jobs (not a Snakemake output), or nothing resumes.
    """
    import optuna

    logger = log or logging.getLogger(__name__)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # per-trial lines come from our objective
    model_name = tune_cfg["model"]
    spec = ModelSpec.from_entry(model_name, dict(model_cfg))
    space = tune_cfg["space"]
    metric = tune_cfg["metric"]
    if metric not in spec.task.metrics:
        raise ValueError(f"tune metric {metric} does not score a {spec.task.name} task; use one of {spec.task.metrics}")
    check_space(space, spec.arch)
    base_params = dict(spec.params)
    n_trials = int(tune_cfg["n_trials"])

    study = open_study(study_name, tune_cfg, model_cfg, storage_path, logger)
    done = len(_complete_trials(study))
    logger.info("resuming study %s: %d of %d trials done", study.study_name, done, n_trials)
    todo = max(n_trials - done, 0)
    if todo:
        folds = tuned_folds(tune_cfg, str(job_inputs["folds"]))
        jobs = {job.fold: (job, load_fold_data(job))
                for job in fold_jobs(spec, job_inputs, folds, int(tune_cfg["seed"]), threads)}
        logger.info("study %s: model %s (%s) on folds %s, %s (%s), %d trial(s) to run",
                    study.study_name, model_name, spec.arch, folds, metric, study.direction.name.lower(), todo)
        timeout = tune_cfg.get("timeout_minutes")
        study.optimize(
            make_objective(space, jobs, metric, logger),
            n_trials=todo,
            timeout=None if timeout is None else float(timeout) * 60.0,
            gc_after_trial=True,
        )
    summary = study_summary(study, study_name, tune_cfg, model_name, base_params)
    summary["n_trials"] = n_trials
    logger.info("study %s: best %s %.5f (trial %d) with %s", study.study_name, metric, summary["best_value"],
                summary["best_trial"], summary["best_params"])
    io.write_json(summary, output_path)
    return summary


def merge_tuned_params(model_params: Mapping[str, Any] | None, tuned_json_path: str | Path) -> dict[str, Any]:
    """What a model entry with ``params_from: tune/<name>`` trains with: its params updated by the study's."""
    tuned = io.read_json(tuned_json_path)
    return {**copy.deepcopy(dict(model_params or {})), **tuned["params"]}
