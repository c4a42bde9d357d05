"""The interface every moastack model implements.

A model is fitted once per seed × fold: ``fit`` sees the training rows and the fold's validation
rows (for early stopping and learning curves), ``predict`` returns the task's predictions
(probabilities in [0, 1] for a multilabel task, target units for a regression task).

Hyper-parameters come from the config's ``params`` block and are stored as given, like a
scikit-learn estimator: each class lists its params and their defaults in ``defaults``, and this base
class rejects unknown keys (a config typo fails at once) and reads a param or its default
(:meth:`TabularModel.param`). Everything a model learns from arrives through ``fit``: the data, and the
:class:`FitContext` (seed, device, the columns' names, a transfer source's weights, a feature map);
learned state lives in attributes with a trailing underscore.
"""

from __future__ import annotations

import logging
import pickle
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

log = logging.getLogger(__name__)


@dataclass
class FitContext:
    """What a job gives a model besides its rows: where and how hard to run, and what it learns from.

    ``feature_names`` name the columns of X (models that pick columns by name read them);
    ``init_state`` is a transfer source's fitted :meth:`TabularModel.state` (``init_from``);
    ``feature_map`` is the fitted DeepInsight map of the model's feature set; ``aux_targets`` are the
    training rows' labels of another target table (the model entry's ``aux_targets``, e.g. non-scored).

    ``smiles`` / ``smiles_valid`` are the molecules of the rows, for an arch that reads them
    (``Arch.molecules``; None for the others): in ``fit``, those of X's and X_valid's rows; in ``predict``,
    ``smiles`` holds those of the predicted rows (:meth:`for_rows` gives the job's context for other rows).
    """

    seed: int = 0
    device: str = "cpu"  # "cpu" or "cuda"; already resolved from the config's cpu|cuda|auto
    threads: int = 1
    logger: logging.Logger = field(default_factory=lambda: log)
    feature_names: list[str] | None = None
    init_state: dict[str, Any] | None = None
    feature_map: Any = None
    aux_targets: np.ndarray | None = None
    smiles: np.ndarray | None = None
    smiles_valid: np.ndarray | None = None

    def for_rows(self, smiles: np.ndarray | None) -> FitContext:
        """This context for predicting other rows, whose molecules are ``smiles`` (None: rows without any)."""
        return replace(self, smiles=None if smiles is None else np.asarray(smiles, dtype=object), smiles_valid=None)


class TabularModel(ABC):
    """One model of one seed × fold."""

    #: architecture name used in the config's ``arch`` key
    arch: ClassVar[str] = ""
    #: the architecture's params and their defaults
    defaults: ClassVar[dict[str, Any]] = {}
    #: whether fitting and saving need torch (a job of a model that does not never imports it: seconds saved)
    uses_torch: ClassVar[bool] = False

    def __init__(self, **params: Any) -> None:
        known = self.known_params()
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(f"{self.arch or type(self).__name__}: unknown params {unknown}; known: {sorted(known)}")
        self.params = dict(params)
        #: per-epoch records: {"epoch", "train_loss", "valid_loss", "lr"} (empty for non-iterative models)
        self.history_: list[dict[str, float]] = []
        self.check_params()

    @classmethod
    def known_params(cls) -> set[str]:
        """The keys a config's ``params`` block may hold for this arch."""
        return set(cls.defaults)

    def param(self, key: str) -> Any:
        """The configured value of ``key``, or its default."""
        return self.params.get(key, self.defaults[key])

    def check_params(self) -> None:  # noqa: B027 (optional hook, not abstract)
        """Value checks at construction, so that a bad config fails before any data is read."""

    @abstractmethod
    def fit(
        self,
        X: np.ndarray,
        Y: np.ndarray,
        X_valid: np.ndarray | None,
        Y_valid: np.ndarray | None,
        context: FitContext,
    ) -> TabularModel:
        """Fit on float32 ``X`` (n × p; float32 CSR for an arch registered with
        ``sparse=True`` in :mod:`moastack.archs`) and ``Y`` (n × t, NaN = missing label);
        validation arrays may be None."""

    @abstractmethod
    def predict(self, X: np.ndarray, context: FitContext | None = None) -> np.ndarray:
        """Return float32 predictions, shape (n, t)."""

    @abstractmethod
    def state(self) -> dict[str, Any]:
        """Everything needed to rebuild the fitted model (numpy arrays / torch state dicts)."""

    @classmethod
    @abstractmethod
    def from_state(cls, state: dict[str, Any], params: dict[str, Any]) -> TabularModel:
        """Rebuild a fitted model from :meth:`state` and its constructor ``params``."""

    def save(self, path: str | Path, extras: dict[str, Any] | None = None) -> None:
        """Write the fitted model (and the job's ``extras``: its fold pipeline, targets...): with ``torch.save``
        when the state holds tensors, otherwise as a plain pickle, so a torch-free job never imports torch
        (:func:`moastack.models.registry.read_payload` reads both)."""
        from moastack.io import atomic_path

        payload = {"arch": self.arch, "params": self.params, "state": self.state(), "extras": extras or {}}
        with atomic_path(path) as tmp:
            if self.uses_torch:
                import torch

                torch.save(payload, tmp)
            else:
                with open(tmp, "wb") as fh:
                    pickle.dump(payload, fh, protocol=pickle.HIGHEST_PROTOCOL)


def resolve_device(requested: str, uses_torch: bool = True) -> str:
    """Map the config's ``device`` (cpu | cuda | auto) to what this process can use. A model that does not
    use torch runs on the CPU unless it asks for cuda (its own library then checks the device)."""
    if requested == "cpu":
        return "cpu"
    if not uses_torch:
        return "cuda" if requested == "cuda" else "cpu"
    import torch

    if requested == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("model asks for device: cuda but torch sees no CUDA device on this node")
        return "cuda"
    return "cuda" if torch.cuda.is_available() else "cpu"
