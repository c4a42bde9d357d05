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


def input_width(block: Block, widths: dict[str, int]) -> int:
    """Columns entering ``block``, given the output width of "a", "b" and every earlier block."""
    return sum(widths[name] for name in block.inputs)


def macs_after_head_a(head_a_width: int, n_b: int, n_out: int) -> int:
    """Multiply-adds of one row through head B, the tail and the output layer (head A priced apart)."""
    widths = {"a": int(head_a_width), "b": int(n_b)}
    macs = 0
    for block in (*HEAD_B, TAIL):
        n_in = input_width(block, widths)
        for w in block.widths:
            macs += n_in * w
            n_in = w
        widths[block.name] = n_in
    return macs + widths[TAIL.name] * int(n_out)
