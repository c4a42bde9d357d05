"""Shared fixtures: a tiny config and a runner for real Snakemake in a temporary folder."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))

SMOKE_CONFIG = ROOT / "configs" / "smoke.yaml"


def tiny_config() -> dict:
    """A fresh copy of configs/smoke.yaml (edit it freely)."""
    return yaml.safe_load(SMOKE_CONFIG.read_text())


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
