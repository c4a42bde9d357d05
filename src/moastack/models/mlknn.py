"""``mlknn``: multi-label k-nearest neighbours (Zhang & Zhou 2007, "ML-KNN"), on scikit-learn.

For target j and a row x with neighbours N(x) among the training rows (a training row is not its own
neighbour), let δ be the number of neighbours labelled 1 for j. With Laplace smoothing s, from the
training rows labelled for j:

* prior        P(H1) = (s + #positives) / (2s + #labelled),  P(H0) = 1 - P(H1);
* likelihoods  P(δ | H1) = (s + c1[δ]) / (s(k + 1) + Σ c1),   c1[δ] = #positives whose δ is δ
               (and c0, P(δ | H0) likewise over the negatives);
* prediction   P(H1 | δ) = P(H1) P(δ | H1) / (P(H1) P(δ | H1) + P(H0) P(δ | H0)), the posterior whose
               argmax is the paper's MAP rule.

Missing labels (NaN): a row unlabelled for j is left out of j's prior and counts; as a neighbour it
is not a positive (the same rule at training and prediction time). A target whose labelled training
rows hold a single class predicts its rate, as every per-target model does.

Everything is vectorised over rows and targets: the only loop runs over the k neighbour columns.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from moastack.models.base import FitContext, TabularModel
from moastack.targets import clipped_rate


class MLKNNModel(TabularModel):
    arch = "mlknn"
    defaults = {
        "k": 10,  # neighbours
        "s": 1.0,  # Laplace smoothing
        "metric": "euclidean",  # any scikit-learn NearestNeighbors metric ("cosine", "manhattan", ...)
    }

    def check_params(self) -> None:
        k = self.param("k")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"mlknn: k must be a positive integer, got {k!r}")
        s = self.param("s")
        if isinstance(s, bool) or not isinstance(s, (int, float)) or s <= 0:
            raise ValueError(f"mlknn: s (Laplace smoothing) must be > 0, got {s!r}")
        if not isinstance(self.param("metric"), str):
            raise ValueError(f"mlknn: metric must be a metric name, got {self.param('metric')!r}")

    def _neighbours(self, threads: int):
        from sklearn.neighbors import NearestNeighbors

        return NearestNeighbors(metric=self.param("metric"), n_jobs=threads)

    def _positive_counts(self, idx: np.ndarray) -> np.ndarray:
        """δ (n × t): how many of each row's neighbours (``idx``, n × k) are positive, per target."""
        delta = np.zeros((idx.shape[0], self.positive_.shape[1]), dtype=np.int32)
        for col in range(idx.shape[1]):
            delta += self.positive_[idx[:, col]]
        return delta

    def fit(self, X, Y, X_valid, Y_valid, context: FitContext) -> MLKNNModel:
        """Count, per target, how many positives/negatives have δ positive neighbours; validation rows unused."""
        X = np.asarray(X, dtype=np.float32)
        Y = np.asarray(Y, dtype=np.float64)
        Y = Y[:, None] if Y.ndim == 1 else Y
        n, t = Y.shape
        k = min(int(self.param("k")), n - 1)
        s = float(self.param("s"))
        if k < 1:
            raise ValueError(f"mlknn: needs at least 2 training rows, got {n}")
        labelled = ~np.isnan(Y)
        pos = labelled & (np.nan_to_num(Y) > 0.5)
        neg = labelled & ~pos
        self.X_ = X
        self.positive_ = pos.astype(np.int8)
        self.nn_ = self._neighbours(int(context.threads or 1)).fit(X)
        # each training row's k neighbours other than itself (with duplicates, itself may not come first)
        idx = self.nn_.kneighbors(X, n_neighbors=k + 1, return_distance=False)
        other = idx != np.arange(n)[:, None]
        other[other.all(axis=1), -1] = False  # no self among the k + 1: drop the farthest
        idx = idx[other].reshape(n, k)
        delta = self._positive_counts(idx)
        # c1[j, d] / c0[j, d]: positives / negatives of target j with d positive neighbours
        flat = np.arange(t)[None, :] * (k + 1) + delta
        c1 = np.bincount(flat[pos], minlength=t * (k + 1)).reshape(t, k + 1)
        c0 = np.bincount(flat[neg], minlength=t * (k + 1)).reshape(t, k + 1)
        n_pos, n_lab = pos.sum(axis=0), labelled.sum(axis=0)
        self.prior_ = (s + n_pos) / (2 * s + n_lab)
        self.likelihood1_ = (s + c1) / (s * (k + 1) + c1.sum(axis=1, keepdims=True))
        self.likelihood0_ = (s + c0) / (s * (k + 1) + c0.sum(axis=1, keepdims=True))
        one_class = (n_pos == 0) | (n_pos == n_lab)
        self.constant_ = np.where(one_class, clipped_rate(Y), np.nan)  # the prior's constant
        for j in np.flatnonzero(one_class):
            context.logger.info("mlknn: target %d has one class in training; predicting %.3f", j, self.constant_[j])
        self.k_ = k
        return self

    def predict(self, X, context: FitContext | None = None) -> np.ndarray:
        """Posterior P(H1 | δ) per row and target, float32 (n × t); n may be 0."""
        X = np.asarray(X, dtype=np.float32)
        t = self.positive_.shape[1]
        if len(X) == 0:
            return np.empty((0, t), dtype=np.float32)
        if context is not None:
            self.nn_.set_params(n_jobs=int(context.threads or 1))
        idx = self.nn_.kneighbors(X, n_neighbors=self.k_, return_distance=False)
        delta = self._positive_counts(idx)
        cols = np.arange(t)[None, :]
        p1 = self.prior_[None, :] * self.likelihood1_[cols, delta]
        p0 = (1.0 - self.prior_[None, :]) * self.likelihood0_[cols, delta]
        out = p1 / (p1 + p0)
        out = np.where(np.isnan(self.constant_)[None, :], out, self.constant_[None, :])
        return np.clip(out, 0.0, 1.0).astype(np.float32)

    def state(self) -> dict[str, Any]:
        return {
            "X": self.X_, "positive": self.positive_, "k": self.k_, "prior": self.prior_,
            "likelihood1": self.likelihood1_, "likelihood0": self.likelihood0_, "constant": self.constant_,
        }  # fmt: skip

    @classmethod
    def from_state(cls, state: dict[str, Any], params: dict[str, Any]) -> MLKNNModel:
        model = cls(**params)
        model.X_ = np.asarray(state["X"], dtype=np.float32)
        model.positive_ = np.asarray(state["positive"], dtype=np.int8)
        model.k_ = int(state["k"])
        model.prior_ = np.asarray(state["prior"], dtype=np.float64)
        model.likelihood1_ = np.asarray(state["likelihood1"], dtype=np.float64)
        model.likelihood0_ = np.asarray(state["likelihood0"], dtype=np.float64)
        model.constant_ = np.asarray(state["constant"], dtype=np.float64)
        model.nn_ = model._neighbours(1).fit(model.X_)  # a deterministic index over the stored rows
        return model
