"""One-hot indicators of string key columns (a perturbation task's cell type and compound).

``onehot_columns`` learns each listed column's categories from the rows the feature set is fitted on
(train, or train+test with ``fit_on: train+test``) and appends one float32 0/1 column per category,
named ``<column>=<value>``. A value unseen at fit time gives an all-zero block for that column (a new
compound at inference), not an error. The raw string columns stay in the frame for later steps (Morgan
fingerprints read ``smiles``) and are never model inputs themselves.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted

from moastack.features.transformers import FeatureStep, add_columns, register


@register("onehot_columns")
class OneHotColumns(FeatureStep):
    """Append ``<column>=<value>`` indicators for the categories of each of ``columns`` (sorted values)."""

    def __init__(self, columns: Sequence[str] = ("cell_type", "compound"), max_categories: int | None = None) -> None:
        self.columns = columns
        self.max_categories = max_categories

    def _columns(self) -> list[str]:
        cols = [self.columns] if isinstance(self.columns, str) else list(self.columns)
        if not cols:
            raise ValueError("onehot_columns: columns is empty")
        return cols

    def fit(self, X: pd.DataFrame, y: None = None) -> OneHotColumns:
        cols = self._columns()
        missing = [c for c in cols if c not in X.columns]
        if missing:
            raise KeyError(f"onehot_columns: columns {missing} not in the frame (columns: {list(X.columns)[:10]}...)")
        self.columns_ = cols
        self.categories_ = {}
        for col in cols:
            values = sorted(X[col].dropna().astype(str).unique().tolist())
            if self.max_categories is not None and len(values) > int(self.max_categories):
                raise ValueError(f"onehot_columns: {col} has {len(values)} categories, more than "
                                 f"max_categories={self.max_categories}")
            self.categories_[col] = values
        self.names_out_ = [f"{col}={v}" for col in cols for v in self.categories_[col]]
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self, "categories_")
        blocks = []
        for col in self.columns_:
            index = pd.Index(self.categories_[col])
            codes = index.get_indexer(X[col].astype(str))
            codes[X[col].isna().to_numpy()] = -1  # a missing value is no category
            hot = np.zeros((len(X), len(index)), dtype=np.float32)
            seen = codes >= 0
            hot[np.flatnonzero(seen), codes[seen]] = 1.0
            blocks.append(hot)
        values = np.hstack(blocks) if blocks else np.zeros((len(X), 0), dtype=np.float32)
        return add_columns(X, self.names_out_, values)
