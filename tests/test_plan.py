"""`moastack plan`: the job graph equals a real dry run's, and the size model scales as it says."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
from conftest import ROOT, SMOKE_CONFIG, planned_jobs, tiny_config, write_config

from moastack.cli import main
from moastack.config import check_config, load_config, validate_schema
from moastack.plan import (
    CALIBRATION,
    PlannedJob,
    critical_path,
    job_counts,
    make_plan,
    plan_jobs,
    simulate,
)


def _validated(config: dict) -> dict:
    config = copy.deepcopy(config)
    validate_schema(config)
    check_config(config)
    return config


def test_jobs_equal_a_dry_run_of_the_smoke_config(tmp_path):
    write_config(tmp_path, tiny_config())
    dry = planned_jobs(tmp_path)
    jobs = plan_jobs(load_config(SMOKE_CONFIG))
    assert {(j.rule, j.wildcard_text) for j in jobs} == dry
    counts = job_counts(jobs)
    assert counts["train"] == sum(1 for rule, _ in dry if rule == "train") == 9
    assert sum(counts.values()) == len(dry)


def test_winner_preset_plans_the_readme_job_counts():
    counts = job_counts(plan_jobs(load_config(ROOT / "configs" / "winner.yaml")))
    assert counts == {"prepare": 1, "folds": 3, "features": 7, "feature_map": 2, "train": 375, "collect": 11,
                      "blend": 1, "submission": 1, "report": 1}


def _train_rate_seconds(plan, model: str) -> list[float]:
    """Per train job of ``model``: estimated seconds minus the class's start-up (the size-dependent part)."""
    return [j.seconds - CALIBRATION[j.cost_class]["startup"] for j in plan.jobs
            if j.rule == "train" and j.model == model]


def test_estimates_scale_linearly_with_rows_and_epochs():
    config = _validated(tiny_config())
    base = make_plan(config, rows=1000, test_rows=100)
    rows2 = make_plan(config, rows=2000, test_rows=200)
    for a, b in zip(_train_rate_seconds(base, "nn"), _train_rate_seconds(rows2, "nn")):
        assert b == pytest.approx(2 * a, rel=1e-6)
    more_epochs = copy.deepcopy(config)
    more_epochs["models"]["nn"]["params"]["epochs"] *= 3
    epochs3 = make_plan(more_epochs, rows=1000, test_rows=100)
    for a, b in zip(_train_rate_seconds(base, "nn"), _train_rate_seconds(epochs3, "nn")):
        assert b == pytest.approx(3 * a, rel=0.02)  # the test rows' single prediction pass is not multiplied
    assert epochs3.totals()["cpu_h"] > base.totals()["cpu_h"]
    # a model's other seeds are jobs of the same size
    seeds = copy.deepcopy(config)
    seeds["models"]["nn"]["seeds"] = [0, 1]
    assert job_counts(plan_jobs(seeds))["train"] == job_counts(plan_jobs(config))["train"] + 3


def test_gpu_models_are_priced_in_gpu_hours():
    plan = make_plan(load_config(ROOT / "configs" / "winner.yaml"))
    rows = {(r["rule"], r["model"]): r for r in plan.rows()}
    cnn = rows[("train", "deepinsight_effnet")]
    assert cnn["device"] == "cuda" and cnn["gpu_h"] > 0 and cnn["cpu_h"] == 0
    assert rows[("train", "simple_nn_old")]["gpu_h"] == 0 and rows[("train", "simple_nn_old")]["cpu_h"] > 0
    assert plan.sizes.n_train == 23814 and plan.sizes.n_test == 3982 and plan.sizes.n_features == 875


def test_schedule_respects_dependencies_and_cores():
    jobs = [PlannedJob("a", threads=1, seconds=10), PlannedJob("b", threads=1, seconds=10),
            PlannedJob("c", threads=2, seconds=5, deps=["a", "b"])]
    assert simulate(jobs, cores=2, dispatch=0) == pytest.approx(15)
    assert simulate(jobs, cores=1, dispatch=0) == pytest.approx(25)
    assert critical_path(jobs) == (15, ["a", "c"])


def test_cli_prints_the_three_presets(capsys):
    files = [str(ROOT / "config.yaml"), str(ROOT / "configs" / "winner-smoke.yaml"), str(ROOT / "configs" / "winner.yaml")]
    assert main(["plan", *[arg for f in files for arg in ("--configfile", f)]]) == 0
    out = capsys.readouterr().out
    assert out.count("moastack plan:") == 3
    assert "23,814 train rows" in out and "estimated wall on 2 cores" in out
    assert "deepinsight_resnest" in out


def test_gpu_benchmark_exits_0_without_cuda(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the benchmark would measure")
    out = tmp_path / "gpu.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT,
                          env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "no CUDA device: nothing measured" in proc.stdout
    assert out.exists()


def _fake_run(tmp_path, config: dict, rate: float = 0.5, startup: float = 3.0, slow: str | None = None):
    """Benchmark TSVs as Snakemake writes them, for jobs costing startup + rate x size (single-thread units);
    the job ``slow`` waited for the CPU: twice the wall time, the same CPU time."""
    from moastack.plan import data_sizes, job_work, speedup

    sizes = data_sizes(config)
    results = tmp_path / "results"
    for job in plan_jobs(config):
        cls, work, _ = job_work(config, job, sizes)
        s = startup + rate * work / speedup(job.threads)
        cpu = 0.9 * s
        if job.key == slow:
            s *= 2
        rel = {"prepare": "prepare", "blend": "blend", "submission": "submission", "report": "report"}.get(job.rule)
        if job.rule == "train":
            rel = f"models/{job.model}/seed{job.wildcards['seed']}/fold{job.wildcards['fold']}"
        elif job.rule == "collect":
            rel = f"models/{job.wildcards['model']}/collect"
        elif job.rule in ("folds", "features"):
            rel = f"{job.rule}/{next(iter(job.wildcards.values()))}"
        path = results / "benchmarks" / f"{rel}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
                        f"{s:.4f}\t0:00:00\t900\t1\t1\t1\t0\t0\t90\t{cpu:.4f}\n")
    return results


def test_calibration_recovers_the_constants_of_a_run_and_ignores_a_disturbed_job(tmp_path):
    from moastack.plan import calibrate, measured_schedule

    config = load_config(SMOKE_CONFIG)
    slow = "train[model=nn,seed=0,fold=1]"
    results = _fake_run(tmp_path, config, slow=slow)
    fitted = calibrate([(config, results)])
    nn = fitted["train:simple_nn"]
    # the start-up comes from the cheapest job of the run (start-up + a little work), the rate through the rest
    assert nn["startup"] == pytest.approx(3.0, abs=0.05) and nn["rate"] == pytest.approx(0.5, rel=0.02)
    measured = measured_schedule(config, results)
    assert measured["jobs"] == len(plan_jobs(config))
    assert measured["rules"]["train"]["jobs"] == 9
    assert measured["critical_path"][0] == "prepare" and measured["critical_path"][-1] in ("submission", "report")


def test_a_job_that_waited_for_the_cpu_counts_at_its_class_utilisation():
    from moastack.plan import uncontended_seconds

    bench = {"a": {"s": 10.0, "cpu_time": 9.0}, "b": {"s": 20.0, "cpu_time": 9.0}, "c": {"s": 4.0, "cpu_time": 1.0}}
    idle = uncontended_seconds(bench, {"a": "train:x", "b": "train:x", "c": "collect"})
    assert idle["a"] == pytest.approx(10.0) and idle["b"] == pytest.approx(10.0)  # b: 9 s CPU at a's 0.9
    assert idle["c"] == pytest.approx(1.0 / 0.7)  # alone in its class: the undisturbed floor, 0.7


def test_measured_gpu_rates_price_the_cnns(tmp_path):
    import json

    from moastack.plan import gpu_rate_from_json

    path = tmp_path / "gpu.json"
    path.write_text(json.dumps({"cuda": True, "device": "test", "measured": {"deepinsight": [
        {"backbone": "efficientnet_b3", "amp": True, "s_per_epoch": 2.0, "rows": 400},
        {"backbone": "resnest50d", "amp": True, "s_per_epoch": 1.0, "rows": 400},
        {"backbone": "resnest50d", "amp": False, "s_per_epoch": 3.0, "rows": 400}]}}))
    rate = gpu_rate_from_json(path)
    config = load_config(ROOT / "configs" / "winner.yaml")
    plan = make_plan(config, gpu_rate=rate)
    rows = {r["model"]: r for r in plan.rows() if r["rule"] == "train"}
    epochs = {config["models"][m]["params"]["epochs"] for m in ("deepinsight_effnet", "deepinsight_resnest")}
    assert epochs == {200}  # the winners' cap (early stopping ends sooner; the plan prices every epoch)
    images = epochs.pop() * 23814 + 3982  # epochs x rows + the test rows, per fold
    assert rows["deepinsight_effnet"]["gpu_h"] == pytest.approx(10 * (30 + 2.0 / 400 * images) / 3600)
    assert rows["deepinsight_resnest"]["gpu_h"] == pytest.approx(10 * (30 + 1.0 / 400 * images) / 3600)


def test_archs_without_a_size_model_are_named_not_priced():
    from moastack.plan import load_and_plan

    plan = load_and_plan(ROOT / "configs" / "zoo.yaml")
    assert {"random_forest", "xgboost", "cnn1d_soft"} <= set(plan.uncalibrated)
    assert "simple_nn" not in plan.uncalibrated and "not priced" in plan.format()
