"""The prior baseline: every target predicted at its training frequency.

It is the floor every real model must beat; on lish-moa it scores about 0.0215 on the private LB.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from moastack.models.base import FitContext, TabularModel
from moastack.targets import RATE_CLIP, clipped_rate


class PriorModel(TabularModel):
    arch = "prior"
    defaults = {"clip": RATE_CLIP}

    def fit(self, X, Y, X_valid, Y_valid, context: FitContext) -> PriorModel:
        clip = float(self.param("clip"))
        # over labelled cells only (Tox21 has gaps); a target with no label at all gets 0.5
        self.prior_ = clipped_rate(Y, clip).astype(np.float32)
        return self

    def predict(self, X, context: FitContext | None = None) -> np.ndarray:
        return np.broadcast_to(self.prior_, (X.shape[0], len(self.prior_))).astype(np.float32)

    def state(self) -> dict[str, Any]:
        return {"prior": self.prior_}

    @classmethod
    def from_state(cls, state: dict[str, Any], params: dict[str, Any]) -> PriorModel:
        model = cls(**params)
        model.prior_ = np.asarray(state["prior"], dtype=np.float32)
        return model
