"""The table source's SMILES repair, its conflict policies for repeated molecules, the footer record that
``prepare`` leaves for ``moastack predict`` and the validation of new molecules (:func:`load_new_rows`)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from moastack import io
from moastack.columns import TABLES
from moastack.data.prepare import prepare
from moastack.data.smiles import read_smiles, repair_aromatic_nh
from moastack.data.table import RECORD_KEY, load_new_rows, load_table_source, table_record
from moastack.data.validate import InputError

BENZIMIDAZOLE = "c1ccc2[nH]cnc2c1"  # RDKit's canonical SMILES of 1H-benzimidazole
AMBIGUOUS = "Cc1ccc2ncnc2c1"  # [nH] at either n: 5-methyl- or 6-methylbenzimidazole, two molecules


def write(tmp_path: Path, text: str, name: str = "data.csv") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def config(path: str, **over) -> dict:
    cfg = {"path": path, "id_column": "mol_id", "smiles_column": "smiles", "label_columns": ["a", "b"],
           "duplicates": "refuse", "invalid_smiles": "refuse"}
    return cfg | over


# ------------------------------------------------------------------------------------------- repair
def test_repair_adds_the_missing_h_when_one_molecule_results():
    assert repair_aromatic_nh("c1nc2ccccc2n1") == (BENZIMIDAZOLE, 1)  # both n give the same tautomer
    assert repair_aromatic_nh("c1cc[n]c1") == (None, 0)  # [n] says "no H" explicitly: not repaired
    fixed, n = repair_aromatic_nh(AMBIGUOUS)
    assert fixed is None and n == 2
    assert repair_aromatic_nh("C1CC") == (None, 0)  # unclosed ring: a syntax error, not this defect
    assert repair_aromatic_nh("[Al](Cl)(Cl)(Cl)(Cl)Cl") == (None, 0)  # valence, not kekulisation
    assert repair_aromatic_nh("c1ccncc1") == (None, 0)  # pyridine parses as it is: nothing to repair


def test_read_smiles_marks_repaired_and_ambiguous_entries():
    read = read_smiles(["CCO", "c1nc2ccccc2n1", AMBIGUOUS, None, "C1CC", "c1nc2ccccc2n1"])
    assert read.canonical.tolist() == ["CCO", BENZIMIDAZOLE, None, None, None, BENZIMIDAZOLE]
    assert read.repaired.tolist() == [False, True, False, False, False, True]
    assert read.ambiguous.tolist() == [False, False, True, False, False, False]
    assert read.invalid.tolist() == [False, False, True, True, True, False]


def test_prepare_repairs_and_logs_the_count(tmp_path, caplog):
    path = write(tmp_path, "a,b,mol_id,smiles\n1,0,m1,CCO\n0,1,m2,c1nc2ccccc2n1\n")
    with caplog.at_level(logging.WARNING, logger="moastack.data.table"):
        out = load_table_source(config(path))
    assert out["train_features"]["smiles"].tolist() == ["CCO", BENZIMIDAZOLE]
    assert "repaired 1 SMILES whose aromatic n lacked its H" in caplog.text
    assert f"row 2 (mol_id m2) 'c1nc2ccccc2n1' -> '{BENZIMIDAZOLE}'" in caplog.text


def test_an_ambiguous_repair_is_reported_as_invalid(tmp_path, caplog):
    path = write(tmp_path, f"a,b,mol_id,smiles\n1,0,m1,CCO\n0,1,m2,{AMBIGUOUS}\n1,1,m3,C1CC\n0,0,m4,CCN\n")
    with pytest.raises(InputError, match=r"data\.csv: column 'smiles' has SMILES RDKit cannot parse in 2 rows: "
                                         r"row 2 \(mol_id m2\) 'Cc1ccc2ncnc2c1', row 3 \(mol_id m3\) 'C1CC'; of "
                                         r"these, 1 row lack.* \(ambiguous, not repaired\): row 2 \(mol_id m2\)"):
        load_table_source(config(path))
    with caplog.at_level(logging.WARNING, logger="moastack.data.table"):
        out = load_table_source(config(path, invalid_smiles="drop"))
    assert out["train_features"]["sig_id"].tolist() == ["m1", "m4"]
    assert "dropped 2 rows" in caplog.text and "ambiguous" in caplog.text


# --------------------------------------------------------------------------------- repeated molecules
# ethanol four times (OCC, C(O)C, CCO, CCO): a = 1, 0, 0, NaN; b = 1, 0, NaN, NaN; benzene agrees.
REPEATS = """a,b,mol_id,smiles
1,1,m1,OCC
0,0,m2,C(O)C
0,,m3,CCO
,,m4,CCO
1,0,m5,c1ccccc1
1,,m6,c1ccccc1
"""


@pytest.mark.parametrize(
    ("policy", "ethanol", "note"),
    [
        ("merge", [1, 1], "2 set positive (any positive wins)"),
        ("any_positive", [1, 1], "2 set positive (any positive wins)"),
        ("majority", [0, np.nan], "0 set positive and 1 negative by majority, 1 ties set missing"),
        ("drop_conflicts", [np.nan, np.nan], "2 set missing (conflicts dropped)"),
    ],
)
def test_conflicting_labels_of_a_repeated_molecule_follow_the_policy(tmp_path, caplog, policy, ethanol, note):
    with caplog.at_level(logging.WARNING, logger="moastack.data.table"):
        out = load_table_source(config(write(tmp_path, REPEATS), duplicates=policy))
    assert out["train_features"]["sig_id"].tolist() == ["m1", "m5"]
    np.testing.assert_array_equal(out["train_targets_scored"][["a", "b"]].to_numpy(), [ethanol, [1, 0]])
    assert f"merged 6 rows into 2 molecules (2 label cells disagreed, resolved by duplicates: {policy}: {note})" \
        in caplog.text


def test_keep_first_counts_the_conflicts_it_ignores(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="moastack.data.table"):
        out = load_table_source(config(write(tmp_path, REPEATS), duplicates="keep_first"))
    np.testing.assert_array_equal(out["train_targets_scored"][["a", "b"]].to_numpy(), [[1, 1], [1, 0]])
    assert "6 rows repeat 2 molecules; kept the first row of each (2 label cells disagreed" in caplog.text


def test_missing_labels_lists_the_words_for_not_measured(tmp_path):
    path = write(tmp_path, "a,b,mol_id,smiles\n1,NA,m1,CCO\nNA,0,m2,CCN\n")
    with pytest.raises(InputError, match=r"label column 'a' has values other than 0, 1 and empty in 1 row: "
                                         r"row 2 \(mol_id m2\) 'NA'"):
        load_table_source(config(path))
    out = load_table_source(config(path, missing_labels=["NA"]))
    np.testing.assert_array_equal(out["train_targets_scored"][["a", "b"]].to_numpy(), [[1, np.nan], [np.nan, 0]])
    bad = write(tmp_path, "a,b,mol_id,smiles\n1,x,m1,CCO\n", "bad.csv")
    with pytest.raises(InputError, match=r"values other than 0, 1, 'NA' and empty in 1 row: row 1 \(mol_id m1\) 'x'"):
        load_table_source(config(bad, missing_labels=["NA"]))


# ------------------------------------------------------------------------------ the record and new rows
def test_prepare_records_the_columns_in_the_train_features_footer(tmp_path):
    path = write(tmp_path, "a,b,mol_id,smiles,w\n1,0,m1,CCO,1\n0,1,m2,CCN,2\n")
    table = config(path, feature_columns=["w"])
    outputs = {t: str(tmp_path / "out" / f"{t}.parquet") for t in TABLES}
    prepare({"source": "table", "table": table}, outputs)
    record = json.loads(io.parquet_metadata(outputs["train_features"])[RECORD_KEY])
    assert record == table_record(table) == {"id_column": "mol_id", "smiles_column": "smiles",
                                             "feature_columns": ["w"], "label_columns": ["a", "b"]}
    assert io.read_parquet(outputs["train_features"])["smiles"].tolist() == ["CCO", "CCN"]  # data unchanged
    assert RECORD_KEY not in io.parquet_metadata(outputs["train_targets_scored"])


RECORD = {"id_column": "mol_id", "smiles_column": "smiles", "feature_columns": [], "label_columns": ["a", "b"]}


def test_new_rows_are_read_like_a_test_file_from_csv_or_parquet(tmp_path, caplog):
    path = write(tmp_path, "smiles,mol_id,extra\nOCC,n1,x\nc1nc2ccccc2n1,n2,y\n", "new.csv")
    with caplog.at_level(logging.WARNING, logger="moastack.data.table"):
        rows = load_new_rows(path, RECORD)
    assert list(rows.columns) == ["sig_id", "smiles"]
    assert rows["sig_id"].tolist() == ["n1", "n2"] and rows["smiles"].tolist() == ["CCO", BENZIMIDAZOLE]
    assert "repaired 1 SMILES" in caplog.text
    parquet = tmp_path / "new.parquet"
    pd.DataFrame({"mol_id": [7, 8], "smiles": ["OCC", "CCN"]}).to_parquet(parquet)
    rows = load_new_rows(str(parquet), RECORD)
    assert rows["sig_id"].tolist() == ["7", "8"] and rows["smiles"].tolist() == ["CCO", "CCN"]


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("", r"new\.csv: file is empty"),
        ("mol_id,smiles\n", r"new\.csv: no rows"),
        ("id,smiles\nx,CCO\n", r"new\.csv: missing columns: 'mol_id'; the file has: 'id', 'smiles'"),
        ("mol_id\nx\n", r"new\.csv: missing columns: 'smiles'"),
        ("mol_id,smiles\nx,CCO\ny,CCN\nx,CCC\n", r"new\.csv: column 'mol_id' has duplicate values in 2 rows: "
                                                r"row 1 'x', row 3 'x'"),
        ("mol_id,smiles\nx,CCO\ny,C1CC\n", r"new\.csv: column 'smiles' has SMILES RDKit cannot parse in 1 row: "
                                           r"row 2 \(mol_id y\) 'C1CC' \(--skip\)"),
    ],
    ids=["empty-file", "header-only", "no-id-column", "no-smiles-column", "duplicate-ids", "unparsable"],
)
def test_bad_new_rows_are_refused_with_file_column_and_rows(tmp_path, text, pattern):
    with pytest.raises(InputError, match=pattern):
        load_new_rows(write(tmp_path, text, "new.csv"), RECORD, drop_hint="--skip")


def test_new_rows_drop_unparsable_smiles_with_a_count(tmp_path, caplog):
    path = write(tmp_path, f"mol_id,smiles\nx,CCO\ny,C1CC\nz,{AMBIGUOUS}\n", "new.csv")
    with caplog.at_level(logging.WARNING, logger="moastack.data.table"):
        rows = load_new_rows(path, RECORD, invalid_smiles="drop")
    assert rows["sig_id"].tolist() == ["x"]
    assert "new.csv: dropped 2 rows whose SMILES RDKit cannot parse" in caplog.text
    with pytest.raises(InputError, match=r"new\.csv: no rows left after dropping"):
        load_new_rows(write(tmp_path, "mol_id,smiles\ny,C1CC\n", "new.csv"), RECORD, invalid_smiles="drop")
