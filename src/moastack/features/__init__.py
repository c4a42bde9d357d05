"""Feature sets: fitted, named chains of DataFrame transforms (RankGauss, PCA, row stats, ...)."""

from moastack.features import (
    categorical,  # noqa: F401  (registers onehot_columns)
    fingerprints,  # noqa: F401  (registers sparse_fingerprint, maccs)
    molecular,  # noqa: F401  (registers the RDKit steps: morgan, rdkit_descriptors)
)
from moastack.features.feature_set import FeatureSet, build_feature_set, build_feature_tables, make_step
from moastack.features.feature_table import FeatureTable
from moastack.features.transformers import (
    STEP_CLASSES,
    BlockPCA,
    FeatureStep,
    OneHot,
    RankGauss,
    RowStats,
    Standardize,
    VarianceSelector,
    block_columns,
    register,
)

__all__ = [
    "STEP_CLASSES",
    "BlockPCA",
    "FeatureSet",
    "FeatureStep",
    "FeatureTable",
    "OneHot",
    "RankGauss",
    "RowStats",
    "Standardize",
    "VarianceSelector",
    "block_columns",
    "build_feature_set",
    "build_feature_tables",
    "make_step",
    "register",
]
