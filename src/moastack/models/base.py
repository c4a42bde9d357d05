"""The interface every moastack model implements.

A model is fitted once per seed × fold: ``fit`` sees the training rows and the fold's validation
rows (for early stopping and learning curves), ``predict`` returns probabilities in [0, 1].
Hyper-parameters come from the config's ``params`` block and are stored as given, like a
scikit-learn estimator; learned state lives in attributes with a trailing underscore.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


@dataclass
class FitContext:
    """What a job gives a model besides data: where and how hard to run."""

    seed: int = 0
    device: str = "cpu"  # "cpu" or "cuda"; already resolved from the config's cpu|cuda|auto
    threads: int = 1
    logger: logging.Logger = field(default_factory=lambda: log)


class TabularModel(ABC):
    """One model of one seed × fold."""

    #: architecture name used in the config's ``arch`` key
    arch: str = ""

    def __init__(self, **params: Any) -> None:
        self.params = dict(params)
        #: per-epoch records: {"epoch", "train_loss", "valid_loss", "lr"} (empty for non-iterative models)
        self.history_: list[dict[str, float]] = []

    @abstractmethod
    def fit(
        self,
        X: np.ndarray,
        Y: np.ndarray,
        X_valid: np.ndarray | None,
        Y_valid: np.ndarray | None,
        context: FitContext,
    ) -> TabularModel:
        """Fit on float32 ``X`` (n × p) and binary/soft ``Y`` (n × t); validation arrays may be None."""

    @abstractmethod
    def predict(self, X: np.ndarray, context: FitContext | None = None) -> np.ndarray:
        """Return float32 probabilities, shape (n, t)."""

    @abstractmethod
    def state(self) -> dict[str, Any]:
        """Everything needed to rebuild the fitted model (numpy arrays / torch state dicts)."""

    @classmethod
    @abstractmethod
    def from_state(cls, state: dict[str, Any], params: dict[str, Any]) -> TabularModel:
        """Rebuild a fitted model from :meth:`state` and its constructor ``params``."""

    def save(self, path: str | Path, extras: dict[str, Any] | None = None) -> None:
        """Write the fitted model (and the job's ``extras``: feature names, meta transform...)."""
        import torch

        from moastack.io import atomic_path

        payload = {"arch": self.arch, "params": self.params, "state": self.state(), "extras": extras or {}}
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)


def resolve_device(requested: str) -> str:
    """Map the config's ``device`` (cpu | cuda | auto) to what this process can use."""
    import torch

    if requested == "cpu":
        return "cpu"
    if requested == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("model asks for device: cuda but torch sees no CUDA device on this node")
        return "cuda"
    return "cuda" if torch.cuda.is_available() else "cpu"
