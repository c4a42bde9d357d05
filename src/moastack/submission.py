"""The Kaggle submission: sig_id + the scored targets for every test row, controls at 0."""

from __future__ import annotations

from moastack import io
from moastack.columns import ID_COL
from moastack.targets import control_rows


def write_submission(blend_test: str, test_features: str, output: str) -> None:
    preds = io.read_parquet(blend_test)
    cp = io.read_present_columns(test_features, [ID_COL, "cp_type"])
    if len(preds) != len(cp) or not (preds[ID_COL].to_numpy() == cp[ID_COL].to_numpy()).all():
        raise ValueError(f"{blend_test}: test predictions do not cover the test rows in order")
    target_cols = [c for c in preds.columns if c != ID_COL]
    preds.loc[control_rows(cp), target_cols] = 0.0
    io.write_csv(preds, output, float_format="%.8g")
