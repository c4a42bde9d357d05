"""How close a lish-moa-shaped data set is to the real train files: label and drug structure statistics.

:data:`REAL` holds the statistics of the real public train files (23,814 rows; see README, "The synthetic
data"); :func:`structure_table` measures the same ones on any five raw tables (the generator's, or real
CSVs) and sets them side by side, each with its ratio to the real value.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from moastack import columns as C

CONTROL_DRUG = "cacb2b860"

#: The real train files' statistics, in the order of :func:`structure_stats`.
REAL: dict[str, float] = {
    "rows with 0 labels (%)": 39.3,
    "rows with 1 label (%)": 52.6,
    "rows with 2 labels (%)": 6.5,
    "rows with 3 labels (%)": 1.3,
    "rows with 4+ labels (%)": 0.3,
    "most labels on a row": 7,
    "distinct label sets": 328,
    "positives per target: min": 1,
    "positives per target: 10th percentile": 7,
    "positives per target: 25th percentile": 19,
    "positives per target: median": 38.5,
    "positives per target: 75th percentile": 83,
    "positives per target: 90th percentile": 252,
    "positives per target: max": 832,
    "drugs": 3289,
    "drugs of exactly 6 rows": 2774,
    "drugs of more than 18 rows": 10,
    "rows of drugs of more than 18 rows": 4008,
    "control rows": 1866,
    "drugs per scored mechanism: median": 6.5,
    "scored mechanisms with one drug": 19,
}


def structure_stats(frames: dict[str, pd.DataFrame]) -> dict[str, float]:
    """The :data:`REAL` statistics measured on raw tables (``train_targets_scored``, ``train_drug``).

    Drugs per mechanism count treated drugs with a positive row; percentiles are numpy's (linear).
    """
    y = frames["train_targets_scored"].drop(columns=[C.ID_COL]).to_numpy()
    drug = frames["train_drug"][C.DRUG_COL].to_numpy()
    n = y.sum(axis=1)
    pos = y.sum(axis=0)
    sizes = pd.Series(drug).value_counts()
    big = sizes[sizes > 18]
    treated = drug != CONTROL_DRUG
    per_drug = pd.DataFrame(y[treated]).groupby(drug[treated]).max()
    drugs_per_mech = per_drug.sum(axis=0)
    drugs_per_mech = drugs_per_mech[drugs_per_mech > 0]
    pct = np.percentile(pos, [10, 25, 50, 75, 90]) if pos.size else np.zeros(5)
    return {
        "rows with 0 labels (%)": 100 * float((n == 0).mean()),
        "rows with 1 label (%)": 100 * float((n == 1).mean()),
        "rows with 2 labels (%)": 100 * float((n == 2).mean()),
        "rows with 3 labels (%)": 100 * float((n == 3).mean()),
        "rows with 4+ labels (%)": 100 * float((n >= 4).mean()),
        "most labels on a row": int(n.max()) if n.size else 0,
        "distinct label sets": len({row.tobytes() for row in y.astype(np.int8)}),
        "positives per target: min": int(pos.min()) if pos.size else 0,
        "positives per target: 10th percentile": float(pct[0]),
        "positives per target: 25th percentile": float(pct[1]),
        "positives per target: median": float(pct[2]),
        "positives per target: 75th percentile": float(pct[3]),
        "positives per target: 90th percentile": float(pct[4]),
        "positives per target: max": int(pos.max()) if pos.size else 0,
        "drugs": int(sizes.size),
        "drugs of exactly 6 rows": int((sizes == 6).sum()),
        "drugs of more than 18 rows": int(big.size),
        "rows of drugs of more than 18 rows": int(big.sum()),
        "control rows": int((~treated).sum()),
        "drugs per scored mechanism: median": float(drugs_per_mech.median()) if drugs_per_mech.size else 0.0,
        "scored mechanisms with one drug": int((drugs_per_mech == 1).sum()),
    }


def structure_table(frames: dict[str, pd.DataFrame], tolerance: float = 0.2) -> pd.DataFrame:
    """Each statistic next to the real value, with ``ratio`` (measured / real) and ``within`` (± tolerance)."""
    stats = structure_stats(frames)
    table = pd.DataFrame({"statistic": list(REAL), "real": list(REAL.values()),
                          "synthetic": [stats[k] for k in REAL]})
    table["ratio"] = table["synthetic"] / table["real"]
    table["within"] = (table["ratio"] - 1).abs() <= tolerance + 1e-9
    return table
