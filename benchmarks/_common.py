"""Helpers shared by the benchmark scripts: run the workflow in a scratch folder, read benchmark TSVs."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def run_workflow(workdir: Path, config: dict, *args: str, cores: int = 2) -> float:
    """Write ``config`` to ``workdir`` and run Snakemake there; returns the wall time in seconds."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = [SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(workdir / "config.yaml"), "--cores", str(cores), "--rerun-incomplete", *args, "--quiet",
           "all"]  # --rerun-incomplete: a killed benchmark resumes where it stopped
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"snakemake failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return seconds


def read_benchmarks(results: Path) -> pd.DataFrame:
    """Every rule's Snakemake ``benchmark:`` TSV as one table (job = path under benchmarks/)."""
    rows = []
    for tsv in sorted((results / "benchmarks").rglob("*.tsv")):
        frame = pd.read_csv(tsv, sep="\t")
        frame.insert(0, "job", str(tsv.relative_to(results / "benchmarks").with_suffix("")))
        rows.append(frame)
    return pd.concat(rows, ignore_index=True)
