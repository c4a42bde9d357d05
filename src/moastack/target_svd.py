"""A truncated SVD of the target matrix: predict k components, reconstruct 18k genes.

The single-cell winners regressed ~45 SVD components instead of 18,211 genes: the gene responses are
strongly correlated, so a few components carry most of the signal and the model's output layer shrinks
from 18k to k units. Fit it on the training fold only; its basis is part of the fitted model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.utils.extmath import randomized_svd, svd_flip


class TargetSVD:
    """Centered truncated SVD of Y (n × t): ``transform`` gives n × k scores, ``inverse_transform`` genes.

    Uses an exact SVD when k is a large share of min(n, t) and a seeded randomized SVD otherwise; signs are
    fixed (``svd_flip``) so a fit is deterministic. When k exceeds the data's rank the extra components are
    zero vectors, so the output width is always ``n_components``.
    """

    def __init__(self, n_components: int = 45, seed: int = 0) -> None:
        if int(n_components) < 1:
            raise ValueError(f"n_components must be >= 1, got {n_components}")
        self.n_components = int(n_components)
        self.seed = int(seed)

    def fit(self, Y: np.ndarray) -> TargetSVD:
        Y = np.asarray(Y, dtype=np.float32)
        if Y.ndim != 2 or len(Y) == 0:
            raise ValueError(f"TargetSVD needs a non-empty 2-D target matrix, got shape {Y.shape}")
        n, t = Y.shape
        k = self.n_components
        self.mean_ = Y.mean(axis=0, dtype=np.float64).astype(np.float32)
        Yc = Y - self.mean_
        r = min(n, t)
        if k >= 0.5 * r or r <= 64:
            u, s, vt = np.linalg.svd(Yc.astype(np.float64), full_matrices=False)
            u, vt = svd_flip(u, vt, u_based_decision=False)
        else:
            u, s, vt = randomized_svd(Yc, k, n_oversamples=max(10, k), n_iter=7, random_state=self.seed,
                                      flip_sign=False)
            u, vt = svd_flip(u, vt, u_based_decision=False)
        s, vt = s[:k], vt[:k]
        components = np.zeros((k, t), dtype=np.float32)
        components[: len(vt)] = vt
        singular = np.zeros(k, dtype=np.float64)
        singular[: len(s)] = s
        total = float(np.square(Yc, dtype=np.float64).sum())
        self.components_ = components
        self.singular_values_ = singular.astype(np.float32)
        self.explained_variance_ratio_ = (singular**2 / total if total > 0 else np.zeros(k)).astype(np.float32)
        self.n_targets_ = t
        return self

    def transform(self, Y: np.ndarray) -> np.ndarray:
        """Component scores (n × k) of Y, float32."""
        Y = np.asarray(Y, dtype=np.float32)
        if Y.ndim != 2 or Y.shape[1] != self.n_targets_:
            raise ValueError(f"expected (n, {self.n_targets_}) targets, got {Y.shape}")
        return ((Y - self.mean_) @ self.components_.T).astype(np.float32, copy=False)

    def inverse_transform(self, Z: np.ndarray) -> np.ndarray:
        """Targets (n × t) reconstructed from component scores, float32."""
        Z = np.asarray(Z, dtype=np.float32)
        if Z.ndim != 2 or Z.shape[1] != self.n_components:
            raise ValueError(f"expected (n, {self.n_components}) scores, got {Z.shape}")
        return (Z @ self.components_ + self.mean_).astype(np.float32, copy=False)

    def fit_transform(self, Y: np.ndarray) -> np.ndarray:
        return self.fit(Y).transform(Y)

    def state(self) -> dict[str, Any]:
        """Plain arrays for a model's saved state."""
        return {"n_components": self.n_components, "seed": self.seed, "mean": self.mean_,
                "components": self.components_, "singular_values": self.singular_values_,
                "explained_variance_ratio": self.explained_variance_ratio_}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> TargetSVD:
        svd = cls(state["n_components"], state["seed"])
        svd.mean_ = np.asarray(state["mean"], dtype=np.float32)
        svd.components_ = np.asarray(state["components"], dtype=np.float32)
        svd.singular_values_ = np.asarray(state["singular_values"], dtype=np.float32)
        svd.explained_variance_ratio_ = np.asarray(state["explained_variance_ratio"], dtype=np.float32)
        svd.n_targets_ = int(svd.components_.shape[1])
        return svd
