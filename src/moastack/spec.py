"""A model's config entry as a typed object, built once after schema validation.

The schema (schema/config.schema.yaml, ``definitions.model``) fills every default; :meth:`ModelSpec.from_entry`
validates an entry against it, so a spec built by a rule, by a test from a hand-written dict or by
``moastack predict`` from a model file carries the same defaults, and nothing downstream restates one.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields, replace
from typing import Any

from moastack.task import Task, get_task


@dataclass(frozen=True)
class ModelSpec:
    """One model of the config: what its jobs fit, on what, and how (``models.<name>``)."""

    name: str
    arch: str
    features: str
    folds: str
    task: Task
    targets: str
    drop_controls: bool
    meta: tuple[str, ...]
    meta_transform: str
    meta_only: bool
    fold_steps: tuple[dict, ...]
    device: str
    params: dict = field(default_factory=dict)
    target_encoding: dict | None = None
    aux_targets: str | None = None
    init_from: str | None = None
    feature_map: str | None = None
    pseudo_from: str | None = None
    params_from: str | None = None
    seed_aggregate: str = "mean"
    seeds: tuple[int, ...] = (0,)
    #: early stopping watches the control validation rows too (drop_controls false only)
    valid_controls: bool = False

    @classmethod
    def from_entry(cls, name: str, entry: dict[str, Any], task: str | Task | None = None) -> ModelSpec:
        """The spec of config entry ``models.<name>`` (validated against the schema, defaults filled).

        ``task`` is ``data.task``; an entry that carries a ``task`` key (a train job's config slice) gives
        its own. Keys the workflow alone uses (``resources``) are dropped.
        """
        from moastack.config import validate_model_entry

        entry = copy.deepcopy(dict(entry))
        task = get_task(entry.pop("task", task))
        entry.pop("resources", None)
        entry.setdefault("seed_aggregate", "mean")
        validate_model_entry(name, entry)
        return cls(
            name=name,
            task=task,
            arch=entry["arch"],
            features=entry["features"],
            folds=entry["folds"],
            targets=entry["targets"],
            drop_controls=entry["drop_controls"],
            meta=tuple(entry["meta"]),
            meta_transform=entry["meta_transform"],
            meta_only=entry["meta_only"],
            fold_steps=tuple(entry["fold_steps"]),
            device=entry["device"],
            params=dict(entry["params"]),
            target_encoding=entry.get("target_encoding"),
            aux_targets=entry.get("aux_targets"),
            init_from=entry.get("init_from"),
            feature_map=entry.get("feature_map"),
            pseudo_from=entry.get("pseudo_from"),
            params_from=entry.get("params_from"),
            seed_aggregate=entry["seed_aggregate"],
            seeds=tuple(entry["seeds"]),
            valid_controls=bool(entry.get("valid_controls", False)),
        )

    def to_entry(self) -> dict[str, Any]:
        """The config entry this spec was built from (defaults filled, the task by name): what a model
        file stores, so that ``moastack predict`` rebuilds the spec without the config."""
        entry = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "name"}
        entry.update(task=self.task.name, meta=list(self.meta), fold_steps=[dict(s) for s in self.fold_steps],
                     seeds=list(self.seeds), params=copy.deepcopy(self.params))
        return {k: v for k, v in entry.items() if v is not None}

    def with_params(self, params: dict[str, Any]) -> ModelSpec:
        """The same model with other params (a tuning trial, a ``params_from`` merge)."""
        return replace(self, params=dict(params))
