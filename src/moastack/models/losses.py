"""Binary cross-entropy variants used by the neural models.

The winners trained on smoothed targets (``y·(1−s) + s/2``), which keeps the network from pushing rare
targets' logits towards ±∞; the 3-stage NN also clips the smoothed targets. Missing labels (NaN, as in
Tox21-like data) are ignored through a mask: the loss is the mean over labelled cells only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def smooth_targets(
    targets: torch.Tensor, smoothing: float = 0.0, clip: tuple[float, float] | None = None
) -> torch.Tensor:
    """Return ``targets·(1−s) + 0.5·s`` clipped to ``[lo, hi]``; the same tensor when both are off."""
    if smoothing:
        targets = targets * (1.0 - smoothing) + 0.5 * smoothing
    if clip is not None:
        lo, hi = clip
        targets = targets.clamp(float(lo), float(hi))
    return targets


def label_mask(targets: torch.Tensor) -> torch.Tensor | None:
    """Boolean mask of labelled (non-NaN) cells, or None when every cell is labelled (the fast path)."""
    mask = ~torch.isnan(targets)
    return None if bool(mask.all()) else mask


def bce_with_logits(
    logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None = None, reduction: str = "mean",
    pos_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """BCE on logits; with ``mask`` only labelled cells count ("mean" divides by their number).

    Without a mask this is exactly ``F.binary_cross_entropy_with_logits``, so the common case costs
    nothing extra. Unlabelled cells may hold NaN: they are replaced before the loss and zeroed after.
    ``pos_weight`` (one factor per target) scales the positive term, for rare positives (Tox21).
    """
    if mask is None:
        return F.binary_cross_entropy_with_logits(logits, targets, reduction=reduction, pos_weight=pos_weight)
    safe_targets = torch.where(mask, targets, torch.zeros((), dtype=targets.dtype, device=targets.device))
    cell = F.binary_cross_entropy_with_logits(logits, safe_targets, reduction="none", pos_weight=pos_weight)
    total = torch.where(mask, cell, torch.zeros((), dtype=cell.dtype, device=cell.device)).sum()
    if reduction == "sum":
        return total
    if reduction != "mean":
        raise ValueError(f"reduction must be 'mean' or 'sum' with a mask, got {reduction!r}")
    return total / mask.sum().clamp_min(1)


def log_shrink_pos_weight(targets: torch.Tensor, offset: float = 100.0) -> torch.Tensor:
    """The 2nd-place 1-D CNN's weights: ``min_k log(n_k + offset) / log(n_j + offset)`` for target j with
    n_j labelled positives, so the rarest target keeps weight 1 and frequent targets' positives weigh less."""
    positives = torch.nan_to_num(targets, nan=0.0).sum(dim=0)
    logs = torch.log(positives + offset)
    return logs.min() / logs


def balanced_pos_weight(targets: torch.Tensor, max_weight: float = 50.0) -> torch.Tensor:
    """Per-target ``negatives / positives`` over labelled cells, capped, 1 for a target with no positive:
    each target's positives then weigh as much as its negatives in the loss."""
    mask = ~torch.isnan(targets)
    y = torch.nan_to_num(targets, nan=0.0)
    pos = (y * mask).sum(dim=0)
    neg = ((1 - y) * mask).sum(dim=0)
    weight = torch.where(pos > 0, neg / pos.clamp_min(1e-12), torch.ones_like(pos))
    return weight.clamp(1.0, max_weight)


class SmoothBCEWithLogits(nn.Module):
    """Label-smoothed (and optionally clipped) BCE on logits, with an optional label mask."""

    def __init__(self, smoothing: float = 0.0, clip: tuple[float, float] | None = None) -> None:
        super().__init__()
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"label smoothing must be in [0, 1), got {smoothing}")
        if clip is not None and not (0.0 <= clip[0] < clip[1] <= 1.0):
            raise ValueError(f"target clip must satisfy 0 <= lo < hi <= 1, got {clip}")
        self.smoothing = float(smoothing)
        self.clip = None if clip is None else (float(clip[0]), float(clip[1]))

    def smooth(self, targets: torch.Tensor) -> torch.Tensor:
        """The training targets; the trainer calls this once per fit rather than once per batch."""
        return smooth_targets(targets, self.smoothing, self.clip)

    def forward(
        self, logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        return bce_with_logits(logits, self.smooth(targets), mask)

    def extra_repr(self) -> str:
        return f"smoothing={self.smoothing}, clip={self.clip}"
