"""Jobs import only what they use: the rules that fit no torch model never import torch (each job pays its
imports; torch costs seconds and hundreds of MB)."""

from __future__ import annotations

import subprocess
import sys

import pytest

#: the library modules each torch-free rule's script imports, and the job set-up every script runs first
TORCH_FREE = {
    "prepare": ["moastack.data.prepare"],
    "folds": ["moastack.folds"],
    "features": ["moastack.features.feature_set"],
    "collect": ["moastack.collect"],
    "blend": ["moastack.blend"],
    "submission": ["moastack.submission"],
    "report": ["moastack.report.build"],
    "workflow": ["moastack.config", "moastack.archs"],  # what the Snakefile imports to plan the DAG
}


@pytest.mark.parametrize("rule", sorted(TORCH_FREE))
def test_torch_free_rules_do_not_import_torch(rule):
    imports = "; ".join(f"import {m}" for m in TORCH_FREE[rule])
    code = (f"import sys; from moastack.jobs import setup_job; setup_job(None, 1); {imports}; "
            "print(sorted(m for m in ('torch', 'timm', 'pytorch_tabnet', 'umap', 'chemprop', 'lightning') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", f"rule {rule} imports {out.strip()}"


def test_the_train_rule_imports_an_arch_module_only_when_it_builds_that_arch():
    code = ("import sys; from moastack.models.registry import build_model; build_model('prior'); "
            "print(sorted(m for m in ('torch', 'timm', 'pytorch_tabnet', 'chemprop', 'lightning') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("arch", ["prior", "logistic", "mlknn"])
def test_a_train_job_of_a_torch_free_arch_never_imports_torch(arch, inputs, tmp_path):
    """The whole fold job (fold pipeline, fit, predictions, model file) of a model that does not use torch;
    its model file still loads (it is a plain pickle, read_payload tells the two formats apart)."""
    code = f"""
import sys
from moastack.jobs import setup_job
from moastack.spec import ModelSpec
from moastack.train import FoldJob, run_fold_job
from moastack.models.registry import load_model
setup_job(None, 1)
spec = ModelSpec.from_entry("m", {{"arch": "{arch}", "features": "f", "folds": "cv"}}, "multilabel")
inputs = {inputs!r}
job = FoldJob.from_inputs(spec, 0, 0, inputs, 1)
out = {{"oof": "{tmp_path}/oof.parquet", "test": "{tmp_path}/test.parquet", "model": "{tmp_path}/model.pt",
        "metrics": "{tmp_path}/metrics.json"}}
run_fold_job(job, out)
assert load_model(out["model"]).arch == "{arch}"
print(sorted(m for m in ("torch", "timm", "pytorch_tabnet", "chemprop", "lightning") if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_only_a_chemprop_job_imports_chemprop():
    """chemprop (and Lightning with it) load with the chemprop arch's module only: a job of another torch arch,
    the train and predict modules, never pay for them."""
    code = ("import sys; import moastack.train, moastack.predict; from moastack.models.registry import build_model; "
            "build_model('simple_nn'); print(sorted(m for m in ('chemprop', 'lightning') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
