"""Architecture names → model classes, and loading of saved models.

The config's ``arch`` key picks a class here (multilabel classifiers, and the regressors of
:mod:`moastack.regression.models` for ``data.task: regression``; :func:`arch_task` says which); :func:`load_model` reads what
:meth:`TabularModel.save` wrote (arch, params, state) and rebuilds the fitted model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from moastack.models.base import TabularModel
from moastack.models.prior import PriorModel
from moastack.models.resnet import ResNet2H
from moastack.models.simple_nn import SimpleNN
from moastack.models.sklearn_models import RandomForestModel
from moastack.models.tabnet import TabNetModel  # imports pytorch-tabnet only when a TabNet is fitted or loaded
from moastack.regression.models import ARCHS as REGRESSION_ARCHS

ARCHS: dict[str, type[TabularModel]] = {
    "prior": PriorModel,
    "simple_nn": SimpleNN,
    "tabnet": TabNetModel,
    "resnet2h": ResNet2H,
    "random_forest": RandomForestModel,
    **REGRESSION_ARCHS,  # ridge, mlp_regressor
}


def arch_task(arch: str) -> str:
    """``regression`` for the regressors (continuous targets, MRRMSE), ``multilabel`` for every other arch."""
    return "regression" if arch in REGRESSION_ARCHS else "multilabel"


def _lazy_archs() -> dict[str, str]:
    """Architectures whose module imports a heavy library (timm), loaded only when named."""
    return {"deepinsight": "moastack.models.deepinsight:DeepInsightCNN"}


def model_class(arch: str) -> type[TabularModel]:
    """The class registered for ``arch``; a ValueError names the known ones (likely a config typo)."""
    if arch in ARCHS:
        return ARCHS[arch]
    lazy = _lazy_archs()
    if arch in lazy:
        import importlib

        module, name = lazy[arch].split(":")
        return getattr(importlib.import_module(module), name)
    raise ValueError(f"unknown arch {arch!r}; known: {sorted([*ARCHS, *lazy])}")


def build_model(arch: str, params: dict[str, Any] | None = None) -> TabularModel:
    """An unfitted model of ``arch`` with the config's ``params``."""
    return model_class(arch)(**dict(params or {}))


def load_model(path: str | Path) -> TabularModel:
    """The fitted model saved at ``path`` by :meth:`TabularModel.save`, on the CPU.

    ``weights_only=False`` because the file holds numpy arrays and plain dicts besides tensors; it is
    safe only because we read our own pipeline's files.
    """
    import torch

    payload = torch.load(Path(path), map_location="cpu", weights_only=False)
    return model_class(payload["arch"]).from_state(payload["state"], payload["params"])
