"""Validation of the raw tables and the prepare step: every failure names its file, column and rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from moastack import columns as C
from moastack.data.prepare import load_source, prepare
from moastack.data.synthetic import SyntheticSpec, generate, write_raw_csvs
from moastack.data.validate import InputError, read_raw_dir, validate_features, validate_tables
from moastack.io import read_parquet

SMALL = {"n_train": 300, "n_test": 100, "seed": 3}


@pytest.fixture(scope="module")
def pristine() -> dict[str, pd.DataFrame]:
    return generate(SyntheticSpec(**SMALL))


@pytest.fixture
def raw(pristine) -> dict[str, pd.DataFrame]:
    """A fresh, editable copy of valid raw tables."""
    return {name: df.copy() for name, df in pristine.items()}


def _error(frames, files=None) -> str:
    with pytest.raises(InputError) as info:
        validate_tables(frames, files)
    return str(info.value)


def _assert_names(message: str, *fragments: str) -> None:
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def _set(df: pd.DataFrame, row: int, col: str, value) -> pd.DataFrame:
    """Put ``value`` (maybe of another type) at a position, as a CSV reader would have typed it."""
    values = df[col].astype(object).to_numpy(copy=True)
    values[row] = value
    return df.assign(**{col: values})


def _sid(frames, table: str, row: int) -> str:
    return frames[table][C.ID_COL].iat[row]


def _outputs(tmp_path) -> dict[str, str]:
    return {name: str(tmp_path / "data" / f"{name}.parquet") for name in C.TABLES}


# ------------------------------------------------------------------------------------- valid input
def test_round_trip_through_csv(pristine, tmp_path):
    write_raw_csvs(pristine, tmp_path)
    out = validate_tables(read_raw_dir(tmp_path))
    assert tuple(out) == C.TABLES
    feats = out["train_features"]
    assert list(feats.columns) == C.FEATURE_COLS
    assert pd.api.types.is_string_dtype(feats[C.ID_COL]) and pd.api.types.is_string_dtype(feats["cp_dose"])
    assert feats["cp_time"].dtype == np.int64
    assert (feats[C.GENE_COLS + C.CELL_COLS].dtypes == np.float32).all()
    np.testing.assert_allclose(
        feats[C.GENE_COLS].to_numpy(), pristine["train_features"][C.GENE_COLS], atol=1e-5
    )
    for name in ("train_targets_scored", "train_targets_nonscored"):
        assert (out[name].dtypes.iloc[1:] == np.int8).all()
        assert list(out[name].columns) == list(pristine[name].columns)
        assert (out[name].iloc[:, 1:].to_numpy() == pristine[name].iloc[:, 1:].to_numpy()).all()
    assert out["train_drug"][C.DRUG_COL].tolist() == pristine["train_drug"][C.DRUG_COL].tolist()


def test_hex_like_drug_ids_stay_strings(pristine, tmp_path):
    frames = dict(pristine)
    frames["train_drug"] = _set(pristine["train_drug"], 0, C.DRUG_COL, "123e45678")
    write_raw_csvs(frames, tmp_path)
    out = validate_tables(read_raw_dir(tmp_path))
    assert out["train_drug"][C.DRUG_COL].iat[0] == "123e45678"


def test_feature_columns_reordered_and_tables_aligned_to_train(raw):
    cols = list(raw["train_features"].columns)
    raw["train_features"] = raw["train_features"][cols[::-1]]
    raw["train_targets_scored"] = raw["train_targets_scored"].iloc[::-1].reset_index(drop=True)
    raw["train_drug"] = raw["train_drug"].sample(frac=1.0, random_state=0).reset_index(drop=True)
    scored_cols = list(raw["train_targets_nonscored"].columns)
    raw["train_targets_nonscored"] = raw["train_targets_nonscored"][[scored_cols[0], *scored_cols[1:][::-1]]]
    out = validate_tables(raw)
    assert list(out["train_features"].columns) == C.FEATURE_COLS
    ids = out["train_features"][C.ID_COL]
    for name in ("train_targets_scored", "train_targets_nonscored", "train_drug"):
        assert out[name][C.ID_COL].equals(ids)
    assert list(out["train_targets_nonscored"].columns) == list(raw["train_targets_nonscored"].columns)
    expected = raw["train_targets_scored"].set_index(C.ID_COL).loc[ids.to_numpy()]
    assert (out["train_targets_scored"].iloc[:, 1:].to_numpy() == expected.to_numpy()).all()


def test_validate_features_alone(pristine):
    df = pristine["test_features"]
    out = validate_features(df[C.FEATURE_COLS[::-1]], "new.csv")
    assert list(out.columns) == C.FEATURE_COLS
    assert out[C.ID_COL].tolist() == df[C.ID_COL].tolist()
    with pytest.raises(InputError, match="new.csv: column 'cp_dose'"):
        validate_features(_set(df, 2, "cp_dose", "D3"), "new.csv")


# --------------------------------------------------------------------------------------- file level
def test_missing_file_names_the_path(pristine, tmp_path):
    write_raw_csvs(pristine, tmp_path)
    (tmp_path / "train_drug.csv").unlink()
    with pytest.raises(InputError, match="train_drug.csv: file not found"):
        read_raw_dir(tmp_path)
    with pytest.raises(InputError, match="input directory not found"):
        read_raw_dir(tmp_path / "nowhere")


def test_empty_file_names_the_path(pristine, tmp_path):
    write_raw_csvs(pristine, tmp_path)
    (tmp_path / "test_features.csv").write_text("")
    with pytest.raises(InputError, match="test_features.csv: file is empty"):
        read_raw_dir(tmp_path)


def test_header_only_file_has_no_rows(pristine, tmp_path):
    write_raw_csvs(pristine, tmp_path)
    header = (tmp_path / "train_targets_nonscored.csv").read_text().splitlines()[0]
    (tmp_path / "train_targets_nonscored.csv").write_text(header + "\n")
    frames = read_raw_dir(tmp_path)
    msg = _error(frames, {n: str(tmp_path / f"{n}.csv") for n in C.TABLES})
    _assert_names(msg, str(tmp_path / "train_targets_nonscored.csv"), "no rows")


# ------------------------------------------------------------------------------------------ columns
def test_missing_feature_column(raw):
    raw["train_features"] = raw["train_features"].drop(columns=["g-5"])
    _assert_names(_error(raw), "train_features.csv", "missing columns", "'g-5'")


def test_unknown_feature_column(raw):
    raw["test_features"] = raw["test_features"].assign(extra=1.0)
    raw["train_features"] = raw["train_features"].assign(extra=1.0)
    _assert_names(_error(raw), "train_features.csv", "unknown columns", "'extra'")


def test_train_test_feature_mismatch(raw):
    test = raw["test_features"].drop(columns=["c-3"])
    raw["test_features"] = pd.concat([test, pd.Series(0.0, index=test.index, name="c-99x")], axis=1)
    _assert_names(_error(raw), "test_features.csv", "differ from train_features.csv", "'c-3'", "'c-99x'")


def test_custom_file_names_in_messages(raw):
    raw["test_features"] = raw["test_features"].drop(columns=["g-0"])
    msg = _error(raw, {"test_features": "/data/new_test.csv"})
    _assert_names(msg, "/data/new_test.csv", "'g-0'")


def test_target_table_needs_sig_id_first(raw):
    df = raw["train_targets_scored"]
    raw["train_targets_scored"] = df[[*df.columns[1:], C.ID_COL]]
    _assert_names(_error(raw), "train_targets_scored.csv", f"first column must be '{C.ID_COL}'")


def test_target_table_needs_a_target(raw):
    raw["train_targets_nonscored"] = raw["train_targets_nonscored"][[C.ID_COL]]
    _assert_names(_error(raw), "train_targets_nonscored.csv", "no target columns")


def test_drug_table_columns(raw):
    raw["train_drug"] = raw["train_drug"].rename(columns={C.DRUG_COL: "drug"})
    _assert_names(_error(raw), "train_drug.csv", "missing columns", f"'{C.DRUG_COL}'")


# ------------------------------------------------------------------------------------------- values
def test_non_numeric_feature(raw):
    raw["train_features"] = _set(raw["train_features"], 2, "g-12", "abc")
    msg = _error(raw)
    _assert_names(msg, "train_features.csv", "column 'g-12'", "non-numeric", "row 3",
                  _sid(raw, "train_features", 2), "'abc'")  # fmt: skip


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf, 1e300])
def test_nan_and_inf_features(raw, value):
    df = _set(raw["test_features"], 4, "c-7", value)
    raw["test_features"] = df.assign(**{"c-7": df["c-7"].astype(float)})
    msg = _error(raw)
    _assert_names(msg, "test_features.csv", "column 'c-7'", "row 5", _sid(raw, "test_features", 4))


@pytest.mark.parametrize(("column", "value"), [("cp_type", "trt_xx"), ("cp_time", 36), ("cp_dose", "D3")])
def test_unknown_meta_values(raw, column, value):
    raw["train_features"] = _set(raw["train_features"], 7, column, value)
    msg = _error(raw)
    _assert_names(msg, "train_features.csv", f"column '{column}'", "unknown values", "row 8", repr(value))


@pytest.mark.parametrize("table", ["train_features", "train_targets_scored", "train_drug", "test_features"])
def test_duplicate_sig_id(raw, table):
    raw[table] = _set(raw[table], 5, C.ID_COL, raw[table][C.ID_COL].iat[1])
    msg = _error(raw)
    _assert_names(msg, f"{table}.csv", f"column '{C.ID_COL}'", "duplicate", "row 2", "row 6",
                  raw[table][C.ID_COL].iat[1])  # fmt: skip


def test_sig_id_missing_from_a_train_table(raw):
    gone = _sid(raw, "train_targets_nonscored", 10)
    raw["train_targets_nonscored"] = raw["train_targets_nonscored"].drop(index=10).reset_index(drop=True)
    _assert_names(
        _error(raw), "train_targets_nonscored.csv", "differs from train_features.csv", "missing", gone
    )


def test_sig_id_unknown_in_a_train_table(raw):
    raw["train_drug"] = _set(raw["train_drug"], 3, C.ID_COL, "id_notknown1")
    msg = _error(raw)
    _assert_names(msg, "train_drug.csv", "not in train_features.csv", "id_notknown1", "row 4")


def test_sig_ids_shared_between_train_and_test(raw):
    shared = _sid(raw, "train_features", 0)
    raw["test_features"] = _set(raw["test_features"], 9, C.ID_COL, shared)
    _assert_names(_error(raw), "test_features.csv", "also in train_features.csv", "row 10", shared)


@pytest.mark.parametrize("value", [2, 0.5, -1, np.nan, "yes"])
def test_non_binary_target(raw, value):
    col = raw["train_targets_scored"].columns[17]
    raw["train_targets_scored"] = _set(raw["train_targets_scored"], 11, col, value)
    msg = _error(raw)
    _assert_names(msg, "train_targets_scored.csv", f"target column '{col}'", "row 12",
                  _sid(raw, "train_targets_scored", 11))  # fmt: skip


def test_scored_and_nonscored_names_must_not_overlap(raw):
    scored_name = raw["train_targets_scored"].columns[1]
    ns = raw["train_targets_nonscored"]
    raw["train_targets_nonscored"] = ns.rename(columns={ns.columns[1]: scored_name})
    _assert_names(_error(raw), "train_targets_nonscored.csv", scored_name)


def test_many_offenders_are_summarised(raw):
    raw["train_features"] = raw["train_features"].assign(**{"g-1": "x"})
    msg = _error(raw)
    _assert_names(msg, "in 300 rows", "row 5", "(295 more)")
    assert "row 6 " not in msg


# ------------------------------------------------------------------------------------------ prepare
def test_prepare_synthetic_writes_typed_parquet(tmp_path):
    outputs = _outputs(tmp_path)
    result = prepare({"source": "synthetic", "synthetic": SMALL}, outputs)
    for name in C.TABLES:
        back = read_parquet(outputs[name])
        pd.testing.assert_frame_equal(back, result[name], check_dtype=False)
        assert back.shape == result[name].shape
    feats = read_parquet(outputs["train_features"])
    assert (feats[C.GENE_COLS + C.CELL_COLS].dtypes == np.float32).all()
    assert feats["cp_time"].dtype == np.int64
    assert pd.api.types.is_string_dtype(feats[C.ID_COL])
    assert (read_parquet(outputs["train_targets_scored"]).dtypes.iloc[1:] == np.int8).all()
    assert pd.api.types.is_string_dtype(read_parquet(outputs["train_drug"])[C.DRUG_COL])


def test_prepare_from_dir(pristine, tmp_path):
    write_raw_csvs(pristine, tmp_path / "raw")
    outputs = _outputs(tmp_path)
    result = prepare({"source": "dir", "dir": str(tmp_path / "raw")}, outputs)
    assert (
        read_parquet(outputs["test_features"])[C.ID_COL].tolist()
        == result["test_features"][C.ID_COL].tolist()
    )


def test_prepare_writes_nothing_when_validation_fails(pristine, tmp_path):
    bad = dict(pristine)
    bad["train_targets_scored"] = _set(pristine["train_targets_scored"], 0, "nfkb_inhibitor", 3)
    write_raw_csvs(bad, tmp_path / "raw")
    outputs = _outputs(tmp_path)
    with pytest.raises(InputError) as info:
        prepare({"source": "dir", "dir": str(tmp_path / "raw")}, outputs)
    _assert_names(str(info.value), str(tmp_path / "raw" / "train_targets_scored.csv"), "'nfkb_inhibitor'")
    assert not (tmp_path / "data").exists()


def test_load_source_rejects_bad_config(tmp_path):
    with pytest.raises(InputError, match="data.source"):
        load_source({"source": "kaggle"})
    with pytest.raises(InputError, match="n_rows"):
        load_source({"source": "synthetic", "synthetic": {"n_rows": 10}})
    with pytest.raises(InputError, match="data.dir"):
        load_source({"source": "dir"})
    frames, files = load_source({"source": "synthetic", "synthetic": {"n_train": 50, "n_test": 20}})
    assert files["train_drug"] == "synthetic:train_drug" and len(frames["train_features"]) == 50
