"""Shared fixtures: a tiny config and a runner for real Snakemake in a temporary folder."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
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


@pytest.fixture(scope="session")
def inputs(tmp_path_factory) -> dict[str, str]:
    """The Parquet inputs of a training job (tiny synthetic lish-moa data), made by the real prepare / folds /
    features steps; the non-scored targets are ``train_targets_nonscored``."""
    from moastack import io
    from moastack.columns import TABLES
    from moastack.data.prepare import prepare
    from moastack.features.feature_set import build_feature_set
    from moastack.folds import make_folds

    d = tmp_path_factory.mktemp("tune_inputs")
    data = {t: str(d / f"{t}.parquet") for t in TABLES}
    tables = prepare({"source": "synthetic", "synthetic": {"n_train": 300, "n_test": 50, "seed": 3,
                                                           "n_scored": 12, "n_nonscored": 6}}, data)
    folds = make_folds({"method": "multilabel_stratified", "k": 3, "seed": 1},
                       tables["train_targets_scored"], tables["train_drug"])
    io.write_parquet(folds, d / "folds.parquet")
    spec = {"fit_on": "train+test", "steps": [
        {"name": "rankgauss", "blocks": ["genes", "cells"], "n_quantiles": 50},
        {"name": "pca", "block": "genes", "n_components": 8},
        {"name": "onehot"},
    ]}
    _, train, test = build_feature_set(spec, tables["train_features"], tables["test_features"])
    io.write_parquet(train, d / "ftrain.parquet")
    io.write_parquet(test, d / "ftest.parquet")
    return {
        "features_train": str(d / "ftrain.parquet"), "features_test": str(d / "ftest.parquet"),
        "folds": str(d / "folds.parquet"), "targets": data["train_targets_scored"],
        "scored_targets": data["train_targets_scored"], "train_features": data["train_features"],
        "test_features": data["test_features"], "train_targets_nonscored": data["train_targets_nonscored"],
    }


# ------------------------------------------------------------------------------- Tox21 challenge
TOX21 = ROOT.parent / "shared" / "data" / "tox21" / "tox21.csv"
TOX21_CHALLENGE_SMOKE = ROOT / "configs" / "tox21-challenge-smoke.yaml"
TOX21_ASSAYS = ["NR-AR", "NR-AR-LBD", "NR-AhR", "NR-Aromatase", "NR-ER", "NR-ER-LBD", "NR-PPAR-gamma",
                "SR-ARE", "SR-ATAD5", "SR-HSE", "SR-MMP", "SR-p53"]
#: score-file rows beside the real ones: a SMILES that needs the [nH] repair, one RDKit cannot read
REPAIRED_ROW, BROKEN_ROW = ("bzim-01", "c1nc2ccccc2n1"), ("broken-01", "C1CC")


def tox21_challenge_files(workdir: Path, n_train: int = 300, n_score: int = 40) -> dict[str, Path]:
    """The two files of the challenge preset, built from tox21.csv (the real challenge files are not on
    this machine): ``challenge-train.csv`` = the first ``n_train`` compounds as samples ``<mol_id>-01``,
    then a second sample (``-02``) of 40 of them, 20 with one labelled cell flipped (conflicts), and a
    third sample (``-03``) of 10 of those 20 agreeing with the first (a 2:1 majority); "NA" for missing
    labels. ``challenge-score.csv`` = the next ``n_score`` compounds (no labels) + REPAIRED_ROW and
    BROKEN_ROW."""
    import numpy as np
    import pandas as pd

    raw = pd.read_csv(TOX21, dtype={"mol_id": str, "smiles": str})
    first = raw.iloc[:n_train].rename(columns={"mol_id": "sample_id"})
    first = first.assign(sample_id=first["sample_id"] + "-01")
    rng = np.random.default_rng(0)
    second = first.iloc[rng.choice(n_train, 40, replace=False)].copy()
    second["sample_id"] = second["sample_id"].str.replace("-01", "-02")
    for i in range(20):
        labelled = [c for c in TOX21_ASSAYS if second[c].notna().iat[i]]
        col = labelled[int(rng.integers(len(labelled)))]
        second.iloc[i, second.columns.get_loc(col)] = 1.0 - second[col].iat[i]
    third = first.set_index("smiles").loc[second["smiles"].iloc[:10]].reset_index()[first.columns]
    third["sample_id"] = third["sample_id"].str.replace("-01", "-03")
    train = pd.concat([first, second, third], ignore_index=True)
    score = raw.iloc[n_train:n_train + n_score][["mol_id", "smiles"]].rename(columns={"mol_id": "sample_id"})
    score = pd.concat([score, pd.DataFrame([REPAIRED_ROW, BROKEN_ROW], columns=list(score.columns))],
                      ignore_index=True)
    paths = {"train": workdir / "challenge-train.csv", "score": workdir / "challenge-score.csv"}
    train.to_csv(paths["train"], index=False, na_rep="NA", float_format="%g")
    score.to_csv(paths["score"], index=False)
    return paths


@pytest.fixture(scope="session")
def tox21_challenge_run(tmp_path_factory) -> Path:
    """One run of configs/tox21-challenge-smoke.yaml on files built from tox21.csv (copy it before editing)."""
    if not TOX21.exists():
        pytest.skip(f"{TOX21} not found (the real Tox21 file lives in ../shared/data/tox21)")
    workdir = tmp_path_factory.mktemp("tox21_challenge")
    tox21_challenge_files(workdir)
    write_config(workdir, yaml.safe_load(TOX21_CHALLENGE_SMOKE.read_text()))
    run_snakemake(workdir)
    return workdir

#: pieces of the molecules of :func:`molecule_problem`: a substituent, a carbon chain, a core, a substituent
SUBSTITUENTS = ("", "Cl", "N", "O", "F", "Br", "S", "C(=O)O")
CORES = ("c1ccccc1", "C1CCCCC1", "c1ccncc1", "C1CCOC1", "CC(C)C", "c1ccsc1")


def molecule_smiles(n: int, seed: int = 0) -> list[str]:
    """``n`` small, valid molecules (a substituent, a 0-4 carbon chain, a ring or branch, a substituent)."""
    rng = np.random.default_rng(seed)
    return [f"{SUBSTITUENTS[a]}{'C' * k}{CORES[c]}{SUBSTITUENTS[b]}"
            for a, k, c, b in zip(rng.integers(0, len(SUBSTITUENTS), n), rng.integers(0, 5, n),
                                  rng.integers(0, len(CORES), n), rng.integers(0, len(SUBSTITUENTS), n))]


def molecule_labels(smiles: list[str], seed: int = 0, flip: float = 0.05) -> np.ndarray:
    """Four planted structural assays of ``smiles`` (float32, 5% of cells flipped): a chlorine, a nitrogen, an
    aromatic ring, a sulphur or bromine."""
    from rdkit import Chem

    rng = np.random.default_rng(seed + 1)
    rows = []
    for smi in smiles:
        mol = Chem.MolFromSmiles(smi)
        symbols = {a.GetSymbol() for a in mol.GetAtoms()}
        aromatic = any(a.GetIsAromatic() for a in mol.GetAtoms())
        rows.append(["Cl" in symbols, "N" in symbols, aromatic, bool(symbols & {"S", "Br"})])
    Y = np.asarray(rows, dtype=np.float32)
    flipped = rng.random(Y.shape) < flip
    return np.where(flipped, 1 - Y, Y).astype(np.float32)
