"""A feature set: a named, ordered chain of fitted steps from the config's ``features:`` block.

``fit`` builds the steps from their dicts and fits them one after another on the train rows, plus
the test rows when ``fit_on == "train+test"`` (allowed for unsupervised transforms only; DESIGN.md's
leakage rules). One step may narrow that with its own ``fit_on: train`` (the winners' simple NN fits
its first quantile transform on the train rows and everything after it on train + test): it is
fitted on the train rows alone and then applied to every row, like any step. ``transform`` applies the fitted chain to any frame with the raw feature columns,
which is how inference turns NEW samples into model inputs without refitting: the fitted object is
saved with joblib as ``results/features/{set}/fitted.joblib``.

The output is ``sig_id`` followed by float32 feature columns with stable names, in the input's row
order; the raw ``cp_type``/``cp_time``/``cp_dose`` columns and string columns (SMILES, cell type) are
dropped. Control rows are kept; the
train jobs decide what to do with them.

Sparse steps (``sparse_output = True``, e.g. ``sparse_fingerprint``) do not chain frames: each reads
the frame as it is at its place in the list and returns a CSR block, and the blocks are stacked, in
step order, as the table's sparse block (:class:`~moastack.features.feature_table.FeatureTable`);
dense steps never see them. Their frequency filters are fitted on the training rows only, so a set
with a sparse step must say ``fit_on: train`` (it is refused otherwise rather than silently fitted on
a different row set than its other steps). :meth:`FeatureSet.transform_table` gives both parts;
:meth:`FeatureSet.transform` the dense frame of a set without sparse steps.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from moastack.columns import ID_COL
from moastack.features.feature_table import FeatureTable
from moastack.features.transformers import NON_FEATURE_COLS, STEP_CLASSES, FeatureStep

log = logging.getLogger(__name__)

FIT_ON = ("train", "train+test")


def make_step(spec: Mapping[str, Any]) -> FeatureStep:
    """Build one unfitted step from its config dict, naming the step and key on any mistake (a step's
    ``fit_on`` belongs to the feature set: see :func:`step_fit_on`)."""
    spec = dict(spec)
    spec.pop("fit_on", None)
    name = spec.pop("name", None)
    if name not in STEP_CLASSES:
        raise ValueError(f"unknown feature step {name!r}; known steps: {sorted(STEP_CLASSES)}")
    cls = STEP_CLASSES[name]
    allowed = sorted(cls().get_params(deep=False))  # steps follow sklearn: every argument has a default
    for key in spec:
        if key not in allowed:
            raise ValueError(f"feature step {name!r}: unknown key {key!r}; allowed: {['name', *allowed]}")
    return cls(**spec)


def is_sparse_step(step: FeatureStep) -> bool:
    """Whether the step returns a sparse block (``transform_sparse``) instead of frame columns."""
    return bool(getattr(step, "sparse_output", False))


def step_fit_on(spec: Mapping[str, Any], set_fit_on: str) -> str:
    """The rows one step is fitted on: its own ``fit_on`` if given, else the feature set's. A step may
    narrow ``train+test`` to ``train``, never widen a train-only set (its test rows are not there)."""
    fit_on = spec.get("fit_on", set_fit_on)
    if fit_on not in FIT_ON:
        raise ValueError(f"feature step {spec.get('name')!r}: fit_on must be one of {FIT_ON}, got {fit_on!r}")
    if fit_on == "train+test" and set_fit_on == "train":
        raise ValueError(f"feature step {spec.get('name')!r}: fit_on 'train+test' in a feature set fitted on 'train'")
    return fit_on


def _check_frame(df: pd.DataFrame, what: str) -> None:
    """The frame must carry the key every step and the output rely on (lish-moa's ``cp_*`` columns are
    optional: tables of other tasks have none)."""
    if ID_COL not in df.columns:
        raise ValueError(f"{what} frame lacks the key column {ID_COL!r}")


def _feature_columns(frame: pd.DataFrame) -> list[str]:
    """Numeric columns that are not the key or raw metadata: string inputs such as SMILES or a cell
    type are read by steps (fingerprints, encodings) but are never model inputs themselves."""
    return [
        c for c, dtype in frame.dtypes.items()
        if c not in NON_FEATURE_COLS and (pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype))
    ]


class FeatureSet(TransformerMixin, BaseEstimator):
    """Fit a list of step dicts in order; transform raw feature frames into float32 model inputs."""

    def __init__(self, steps: Sequence[Mapping[str, Any]] = (), fit_on: str = "train+test") -> None:
        self.steps = steps
        self.fit_on = fit_on

    def fit(self, train: pd.DataFrame, test: pd.DataFrame | None = None) -> FeatureSet:
        """Fit every step on train (+ test when ``fit_on == "train+test"``), transforming as it goes."""
        if self.fit_on not in FIT_ON:
            raise ValueError(f"fit_on must be one of {FIT_ON}, got {self.fit_on!r}")
        steps = [make_step(spec) for spec in self.steps]  # all config errors before any fitting
        sparse_steps = [s.step_name for s in steps if is_sparse_step(s)]
        if sparse_steps and self.fit_on != "train":
            raise ValueError(f"feature steps {sparse_steps} fit their frequency filter on training rows only: "
                             f"set the feature set's fit_on: train (it is {self.fit_on!r})")
        fit_ons = [step_fit_on(spec, self.fit_on) for spec in self.steps]
        _check_frame(train, "train")
        frame = train
        if self.fit_on == "train+test":
            if test is None:
                raise ValueError("fit_on='train+test' needs the test frame")
            _check_frame(test, "test")
            if set(test.columns) != set(train.columns):
                raise ValueError("train and test frames have different columns")
            frame = pd.concat([train, test[train.columns]], ignore_index=True)
        self.n_fit_rows_ = len(frame)
        self.input_columns_ = list(train.columns)
        sparse_names: list[str] = []
        n_train = len(train)
        for step, fit_on in zip(steps, fit_ons, strict=True):
            start = time.perf_counter()
            rows = frame.iloc[:n_train] if fit_on == "train" else frame
            if is_sparse_step(step):
                step.fit(rows)
                sparse_names.extend(step.names_out_)
                width = f"{len(step.names_out_)} sparse"
            else:
                step.fit(rows)
                frame = step.transform(frame)
                width = str(frame.shape[1])
            log.info("fitted %s on %s rows in %.1fs -> %s columns", step.step_name, fit_on,
                     time.perf_counter() - start, width)
        self.steps_ = steps
        self.feature_names_out_ = _feature_columns(frame)
        clash = set(self.feature_names_out_) & set(sparse_names)
        if clash or len(set(sparse_names)) != len(sparse_names):
            raise ValueError(f"sparse feature steps give column names twice (e.g. {sorted(clash)[:3]}); "
                             "give each sparse_fingerprint a different kind, radius or n_bits")
        self.sparse_names_out_ = tuple(sparse_names)
        return self

    def transform_table(self, df: pd.DataFrame) -> FeatureTable:
        """``sig_id`` + dense float32 features in fitted column order, and the sparse block (None without
        sparse steps); rows in the input's order."""
        check_is_fitted(self, "steps_")
        _check_frame(df, "input")
        frame = df
        blocks = []
        for step in self.steps_:
            if is_sparse_step(step):
                blocks.append(step.transform_sparse(frame))
            else:
                frame = step.transform(frame)
        values = frame[self.feature_names_out_].to_numpy(dtype=np.float32)
        features = pd.DataFrame(values, columns=self.feature_names_out_)
        dense = pd.concat([frame[[ID_COL]].reset_index(drop=True), features], axis=1)
        if not blocks:
            return FeatureTable(dense)
        return FeatureTable(dense, sp.hstack(blocks, format="csr", dtype=np.float32), self.sparse_names_out_)

    def transform(self, df: pd.DataFrame) -> pd.DataFrame:
        """``sig_id`` + float32 features in fitted column order (a set without sparse steps)."""
        return self.transform_table(df).dense_only("this feature set")

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        check_is_fitted(self, "feature_names_out_")
        return np.asarray(self.feature_names_out_, dtype=object)


def build_feature_tables(
    spec: Mapping[str, Any], train: pd.DataFrame, test: pd.DataFrame
) -> tuple[FeatureSet, FeatureTable, FeatureTable]:
    """Fit the config's feature set (``{"fit_on": ..., "steps": [...]}``), then transform train and test."""
    unknown = set(spec) - {"fit_on", "steps"}
    if unknown:
        raise ValueError(f"feature set: unknown keys {sorted(unknown)}; allowed: ['fit_on', 'steps']")
    fs = FeatureSet(steps=list(spec.get("steps", ())), fit_on=spec.get("fit_on", "train+test"))
    fs.fit(train, test)
    return fs, fs.transform_table(train), fs.transform_table(test)


def build_feature_set(
    spec: Mapping[str, Any], train: pd.DataFrame, test: pd.DataFrame
) -> tuple[FeatureSet, pd.DataFrame, pd.DataFrame]:
    """:func:`build_feature_tables` of a set without sparse steps, as DataFrames."""
    fs, train_table, test_table = build_feature_tables(spec, train, test)
    return fs, train_table.dense_only(), test_table.dense_only()
