"""The table data source: one CSV of molecules with missing labels -> the five prepared tables."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from moastack.columns import TABLES
from moastack.data.table import load_table_source
from moastack.data.validate import InputError

TOX21 = Path("/work/shared/data/tox21/tox21.csv")
TOX21_LABELS = [
    "NR-AR", "NR-AR-LBD", "NR-AhR", "NR-Aromatase", "NR-ER", "NR-ER-LBD", "NR-PPAR-gamma",
    "SR-ARE", "SR-ATAD5", "SR-HSE", "SR-MMP", "SR-p53",
]

# OCC is ethanol written backwards (canonical CCO); row 4 repeats ethanol as C(O)C under another id.
GOOD = """a,b,mol_id,smiles,w
1,0,m1,OCC,0.5
,1,m2,c1ccccc1,1.5
0,,m3,CC(=O)O,-2
"""


def write(tmp_path: Path, text: str, name: str = "data.csv") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def config(path: str, **over) -> dict:
    cfg = {
        "path": path, "id_column": "mol_id", "smiles_column": "smiles", "feature_columns": ["w"],
        "label_columns": ["a", "b"], "test_path": None, "duplicates": "refuse", "invalid_smiles": "refuse",
    }
    return cfg | over


def test_tables_have_ids_canonical_smiles_float_labels_and_an_empty_test(tmp_path):
    out = load_table_source(config(write(tmp_path, GOOD)))
    assert list(out) == list(TABLES)
    train = out["train_features"]
    assert list(train.columns) == ["sig_id", "smiles", "w"]
    assert train["sig_id"].tolist() == ["m1", "m2", "m3"]
    assert train["smiles"].tolist() == ["CCO", "c1ccccc1", "CC(=O)O"]
    assert train["w"].dtype == np.float32 and train["w"].tolist() == [0.5, 1.5, -2.0]
    targets = out["train_targets_scored"]
    assert list(targets.columns) == ["sig_id", "a", "b"]
    assert (targets[["a", "b"]].dtypes == np.float32).all()
    np.testing.assert_array_equal(targets[["a", "b"]].to_numpy(), [[1, 0], [np.nan, 1], [0, np.nan]])
    assert list(out["train_targets_nonscored"].columns) == ["sig_id"]
    assert out["train_targets_nonscored"]["sig_id"].tolist() == ["m1", "m2", "m3"]
    assert out["train_drug"]["drug_id"].tolist() == ["CCO", "c1ccccc1", "CC(=O)O"]
    test = out["test_features"]
    assert len(test) == 0 and list(test.columns) == list(train.columns)
    assert (test.dtypes == train.dtypes).all()


def test_without_smiles_the_id_is_the_drug(tmp_path):
    out = load_table_source(config(write(tmp_path, GOOD), smiles_column=None, feature_columns=[]))
    assert list(out["train_features"].columns) == ["sig_id"]
    assert out["train_drug"]["drug_id"].tolist() == ["m1", "m2", "m3"]


def test_test_file_needs_no_labels_and_shares_no_ids(tmp_path):
    test_path = write(tmp_path, "mol_id,smiles,w\nt1,C(C)O,3\nt2,CCN,4\n", "test.csv")
    out = load_table_source(config(write(tmp_path, GOOD), test_path=test_path))
    test = out["test_features"]
    assert test["sig_id"].tolist() == ["t1", "t2"] and test["smiles"].tolist() == ["CCO", "CCN"]
    assert test["w"].dtype == np.float32
    clash = write(tmp_path, "mol_id,smiles,w\nm2,CCN,4\n", "clash.csv")
    with pytest.raises(InputError, match=r"clash\.csv: column 'mol_id' has ids also in .*row 1 'm2'"):
        load_table_source(config(write(tmp_path, GOOD), test_path=clash))


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        (None, r"missing\.csv: file not found"),
        ("", r"data\.csv: file is empty"),
        ("a,b,mol_id,smiles,w\n", r"data\.csv: no rows"),
        ("a,mol_id,smiles\n1,m1,C\n", r"data\.csv: missing columns: 'w', 'b'; the file has: 'a', 'mol_id', 'smiles'"),
        (
            "a,b,mol_id,smiles,w\n1,0,m1,C,1\n0,0,m2,CC,1\n1,1,m1,CCC,1\n",
            r"data\.csv: column 'mol_id' has duplicate values in 2 rows: row 1 'm1', row 3 'm1'",
        ),
        (
            "a,b,mol_id,smiles,w\n1,0,m1,C,1\n0,,m2,CC,1\n2,1,m3,CCC,1\n,yes,m4,CCCC,1\n",
            r"data\.csv: label column 'a' has values other than 0, 1 and empty in 1 row: row 3 \(mol_id m3\) 2",
        ),
        (
            "a,b,mol_id,smiles,w\n1,0,m1,C,1\n0,0,m2,CC,abc\n",
            r"data\.csv: feature column 'w' has non-numeric values in 1 row: row 2 \(mol_id m2\) 'abc'",
        ),
        (
            "a,b,mol_id,smiles,w\n1,0,m1,C,1\n0,0,m2,CC,\n",
            r"data\.csv: feature column 'w' has missing \(empty\), infinite or out-of-range values in 1 row: row 2",
        ),
        (
            "a,b,mol_id,smiles,w\n1,0,m1,C,1\n0,0,m2,C1CC,1\n1,1,m3,,1\n",
            r"data\.csv: column 'smiles' has SMILES RDKit cannot parse in 2 rows: row 2 \(mol_id m2\) 'C1CC', "
            r"row 3 \(mol_id m3\) nan",
        ),
    ],
)
def test_errors_name_file_column_and_rows(tmp_path, text, pattern):
    path = str(tmp_path / "missing.csv") if text is None else write(tmp_path, text)
    with pytest.raises(InputError, match=pattern):
        load_table_source(config(path))


def test_config_mistakes_are_refused(tmp_path):
    path = write(tmp_path, GOOD)
    with pytest.raises(InputError, match=r"data\.table: unknown settings \['paht'\]"):
        load_table_source(config(path) | {"paht": path})
    with pytest.raises(InputError, match=r"data\.table\.duplicates: expected one of"):
        load_table_source(config(path, duplicates="average"))
    with pytest.raises(InputError, match=r"more than one role or twice: 'w'"):
        load_table_source(config(path, label_columns=["a", "w"]))


def test_invalid_smiles_drop_policy_logs_the_count(tmp_path, caplog):
    path = write(tmp_path, GOOD + "1,1,m4,C1CC,0\n0,0,m5,CCCl,0\n")
    with caplog.at_level(logging.WARNING, logger="moastack.data.table"):
        out = load_table_source(config(path, invalid_smiles="drop"))
    assert out["train_features"]["sig_id"].tolist() == ["m1", "m2", "m3", "m5"]
    assert out["train_targets_scored"]["sig_id"].tolist() == ["m1", "m2", "m3", "m5"]
    assert "dropped 1 rows" in caplog.text and "row 4 (mol_id m4)" in caplog.text


DUPES = """a,b,mol_id,smiles,w
1,,m1,OCC,1
0,0,m2,c1ccccc1,2
,0,m3,C(O)C,3
0,,m4,CCO,4
"""


def test_duplicate_molecules_refused_with_the_id_groups(tmp_path):
    with pytest.raises(InputError, match=r"same molecule .* in 1 groups: 'CCO': mol_id 'm1' \(row 1\), 'm3' \(row 3\), "
                                         r"'m4' \(row 4\)"):
        load_table_source(config(write(tmp_path, DUPES)))


def test_duplicate_molecules_keep_first(tmp_path):
    out = load_table_source(config(write(tmp_path, DUPES), duplicates="keep_first"))
    assert out["train_features"]["sig_id"].tolist() == ["m1", "m2"]
    assert out["train_features"]["w"].tolist() == [1.0, 2.0]
    np.testing.assert_array_equal(out["train_targets_scored"][["a", "b"]].to_numpy(), [[1, np.nan], [0, 0]])


def test_duplicate_molecules_merge_takes_the_max_of_labelled_values(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="moastack.data.table"):
        out = load_table_source(config(write(tmp_path, DUPES), duplicates="merge"))
    assert out["train_features"]["sig_id"].tolist() == ["m1", "m2"]
    assert out["train_features"]["w"].tolist() == [1.0, 2.0]
    # ethanol: a = max(1, NaN, 0) = 1 (the rows disagree: positive wins); b = max(NaN, 0, NaN) = 0
    np.testing.assert_array_equal(out["train_targets_scored"][["a", "b"]].to_numpy(), [[1, 0], [0, 0]])
    assert out["train_drug"]["drug_id"].tolist() == ["CCO", "c1ccccc1"]
    assert "merged 3 rows into 1 molecules (1 label cells disagreed" in caplog.text


def test_merge_keeps_nan_when_every_duplicate_is_unlabelled(tmp_path):
    path = write(tmp_path, "a,b,mol_id,smiles,w\n,1,m1,CCO,1\n,0,m2,OCC,1\n")
    out = load_table_source(config(path, duplicates="merge"))
    np.testing.assert_array_equal(out["train_targets_scored"][["a", "b"]].to_numpy(), [[np.nan, 1]])


@pytest.mark.skipif(not TOX21.is_file(), reason="real Tox21 file not present")
def test_first_rows_of_the_real_tox21_file(tmp_path):
    raw = pd.read_csv(TOX21, nrows=300, dtype={"mol_id": str, "smiles": str})
    path = tmp_path / "tox21_head.csv"
    raw.to_csv(path, index=False)
    cfg = {"path": str(path), "id_column": "mol_id", "smiles_column": "smiles", "label_columns": TOX21_LABELS}
    out = load_table_source(cfg)
    assert len(out["train_features"]) == 300 and out["train_features"]["sig_id"].iat[0] == "TOX3021"
    targets = out["train_targets_scored"]
    assert targets.shape == (300, 13)
    assert int(targets[TOX21_LABELS].isna().sum().sum()) == int(raw[TOX21_LABELS].isna().sum().sum())
    assert float(targets[TOX21_LABELS].sum().sum()) == float(raw[TOX21_LABELS].sum().sum())
    assert (out["train_drug"]["drug_id"] == out["train_features"]["smiles"]).all()
    assert out["train_features"]["smiles"].iat[0] == "CCOc1ccc2nc(S(N)(=O)=O)sc2c1"
