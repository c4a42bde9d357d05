"""The workflow on a real SLURM cluster (tests/cluster/slurm-up.sh) through profiles/slurm.

Run with `make test-cluster` (brings the cluster up and down) or, with the cluster up,
`pytest -m cluster`. The default `pytest` run deselects these tests (pyproject addopts).
Every snakemake here is the real one with `--profile profiles/slurm`; the only additions are the
test cluster's account/partition (SBATCH_ACCOUNT/SBATCH_PARTITION, read by the profile), a 1 s
first status check, kept SLURM logs, `--cores 2` (the node's CPUs: caps a grouped allocation)
and `--verbose`, which prints every sbatch call.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import ROOT, SNAKEMAKE, planned_jobs, run_snakemake, tiny_config, write_config

from moastack.config import model_jobs, resources_for, validate_schema

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

CLUSTER_DIR = ROOT / "tests" / "cluster"
PROFILE = ROOT / "profiles" / "slurm"
ACCOUNT = os.environ.get("SLURM_TEST_ACCOUNT", "testacct")
PARTITION = os.environ.get("SLURM_TEST_PARTITION", "main")
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL"}
TRAIN_OUTPUTS = ("oof.parquet", "test.parquet", "model.pt", "metrics.json")
# nn made slow enough (~5-20 s of training per fold here) to be cancelled mid-training
SLOW_EPOCHS = 400


# ---- cluster and runs -----------------------------------------------------------------------------

def _sh(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True)


def _cluster_up() -> bool:
    if not shutil.which("sinfo") or not shutil.which("sacct"):
        return False
    state = _sh("sinfo", "-h", "-o", "%T").stdout.split()
    return bool(state) and state[0] in {"idle", "mixed", "allocated"} and _sh("sacct", "-n", "-X").returncode == 0


@pytest.fixture(scope="session")
def slurm_cluster():
    """The local test cluster: already up (make test-cluster), or brought up here and down after."""
    reason = os.environ.get("MOASTACK_SLURM_UNAVAILABLE")
    if reason:
        pytest.skip(reason)
    started = False
    if not _cluster_up():
        # output to a file, not a pipe: the daemons it starts must not hold our pipe open
        with tempfile.TemporaryFile("w+") as out:
            rc = subprocess.run(["bash", str(CLUSTER_DIR / "slurm-up.sh")], stdout=out, stderr=subprocess.STDOUT).returncode
            out.seek(0)
            text = out.read()
        if rc == 2:
            pytest.skip(f"SLURM test cluster cannot be installed here: {text.strip()}")
        if rc != 0:
            pytest.fail(f"tests/cluster/slurm-up.sh failed ({rc}):\n{text}")
        started = True
    yield
    if started:
        subprocess.run(["bash", str(CLUSTER_DIR / "slurm-down.sh")], stdout=subprocess.DEVNULL)


class SlurmRun:
    """One snakemake invocation on the cluster: its workdir, exit code, output and SLURM run id;
    `planned` is what a dry run just before it planned, as planned_jobs() gives it."""

    def __init__(self, workdir: Path, returncode: int, output: str, planned: set | None = None):
        self.workdir, self.returncode, self.output, self.planned = workdir, returncode, output, planned
        m = re.search(r"SLURM run ID: ([0-9a-f-]{36})", output)
        self.uuid = m.group(1) if m else None

    def sbatch_calls(self) -> list[str]:
        return re.findall(r"^sbatch call: (.*)$", self.output, re.M)

    def submitted_ids(self) -> list[str]:
        return re.findall(r"has been submitted with SLURM jobid (\d+)", self.output)

    def jobs(self) -> list[dict]:
        """sacct's record of every allocation of this run, once all have ended."""
        assert self.uuid, "no SLURM run ID in the output"
        return sacct_jobs(self.uuid, expect=len(self.submitted_ids()))


def slurm_cmd(workdir: Path, *args: str) -> list[str]:
    return [
        SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
        "--configfile", str(workdir / "config.yaml"), "--profile", str(PROFILE),
        "--cores", "2", "--slurm-init-seconds-before-status-checks", "1", "--slurm-keep-successful-logs",
        "--verbose", *args,
    ]


def slurm_env() -> dict:
    return {**os.environ, "SBATCH_ACCOUNT": ACCOUNT, "SBATCH_PARTITION": PARTITION, "PYTHONUNBUFFERED": "1"}


def start_slurm(workdir: Path, *args: str) -> tuple[subprocess.Popen, Path]:
    log = workdir / f"snakemake-{time.time_ns()}.out"
    with open(log, "w") as out:
        proc = subprocess.Popen(slurm_cmd(workdir, *args), stdout=out, stderr=subprocess.STDOUT, env=slurm_env())
    return proc, log


def stop_slurm(proc: subprocess.Popen, log: Path) -> None:
    """Stop a snakemake that is still running: cancel its SLURM jobs (by run id), then SIGINT,
    then SIGKILL; so that a failed test leaves nothing queued for the next one."""
    if proc.poll() is not None:
        return
    m = re.search(r"SLURM run ID: ([0-9a-f-]{36})", log.read_text())
    if m:
        _sh("scancel", "--name", m.group(1))
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=90)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_slurm(workdir: Path, *args: str, check: bool = True, timeout: float = 600, plan: bool = True) -> SlurmRun:
    planned = planned_jobs(workdir) if plan else None
    proc, log = start_slurm(workdir, *args)
    try:
        proc.wait(timeout=timeout)
    finally:
        stop_slurm(proc, log)
    run = SlurmRun(workdir, proc.returncode, log.read_text(), planned)
    if check and run.returncode != 0:
        raise AssertionError(f"snakemake on SLURM failed ({run.returncode}):\n{run.output[-8000:]}")
    return run


def sacct_jobs(uuid: str, expect: int, wait: float = 30) -> list[dict]:
    """Allocations named after the run id, polled until `expect` of them are recorded as ended."""
    fields = ["JobIDRaw", "Comment", "State", "AllocCPUS", "ReqMem", "Account", "Partition",
              "Submit", "Start", "End"]
    deadline = time.monotonic() + wait
    while True:
        out = _sh("sacct", "-X", "-P", "-n", "--name", uuid, "--format", ",".join(fields)).stdout
        rows = [dict(zip(fields, line.split("|"))) for line in out.splitlines() if line.strip()]
        for r in rows:
            r["State"] = r["State"].split()[0]  # "CANCELLED by 0" -> "CANCELLED"
        if (len(rows) >= expect and all(r["State"] in TERMINAL for r in rows)) or time.monotonic() > deadline:
            return rows
        time.sleep(1)


GROUP_COMMENT = re.compile(r"rule_(train_\w+_seed\d+)_train")


def job_key(comment: str) -> tuple[str, str]:
    """(rule, wildcard values joined by _) from the plugin's --comment rule_<rule>[_wildcards_<v1_v2..>];
    a group job's comment is rule_<group id>_<its rules>: ("group", <group id>)."""
    g = GROUP_COMMENT.fullmatch(comment)
    if g:
        return "group", g.group(1)
    m = re.fullmatch(r"rule_(\w+?)(?:_wildcards_(.*))?", comment)
    assert m, f"unexpected SLURM job comment {comment!r}"
    return m.group(1), m.group(2) or ""


def plugin_keys(planned: set[tuple[str, str]]) -> list[tuple[str, str]]:
    """planned_jobs()'s ("train", "model=nn,seed=0,fold=0") as the comment has it: ("train", "nn_0_0")."""
    return sorted((rule, "_".join(kv.split("=", 1)[1] for kv in wc.split(",")) if wc else "")
                  for rule, wc in planned)


def train_wc(model: str, seed: int, fold: int) -> str:
    return f"{model}_{seed}_{fold}"


def req_mem_mb(value: str) -> int:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]?)n?c?", value)
    assert m, value
    scale = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024, "": 1}[m.group(2)]
    return round(float(m.group(1)) * scale)


def copy_run(src: Path, dst: Path) -> Path:
    """A finished workdir (outputs, mtimes, .snakemake metadata) to edit and rerun."""
    shutil.copytree(src, dst, symlinks=True, ignore=shutil.ignore_patterns("snakemake-*.out"))
    return dst


def edit_config(workdir: Path, edit) -> dict:
    cfg = yaml.safe_load((workdir / "config.yaml").read_text())
    edit(cfg)
    write_config(workdir, cfg)
    return cfg


def cluster_config() -> dict:
    """configs/smoke.yaml with per-rule and per-model resources that differ from the defaults, so
    that sacct's cpus and memory can only match if they came from the rules."""
    cfg = tiny_config()
    cfg["runtime"]["rules"] = {"collect": {"threads": 2, "mem_mb": 1500}}
    cfg["models"]["nn_drug"]["resources"] = {"mem_mb": 1800, "runtime": 12}
    return cfg


def assert_same_predictions(a: Path, b: Path, models) -> None:
    for model in models:
        for table in ("oof", "test"):
            pd.testing.assert_frame_equal(
                pd.read_parquet(a / f"results/models/{model}/{table}.parquet"),
                pd.read_parquet(b / f"results/models/{model}/{table}.parquet"),
                obj=f"{model} {table}",
            )
    for table in ("oof", "test"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(a / f"results/blend/{table}.parquet"), pd.read_parquet(b / f"results/blend/{table}.parquet")
        )
    pd.testing.assert_frame_equal(pd.read_csv(a / "results/submission.csv"), pd.read_csv(b / "results/submission.csv"))


def wait_for(predicate, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def running_job(comment: str) -> str | None:
    """SLURM id of the RUNNING job with this comment (squeue), else None."""
    out = _sh("squeue", "-h", "-t", "RUNNING", "-o", "%i|%k").stdout
    for line in out.splitlines():
        jobid, _, c = line.partition("|")
        if c.strip() == comment:
            return jobid.strip()
    return None


def job_state(jobid: str) -> str:
    """The controller's view (squeue lists ended jobs for MinJobAge); sacct lags behind it."""
    return _sh("squeue", "-h", "-t", "all", "-j", jobid, "-o", "%T").stdout.strip()


# ---- session runs: the same config locally and on the cluster -------------------------------------

@pytest.fixture(scope="session")
def config() -> dict:
    cfg = cluster_config()
    validate_schema(cfg)  # defaults filled in, as the workflow sees it
    return cfg


@pytest.fixture(scope="session")
def local_run(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("local")
    write_config(workdir, cluster_config())
    run_snakemake(workdir)
    return workdir


@pytest.fixture(scope="session")
def slurm_run(slurm_cluster, tmp_path_factory) -> SlurmRun:
    workdir = tmp_path_factory.mktemp("slurm")
    write_config(workdir, cluster_config())
    t0 = time.monotonic()
    run = run_slurm(workdir)
    print(f"smoke DAG on SLURM: {time.monotonic() - t0:.0f} s, {len(run.submitted_ids())} jobs")
    return run


# ---- tests ---------------------------------------------------------------------------------------

def test_profile_plans_the_demo_dry_run(tmp_path):
    """`snakemake -n --profile profiles/slurm` plans the default config.yaml's DAG (no cluster needed)."""
    proc = subprocess.run(
        [SNAKEMAKE, "-n", "--profile", str(PROFILE), "--snakefile", str(ROOT / "Snakefile"),
         "--configfile", str(ROOT / "config.yaml"), "--directory", str(tmp_path)],
        capture_output=True, text=True, env=slurm_env(),
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = proc.stdout + proc.stderr
    assert "This was a dry-run" in out
    assert re.search(r"^train\s+\d+", out, re.M)


def test_smoke_on_slurm_equals_local_run(slurm_run, local_run, config):
    assert (slurm_run.workdir / "results/submission.csv").exists()
    assert_same_predictions(slurm_run.workdir, local_run, config["models"])


def test_every_job_ran_as_slurm_job_with_requested_resources(slurm_run, config):
    rows = slurm_run.jobs()
    # what Snakemake submitted is what sacct recorded, all done, under the test account/partition
    assert len(rows) == len(slurm_run.submitted_ids()) == len(slurm_run.sbatch_calls())
    assert sorted(r["JobIDRaw"] for r in rows) == sorted(slurm_run.submitted_ids())
    assert {r["State"] for r in rows} == {"COMPLETED"}, rows
    assert {r["Account"] for r in rows} == {ACCOUNT}
    assert {r["Partition"] for r in rows} == {PARTITION}

    # one allocation for each job of the plan, named by rule and wildcards
    assert sorted(job_key(r["Comment"]) for r in rows) == plugin_keys(slurm_run.planned)
    models = config["models"]
    trains = {job_key(r["Comment"])[1] for r in rows if job_key(r["Comment"])[0] == "train"}
    assert trains == {train_wc(m, s, f) for m in models for s, f in model_jobs(config, m)}
    assert {"prepare", "folds", "features", "collect", "blend", "submission"} <= {
        job_key(r["Comment"])[0] for r in rows}

    for r in rows:
        rule, wc = job_key(r["Comment"])
        want = resources_for(config, rule, wc.rsplit("_", 2)[0] if rule == "train" else None)
        assert int(r["AllocCPUS"]) == want["threads"], (r, want)
        assert req_mem_mb(r["ReqMem"]) == want["mem_mb"], (r, want)
    # the non-default resources really reached SLURM
    assert any(job_key(r["Comment"])[0] == "collect" and int(r["AllocCPUS"]) == 2 for r in rows)
    assert any(job_key(r["Comment"])[1].startswith("nn_drug_") and req_mem_mb(r["ReqMem"]) == 1800 for r in rows)
    # and the CPU models asked for no GPU
    assert not [c for c in slurm_run.sbatch_calls() if "--gpus" in c or "--gres" in c]


def test_grouped_mode_one_allocation_per_model_seed(slurm_run, local_run, config, tmp_path):
    # the finished ungrouped run without its models: data, folds and features are reused, every
    # train job and what depends on it runs again, now grouped (a runtime edit reruns nothing)
    work = copy_run(slurm_run.workdir, tmp_path / "grouped")
    shutil.rmtree(work / "results/models")
    edit_config(work, lambda cfg: cfg["runtime"].update(group_train=True))
    run = run_slurm(work)
    rows = run.jobs()
    assert {r["State"] for r in rows} == {"COMPLETED"}, rows

    groups = sorted(f"train_{m}_seed{s}" for m in config["models"] for s in config["models"][m]["seeds"])
    keys = [job_key(r["Comment"]) for r in rows]
    # one allocation per model × seed, no train job outside a group, every other job on its own
    assert sorted(g for kind, g in keys if kind == "group") == groups
    assert sorted(k for k in keys if k[0] != "group") == [k for k in plugin_keys(run.planned) if k[0] != "train"]
    # the folds of a group ran inside its allocation: 3 one-thread jobs capped at --cores 2
    for r, (kind, group) in zip(rows, keys):
        if kind != "group":
            continue
        assert int(r["AllocCPUS"]) == 2
        logs = list((work / ".snakemake/slurm_logs").glob(f"group_{group}_*/**/{r['JobIDRaw']}.log"))
        assert logs, f"no SLURM log for {group}"
        text = logs[0].read_text()
        model = group.removeprefix("train_").rsplit("_seed", 1)[0]
        for _, fold in model_jobs(config, model):
            assert re.search(rf"model={model}, seed=\d+, fold={fold}\b", text), (
                f"fold {fold} of {group} did not run in allocation {r['JobIDRaw']}:\n{text[-3000:]}"
            )
    assert_same_predictions(work, local_run, config["models"])


def test_gpu_model_asks_sbatch_for_a_gpu_cpu_models_do_not(slurm_run, tmp_path):
    work = copy_run(slurm_run.workdir, tmp_path / "gpu")

    def edit(cfg):
        cfg["models"]["nn"]["device"] = "cuda"
        cfg["models"]["prior"]["device"] = "cpu"  # a params change: its train jobs rerun too

    edit_config(work, edit)
    # the plan: the GPU model's train jobs carry gpu=1, the others gpu=0
    dry = run_snakemake(work, "--dry-run").stdout
    blocks = re.split(r"\n(?=rule \w+:)", dry)
    gpu_of = {re.search(r"wildcards: (.*)", b).group(1): re.search(r"gpu=(\d+)", b).group(1)
              for b in blocks if b.startswith("rule train:")}
    assert gpu_of and all((v == "1") == ("model=nn," in k) for k, v in gpu_of.items()), gpu_of

    # a real submission of one job of each; the test cluster has no GPU, so sbatch refuses the
    # GPU job at once ("Invalid generic resource") and runs the CPU one
    targets = [f"results/models/{m}/seed0/fold0/metrics.json" for m in ("nn", "prior")]
    run = run_slurm(work, *targets, "--retries", "0", check=False, plan=False)
    calls = run.sbatch_calls()
    gpu_calls = [c for c in calls if "--comment rule_train_wildcards_nn_0_0 " in c]
    cpu_calls = [c for c in calls if "--comment rule_train_wildcards_prior_0_0 " in c]
    assert gpu_calls and cpu_calls, calls
    assert all(" --gpus=1" in c for c in gpu_calls), gpu_calls
    assert not any("--gpus" in c or "--gres" in c for c in cpu_calls), cpu_calls
    assert "Invalid generic resource" in run.output  # SLURM itself read it as a GPU request
    assert run.returncode != 0
    assert not (work / targets[0]).exists()
    assert (work / targets[1]).exists()

    # a GPU type for one model only, as the README shows it: --gpus=<type>:1 for that model's jobs
    expr = "train:gpu_model='a100' if wildcards.model == 'nn' else ''"
    run = run_slurm(work, targets[0], "--retries", "0", "--set-resources", expr, check=False, plan=False)
    typed = [c for c in run.sbatch_calls() if "--comment rule_train_wildcards_nn_0_0 " in c]
    assert typed and all(" --gpus=a100:1" in c for c in typed), typed


def _slow_nn(work: Path) -> None:
    """Edit nn's epochs (its train jobs and what depends on them rerun) and drop its old logs."""
    edit_config(work, lambda cfg: cfg["models"]["nn"]["params"].update(epochs=SLOW_EPOCHS, patience=SLOW_EPOCHS))
    for log in (work / "results/logs/models/nn").rglob("fold*.log"):
        log.unlink()


def _cancel_mid_training(work: Path, fold: int = 0) -> str:
    """Wait until nn's fold `fold` job runs and has logged an epoch, then scancel it; its SLURM id."""
    comment = f"rule_train_wildcards_{train_wc('nn', 0, fold)}"
    jobid = wait_for(lambda: running_job(comment), 240, f"{comment} to run")
    log = work / f"results/logs/models/nn/seed0/fold{fold}.log"
    wait_for(lambda: log.exists() and re.search(r"epoch \d+/", log.read_text()), 120, "training to start")
    assert job_state(jobid) == "RUNNING", f"job {jobid} ended before it could be cancelled: raise SLOW_EPOCHS"
    assert _sh("scancel", jobid).returncode == 0
    wait_for(lambda: job_state(jobid) == "CANCELLED", 60, f"job {jobid} to be cancelled")
    return jobid


def _assert_no_complete_output(work: Path, fold: int = 0) -> None:
    fold_dir = work / f"results/models/nn/seed0/fold{fold}"
    left = sorted(p.name for p in fold_dir.iterdir()) if fold_dir.exists() else []
    assert not set(left) & set(TRAIN_OUTPUTS), f"the cancelled job left outputs that look complete: {left}"


def test_config_edit_reruns_that_model_only_and_scancelled_job_is_retried(slurm_run, tmp_path):
    """An edit to one model reruns only its jobs and what depends on them; one of them is
    cancelled mid-training with scancel, and the profile's `retries: 1` resubmits it."""
    work = copy_run(slurm_run.workdir, tmp_path / "retry")
    _slow_nn(work)
    planned = plugin_keys(planned_jobs(work))
    assert [k for k in planned if k[0] == "train"] == [("train", train_wc("nn", 0, f)) for f in range(3)]
    assert [k for k in planned if k[0] == "collect"] == [("collect", "nn")]
    assert {("blend", ""), ("submission", "")} <= set(planned)
    assert not {"prepare", "folds", "features"} & {rule for rule, _ in planned}

    proc, log = start_slurm(work)
    try:
        killed = _cancel_mid_training(work)
        _assert_no_complete_output(work)  # the retry takes seconds to finish: nothing of fold 0 looks done
        proc.wait(timeout=400)
    finally:
        stop_slurm(proc, log)
    run = SlurmRun(work, proc.returncode, log.read_text())
    assert run.returncode == 0, run.output[-6000:]
    assert "Trying to restart job" in run.output
    rows = run.jobs()
    # exactly the planned jobs, plus the second attempt of the cancelled one
    assert sorted(job_key(r["Comment"]) for r in rows) == sorted([*planned, ("train", "nn_0_0")])
    fold0 = [(r["JobIDRaw"], r["State"]) for r in rows if r["Comment"] == "rule_train_wildcards_nn_0_0"]
    assert fold0[0] == (killed, "CANCELLED") and fold0[1][1] == "COMPLETED", fold0
    assert {r["State"] for r in rows if r["JobIDRaw"] != killed} == {"COMPLETED"}
    fold0_dir = work / "results/models/nn/seed0/fold0"
    assert json.loads((fold0_dir / "metrics.json").read_text())["fold"] == 0
    assert len(pd.read_parquet(fold0_dir / "oof.parquet")) > 0


def test_scancel_then_second_invocation_runs_only_missing_jobs(slurm_run, tmp_path):
    work = copy_run(slurm_run.workdir, tmp_path / "resume")
    _slow_nn(work)
    proc, log = start_slurm(work, "--retries", "0")
    try:
        _cancel_mid_training(work)
        proc.wait(timeout=400)
    finally:
        stop_slurm(proc, log)
    first = SlurmRun(work, proc.returncode, log.read_text())
    # the cancelled job failed the run, after the other folds had finished (keep-going)
    assert first.returncode != 0
    assert "SLURM status is: 'CANCELLED'" in first.output
    _assert_no_complete_output(work)
    for fold in (1, 2):
        assert (work / f"results/models/nn/seed0/fold{fold}/metrics.json").exists()

    # the second invocation plans and submits only what is missing: fold 0 and what depends on it
    second = run_slurm(work)
    planned = plugin_keys(second.planned)
    assert [k for k in planned if k[0] == "train"] == [("train", "nn_0_0")]
    assert {("collect", "nn"), ("blend", ""), ("submission", "")} <= set(planned)
    assert not {"prepare", "folds", "features"} & {rule for rule, _ in planned}
    assert ("collect", "prior") not in planned and ("collect", "nn_drug") not in planned
    assert sorted(job_key(r["Comment"]) for r in second.jobs()) == planned
    assert {r["State"] for r in second.jobs()} == {"COMPLETED"}
