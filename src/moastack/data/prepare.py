"""The prepare step: load the raw tables (a CSV directory or the synthetic generator), validate, write Parquet.

A regression task (``data.task: regression``) reads the perturbation layout: ``data.source:
synthetic_perturbation`` generates it (:mod:`moastack.data.synthetic_perturbation`, sized by the
``data.synthetic_perturbation`` block: :class:`PerturbationSpec` fields, demo-small by default), ``dir``
reads the five CSV files of that layout; both are checked by :mod:`moastack.data.perturbation`.

Validation runs completely before the first file is written, so a bad input leaves no partial results
for later rules to pick up.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from moastack import columns as C
from moastack.data.synthetic import SyntheticSpec, generate
from moastack.data.validate import InputError, read_raw_dir, validate_tables
from moastack.io import write_parquet
from moastack.task import get_task

log = logging.getLogger(__name__)

SOURCES = ("synthetic", "dir", "table", "synthetic_perturbation")


def perturbation_spec(options: dict[str, Any] | None):
    """A PerturbationSpec from ``data.synthetic_perturbation``, refusing unknown keys with the known ones."""
    from moastack.data.synthetic_perturbation import PerturbationSpec

    options = dict(options or {})
    known = [f.name for f in dataclasses.fields(PerturbationSpec)]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise InputError(f"data.synthetic_perturbation: unknown settings {unknown}; known: {known}")
    try:
        return PerturbationSpec(**options)
    except ValueError as err:
        raise InputError(f"data.synthetic_perturbation: {err}") from err


def _load_regression(data_cfg: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """The validated perturbation tables of a regression task (generated, or read from data.dir)."""
    from moastack.data.perturbation import validate_perturbation_tables

    source = data_cfg.get("source")
    if source == "synthetic_perturbation":
        from moastack.data.synthetic_perturbation import generate_perturbation

        spec = perturbation_spec(data_cfg.get("synthetic_perturbation"))
        log.info("generating synthetic perturbation data: %s", spec)
        return validate_perturbation_tables(generate_perturbation(spec),
                                            {name: f"synthetic_perturbation:{name}" for name in C.TABLES})
    if source == "dir":
        directory = data_cfg.get("dir")
        log.info("reading perturbation CSV files from %s", directory)
        return validate_perturbation_tables(read_raw_dir(directory),
                                            {name: str(Path(directory) / f"{name}.csv") for name in C.TABLES})
    raise InputError(f"data.source: a regression task reads synthetic_perturbation or dir, got {source!r}")


def _synthetic_spec(options: dict[str, Any] | None) -> SyntheticSpec:
    """A SyntheticSpec from the config, refusing unknown keys with the list of known ones."""
    options = dict(options or {})
    known = [f.name for f in dataclasses.fields(SyntheticSpec)]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise InputError(f"data.synthetic: unknown settings {unknown}; known: {known}")
    return SyntheticSpec(**options)


def load_source(data_cfg: dict[str, Any]) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    """Raw frames and, per table, the name to show in messages (``synthetic:<table>`` or the CSV path)."""
    source = data_cfg.get("source", "synthetic")
    if source == "synthetic":
        spec = _synthetic_spec(data_cfg.get("synthetic"))
        log.info("generating synthetic data: %s", spec)
        return generate(spec), {name: f"synthetic:{name}" for name in C.TABLES}
    if source == "dir":
        directory = data_cfg.get("dir")
        if not directory:
            raise InputError(
                "data.dir: a directory with the raw CSV files is required when data.source is 'dir'"
            )
        log.info("reading raw CSV files from %s", directory)
        return read_raw_dir(directory), {name: str(Path(directory) / f"{name}.csv") for name in C.TABLES}
    raise InputError(f"data.source: expected one of {list(SOURCES)}, got {source!r}")


def prepare(data_cfg: dict[str, Any], outputs: dict[str, str]) -> dict[str, pd.DataFrame]:
    """Load, validate everything, then write each table to ``outputs[table]`` as Parquet."""
    missing = [name for name in C.TABLES if name not in outputs]
    if missing:
        raise ValueError(f"prepare: no output path for tables {missing}")
    footer: dict[str, dict[str, str]] = {}
    if get_task(data_cfg.get("task")).layout == "perturbation" or data_cfg.get("source") == "synthetic_perturbation":
        validated = _load_regression(data_cfg)
    elif data_cfg.get("source") == "table":
        from moastack.data.table import RECORD_KEY, load_table_source, table_record

        log.info("reading the table source %s", data_cfg["table"]["path"])
        validated = load_table_source(data_cfg["table"])  # validated as it is read
        # moastack predict reads new molecules by the columns recorded here
        footer = {table: {RECORD_KEY: json.dumps(table_record(data_cfg["table"]))}
                  for table in ("train_features", "test_features")}
    else:
        frames, files = load_source(data_cfg)
        validated = validate_tables(frames, files)
    for name in C.TABLES:
        write_parquet(validated[name], outputs[name], metadata=footer.get(name))
        log.info("wrote %s (%d rows, %d columns)", outputs[name], *validated[name].shape)
    return validated
