"""Stacking: a model's ``meta: [a, b]`` adds the collected predictions of a and b as features.

Training rows get the upstream models' out-of-fold predictions, test rows their test predictions.
Both come from the same fold scheme (the config check enforces it), so a row's meta-feature was
never fitted on that row. The optional quantile transform is fitted on the training fold only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.preprocessing import QuantileTransformer

from moastack import io
from moastack.columns import ID_COL

META_TRANSFORMS = ("quantile", "none")


@dataclass(frozen=True)
class MetaInputs:
    """One upstream model's collected predictions."""

    name: str
    oof: str
    test: str


def _aligned(path: str, ids: np.ndarray, what: str) -> tuple[np.ndarray, list[str]]:
    frame = io.read_parquet(path)
    if not np.array_equal(frame[ID_COL].to_numpy(), ids):
        frame = frame.set_index(ID_COL).reindex(ids)
        if frame.isna().any().any():
            raise ValueError(f"{what} ({path}) lacks predictions for some rows")
        frame = frame.reset_index()
    cols = [c for c in frame.columns if c != ID_COL]
    return frame[cols].to_numpy(dtype=np.float32), cols


def load_meta(meta: list[MetaInputs], train_ids: np.ndarray, test_ids: np.ndarray):
    """Concatenate upstream OOF (train) and test predictions; names are ``<model>__<target>``."""
    train_blocks, test_blocks, names = [], [], []
    for m in meta:
        tr, cols = _aligned(m.oof, train_ids, f"OOF of {m.name}")
        te, _ = _aligned(m.test, test_ids, f"test predictions of {m.name}")
        train_blocks.append(tr)
        test_blocks.append(te)
        names += meta_feature_names(m.name, cols)
    return np.hstack(train_blocks), np.hstack(test_blocks), names


def meta_feature_names(model: str, targets: list[str]) -> list[str]:
    """Names of one upstream model's meta-features: ``<model>__<target>``."""
    return [f"{model}__{c}" for c in targets]


def fit_meta_transform(train_meta: np.ndarray, fit_rows: np.ndarray, kind: str, seed: int):
    """Fit the meta-feature transform on the training-fold rows only (None for ``none``)."""
    if kind == "none":
        return None
    if kind != "quantile":
        raise ValueError(f"unknown meta_transform {kind!r}; known: {', '.join(META_TRANSFORMS)}")
    qt = QuantileTransformer(
        n_quantiles=min(100, int(fit_rows.sum())), output_distribution="normal", random_state=seed
    )
    return qt.fit(train_meta[fit_rows])


def apply_meta_transform(transform, values: np.ndarray) -> np.ndarray:
    return values if transform is None else transform.transform(values).astype(np.float32)
