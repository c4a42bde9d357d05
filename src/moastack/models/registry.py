"""Architecture names → model classes, and loading of saved models.

The table of archs is :data:`moastack.archs.ARCHS`; this module imports an arch's class only when the
arch is built or loaded, so that a job that never fits an arch never imports its libraries.
"""

from __future__ import annotations

import importlib
import pickle
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from moastack.archs import arch_info

if TYPE_CHECKING:
    from moastack.models.base import TabularModel


def model_class(arch: str) -> type[TabularModel]:
    """The class registered for ``arch`` (importing its module now)."""
    module, name = arch_info(arch).target.split(":")
    return getattr(importlib.import_module(module), name)


def build_model(arch: str, params: dict[str, Any] | None = None) -> TabularModel:
    """An unfitted model of ``arch`` with the config's ``params``."""
    return model_class(arch)(**dict(params or {}))


def read_payload(path: str | Path) -> dict[str, Any]:
    """What :meth:`TabularModel.save` wrote: arch, params, state and the job's extras, on the CPU.

    ``weights_only=False`` because the file holds numpy arrays and fitted transforms besides tensors;
    load only results folders you produced (or trust), as with any pickle.
    """
    path = Path(path)
    if not zipfile.is_zipfile(path):  # a torch-free model's plain pickle (TabularModel.save)
        with open(path, "rb") as fh:
            return pickle.load(fh)
    import torch

    return torch.load(path, map_location="cpu", weights_only=False)


def model_from_payload(payload: dict[str, Any]) -> TabularModel:
    """The fitted model a saved payload holds."""
    return model_class(payload["arch"]).from_state(payload["state"], payload["params"])


def load_model(path: str | Path) -> TabularModel:
    """The fitted model saved at ``path`` by :meth:`TabularModel.save`."""
    return model_from_payload(read_payload(path))
