"""The Tox21 challenge preset: repeated samples merged by molecule under an explicit conflict policy,
counted in the prepare log; scaffold CV for model selection; the blend's test predictions as the
deliverable. Runs configs/tox21-challenge-smoke.yaml on files built from tox21.csv (conftest:
tox21_challenge_files, which says what was injected); the full preset is planned with a dry run."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import (
    BROKEN_ROW,
    REPAIRED_ROW,
    ROOT,
    TOX21_ASSAYS,
    planned_jobs,
    write_config,
)

from moastack.config import load_config

pytestmark = pytest.mark.slow


def _expected_merge(train: pd.DataFrame) -> dict:
    """What the majority policy must give, counted here from the raw file (its repeated compounds share
    one SMILES string, and tox21.csv's first rows repeat no molecule)."""
    groups = train.groupby("smiles", sort=False)
    sizes = groups.size()
    pos, neg = groups[TOX21_ASSAYS].agg(lambda s: (s == 1).sum()), groups[TOX21_ASSAYS].agg(lambda s: (s == 0).sum())
    conflicts = (pos > 0) & (neg > 0)
    majority = pd.DataFrame(np.where(pos > neg, 1.0, np.where(neg > pos, 0.0, np.nan)), index=pos.index,
                            columns=TOX21_ASSAYS)
    return {
        "molecules": int((sizes > 1).sum()), "rows": int(sizes[sizes > 1].sum()), "conflicts": int(conflicts.sum().sum()),
        "to_pos": int((conflicts & (pos > neg)).sum().sum()), "to_neg": int((conflicts & (neg > pos)).sum().sum()),
        "ties": int((conflicts & (pos == neg)).sum().sum()), "labels": majority,
    }


def test_repeated_samples_are_merged_by_majority_and_counted(tox21_challenge_run):
    raw = pd.read_csv(tox21_challenge_run / "challenge-train.csv", dtype={"sample_id": str}, na_values=["NA"],
                      keep_default_na=False)
    want = _expected_merge(raw)
    assert (want["molecules"], want["rows"], want["conflicts"]) == (40, 90, 20)  # as conftest injected them
    assert want["ties"] == 10 and want["to_pos"] + want["to_neg"] == 10
    log = (tox21_challenge_run / "results" / "logs" / "prepare.log").read_text()
    assert (f"merged {want['rows']} rows into {want['molecules']} molecules ({want['conflicts']} label cells "
            f"disagreed, resolved by duplicates: majority: {want['to_pos']} set positive and {want['to_neg']} "
            f"negative by majority, {want['ties']} ties set missing)") in log

    data = tox21_challenge_run / "results" / "data"
    features = pd.read_parquet(data / "train_features.parquet")
    targets = pd.read_parquet(data / "train_targets_scored.parquet")
    assert len(features) == raw["smiles"].nunique() == 300
    assert features["sig_id"].str.endswith("-01").all()  # the first sample of each compound keeps its id
    first_samples = raw["smiles"].iloc[:300]  # the merged rows, in the order of their first sample
    np.testing.assert_array_equal(targets[TOX21_ASSAYS].to_numpy(), want["labels"].loc[first_samples].to_numpy())


def test_the_score_file_is_repaired_and_dropped_as_counted(tox21_challenge_run):
    log = (tox21_challenge_run / "results" / "logs" / "prepare.log").read_text()
    assert "challenge-score.csv: column 'smiles': repaired 1 SMILES" in log
    assert f"challenge-score.csv: dropped 1 rows whose SMILES RDKit cannot parse: row 42 (sample_id {BROKEN_ROW[0]})" \
        in log
    test = pd.read_parquet(tox21_challenge_run / "results" / "data" / "test_features.parquet")
    assert len(test) == 41 and REPAIRED_ROW[0] in set(test["sig_id"]) and BROKEN_ROW[0] not in set(test["sig_id"])
    assert test.set_index("sig_id").at[REPAIRED_ROW[0], "smiles"] == "c1ccc2[nH]cnc2c1"


def test_models_and_blend_use_scaffold_cv_and_deliver_the_test_predictions(tox21_challenge_run):
    results = tox21_challenge_run / "results"
    blend = json.loads((results / "blend" / "score.json").read_text())
    assert blend["metric"] == "mean_roc_auc" and blend["folds_scheme"] == "scaffold3"
    prior = json.loads((results / "models" / "prior" / "score.json").read_text())
    for model in ("rf", "nn"):
        score = json.loads((results / "models" / model / "score.json").read_text())
        assert score["folds_scheme"] == "scaffold3" and score["value"] > prior["value"]
    sub = pd.read_csv(results / "submission.csv")
    test = pd.read_parquet(results / "data" / "test_features.parquet")
    assert list(sub.columns) == ["sig_id", *TOX21_ASSAYS] and sub["sig_id"].tolist() == test["sig_id"].tolist()
    assert sub[TOX21_ASSAYS].notna().all().all() and ((sub[TOX21_ASSAYS] >= 0) & (sub[TOX21_ASSAYS] <= 1)).all().all()


def test_the_full_preset_validates_and_plans(tmp_path):
    path = ROOT / "configs" / "tox21-challenge.yaml"
    config = load_config(path)
    assert config["data"]["table"]["duplicates"] == "majority"
    assert {m["folds"] for m in config["models"].values()} == {config["blend"]["folds"]} == {"scaffold5"}
    write_config(tmp_path, yaml.safe_load(path.read_text()))
    planned = planned_jobs(tmp_path)
    trains = [wc for rule, wc in planned if rule == "train"]
    assert len(trains) == 5 + 5 + 25 + 5 + 5  # prior, rf, xgb, chemprop: 5 folds; nn: 5 seeds x 5 folds
    assert set(config["blend"]["members"]) == {"rf", "nn", "xgb", "chemprop"}
    assert {rule for rule, _ in planned} >= {"prepare", "folds", "features", "train", "collect", "blend", "submission"}
