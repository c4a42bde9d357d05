"""The feature-map step of the DAG: fit a map on a feature set's training table, save it and its PNG.

The map is fitted once per feature set (not per fold): t-SNE places *features*, and which feature
sits near which does not use any label, so it is an unsupervised transform like the feature set's.
A map with ``fit_on: fold`` (the winners' way) is still fitted here, for its picture and as the
settings every train job repeats on its own fold's training rows (:meth:`FeatureMap.refit`).
"""

from __future__ import annotations

import logging

import numpy as np

from moastack import io
from moastack.columns import ID_COL
from moastack.deepinsight.feature_map import MAP_SETTINGS, fit_feature_map

log = logging.getLogger(__name__)


def fit_map_from_table(train_path: str, spec: dict, map_path: str, png_path: str, threads: int = 1):
    """Fit the map of ``spec`` (height, width and :data:`MAP_SETTINGS`) on every column of the table."""
    table = io.read_parquet(train_path)
    names = [c for c in table.columns if c != ID_COL]
    X = table[names].to_numpy(dtype=np.float32)
    log.info("fitting a %dx%d feature map of %d features on %d rows", spec.get("height", 32),
             spec.get("width", 32), len(names), len(X))
    settings = {k: spec[k] for k in MAP_SETTINGS if k in spec}
    fmap = fit_feature_map(X, names, height=int(spec.get("height", 32)), width=int(spec.get("width", 32)),
                           n_jobs=threads, **settings)
    occupied = len(set(zip(fmap.rows.tolist(), fmap.cols.tolist())))
    log.info("map: %d features on %d of %d pixels", len(names), occupied, fmap.height * fmap.width)
    fmap.save(map_path)
    fmap.plot(png_path)
    return fmap
