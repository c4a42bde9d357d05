"""The winners' concat ResNet graph (``resnet2h`` with ``layout: concat``) as data, without torch.

The network (``resnet.ConcatResNetModule``) is built from these blocks and the planner (``plan.py``)
prices a job from them, so the two cannot drift apart and the planner does not import torch.
"""

from __future__ import annotations

from typing import NamedTuple


class Block(NamedTuple):
    """A dense block fed by the concatenation of ``inputs``: earlier blocks' outputs, ``"a"`` (head A's
    output) or ``"b"`` (the block-B columns)."""

    name: str
    inputs: tuple[str, ...]
    widths: tuple[int, ...]
    dropout: float
    activations: tuple[str, ...]


# 2heads-ResNest-train.py, lines 293-346; "tail" always ends at 206 units (the scored targets of phase 2)
HEAD_B = (
    Block("a1", ("a", "b"), (512,), 0.3, ("relu",)),
    Block("a2", ("a", "b", "a1"), (512, 256), 0.0, ("elu", "relu")),
    Block("a3", ("a1", "a2"), (256,), 0.0, ("elu",)),
    Block("a3_", ("a1", "a2", "a3"), (256,), 0.0, ("relu",)),
)
TAIL = Block("tail", ("a", "a2", "a3", "a3_"), (256, 206), 0.0, ("selu", "selu"))
BLOCKS = (*HEAD_B, TAIL)


def input_widths(head_a_width: int, n_b: int) -> dict[str, int]:
    """Columns entering each block, given head A's output width and the number of block-B columns."""
    out, entering = {"a": int(head_a_width), "b": int(n_b)}, {}
    for block in BLOCKS:
        entering[block.name] = sum(out[name] for name in block.inputs)
        out[block.name] = block.widths[-1]
    return entering
