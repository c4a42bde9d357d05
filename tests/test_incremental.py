"""Exact incremental reruns: a config edit plans only the jobs that depend on it."""

from __future__ import annotations

import shutil

import pytest
from conftest import planned_jobs, tiny_config, write_config

pytestmark = pytest.mark.slow


def _jobs(rule, model=None, seeds=(0,), folds=(0, 1, 2)):
    if rule == "train":
        return {("train", f"model={model},seed={s},fold={f}") for s in seeds for f in folds}
    if rule == "collect":
        return {("collect", f"model={model}")}
    raise ValueError(rule)


REPORT = {("report", "")}  # reads every model's outputs and the blend's
DOWNSTREAM = {("blend", ""), ("submission", "")} | REPORT


@pytest.fixture()
def workdir(pipeline_run, tmp_path):
    target = tmp_path / "run"
    shutil.copytree(pipeline_run, target)
    return target


def _plan_after(workdir, edit):
    config = tiny_config()
    edit(config)
    write_config(workdir, config)
    return planned_jobs(workdir)


def test_no_edit_plans_nothing(workdir):
    assert _plan_after(workdir, lambda c: None) == set()


def test_editing_one_model_reruns_only_that_model_and_the_blend(workdir):
    planned = _plan_after(workdir, lambda c: c["models"]["nn"]["params"].update(epochs=5))
    assert planned == _jobs("train", "nn") | _jobs("collect", "nn") | DOWNSTREAM


def test_editing_a_model_outside_the_blend_stops_at_its_collect(workdir):
    planned = _plan_after(workdir, lambda c: c["models"]["nn_drug"]["params"].update(dropout=[0.3, 0.3]))
    assert planned == _jobs("train", "nn_drug") | _jobs("collect", "nn_drug") | REPORT


def test_editing_a_feature_set_reruns_it_and_every_model_using_it(workdir):
    planned = _plan_after(workdir, lambda c: c["features"]["small"]["steps"][1].update(n_components=6))
    expected = {("features", "fset=small")}
    for model in ("nn", "nn_drug"):
        expected |= _jobs("train", model) | _jobs("collect", model)
    assert planned == expected | DOWNSTREAM


def test_adding_a_seed_runs_only_the_new_seed(workdir):
    planned = _plan_after(workdir, lambda c: c["models"]["nn"].update(seeds=[0, 1]))
    assert planned == _jobs("train", "nn", seeds=(1,)) | _jobs("collect", "nn") | DOWNSTREAM


def test_editing_a_fold_scheme_reruns_its_models_only(workdir):
    planned = _plan_after(workdir, lambda c: c["folds"]["drug3"].update(seed=2))
    assert planned == {("folds", "scheme=drug3")} | _jobs("train", "nn_drug") | _jobs("collect", "nn_drug") | REPORT


def test_editing_the_blend_reruns_blend_submission_and_report(workdir):
    planned = _plan_after(workdir, lambda c: c["blend"].update(methods=["slsqp", "optuna_tpe"], n_trials=20))
    assert planned == DOWNSTREAM


def test_editing_resources_reruns_nothing(workdir):
    def edit(c):
        c["runtime"]["rules"] = {"train": {"threads": 2, "mem_mb": 3000}}

    assert _plan_after(workdir, edit) == set()
