"""How long Snakemake takes to plan a winner-sized DAG (7 models × 5 seeds × 10 folds = 350 jobs).

Prints the dry-run wall time of the big DAG next to the demo config's, in the same run, so the
ratio is meaningful on a noisy machine. Target: under 10 s for the big DAG.

    .venv/bin/python benchmarks/dag_scale.py
"""

from __future__ import annotations

import copy
import re
import subprocess
import tempfile
import time
from pathlib import Path

import yaml
from _common import ROOT, SNAKEMAKE


def big_config(n_models: int = 7, n_seeds: int = 5, k: int = 10) -> dict:
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["folds"]["mlsk10"] = {"method": "multilabel_stratified", "k": k, "seed": 0}
    template = copy.deepcopy(config["models"]["simple_nn"])
    template.update(folds="mlsk10", seeds=list(range(n_seeds)))
    config["models"] = {f"nn_{i}": copy.deepcopy(template) for i in range(n_models)}
    config["blend"] = {"folds": "mlsk10"}
    return config


def plan(config: dict) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        cmd = [SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--directory", tmp, "--configfile", str(path),
               "--cores", "2", "--dry-run"]
        start = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        seconds = time.perf_counter() - start
    total = int(re.search(r"^total\s+(\d+)", out, re.M).group(1))
    return seconds, total


def main() -> None:
    demo_s, demo_jobs = plan(yaml.safe_load((ROOT / "config.yaml").read_text()))
    big_s, big_jobs = plan(big_config())
    print(f"{'DAG':<28}{'jobs':>8}{'dry run (s)':>14}")
    print(f"{'demo config.yaml':<28}{demo_jobs:>8}{demo_s:>14.2f}")
    print(f"{'7 models x 5 seeds x 10 folds':<28}{big_jobs:>8}{big_s:>14.2f}")
    print(f"ratio big/demo: {big_s / demo_s:.2f}x for {big_jobs / demo_jobs:.1f}x the jobs; target < 10 s: "
          f"{'met' if big_s < 10 else 'MISSED'}")


if __name__ == "__main__":
    main()
