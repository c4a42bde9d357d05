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
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from moastack.columns import ID_COL
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
        n_train = len(train)
        for step, fit_on in zip(steps, fit_ons, strict=True):
            start = time.perf_counter()
            step.fit(frame.iloc[:n_train] if fit_on == "train" else frame)
            frame = step.transform(frame)
            log.info(
                "fitted %s on %s rows in %.1fs -> %d columns",
                step.step_name,
                fit_on,
                time.perf_counter() - start,
                frame.shape[1],
            )
        self.steps_ = steps
        self.feature_names_out_ = _feature_columns(frame)
        return self

    def transform(self, df: pd.DataFrame) -> pd.DataFrame:
        """``sig_id`` + float32 features in fitted column order; rows in the input's order."""
        check_is_fitted(self, "steps_")
        _check_frame(df, "input")
        frame = df
        for step in self.steps_:
            frame = step.transform(frame)
        values = frame[self.feature_names_out_].to_numpy(dtype=np.float32)
        features = pd.DataFrame(values, columns=self.feature_names_out_)
        return pd.concat([frame[[ID_COL]].reset_index(drop=True), features], axis=1)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        check_is_fitted(self, "feature_names_out_")
        return np.asarray(self.feature_names_out_, dtype=object)


def build_feature_set(
    spec: Mapping[str, Any], train: pd.DataFrame, test: pd.DataFrame
) -> tuple[FeatureSet, pd.DataFrame, pd.DataFrame]:
    """Fit the config's feature set (``{"fit_on": ..., "steps": [...]}``), then transform train and test."""
    unknown = set(spec) - {"fit_on", "steps"}
    if unknown:
        raise ValueError(f"feature set: unknown keys {sorted(unknown)}; allowed: ['fit_on', 'steps']")
    fs = FeatureSet(steps=list(spec.get("steps", ())), fit_on=spec.get("fit_on", "train+test"))
    fs.fit(train, test)
    return fs, fs.transform(train), fs.transform(test)
