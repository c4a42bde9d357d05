"""Wall time of a cold demo run: ``snakemake --cores 2`` of config.yaml with results and .snakemake removed
(the venv kept), repeated --repeats times; the median wall, and per run the per-rule sum of job times,
the critical path (longest chain of dependent jobs by wall time) and the load average before/after.

Machines here are shared and noisy: run it on an otherwise idle machine and say so, or read the load
averages it prints. By default each run goes to a scratch folder (--workdir) so that the checkout's
results/ survive; --in-place runs in the repository root as `make demo` does (and deletes results/).

    .venv/bin/python benchmarks/demo_time.py [--repeats 3] [--cores 2] [--out demo_time.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from moastack.config import load_config  # noqa: E402
from moastack.plan import make_plan, measured_schedule  # noqa: E402


def loadavg() -> list[float]:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return [float(x) for x in os.getloadavg()]


def one_run(workdir: Path, configfile: Path, cores: int, snakemake: str, in_place: bool) -> dict:
    """One cold run; returns its wall time, load averages and the measured schedule."""
    shutil.rmtree(workdir / "results", ignore_errors=True)
    shutil.rmtree(workdir / ".snakemake", ignore_errors=True)
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [snakemake, "--cores", str(cores)]
    if not in_place:
        cmd += ["--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir), "--configfile", str(configfile)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    before = loadavg()
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    after = loadavg()
    (workdir / "demo_time.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        sys.exit(f"snakemake failed ({proc.returncode}); log: {workdir / 'demo_time.log'}\n{proc.stderr[-3000:]}")
    measured = measured_schedule(load_config(configfile), workdir / "results")
    return {"wall_s": wall, "load_before": before, "load_after": after, **measured}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--configfile", type=Path, default=ROOT / "config.yaml")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/moastack-demo-time"))
    parser.add_argument("--in-place", action="store_true", help="run in the repository root (deletes results/)")
    parser.add_argument("--snakemake", default=str(Path(sys.executable).with_name("snakemake")))
    parser.add_argument("--out", type=Path, help="write every run's figures as JSON")
    args = parser.parse_args(argv)
    workdir = ROOT if args.in_place else args.workdir
    configfile = args.configfile.resolve()

    plan = make_plan(load_config(configfile), str(configfile), cores=args.cores)
    runs = []
    for i in range(args.repeats):
        run = one_run(workdir, configfile, args.cores, args.snakemake, args.in_place)
        runs.append(run)
        print(f"run {i + 1}/{args.repeats}: {run['wall_s']:.1f} s wall ({run['jobs']} jobs), critical path "
              f"{run['critical_path_s']:.1f} s; load average {run['load_before']} before, {run['load_after']} after",
              flush=True)
    last = runs[-1]
    print(f"\n{'rule':<28} {'jobs':>5} {'sum s':>9} {'median s':>9} {'max RSS MB':>11}   (last run)")
    for rule, r in last["rules"].items():
        print(f"{rule:<28} {r['jobs']:>5} {r['sum_s']:>9.1f} {r['median_s']:>9.2f} {r['max_rss_mb']:>11.0f}")
    print(f"critical path: {last['critical_path_s']:.1f} s: {' → '.join(last['critical_path'])}")
    walls = [r["wall_s"] for r in runs]
    median = statistics.median(walls)
    est = plan.totals()["wall_s"]
    print(f"\nmedian wall of {len(walls)} cold runs on {args.cores} cores: {median:.1f} s ({median / 60:.1f} min); "
          f"runs {[round(w, 1) for w in walls]}")
    print(f"moastack plan's estimate: {est:.1f} s ({(est - median) / median:+.0%} vs the median)")
    if args.out:
        args.out.write_text(json.dumps({"cores": args.cores, "config": str(configfile), "median_wall_s": median,
                                        "plan_estimate_s": est, "runs": runs}, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
