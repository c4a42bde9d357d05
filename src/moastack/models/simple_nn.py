"""The winners' "simple NN": a 3-FC network (two hidden layers of 2048) on transformed features.

Layout per hidden layer, as in the public MoA notebooks: BatchNorm → Dropout → Linear → activation;
then BatchNorm → Dropout → Linear to the target logits. :func:`build_mlp` is shared by the 3-stage
NN's stages and other fully connected models.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from moastack.models.trainer import TorchTabularModel

ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "elu": nn.ELU}


class FastDropout(nn.Module):
    """``nn.Dropout`` with a cheaper mask on CPU.

    torch's CPU dropout (``bernoulli_``) costs ≈ 7 ms for a 256 × 2048 batch on one core, nearly a tenth
    of a whole hidden-2048 training step. Here one 64-bit draw of the same seeded generator gives four
    uniform 16-bit numbers, compared with ``p`` in a single pass that writes the float mask: ≈ 0.9 ms.
    The keep probability is 1 − round(p·2¹⁶)/2¹⁶, within 2⁻¹⁷ of 1 − p. Elsewhere (CUDA) and in
    eval mode it is exactly ``F.dropout``.
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability must be in [0, 1], got {p}")
        self.p = float(p)
        self._threshold = round(self.p * 2**16) - 2**15  # keep where a signed 16-bit draw >= this

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.device.type != "cpu" or self.p == 1.0 or not x.is_floating_point():
            return F.dropout(x, self.p, training=True)
        n = x.numel()
        words = torch.empty((n + 3) // 4, dtype=torch.int64).random_(-(2**63), None)  # all 64 bits random
        draws = words.view(torch.int16)[:n].view(x.shape)
        mask = torch.ge(draws, self._threshold, out=torch.empty(x.shape, dtype=x.dtype))
        return x * mask.mul_(1.0 / (1.0 - self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}"


def _per_layer(value: float | Sequence[float], n: int, name: str) -> list[float]:
    """Broadcast a scalar to ``n`` layers, or check that a list has one entry per layer."""
    if isinstance(value, (int, float)):
        return [float(value)] * n
    values = [float(v) for v in value]
    if len(values) != n:
        raise ValueError(f"{name} needs 1 or {n} values (one per Linear layer), got {len(values)}")
    return values


def _per_layer_flags(value: bool | Sequence[bool], n: int, name: str) -> list[bool]:
    """Broadcast one flag to ``n`` layers, or check that a list has one flag per layer."""
    if isinstance(value, bool):
        return [value] * n
    flags = list(value) if isinstance(value, (list, tuple)) else []
    if len(flags) != n or not all(isinstance(f, bool) for f in flags):
        raise ValueError(f"{name} needs true/false or {n} of them (one per Linear layer), got {value!r}")
    return flags


def build_mlp(
    n_in: int,
    n_out: int,
    hidden: Sequence[int],
    dropout: float | Sequence[float] = 0.0,
    batch_norm: bool = True,
    activation: str = "relu",
    weight_norm: bool | Sequence[bool] = False,
) -> nn.Sequential:
    """[BN → Dropout → Linear → act] per hidden size, then BN → Dropout → Linear(n_out) logits.

    ``dropout`` is one value or one per Linear layer (len(hidden) + 1), the first acting on the inputs;
    ``weight_norm`` likewise one flag or one per Linear layer (the winners' simple NNs weight-normalise
    the first and the last: ``[true, false, true]``).
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    sizes = [int(n_in), *[int(h) for h in hidden], int(n_out)]
    drops = _per_layer(dropout, len(sizes) - 1, "dropout")
    norms = _per_layer_flags(weight_norm, len(sizes) - 1, "weight_norm")
    layers: list[nn.Module] = []
    for i, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        if batch_norm:
            layers.append(nn.BatchNorm1d(d_in))
        if drops[i] > 0:
            layers.append(FastDropout(drops[i]))
        linear = nn.Linear(d_in, d_out)
        if norms[i]:
            linear = nn.utils.parametrizations.weight_norm(linear)
        layers.append(linear)
        if i < len(sizes) - 2:
            # in place: the Linear's output is not needed by its backward, and it saves a pass (≈ 1%)
            layers.append(ACTIVATIONS[activation](inplace=True))
    return nn.Sequential(*layers)


def hidden_sizes(params: dict[str, Any], defaults: dict[str, Any]) -> list[int]:
    """``hidden: [2048, 2048]`` wins; else ``hidden_size`` (an int, or a list) × ``n_hidden`` layers."""
    hidden = params.get("hidden", defaults.get("hidden"))
    if hidden is not None:
        return [int(h) for h in ([hidden] if isinstance(hidden, int) else hidden)]
    size = params.get("hidden_size", defaults["hidden_size"])
    if not isinstance(size, int):
        return [int(h) for h in size]
    return [int(size)] * int(params.get("n_hidden", defaults["n_hidden"]))


class SimpleNN(TorchTabularModel):
    """3-FC NN (2048 hidden) with label smoothing, Adam wd 1e-5, OneCycleLR max 1e-2, batch 256,
    early stopping patience 10 (REFERENCE.md "Simple NN")."""

    arch = "simple_nn"
    defaults = {
        "hidden_size": 2048,
        "n_hidden": 2,  # 3-FC = 2 hidden layers + output
        "hidden": None,
        "dropout": None,  # None: 0.2 on the inputs, 0.5 before every later Linear (= [0.2, 0.5, 0.5])
        "batch_norm": True,
        "activation": "relu",
        "weight_norm": False,
    }
    # REFERENCE.md names label smoothing without a value; 1e-3 is the public MoA notebooks' choice
    train_defaults = {"label_smoothing": 1e-3}

    def build_module(self, n_in: int, n_out: int) -> nn.Module:
        hidden = hidden_sizes(self.params, self.defaults)
        dropout = self.param("dropout")
        return build_mlp(
            n_in,
            n_out,
            hidden,
            dropout=[0.2] + [0.5] * len(hidden) if dropout is None else dropout,
            batch_norm=bool(self.param("batch_norm")),
            activation=str(self.param("activation")),
            weight_norm=self.param("weight_norm"),
        )
