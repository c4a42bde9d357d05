"""Config loading, validation and the per-rule slices the workflow hands to its rules.

The JSON schema checks shapes and fills defaults; :func:`check_config` checks what a schema cannot:
references between sections, stacking cycles and fold-scheme agreement. Slices are kept minimal
because Snakemake reruns a job when its params change: a train job must not see another model's
block, nor its own ``seeds`` list (adding a seed must not rerun the existing seeds).
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import jsonschema
import yaml

from moastack.archs import ARCHS, arch_info, archs_for, sparse_refusal
from moastack.task import MULTILABEL, Task, get_task, task_of_metric

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schema" / "config.schema.yaml"


#: feature steps whose output is a sparse block (``features.fingerprints``; a test holds this list to the
#: registered steps' ``sparse_output``), named here so that checking a config imports no feature code
SPARSE_STEPS = ("sparse_fingerprint",)


class ConfigError(ValueError):
    """The config names something that does not exist or wires models inconsistently."""


def load_schema(path: str | Path = SCHEMA_PATH) -> dict:
    return copy.deepcopy(_read_schema(str(path)))


@functools.lru_cache(maxsize=4)
def _read_schema(path: str) -> dict:
    return yaml.safe_load(Path(path).read_text())


def _with_defaults(validator_class):
    """A validator that fills each missing property from the schema's ``default`` while validating."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def _validate(instance: dict, schema: dict, where: str) -> dict:
    """Validate ``instance`` against ``schema``, filling defaults in place; errors name the key under ``where``."""
    validator = _with_defaults(jsonschema.Draft7Validator)(schema)
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"  {'.'.join([*([where] if where else []), *map(str, e.absolute_path)]) or '<top>'}: {e.message}"
                 for e in errors[:10]]
        raise ConfigError("config does not match schema/config.schema.yaml:\n" + "\n".join(lines))
    return instance


def validate_schema(config: dict, schema: dict | None = None) -> dict:
    """Validate against the JSON schema, filling defaults in place; errors name the config key."""
    return _validate(config, schema if schema is not None else load_schema(), "")


def validate_model_entry(name: str, entry: dict) -> dict:
    """Validate one ``models.<name>`` entry against the schema's model definition, filling its defaults."""
    definitions = _read_schema(str(SCHEMA_PATH))["definitions"]
    return _validate(entry, {"$ref": "#/definitions/model", "definitions": definitions}, f"models.{name}")


def load_config(path: str | Path) -> dict:
    """Read, validate and check a config file (for tools outside Snakemake: tests, predict)."""
    config = yaml.safe_load(Path(path).read_text())
    validate_schema(config)
    check_config(config)
    return config


def _stacking_order(models: dict) -> list[str]:
    """Models in dependency order; a cycle raises ConfigError naming it."""
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "active":
            cycle = path[path.index(name):] + [name]
            raise ConfigError(f"models: stacking cycle {' -> '.join(cycle)}; a model cannot use its own predictions")
        state[name] = "active"
        for upstream in upstream_models(models[name]):
            visit(upstream, path + [name])
        state[name] = "done"
        order.append(name)

    for name in models:
        visit(name, [])
    return order


def upstream_models(model: dict) -> list[str]:
    """Models whose outputs a model's train jobs read: its meta inputs, its transfer source and the source
    of its pseudo-labels."""
    return [*model.get("meta", []), *([model["init_from"]] if "init_from" in model else []),
            *([model["pseudo_from"]] if "pseudo_from" in model else [])]


def check_config(config: dict) -> None:
    """Cross-reference checks, with messages that name the offending key."""
    models, folds, features = config["models"], config["folds"], config["features"]
    sparse_sets = _check_sparse_sets(features)
    _check_feature_maps(config.get("feature_maps", {}), features)
    for name, m in models.items():
        if m["features"] not in features:
            raise ConfigError(
                f"models.{name}.features: unknown feature set {m['features']!r}; defined: {', '.join(features)}"
            )
        if m["features"] in sparse_sets and not m.get("meta_only") and not arch_info(m["arch"]).sparse:
            raise ConfigError(sparse_refusal(name, m["arch"], m["features"]))
        if m["folds"] not in folds:
            raise ConfigError(f"models.{name}.folds: unknown fold scheme {m['folds']!r}; defined: {', '.join(folds)}")
        for upstream in m["meta"]:
            if upstream not in models:
                raise ConfigError(f"models.{name}.meta: unknown model {upstream!r}")
            if models[upstream]["folds"] != m["folds"]:
                raise ConfigError(
                    f"models.{name}.meta: {name} uses fold scheme {m['folds']!r} but {upstream} uses "
                    f"{models[upstream]['folds']!r}; stacking needs one scheme, otherwise {upstream}'s OOF "
                    f"predictions of a row were fitted on rows that share {name}'s validation fold (leakage)"
                )
        if "init_from" in m:
            _check_init_from(models, name, m)
        if "pseudo_from" in m:
            _check_pseudo_from(models, name, m)
        if m.get("valid_controls") and m.get("drop_controls", True):
            raise ConfigError(f"models.{name}.valid_controls: early stopping can watch the control rows only of a "
                              "model that trains on them; set drop_controls: false")
        if m.get("meta_only") and not m.get("meta"):
            raise ConfigError(f"models.{name}.meta_only is true but models.{name}.meta lists no model")
        _check_feature_map(config, name, m)
        if "params_from" in m:
            study = m["params_from"].split("/", 1)[1]
            if study not in config.get("tune", {}):
                raise ConfigError(f"models.{name}.params_from: no study {study!r} under tune; defined: "
                                  f"{', '.join(config.get('tune', {})) or 'none'}")
    _check_task(config)
    _stacking_order(models)
    _check_tune(config)
    _check_data(config)
    blend = config["blend"]
    if blend["folds"] not in folds:
        raise ConfigError(f"blend.folds: unknown fold scheme {blend['folds']!r}; defined: {', '.join(folds)}")
    for member in blend.get("members", []):
        if member not in models:
            raise ConfigError(f"blend.members: unknown model {member!r}")
        if models[member]["folds"] != blend["folds"]:
            raise ConfigError(
                f"blend.members: {member} uses fold scheme {models[member]['folds']!r}, the blend uses "
                f"{blend['folds']!r}; OOF losses of different schemes are not comparable"
            )
        if models[member]["targets"] != "scored":
            raise ConfigError(f"blend.members: {member} predicts non-scored targets; only scored models can be blended")
    if not blend_members(config):
        raise ConfigError(f"blend: no model predicts scored targets on fold scheme {blend['folds']!r}")


def _check_sparse_sets(features: dict) -> set[str]:
    """The feature sets with sparse steps; their frequency filters fit on training rows, so fit_on: train."""
    sparse_sets = set()
    for fset, spec in features.items():
        steps = [s["name"] for s in spec.get("steps", []) if s["name"] in SPARSE_STEPS]
        if not steps:
            continue
        sparse_sets.add(fset)
        if spec.get("fit_on", "train+test") != "train":
            raise ConfigError(f"features.{fset}.fit_on: its steps {steps} fit a frequency filter on training rows "
                              "only; set fit_on: train")
    return sparse_sets


def _check_feature_maps(maps: dict, features: dict) -> None:
    """Each map places a defined feature set; t-SNE on unsquared distances starts from a random layout."""
    for name, spec in maps.items():
        if spec["features"] not in features:
            raise ConfigError(f"feature_maps.{name}.features: unknown feature set {spec['features']!r}")
        if (not spec.get("square_distances", True) and spec.get("metric", "euclidean") != "euclidean"
                and spec.get("init", "pca") != "random"):
            raise ConfigError(f"feature_maps.{name}.square_distances: false (metric {spec['metric']}) hands t-SNE "
                              "precomputed distances, which scikit-learn lays out from init: random only")


def _check_feature_map(config: dict, name: str, m: dict) -> None:
    """A DeepInsight model needs a map of its own feature set's columns; other models take none."""
    maps = config.get("feature_maps", {})
    renders = arch_info(m["arch"]).feature_map
    if renders and "feature_map" not in m:
        raise ConfigError(f"models.{name}: arch {m['arch']} needs feature_map (a name under feature_maps)")
    if "feature_map" not in m:
        return
    if not renders:
        renderers = ", ".join(a for a, info in ARCHS.items() if info.feature_map)
        raise ConfigError(f"models.{name}.feature_map: only arch {renderers} renders images, not {m['arch']}")
    fmap = m["feature_map"]
    if fmap not in maps:
        raise ConfigError(f"models.{name}.feature_map: unknown map {fmap!r}; defined: {', '.join(maps) or 'none'}")
    if maps[fmap]["features"] != m["features"]:
        raise ConfigError(
            f"models.{name}.feature_map: map {fmap!r} places the columns of feature set "
            f"{maps[fmap]['features']!r} but the model reads {m['features']!r}"
        )
    if m["meta"] or m["fold_steps"]:
        raise ConfigError(f"models.{name}: a {m['arch']} model cannot add meta features or fold_steps "
                          "(its image map covers the feature set's columns only)")


def task_of(config: dict) -> Task:
    """The run's task (``data.task``, filled by the schema)."""
    return get_task(config["data"]["task"])


def _check_task(config: dict) -> None:
    """The task, its metric, its data source, its archs, fold methods and task-only keys agree."""
    data = config["data"]
    task, metric, source = task_of(config), data["metric"], data["source"]
    if metric not in task.metrics:
        other = task_of_metric(metric)
        raise ConfigError(f"data.metric: {metric} scores a {other.name} task, but data.task is {task.name}; "
                          f"use one of {', '.join(task.metrics)} (or set data.task: {other.name})")
    if source not in task.sources:
        raise ConfigError(f"data.source: a {task.name} task reads {', '.join(task.sources)}, not {source}"
                          + (" (synthetic_perturbation generates continuous targets: set data.task: regression "
                             "and data.metric: mrrmse)" if source == "synthetic_perturbation" else ""))
    if "synthetic_perturbation" in data and source != "synthetic_perturbation":
        raise ConfigError("data.synthetic_perturbation: only read when data.source is synthetic_perturbation")
    for name, m in config["models"].items():
        arch = arch_info(m["arch"])
        if task.name not in arch.tasks:
            raise ConfigError(f"models.{name}.arch: {m['arch']} serves {', '.join(arch.tasks)} tasks, not this "
                              f"{task.name} one (data.task); it takes {', '.join(archs_for(task.name))}")
        if "target_encoding" in m and not task.continuous:
            raise ConfigError(f"models.{name}.target_encoding: target encoding is for continuous targets "
                              "(a regression task) only")
        for key in ("targets", "aux_targets"):
            if key in m and m[key] not in task.target_kinds:
                raise ConfigError(f"models.{name}.{key}: a {task.name} task has {', '.join(task.target_kinds)} targets")
        if "aux_targets" in m and "pseudo_from" in m:
            raise ConfigError(f"models.{name}.aux_targets: pseudo-labelled rows have no aux labels; drop one of "
                              "aux_targets and pseudo_from")
        if task.continuous and any(step["name"] == "ttest_select" for step in m["fold_steps"]):
            raise ConfigError(f"models.{name}.fold_steps: ttest_select contrasts binary labels; "
                              f"not for a {task.name} task")
    for scheme, f in config["folds"].items():
        if f["method"] not in task.fold_methods:
            raise ConfigError(f"folds.{scheme}.method: {f['method']} is not for a {task.name} task; use one of "
                              f"{', '.join(task.fold_methods)}")
        if f["method"] != "rare_cell_type" and ("rare_cell_types" in f or "n_rare" in f):
            raise ConfigError(f"folds.{scheme}: rare_cell_types and n_rare belong to method rare_cell_type")
        if "rare_cell_types" in f and "n_rare" in f:
            raise ConfigError(f"folds.{scheme}: give rare_cell_types or n_rare, not both")
        n_rare = len(f.get("rare_cell_types", [])) or f.get("n_rare", 2)
        if f["method"] == "rare_cell_type" and n_rare > f["k"]:
            raise ConfigError(f"folds.{scheme}: {n_rare} rare cell types need k >= {n_rare} (one fold each), "
                              f"got k={f['k']}")


def _check_same_job_source(models: dict, name: str, key: str, self_use: str, leak: str) -> dict:
    """A model reading its source's job of the same seed × fold (``init_from``, ``pseudo_from``): the
    source must exist, be another model, use the same fold scheme and have every seed of this one."""
    source = models[name][key]
    m = models[name]
    if source not in models:
        raise ConfigError(f"models.{name}.{key}: unknown model {source!r}")
    if source == name:
        raise ConfigError(f"models.{name}.{key}: a model cannot {self_use}")
    src = models[source]
    if src["folds"] != m["folds"]:
        raise ConfigError(
            f"models.{name}.{key}: {source} uses fold scheme {src['folds']!r}, {name} uses {m['folds']!r}; "
            f"{leak.format(source=source, name=name)}"
        )
    missing = sorted(set(m["seeds"]) - set(src["seeds"]))
    if missing:
        raise ConfigError(f"models.{name}.{key}: {source} has no seeds {missing}; add them to "
                          f"models.{source}.seeds (each job reads the same seed × fold)")
    return src


def _check_pseudo_from(models: dict, name: str, m: dict) -> None:
    """Pseudo-labels come from the source's job of the same seed × fold: both must exist, on one scheme."""
    source = m["pseudo_from"]
    src = _check_same_job_source(
        models, name, "pseudo_from", "label its own training rows",
        "pseudo-labels need the same folds, or {source}'s test predictions were fitted on {name}'s "
        "validation rows (leakage)",
    )
    if src["targets"] != m["targets"]:
        raise ConfigError(f"models.{name}.pseudo_from: {source} predicts {src['targets']} targets, "
                          f"{name} learns {m['targets']} ones")


def _check_tune(config: dict) -> None:
    task = task_of(config)
    for study, t in config.get("tune", {}).items():
        if t["model"] not in config["models"]:
            raise ConfigError(f"tune.{study}.model: unknown model {t['model']!r}")
        metric = t.get("metric", config["data"]["metric"])
        if metric not in task.metrics:
            raise ConfigError(f"tune.{study}.metric: {metric} does not score a {task.name} task; use one of "
                              f"{', '.join(task.metrics)}")
        base = config["models"][t["model"]]
        if "pseudo_from" in base:
            raise ConfigError(f"tune.{study}.model: {t['model']} trains on pseudo-labels (pseudo_from), which a "
                              "study does not replay; tune the model without them")
        if "init_from" in base or base.get("params_from", f"tune/{study}") != f"tune/{study}":
            raise ConfigError(f"tune.{study}.model: {t['model']} starts from another model's weights or "
                              "study; tune a model that trains from scratch on its own params")
        k = config["folds"][config["models"][t["model"]]["folds"]]["k"]
        bad = [f for f in t.get("folds", []) if f >= k]
        if bad:
            raise ConfigError(f"tune.{study}.folds: folds {bad} do not exist (the scheme has k={k})")
        for param, spec in t["space"].items():
            kind = spec["type"]
            if kind == "categorical" and "choices" not in spec:
                raise ConfigError(f"tune.{study}.space.{param}: categorical needs choices")
            if kind in ("int", "float") and not ("low" in spec and "high" in spec and spec["low"] <= spec["high"]):
                raise ConfigError(f"tune.{study}.space.{param}: {kind} needs low <= high")


def _check_data(config: dict) -> None:
    data = config["data"]
    if data["source"] == "table" and "table" not in data:
        raise ConfigError("data.table: required when data.source is table (path, id_column, label_columns)")
    smiles = (data.get("table") or {}).get("smiles_column") if data["source"] == "table" else None
    for scheme, f in config["folds"].items():
        if f["method"] == "scaffold" and not smiles:
            raise ConfigError(f"folds.{scheme}: scaffold folds need molecules: data.source table with "
                              "data.table.smiles_column")
        if f["method"] == "drug_aware" and data["source"] == "table":
            raise ConfigError(f"folds.{scheme}: drug_aware folds need lish-moa's train_drug table; "
                              "use scaffold or multilabel_stratified for a table source")
    for name, m in config["models"].items():
        if arch_info(m["arch"]).molecules and not smiles:
            raise ConfigError(f"models.{name}.arch: {m['arch']} reads molecules: it needs data.source table with "
                              "data.table.smiles_column")


def _check_init_from(models: dict, name: str, m: dict) -> None:
    """A transfer model starts from its source's job of the same seed × fold: both must exist."""
    source = m["init_from"]
    src = _check_same_job_source(
        models, name, "init_from", "start from its own weights",
        "transfer needs the same folds, or {name}'s validation rows were seen by {source}'s weights",
    )
    if not arch_info(m["arch"]).transfer:
        supported = [a for a, info in ARCHS.items() if info.transfer]
        raise ConfigError(f"models.{name}.init_from: arch {m['arch']} has no transfer; supported: {', '.join(supported)}")
    if src["arch"] != m["arch"]:
        raise ConfigError(f"models.{name}.init_from: {source} is a {src['arch']}, {name} a {m['arch']}; weights do not fit")


def blend_members(config: dict) -> list[str]:
    """The models the blend combines: the listed ones, or every scored model of the blend's scheme."""
    blend = config["blend"]
    if blend.get("members"):
        return list(blend["members"])
    return [
        name for name, m in config["models"].items()
        if m["folds"] == blend["folds"] and m["targets"] == "scored"
    ]


def model_jobs(config: dict, model: str) -> list[tuple[int, int]]:
    """(seed, fold) pairs of one model: its seeds × the folds of its scheme."""
    m = config["models"][model]
    k = config["folds"][m["folds"]]["k"]
    return [(seed, fold) for seed in m["seeds"] for fold in range(k)]


def train_slice(config: dict, model: str) -> dict:
    """What a train job depends on: its model block minus ``seeds``, ``resources`` and ``seed_aggregate``
    (how collect combines the seeds), plus the run's task. ``valid_controls`` only when set, so that a
    model without it keeps the slice it always had."""
    m = copy.deepcopy(config["models"][model])
    for key in ("seeds", "resources", "seed_aggregate"):
        m.pop(key, None)
    if not m.get("valid_controls"):
        m.pop("valid_controls", None)
    m["task"] = task_of(config).name
    return m


#: feature-map settings added after the first maps were fitted, with the defaults those maps used: a map's
#: slice leaves them out at these values, so that existing maps (and the models on them) are not refitted
_LATER_MAP_DEFAULTS = {"metric": "euclidean", "method": "barnes_hut", "init": "pca", "learning_rate": "auto",
                       "square_distances": True, "placement": "compact", "scaler_clip": False, "fit_on": "train"}


def feature_map_slice(config: dict, name: str) -> dict:
    """What a feature_map job depends on: its ``feature_maps`` entry, the later settings only when not their
    defaults."""
    return {k: v for k, v in config["feature_maps"][name].items()
            if not (k in _LATER_MAP_DEFAULTS and v == _LATER_MAP_DEFAULTS[k])}


def data_slice(config: dict) -> dict:
    """What prepare depends on: the source, not the task's metric (changing the metric rescores only).

    The task is part of it only when it is not the default multilabel (a regression task validates its
    tables as the perturbation layout), so that existing multilabel runs keep their slice."""
    keep = {k: v for k, v in config["data"].items() if k not in ("metric", "task")}
    if task_of(config) is not MULTILABEL:
        keep["task"] = task_of(config).name
    return keep


def collect_slice(config: dict, model: str) -> dict:
    m = config["models"][model]
    out = {"folds": m["folds"], "seeds": list(m["seeds"]), "targets": m["targets"],
           "metric": config["data"]["metric"]}
    if "seed_aggregate" in m:  # only when set: a model without it keeps the slice it always had
        out["seed_aggregate"] = m["seed_aggregate"]
    return out


def tune_slice(config: dict, study: str) -> dict:
    """What a tuning study depends on: its block, its base model's train slice and the metric."""
    t = copy.deepcopy(config["tune"][study])
    t.setdefault("metric", config["data"]["metric"])
    return {"study": study, "tune": t, "model": train_slice(config, t["model"]), "model_name": t["model"]}


def tune_studies_used(config: dict) -> list[str]:
    """Studies some model takes its params from (the others run only when asked for)."""
    return sorted({m["params_from"].split("/", 1)[1] for m in config["models"].values() if "params_from" in m})


def resources_for(config: dict, rule: str, model: str | None = None) -> dict:
    """threads / mem_mb / runtime of a rule, overridden by a model's own ``resources``."""
    runtime = config.get("runtime", {})
    merged = dict(runtime.get("default", {"threads": 1, "mem_mb": 2000, "runtime": 30}))
    merged.update(runtime.get("rules", {}).get(rule, {}))
    if model is not None:
        merged.update(config["models"][model].get("resources", {}) or {})
    return merged


def wants_gpu(config: dict, model: str) -> bool:
    """Only an explicit ``device: cuda`` requests a GPU; ``auto`` uses one if the node has it."""
    return config["models"][model]["device"] == "cuda"
