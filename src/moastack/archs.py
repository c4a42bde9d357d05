"""The table of registered architectures: what each is, which tasks it serves, what its jobs need.

Every arch is listed once, in :data:`ARCHS`, with the module that holds its class (imported only when the
arch is built or loaded: :mod:`moastack.models.registry`), the tasks it serves, and what its jobs must
hand it besides the rows: a transfer source's weights (``init_from``), a feature map (``feature_map``) or
the rows' molecules (``molecules``: the prepared features' ``smiles`` column), and whether it takes the
sparse block of a feature set with sparse steps (``sparse``: its ``fit``/``predict`` accept a float32 scipy
CSR ``X``; the others are refused such a feature set by the config check).
The config check reads these facts from here, never from a list of its own; this module imports nothing
heavy, so parsing the workflow does not import torch. An arch is registered only once it passes the
contract test (tests/test_arch_contract.py), which runs over this table.
"""

from __future__ import annotations

from dataclasses import dataclass

from moastack.task import MULTILABEL, REGRESSION


@dataclass(frozen=True)
class Arch:
    """One registered architecture."""

    target: str  # "module:Class"
    tasks: tuple[str, ...] = (MULTILABEL.name,)
    transfer: bool = False  # can start from another job's weights (init_from)
    feature_map: bool = False  # renders images through a fitted feature map (feature_map)
    sparse: bool = False  # takes a float32 CSR X (feature sets with sparse_fingerprint steps)
    molecules: bool = False  # reads the rows' SMILES (FitContext.smiles), not only their feature-set columns


ARCHS: dict[str, Arch] = {
    "prior": Arch("moastack.models.prior:PriorModel", sparse=True),  # reads only the number of rows
    "simple_nn": Arch("moastack.models.simple_nn:SimpleNN", sparse=True),  # densified per minibatch
    "tabnet": Arch("moastack.models.tabnet:TabNetModel"),
    "resnet2h": Arch("moastack.models.resnet:ResNet2H", transfer=True),
    "random_forest": Arch("moastack.models.sklearn_models:RandomForestModel", sparse=True),
    "deepinsight": Arch("moastack.models.deepinsight:DeepInsightCNN", feature_map=True),
    "cnn1d_soft": Arch("moastack.models.conv1d:SoftCNN1d"),
    "cnn1d": Arch("moastack.models.conv1d:PlainCNN1d"),
    "two_input_nn": Arch("moastack.models.conv1d:TwoInputNN"),
    "logistic": Arch("moastack.models.linear:LogisticModel", sparse=True),
    "svm": Arch("moastack.models.linear:SVMModel", sparse=True),
    "mlknn": Arch("moastack.models.mlknn:MLKNNModel"),
    # DMatrix takes CSR; an absent entry is "missing" (its branch is learned), not a stored 0
    "xgboost": Arch("moastack.models.boosting:XGBoostModel", sparse=True),
    "chemprop": Arch("moastack.models.dmpnn:ChempropModel", molecules=True),
    "ridge": Arch("moastack.models.regressors:RidgeRegressor", tasks=(REGRESSION.name,)),
    "mlp_regressor": Arch("moastack.models.regressors:MLPRegressor", tasks=(REGRESSION.name,)),
}


def arch_info(arch: str) -> Arch:
    """The registry entry of ``arch``; a ValueError names the known ones (likely a config typo)."""
    try:
        return ARCHS[arch]
    except KeyError:
        raise ValueError(f"unknown arch {arch!r}; known: {sorted(ARCHS)}") from None


def sparse_refusal(model: str, arch: str, features: str) -> str:
    """The error for a model whose arch cannot take its feature set's sparse block."""
    takers = [name for name, info in ARCHS.items() if info.sparse]
    return (f"models.{model}: arch {arch} cannot take the sparse block of feature set {features!r} (its "
            f"sparse_fingerprint steps); use a feature set without sparse steps, or one of the archs {takers}")


def archs_for(task: str) -> list[str]:
    """The archs that serve ``task``, in registry order."""
    return [name for name, info in ARCHS.items() if task in info.tasks]
