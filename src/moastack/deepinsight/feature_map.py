"""The DeepInsight feature map: where each feature lands in the image.

t-SNE on the *transposed* scaled matrix places similar features (columns that vary together across
samples) near each other; the convex hull's minimum-area rectangle is rotated to be axis-aligned so the
grid wastes as few pixels as possible; positions are then binned into an H × W grid. The map is fitted
once (per fold or per data set) and saved, so that every CNN fit and every prediction uses the same one.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from moastack.io import atomic_path

log = logging.getLogger(__name__)

GROUPS = (("g-", "genes"), ("c-", "cells"))

#: how a map is fitted besides its size: the defaults are moastack's (and the config schema's); a map
#: file keeps the values it was fitted with, so a per-fold refit (``fit_on: fold``) repeats them
MAP_SETTINGS: dict[str, Any] = {
    "seed": 0,
    "perplexity": 30.0,
    "metric": "euclidean",  # the t-SNE metric between features (columns): euclidean | cosine
    "method": "barnes_hut",  # t-SNE: barnes_hut | exact
    "init": "pca",  # t-SNE: pca | random
    "learning_rate": "auto",  # t-SNE: auto | a number
    "square_distances": True,  # False: a non-euclidean metric's distances unsquared (scikit-learn < 1.2)
    "placement": "compact",  # compact | pydeepinsight (positions -> pixels)
    "scaler_clip": False,  # LogNorm2Scaler's clip
    "fit_on": "train",  # train: once, on the feature set's training table | fold: again on each fold's training rows
}
METRICS = ("euclidean", "cosine")
METHODS = ("barnes_hut", "exact")
INITS = ("pca", "random")
FIT_ON = ("train", "fold")


def map_settings(spec: dict[str, Any] | None = None) -> dict[str, Any]:
    """The fitting settings of a ``feature_maps`` entry (or of a saved map), defaults filled and checked;
    an error names the key."""
    spec = dict(spec or {})
    out = {k: spec.get(k, v) for k, v in MAP_SETTINGS.items()}
    choices = {"metric": METRICS, "method": METHODS, "init": INITS, "placement": tuple(PLACEMENTS),
               "fit_on": FIT_ON}
    for key, allowed in choices.items():
        if out[key] not in allowed:
            raise ValueError(f"feature map: {key} must be one of {list(allowed)}, got {out[key]!r}")
    for key in ("square_distances", "scaler_clip"):
        if not isinstance(out[key], (bool, np.bool_)):
            raise ValueError(f"feature map: {key} must be true or false, got {out[key]!r}")
        out[key] = bool(out[key])
    lr = out["learning_rate"]
    if lr != "auto" and (isinstance(lr, bool) or not isinstance(lr, (int, float, np.number)) or not lr > 0):
        raise ValueError(f"feature map: learning_rate must be auto or a number > 0, got {lr!r}")
    out["learning_rate"] = lr if lr == "auto" else float(lr)
    if isinstance(out["seed"], bool) or not isinstance(out["seed"], (int, np.integer)) or out["seed"] < 0:
        raise ValueError(f"feature map: seed must be an integer >= 0, got {out['seed']!r}")
    out["seed"] = int(out["seed"])
    if not float(out["perplexity"]) > 0:
        raise ValueError(f"feature map: perplexity must be > 0, got {out['perplexity']!r}")
    out["perplexity"] = float(out["perplexity"])
    if not out["square_distances"] and out["metric"] != "euclidean" and out["init"] != "random":
        raise ValueError("feature map: square_distances false (with a non-euclidean metric) needs init random")
    return out


# --------------------------------------------------------------------------- scaler


class LogNorm2Scaler:
    """DeepInsight's "norm-2" scaler: ``log(x + |min_j| + 1) / max`` with training min and max.

    The log tames the heavy tails of the g-/c- features; the shift makes every training value map to
    ≥ 0 and one global divisor keeps the features' relative scales (unlike per-feature min-max).

    ``clip`` (the winners' ``LogScaler``): a value is first raised to its feature's training min, and the
    result is clipped to [0, 1], so a validation or test value above the training max renders as 1, not
    more. Without it (the default) only the lower end is cut, at 0.
    """

    def __init__(self, clip: bool = False) -> None:
        self.clip = bool(clip)

    def fit(self, X: np.ndarray) -> LogNorm2Scaler:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or len(X) == 0:
            raise ValueError(f"LogNorm2Scaler needs a non-empty 2-D matrix, got shape {X.shape}")
        self.min_ = X.min(axis=0)
        self.shift_ = np.abs(self.min_) + 1.0
        peak = float(np.log(np.maximum(X + self.shift_, 1.0)).max())
        self.max_ = peak if peak > 0 else 1.0  # a constant all-zero matrix would divide by 0
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Scaled float32 copy; values below a feature's training min are clipped to 0 (``clip``: to the
        training min first, and the result to [0, 1])."""
        if not hasattr(self, "max_"):
            raise RuntimeError("LogNorm2Scaler is not fitted")
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(self.min_):
            raise ValueError(f"LogNorm2Scaler was fitted on {len(self.min_)} features, got shape {X.shape}")
        if self.clip:
            X = np.maximum(X, self.min_)
        scaled = np.log(np.maximum(X + self.shift_, 1.0)) / self.max_
        if self.clip:
            scaled = np.clip(scaled, 0.0, 1.0)
        return scaled.astype(np.float32)

    def fit_transform(self, X: np.ndarray) -> np.ndarray:
        return self.fit(X).transform(X)

    @classmethod
    def from_arrays(cls, min_: np.ndarray, max_: float, clip: bool = False) -> LogNorm2Scaler:
        """Rebuild a fitted scaler from its saved state."""
        scaler = cls(clip=clip)
        scaler.min_ = np.asarray(min_, dtype=np.float64)
        scaler.shift_ = np.abs(scaler.min_) + 1.0
        scaler.max_ = float(max_)
        return scaler


# --------------------------------------------------------------------------- geometry


def rotate(points: np.ndarray, angle: float) -> np.ndarray:
    """Rotate 2-D points counter-clockwise by ``angle`` radians about the origin."""
    c, s = np.cos(angle), np.sin(angle)
    return points @ np.array([[c, s], [-s, c]])


def _principal_angle(points: np.ndarray) -> float:
    """Direction of the largest spread: the rectangle angle for collinear or tiny point sets."""
    centred = points - points.mean(axis=0)
    if not np.any(np.abs(centred) > 1e-12):
        return 0.0
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return float(np.arctan2(vt[0, 1], vt[0, 0]))


def _hull_vertices(points: np.ndarray) -> np.ndarray | None:
    """Convex hull vertices, or None when the points span no area (Qhull refuses those)."""
    from scipy.spatial import ConvexHull, QhullError

    if len(np.unique(points, axis=0)) < 3:
        return None
    try:
        return points[ConvexHull(points).vertices]
    except (QhullError, ValueError):
        return None


def min_area_rotation(points: np.ndarray) -> float:
    """The angle θ such that ``rotate(points, -θ)`` has an axis-aligned minimum-area bounding rectangle.

    Rotating calipers: one side of the minimum-area rectangle lies on a hull edge, so only the hull
    edge directions (mod 90°) are candidates; each is scored by the area of the rotated bounding box.
    """
    points = np.asarray(points, dtype=np.float64)
    hull = _hull_vertices(points)
    if hull is None:
        return _principal_angle(points)
    edges = np.roll(hull, -1, axis=0) - hull
    angles = np.unique(np.round(np.mod(np.arctan2(edges[:, 1], edges[:, 0]), np.pi / 2), 12))
    c, s = np.cos(angles), np.sin(angles)
    x = hull[:, :1] * c + hull[:, 1:] * s  # (vertices × candidates): coordinates after rotating by -θ
    y = -hull[:, :1] * s + hull[:, 1:] * c
    area = np.ptp(x, axis=0) * np.ptp(y, axis=0)
    return float(angles[int(np.argmin(area))])


def _to_grid(values: np.ndarray, size: int) -> np.ndarray:
    """Min-max ``values`` into [0, size − 1] and round to integer pixels (all 0 when they are equal)."""
    lo, span = values.min(), np.ptp(values)
    if span <= 1e-12 * max(1.0, abs(lo)):
        return np.zeros(len(values), dtype=np.int64)
    return np.rint((values - lo) / span * (size - 1)).astype(np.int64)


def positions_to_pixels(positions: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of 2-D positions after aligning their minimum-area rectangle with the grid.

    The rectangle's long side goes along the grid's long side (width when width >= height).
    """
    aligned = rotate(np.asarray(positions, dtype=np.float64), -min_area_rotation(positions))
    long_x = np.ptp(aligned[:, 0]) >= np.ptp(aligned[:, 1])
    if long_x != (width >= height):
        aligned = rotate(aligned, np.pi / 2)
    return _to_grid(aligned[:, 1], height), _to_grid(aligned[:, 0], width)


def pydeepinsight_pixels(positions: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) as pyDeepInsight's ``ImageTransformer`` (the winners' copy of it) places positions.

    The same rotating-calipers idea as :func:`positions_to_pixels`, with its details: only the hull edges
    between consecutive vertices are candidates (the closing edge, last vertex to first, is left out), the
    first rotated axis goes down the rows and the second along the columns whatever the grid's shape, and
    each axis is binned by ``np.digitize`` on ``linspace(min, max, size)`` (a floor: the max alone lands in
    the last pixel), where :func:`positions_to_pixels` rounds.
    """
    positions = np.asarray(positions, dtype=np.float64)
    hull = _hull_vertices(positions)
    if hull is None:
        rot = _rotation_matrix(-_principal_angle(positions))
    else:
        pi2 = np.pi / 2.0
        edges = hull[1:] - hull[:-1]
        angles = np.unique(np.abs(np.mod(np.arctan2(edges[:, 1], edges[:, 0]), pi2)))
        rotations = np.vstack([np.cos(angles), np.cos(angles - pi2), np.cos(angles + pi2),
                               np.cos(angles)]).T.reshape((-1, 2, 2))
        rotated = np.dot(rotations, hull.T)
        areas = (np.nanmax(rotated[:, 0], axis=1) - np.nanmin(rotated[:, 0], axis=1)) * (
            np.nanmax(rotated[:, 1], axis=1) - np.nanmin(rotated[:, 1], axis=1))
        rot = rotations[int(np.argmin(areas))]
    aligned = np.dot(rot, positions.T).T
    return _digitize(aligned[:, 0], height), _digitize(aligned[:, 1], width)


def _rotation_matrix(angle: float) -> np.ndarray:
    """The matrix R with ``R @ p`` = p rotated counter-clockwise by ``angle``."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s], [s, c]])


def _digitize(values: np.ndarray, size: int) -> np.ndarray:
    """``np.digitize(values, linspace(min, max, size)) - 1``: pixels 0..size-1 (all 0 when the values are equal)."""
    lo, hi = values.min(), values.max()
    if hi - lo <= 1e-12 * max(1.0, abs(lo)):
        return np.zeros(len(values), dtype=np.int64)
    return (np.digitize(values, bins=np.linspace(lo, hi, size)) - 1).astype(np.int64)


#: ``placement`` -> the function binning 2-D feature positions into (rows, cols)
PLACEMENTS = {"compact": positions_to_pixels, "pydeepinsight": pydeepinsight_pixels}


# --------------------------------------------------------------------------- embedding


def _pca_positions(points: np.ndarray) -> np.ndarray:
    """Two principal coordinates: the layout for sets too small for t-SNE."""
    centred = points - points.mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    pos = np.zeros((len(points), 2))
    k = min(2, len(s))
    pos[:, :k] = u[:, :k] * s[:k]
    return pos


def embed_features(
    scaled: np.ndarray, seed: int = 0, perplexity: float = 30.0, n_jobs: int = 1, metric: str = "euclidean",
    method: str = "barnes_hut", init: str = "pca", learning_rate: float | str = "auto",
    square_distances: bool = True,
) -> np.ndarray:
    """2-D t-SNE positions of the features (columns of ``scaled``); PCA for fewer than 4 features.

    ``method``, ``init`` and ``learning_rate`` are scikit-learn's (its defaults since 1.2: barnes_hut,
    pca, auto). ``square_distances`` False (metric not euclidean): the affinities are computed from the
    metric's distances as they are, as scikit-learn did before 1.2 (0.24's ``square_distances='legacy'``);
    since then it squares every metric's distances. Done by handing t-SNE the square roots as precomputed
    distances (it squares them back), which scikit-learn allows with ``init: random`` only.
    """
    points = np.ascontiguousarray(np.asarray(scaled, dtype=np.float64).T)
    if len(points) < 4 or points.shape[1] < 2:
        return _pca_positions(points)
    from sklearn.manifold import TSNE

    if not square_distances and metric != "euclidean":
        if init != "random":
            raise ValueError("feature map: square_distances false needs init random (t-SNE on precomputed distances)")
        from sklearn.metrics import pairwise_distances

        points = np.sqrt(np.maximum(pairwise_distances(points, metric=metric, n_jobs=n_jobs), 0.0))
        metric = "precomputed"
    tsne = TSNE(n_components=2, perplexity=min(float(perplexity), len(points) - 1.0), init=init,
                random_state=seed, metric=metric, n_jobs=n_jobs, method=method, learning_rate=learning_rate)
    return tsne.fit_transform(points)


# --------------------------------------------------------------------------- the map


@dataclass
class FeatureMap:
    """Pixel (row, col) of every feature on an H × W grid, plus the scaler fitted with it."""

    feature_names: list[str]
    height: int
    width: int
    rows: np.ndarray
    cols: np.ndarray
    scaler: LogNorm2Scaler
    seed: int = 0
    #: how it was fitted (:data:`MAP_SETTINGS`; ``seed`` is the field above): what :meth:`refit` repeats
    settings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.feature_names = [str(n) for n in self.feature_names]
        self.height, self.width = int(self.height), int(self.width)
        self.rows = np.asarray(self.rows, dtype=np.int64)
        self.cols = np.asarray(self.cols, dtype=np.int64)
        p = len(self.feature_names)
        if self.height < 1 or self.width < 1:
            raise ValueError(f"feature map size must be positive, got {self.height}×{self.width}")
        if self.rows.shape != (p,) or self.cols.shape != (p,):
            raise ValueError(f"feature map: {p} names but rows {self.rows.shape}, cols {self.cols.shape}")
        if p and not (self.rows.min() >= 0 and self.rows.max() < self.height
                      and self.cols.min() >= 0 and self.cols.max() < self.width):
            raise ValueError("feature map: a pixel lies outside the grid")

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @property
    def fit_on(self) -> str:
        """train: use this map as it is; fold: each model fit refits one like it on its training rows."""
        return str(self.settings.get("fit_on", "train"))

    def refit(self, X: np.ndarray, n_jobs: int = 1) -> FeatureMap:
        """A new map of the same features, size and settings, fitted (scaler and t-SNE) on the rows ``X``."""
        settings = {**self.settings, "seed": self.seed}
        return fit_feature_map(X, self.feature_names, self.height, self.width, n_jobs=n_jobs, **settings)

    @property
    def pixel_index(self) -> np.ndarray:
        """Flat pixel of each feature (row-major), what the renderer scatters into."""
        return self.rows * self.width + self.cols

    def scale(self, X: np.ndarray) -> np.ndarray:
        """The map's scaler applied to raw features (float32, n × p)."""
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"feature map has {self.n_features} features but X has shape {X.shape}")
        return self.scaler.transform(X)

    def occupancy(self) -> np.ndarray:
        """Features per pixel (H × W): a quick look at how crowded the map is."""
        return np.bincount(self.pixel_index, minlength=self.height * self.width).reshape(self.height, self.width)

    # ----------------------------------------------------------------- persistence

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain numpy arrays (no pickle needed), for .npz files and a model's saved state."""
        return {
            "feature_names": np.asarray(self.feature_names, dtype=str),
            "size": np.array([self.height, self.width], dtype=np.int64),
            "rows": self.rows,
            "cols": self.cols,
            "scaler_min": self.scaler.min_,
            "scaler_max": np.array(self.scaler.max_, dtype=np.float64),
            "scaler_clip": np.array(self.scaler.clip, dtype=bool),
            "seed": np.array(self.seed, dtype=np.int64),
            "settings": np.array(json.dumps(self.settings, sort_keys=True)),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, Any]) -> FeatureMap:
        height, width = (int(v) for v in np.asarray(arrays["size"]))
        return cls(
            feature_names=[str(n) for n in np.asarray(arrays["feature_names"])],
            height=height,
            width=width,
            rows=np.asarray(arrays["rows"]),
            cols=np.asarray(arrays["cols"]),
            scaler=LogNorm2Scaler.from_arrays(np.asarray(arrays["scaler_min"]),
                                              float(np.asarray(arrays["scaler_max"])),
                                              clip=bool(np.asarray(arrays.get("scaler_clip", False)))),
            seed=int(np.asarray(arrays["seed"])),
            settings=json.loads(str(np.asarray(arrays["settings"]))) if "settings" in arrays else {},
        )

    def save(self, path: str | Path) -> None:
        """Write an .npz atomically (a file handle, so numpy does not append its own suffix)."""
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **self.to_arrays())

    @classmethod
    def load(cls, path: str | Path) -> FeatureMap:
        with np.load(Path(path), allow_pickle=False) as data:
            return cls.from_arrays({k: data[k] for k in data.files})

    def plot(self, path: str | Path, title: str | None = None) -> None:
        """PNG of where each feature lands, coloured by group (genes, cells, other); points are jittered
        within their pixel so that crowded pixels show as clouds. Agg canvas, no pyplot state."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        groups = np.array([_group(n) for n in self.feature_names])
        fig = Figure(figsize=(6, 6 * self.height / max(self.width, 1) + 0.5))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        jitter = np.random.default_rng(0).uniform(-0.3, 0.3, size=(self.n_features, 2))
        for name in ("genes", "cells", "other"):
            sel = groups == name
            if sel.any():
                ax.scatter(self.cols[sel] + jitter[sel, 0], self.rows[sel] + jitter[sel, 1], s=6, alpha=0.7,
                           label=f"{name} ({int(sel.sum())})")
        ax.set_xlim(-0.5, self.width - 0.5)
        ax.set_ylim(self.height - 0.5, -0.5)  # image orientation: row 0 at the top
        ax.set_aspect("equal")
        ax.set_xlabel("column")
        ax.set_ylabel("row")
        used = int((self.occupancy() > 0).sum())
        ax.set_title(title or f"DeepInsight map {self.height}×{self.width}: {self.n_features} features, "
                              f"{used} pixels used")
        ax.legend(loc="upper right", fontsize=8, markerscale=2)
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=100)


def _group(name: str) -> str:
    for prefix, group in GROUPS:
        if name.startswith(prefix):
            return group
    return "other"


def image_shape(size: int | list[int] | tuple[int, int]) -> tuple[int, int]:
    """(H, W) from an ``image_size`` param: one int for a square, or [H, W]."""
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        h = w = int(size)
    elif isinstance(size, (list, tuple)) and len(size) == 2 and all(isinstance(v, (int, np.integer)) for v in size):
        h, w = int(size[0]), int(size[1])
    else:
        raise ValueError(f"image_size must be an int or [H, W], got {size!r}")
    if h < 1 or w < 1:
        raise ValueError(f"image_size must be positive, got {size!r}")
    return h, w


def fit_feature_map(
    X: np.ndarray,
    feature_names: list[str],
    height: int,
    width: int,
    seed: int = 0,
    perplexity: float = 30.0,
    n_jobs: int = 1,
    metric: str = "euclidean",
    **settings: Any,
) -> FeatureMap:
    """Fit the scaler on ``X`` (n × p), place the p features with t-SNE and bin them into H × W pixels.

    ``settings``: the other :data:`MAP_SETTINGS` (t-SNE method, init, learning rate, distances; the
    placement; the scaler's clip; ``fit_on``, kept in the map for :meth:`FeatureMap.refit`).
    """
    unknown = sorted(set(settings) - set(MAP_SETTINGS))
    if unknown:
        raise ValueError(f"feature map: unknown settings {unknown}; known: {sorted(MAP_SETTINGS)}")
    cfg = map_settings({**settings, "seed": seed, "perplexity": perplexity, "metric": metric})
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != len(feature_names):
        raise ValueError(f"X has shape {X.shape} but {len(feature_names)} feature names were given")
    if not np.isfinite(X).all():
        raise ValueError("fit_feature_map: X holds NaN or infinite values")
    scaler = LogNorm2Scaler(clip=cfg["scaler_clip"])
    positions = embed_features(scaler.fit_transform(X), seed=cfg["seed"], perplexity=cfg["perplexity"], n_jobs=n_jobs,
                               metric=cfg["metric"], method=cfg["method"], init=cfg["init"],
                               learning_rate=cfg["learning_rate"], square_distances=cfg["square_distances"])
    rows, cols = PLACEMENTS[cfg["placement"]](positions, height, width)
    kept = {k: v for k, v in cfg.items() if k != "seed"}
    fmap = FeatureMap(list(feature_names), height, width, rows, cols, scaler, seed=cfg["seed"], settings=kept)
    log.info("feature map %d×%d: %d features on %d pixels (at most %d per pixel)", height, width,
             fmap.n_features, int((fmap.occupancy() > 0).sum()), int(fmap.occupancy().max(initial=0)))
    return fmap
