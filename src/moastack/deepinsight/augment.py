"""Swap-noise augmentation: the winners' regulariser for the DeepInsight CNNs.

A sample keeps its labels but some of its features come from another sample, so the CNN cannot rely
on any single pixel. Applied to the scaled feature rows before rendering, once per epoch over the whole
(shuffled) training matrix, so donors are any other training row, not just rows of the same batch.
"""

from __future__ import annotations

import torch


def swap_noise(
    X: torch.Tensor, prob: float = 0.10, fraction: float = 0.15, generator: torch.Generator | None = None,
    columns: torch.Tensor | None = None,
) -> torch.Tensor:
    """A copy of ``X`` (n × p) where each row, with probability ``prob``, takes ``round(fraction·p)``
    of its features (chosen per row) from one other random row (same columns).

    ``columns``: the positions the swapped features are drawn from (the winners': the g-/c- columns, never
    cp_type/cp_dose/cp_time); their number is still ``round(fraction·p)`` of all p columns, as theirs
    (``int(p · 0.15)`` of all columns, drawn among the g-/c-), at most all of ``columns``. None: every column.

    Vectorised: one Bernoulli draw per row, one donor per row (a uniform *different* row), one random
    ranking per touched row to pick its columns. ``X`` itself is never modified.
    """
    if not 0.0 <= prob <= 1.0 or not 0.0 <= fraction <= 1.0:
        raise ValueError(f"swap_noise: prob and fraction must be in [0, 1], got {prob}, {fraction}")
    if X.dim() != 2:
        raise ValueError(f"swap_noise: expected an (n × p) matrix, got shape {tuple(X.shape)}")
    out = X.clone()
    n, p = X.shape
    if columns is not None:
        columns = torch.as_tensor(columns, dtype=torch.long, device=X.device)
        if columns.dim() != 1 or len(columns) == 0 or int(columns.min()) < 0 or int(columns.max()) >= p:
            raise ValueError(f"swap_noise: columns must be a non-empty 1-D index into the {p} columns")
    k = int(round(fraction * p))
    pool = p if columns is None else len(columns)
    k = min(k, pool)
    if n < 2 or k == 0 or prob == 0.0:
        return out
    device = X.device
    touched = torch.nonzero(torch.rand(n, generator=generator, device=device) < prob).squeeze(1)
    if len(touched) == 0:
        return out
    offset = torch.randint(1, n, (len(touched),), generator=generator, device=device)
    donors = (touched + offset) % n  # never the row itself
    cols = torch.rand(len(touched), pool, generator=generator, device=device).argsort(dim=1)[:, :k]
    if columns is not None:
        cols = columns[cols]
    out[touched.unsqueeze(1), cols] = X[donors.unsqueeze(1), cols]
    return out
