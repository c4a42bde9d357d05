"""configs/zoo.yaml: every multilabel arch on one fold scheme, in one blend; its smoke size end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from conftest import ROOT, run_snakemake, write_config

from moastack.archs import ARCHS, archs_for


def _config(name: str) -> dict:
    return yaml.safe_load((ROOT / "configs" / name).read_text())


def test_the_zoo_holds_every_multilabel_arch_of_profiles():
    """Every multilabel arch that reads feature rows; those that read molecules (chemprop) need SMILES, which
    lish-moa profiles do not have (they are in the Tox21 presets)."""
    profile_archs = {a for a in archs_for("multilabel") if not ARCHS[a].molecules}
    for name in ("zoo.yaml", "zoo-smoke.yaml"):
        config = _config(name)
        assert {m["arch"] for m in config["models"].values()} == profile_archs, name
        assert {m["folds"] for m in config["models"].values()} == {config["blend"]["folds"]}


@pytest.mark.slow
def test_the_zoo_smoke_runs_every_arch_into_one_blend(tmp_path):
    write_config(tmp_path, _config("zoo-smoke.yaml"))
    run_snakemake(tmp_path)
    results = tmp_path / "results"
    weights = json.loads((results / "blend" / "weights.json").read_text())
    assert set(weights["members"]) == set(_config("zoo-smoke.yaml")["models"])
    prior = json.loads((results / "models" / "prior" / "score.json").read_text())["value"]
    scores = {m: json.loads((results / "models" / m / "score.json").read_text())["value"] for m in weights["members"]}
    assert all(np.isfinite(v) for v in scores.values()), scores
    blend = json.loads((results / "blend" / "score.json").read_text())["value"]
    assert blend <= min(scores.values()) * (1 + 1e-4) and blend < prior, (blend, scores)
