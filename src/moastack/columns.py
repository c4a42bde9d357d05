"""Names and allowed values of the lish-moa layout, defined once."""

from __future__ import annotations

N_GENES = 772
N_CELLS = 100
GENE_COLS = [f"g-{i}" for i in range(N_GENES)]
CELL_COLS = [f"c-{i}" for i in range(N_CELLS)]
ID_COL = "sig_id"
DRUG_COL = "drug_id"
#: canonical SMILES of a molecule row (a table source with a SMILES column; the perturbation layout)
SMILES_COL = "smiles"
META_COLS = ["cp_type", "cp_time", "cp_dose"]
FEATURE_COLS = [ID_COL, *META_COLS, *GENE_COLS, *CELL_COLS]

CONTROL = "ctl_vehicle"
TREATED = "trt_cp"
CP_TYPES = (TREATED, CONTROL)
CP_TIMES = (24, 48, 72)
CP_DOSES = ("D1", "D2")

# Logical table name -> file stem used both for the raw CSVs and the prepared Parquet files.
TABLES = (
    "train_features",
    "train_targets_scored",
    "train_targets_nonscored",
    "train_drug",
    "test_features",
)


def is_gene(col: str) -> bool:
    return col.startswith("g-")


def is_cell(col: str) -> bool:
    return col.startswith("c-")
