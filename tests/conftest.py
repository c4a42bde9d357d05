"""Shared fixtures: a tiny config and a runner for real Snakemake in a temporary folder."""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))

TINY_NN = {
    "hidden": [64],
    "dropout": [0.1, 0.2],
    "epochs": 4,
    "batch_size": 64,
    "lr": 0.001,
    "max_lr": 0.01,
    "label_smoothing": 0.001,
    "patience": 3,
}

TINY_CONFIG = {
    "data": {"source": "synthetic", "synthetic": {"n_train": 360, "n_test": 60, "seed": 7}},
    "folds": {
        "ml3": {"method": "multilabel_stratified", "k": 3, "seed": 1},
        "drug3": {"method": "drug_aware", "k": 3, "seed": 1, "drug_threshold": 18},
    },
    "features": {
        "small": {
            "fit_on": "train+test",
            "steps": [
                {"name": "rankgauss", "blocks": ["genes", "cells"], "n_quantiles": 50},
                {"name": "pca", "block": "genes", "n_components": 8},
                {"name": "pca", "block": "cells", "n_components": 4},
                {"name": "row_stats", "blocks": ["genes", "cells"]},
                {"name": "onehot"},
            ],
        },
        "other": {"fit_on": "train", "steps": [{"name": "pca", "block": "genes", "n_components": 5}, {"name": "onehot"}]},
    },
    "models": {
        "prior": {"arch": "prior", "features": "other", "folds": "ml3"},
        "nn": {"arch": "simple_nn", "features": "small", "folds": "ml3", "seeds": [0], "params": TINY_NN},
        "nn_drug": {"arch": "simple_nn", "features": "small", "folds": "drug3", "seeds": [0], "params": TINY_NN},
    },
    "blend": {"folds": "ml3", "methods": ["slsqp"]},
    "runtime": {"default": {"threads": 1, "mem_mb": 1000, "runtime": 10}},
}


def tiny_config() -> dict:
    return copy.deepcopy(TINY_CONFIG)


def write_config(workdir: Path, config: dict) -> Path:
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def run_snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the real workflow in ``workdir`` with the config written there."""
    cmd = [
        SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
        "--configfile", str(workdir / "config.yaml"), "--cores", "2", *args,
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


_RULE = re.compile(r"^(?:local)?rule (\w+):", re.M)


def planned_jobs(workdir: Path, *args: str) -> set[tuple[str, str]]:
    """Jobs a dry run would execute, as {(rule, "k=v,k=v")} from its job listing."""
    proc = run_snakemake(workdir, "--dry-run", *args)
    out = proc.stdout + proc.stderr
    jobs = set()
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", out):
        m = _RULE.search(block)
        if not m or m.group(1) == "all":
            continue
        wc = re.search(r"^\s+wildcards: (.*)$", block, re.M)
        jobs.add((m.group(1), wc.group(1).replace(" ", "") if wc else ""))
    return jobs


@pytest.fixture(scope="session")
def pipeline_run(tmp_path_factory) -> Path:
    """One full run of the tiny pipeline, shared by the end-to-end tests (copy it before editing)."""
    workdir = tmp_path_factory.mktemp("pipeline")
    write_config(workdir, tiny_config())
    run_snakemake(workdir)
    return workdir
