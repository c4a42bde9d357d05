"""The smoke DAG locally vs on the local SLURM test cluster, ungrouped vs grouped, and what the
scheduler adds per job.

Needs the test cluster up (tests/cluster/slurm-up.sh; root, Debian) and the SLURM plugin
installed. Runs configs/smoke.yaml three ways in scratch folders, one after the other:
  local    snakemake --cores 2
  slurm    snakemake --profile profiles/slurm (one allocation per job)
  grouped  the same with runtime.group_train: true (one allocation per model × seed)
and prints a table: wall time, allocations, submit→start of each allocation (from sacct: the
scheduler's own latency plus any wait for a free CPU on the 2-CPU node), allocation run times,
and the summed run time of the rules themselves (their Snakemake benchmark files), whose gap to
the allocations' times is the per-job start-up (batch step, srun, a second snakemake).
A second table: submit→start of trivial jobs submitted one at a time to the idle node.

    tests/cluster/slurm-up.sh && .venv/bin/python benchmarks/cluster.py [--default-init]

--default-init adds a run with the profile's shipped status-check interval (40 s) instead of the
1 s the tests use, to show what status polling costs a DAG of short jobs.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import yaml
from _common import ROOT, SNAKEMAKE, read_benchmarks

PROFILE = ROOT / "profiles" / "slurm"
ACCOUNT = os.environ.get("SLURM_TEST_ACCOUNT", "testacct")
PARTITION = os.environ.get("SLURM_TEST_PARTITION", "main")


def smoke_config(grouped: bool = False) -> dict:
    config = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
    if grouped:
        config.setdefault("runtime", {})["group_train"] = True
    return config


def run(workdir: Path, config: dict, *args: str) -> tuple[float, str]:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = [SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(workdir / "config.yaml"), "--cores", "2", *args]
    env = {**os.environ, "SBATCH_ACCOUNT": ACCOUNT, "SBATCH_PARTITION": PARTITION}
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"snakemake failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return seconds, proc.stdout + proc.stderr


def sacct(name: str, expect: int) -> list[dict]:
    fields = ["JobIDRaw", "Comment", "State", "Submit", "Start", "End"]
    for _ in range(30):
        out = subprocess.run(["sacct", "-X", "-P", "-n", "--name", name, "--format", ",".join(fields)],
                             capture_output=True, text=True, check=True).stdout
        rows = [dict(zip(fields, line.split("|"))) for line in out.splitlines() if line.strip()]
        if len(rows) >= expect and all(r["End"] not in ("", "Unknown") for r in rows):
            break
        time.sleep(1)
    for r in rows:
        for key in ("Submit", "Start", "End"):
            r[key] = datetime.fromisoformat(r[key])
    return rows


def slurm_stats(output: str, workdir: Path) -> dict:
    uuid = re.search(r"SLURM run ID: ([0-9a-f-]{36})", output).group(1)
    n = len(re.findall(r"has been submitted with SLURM jobid", output))
    rows = sacct(uuid, n)
    wait = [(r["Start"] - r["Submit"]).total_seconds() for r in rows]
    elapsed = [(r["End"] - r["Start"]).total_seconds() for r in rows]
    return {
        "allocations": len(rows),
        "wait_median": statistics.median(wait),
        "wait_max": max(wait),
        "elapsed_sum": sum(elapsed),
        "states": sorted({r["State"] for r in rows}),
    }


def idle_latency(n: int = 8) -> list[float]:
    """submit→start of `sbatch --wrap true`, one job at a time on the idle node."""
    name = f"latency-{os.getpid()}"
    waits = []
    for _ in range(n):
        jobid = subprocess.run(["sbatch", "--parsable", "-A", ACCOUNT, "-p", PARTITION, "-J", name, "-t", "1",
                                "--mem", "100", "-o", "/dev/null", "--wrap", "true"],
                               capture_output=True, text=True, check=True).stdout.strip().split(";")[0]
        for _ in range(300):
            state = subprocess.run(["squeue", "-h", "-j", jobid, "-o", "%T"], capture_output=True, text=True).stdout
            if not state.strip() or state.strip() in ("COMPLETED", "COMPLETING"):
                break
            time.sleep(0.1)
        time.sleep(1)
    rows = sacct(name, n)
    waits = [(r["Start"] - r["Submit"]).total_seconds() for r in rows]
    return waits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--default-init", action="store_true",
                        help="also run with the profile's shipped 40 s first status check")
    args = parser.parse_args()
    if not shutil.which("sinfo") or subprocess.run(["sinfo", "-h"], capture_output=True).returncode != 0:
        sys.exit("no SLURM cluster answers: run tests/cluster/slurm-up.sh first")

    slurm_args = ["--profile", str(PROFILE), "--slurm-init-seconds-before-status-checks", "1", "--verbose"]
    modes = [
        ("local (--cores 2)", False, ["--quiet", "all"]),
        ("SLURM, one job per allocation", False, slurm_args),
        ("SLURM, grouped per model×seed", True, slurm_args),
    ]
    if args.default_init:
        modes.append(("SLURM, shipped 40 s status init", False, ["--profile", str(PROFILE), "--verbose"]))

    results = []
    with tempfile.TemporaryDirectory(prefix="moastack-cluster-bench-") as tmp:
        for i, (label, grouped, extra) in enumerate(modes):
            workdir = Path(tmp) / f"run{i}"
            seconds, output = run(workdir, smoke_config(grouped), *extra)
            bench = read_benchmarks(workdir / "results")
            row = {"mode": label, "wall": seconds, "jobs": len(bench), "rules_s": float(bench["s"].sum())}
            if "--profile" in extra:
                row.update(slurm_stats(output, workdir))
            results.append(row)
            print(f"  {label}: {seconds:.0f} s", file=sys.stderr)
        latency = idle_latency()

    local = results[0]["wall"]
    head = (f"{'mode':<34}{'wall (s)':>9}{'× local':>8}{'jobs':>6}{'allocs':>7}{'submit→start med/max (s)':>26}"
            f"{'Σ alloc (s)':>12}{'Σ rules (s)':>12}{'overhead/alloc (s)':>19}")
    print(head)
    print("-" * len(head))
    for r in results:
        if "allocations" in r:
            over = (r["elapsed_sum"] - r["rules_s"]) / r["allocations"]
            slurm = (f"{r['allocations']:>7}{r['wait_median']:>13.0f} / {r['wait_max']:<10.0f}"
                     f"{r['elapsed_sum']:>12.0f}{r['rules_s']:>12.0f}{over:>19.1f}")
        else:
            slurm = f"{'-':>7}{'-':>26}{'-':>12}{r['rules_s']:>12.0f}{'-':>19}"
        print(f"{r['mode']:<34}{r['wall']:>9.0f}{r['wall'] / local:>8.2f}{r['jobs']:>6}{slurm}")
    print("submit→start: sacct Start − Submit of each allocation (scheduler latency plus any wait for a free CPU);")
    print("Σ alloc: allocations' run times; Σ rules: the rules' own run times (benchmark files; grouped folds")
    print("overlap inside an allocation); overhead/alloc = (Σ alloc − Σ rules) / allocs: batch step, srun and")
    print("the job-side snakemake starting up. Wall times also contain the plugin's status polling.")
    print()
    print(f"idle node, {len(latency)} trivial jobs one at a time: submit→start median "
          f"{statistics.median(latency):.0f} s, max {max(latency):.0f} s (sacct has 1 s resolution)")
    bad = [r for r in results if r.get("states", ["COMPLETED"]) != ["COMPLETED"]]
    if bad:
        sys.exit(f"some allocations did not complete: {bad}")


if __name__ == "__main__":
    main()
