

def test_balanced_pos_weight_counts_labelled_cells_only():
    import torch

    from moastack.models.losses import balanced_pos_weight

    y = torch.tensor([[1.0, 0.0, float("nan")],
                      [0.0, 0.0, 1.0],
                      [0.0, float("nan"), 0.0],
                      [0.0, 0.0, 0.0]])
    w = balanced_pos_weight(y)
    # target 0: 1 positive, 3 negatives; target 1: no positive -> 1; target 2: 1 positive, 2 negatives
    assert w.tolist() == [3.0, 1.0, 2.0]


def test_pos_weight_scales_only_positive_terms():
    import torch
    import torch.nn.functional as F

    from moastack.models.losses import bce_with_logits

    logits = torch.tensor([[0.3, -1.0], [2.0, 0.5]])
    y = torch.tensor([[1.0, float("nan")], [0.0, 1.0]])
    mask = ~torch.isnan(y)
    pw = torch.tensor([4.0, 2.0])
    got = bce_with_logits(logits, y, mask, pos_weight=pw)
    # hand: labelled cells (0,0) y=1, (1,0) y=0, (1,1) y=1
    cells = [4.0 * -F.logsigmoid(torch.tensor(0.3)), -F.logsigmoid(torch.tensor(-2.0)),
             2.0 * -F.logsigmoid(torch.tensor(0.5))]
    assert torch.isclose(got, sum(cells) / 3)
