"""Architecture names → model classes, what each arch needs, and loading of saved models.

Every arch is listed once, in :data:`ARCHS`, with the module that holds its class (imported only when
the arch is built or loaded, so that parsing the workflow, or a job that never fits that arch, does not
import torch, timm or pytorch-tabnet), the tasks it serves, and what its jobs must hand it besides the
rows: a transfer source's weights (``init_from``) or a feature map (``feature_map``). The config check
reads these facts from here, never from a list of its own. An arch is registered only once it passes
the contract test (tests/test_arch_contract.py), which runs over this table.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from moastack.task import MULTILABEL, REGRESSION

if TYPE_CHECKING:
    from moastack.models.base import TabularModel


@dataclass(frozen=True)
class Arch:
    """One registered architecture."""

    target: str  # "module:Class"
    tasks: tuple[str, ...] = (MULTILABEL.name,)
    transfer: bool = False  # can start from another job's weights (init_from)
    feature_map: bool = False  # renders images through a fitted feature map (feature_map)


ARCHS: dict[str, Arch] = {
    "prior": Arch("moastack.models.prior:PriorModel"),
    "simple_nn": Arch("moastack.models.simple_nn:SimpleNN"),
    "tabnet": Arch("moastack.models.tabnet:TabNetModel"),
    "resnet2h": Arch("moastack.models.resnet:ResNet2H", transfer=True),
    "random_forest": Arch("moastack.models.sklearn_models:RandomForestModel"),
    "deepinsight": Arch("moastack.models.deepinsight:DeepInsightCNN", feature_map=True),
    "ridge": Arch("moastack.models.regressors:RidgeRegressor", tasks=(REGRESSION.name,)),
    "mlp_regressor": Arch("moastack.models.regressors:MLPRegressor", tasks=(REGRESSION.name,)),
}


def arch_info(arch: str) -> Arch:
    """The registry entry of ``arch``; a ValueError names the known ones (likely a config typo)."""
    try:
        return ARCHS[arch]
    except KeyError:
        raise ValueError(f"unknown arch {arch!r}; known: {sorted(ARCHS)}") from None


def archs_for(task: str) -> list[str]:
    """The archs that serve ``task``, in registry order."""
    return [name for name, info in ARCHS.items() if task in info.tasks]


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
    import torch

    return torch.load(Path(path), map_location="cpu", weights_only=False)


def model_from_payload(payload: dict[str, Any]) -> TabularModel:
    """The fitted model a saved payload holds."""
    return model_class(payload["arch"]).from_state(payload["state"], payload["params"])


def load_model(path: str | Path) -> TabularModel:
    """The fitted model saved at ``path`` by :meth:`TabularModel.save`."""
    return model_from_payload(read_payload(path))
