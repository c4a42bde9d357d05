"""DeepInsight rendering (mean/min/max channels) and swap-noise augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from moastack.deepinsight.augment import swap_noise
from moastack.deepinsight.render import Renderer, render_images, render_images_reference

# --------------------------------------------------------------------------- rendering

# 2 × 2 grid: features 0, 1 → (0, 0); feature 2 → (0, 1); features 3, 4 → (1, 1); pixel (1, 0) empty
ROWS = np.array([0, 0, 0, 1, 1])
COLS = np.array([0, 0, 1, 1, 1])
X_HAND = np.array([[1.0, 3.0, 5.0, -2.0, 4.0], [0.0, -1.0, 2.0, 7.0, 7.0]], dtype=np.float32)
EXPECTED = np.array([
    [[[2.0, 5.0], [0.0, 1.0]], [[1.0, 5.0], [0.0, -2.0]], [[3.0, 5.0], [0.0, 4.0]]],
    [[[-0.5, 2.0], [0.0, 7.0]], [[-1.0, 2.0], [0.0, 7.0]], [[0.0, 2.0], [0.0, 7.0]]],
], dtype=np.float32)


def _pixel(rows: np.ndarray, cols: np.ndarray, width: int) -> torch.Tensor:
    return torch.as_tensor(rows * width + cols)


def test_hand_checked_mean_min_max_with_empty_pixel():
    pixel = _pixel(ROWS, COLS, 2)
    X = torch.as_tensor(X_HAND)
    assert np.array_equal(render_images_reference(X_HAND, ROWS, COLS, 2, 2), EXPECTED)
    assert np.array_equal(render_images(X, pixel, 2, 2).numpy(), EXPECTED)
    renderer = Renderer(pixel, 2, 2)
    assert np.array_equal(renderer(X).numpy(), EXPECTED)
    assert renderer.mask.tolist() == [[True, True], [False, True]]
    assert renderer.state_dict() == {}  # buffers travel with .to() but not into saved weights


@pytest.mark.parametrize(("height", "width", "p"), [(5, 6, 30), (3, 4, 40), (1, 1, 3)])
def test_batched_render_equals_reference(height, width, p):
    rng = np.random.default_rng(height * 100 + p)
    rows, cols = rng.integers(0, height, p), rng.integers(0, width, p)
    if p >= height * width:  # make every pixel occupied: the Renderer's no-empty-pixel path
        cells = rng.permutation(height * width)
        rows[: len(cells)], cols[: len(cells)] = cells // width, cells % width
    X = rng.normal(size=(7, p)).astype(np.float32)
    expected = render_images_reference(X, rows, cols, height, width)
    pixel = _pixel(rows, cols, width)
    np.testing.assert_allclose(render_images(torch.as_tensor(X), pixel, height, width).numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(Renderer(pixel, height, width)(torch.as_tensor(X)).numpy(), expected, atol=1e-6)


def test_render_dtypes_autocast_and_errors():
    pixel = _pixel(ROWS, COLS, 2)
    X64 = torch.as_tensor(X_HAND, dtype=torch.float64)
    out = render_images(X64, pixel, 2, 2)
    assert out.dtype == torch.float64 and np.array_equal(out.numpy(), EXPECTED)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = Renderer(pixel, 2, 2)(torch.as_tensor(X_HAND))
    assert out.dtype == torch.float32 and np.array_equal(out.numpy(), EXPECTED)
    empty = Renderer(pixel, 2, 2)(torch.zeros(0, 5))
    assert empty.shape == (0, 3, 2, 2)
    with pytest.raises(ValueError, match="5"):
        Renderer(pixel, 2, 2)(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="pixel"):
        Renderer(torch.tensor([0, 4]), 2, 2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_render_on_cuda_matches_cpu():
    rng = np.random.default_rng(0)
    rows, cols = rng.integers(0, 8, 50), rng.integers(0, 8, 50)
    X = torch.as_tensor(rng.normal(size=(16, 50)).astype(np.float32))
    expected = render_images_reference(X.numpy(), rows, cols, 8, 8)
    renderer = Renderer(_pixel(rows, cols, 8), 8, 8).cuda()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        got = renderer(X.cuda())
    np.testing.assert_allclose(got.float().cpu().numpy(), expected, atol=1e-5)
    got = render_images(X.cuda(), _pixel(rows, cols, 8).cuda(), 8, 8)
    np.testing.assert_allclose(got.cpu().numpy(), expected, atol=1e-5)


# --------------------------------------------------------------------------- swap noise


def test_swap_noise_rates_and_donors():
    n, p, prob, fraction = 20_000, 100, 0.10, 0.15
    X = torch.rand(n, p, generator=torch.Generator().manual_seed(0))  # distinct values: changes are visible
    before = X.clone()
    out = swap_noise(X, prob, fraction, generator=torch.Generator().manual_seed(1))
    assert torch.equal(X, before)  # the input is untouched
    changed = out != X
    touched = changed.any(dim=1)
    assert abs(touched.float().mean().item() - prob) < 0.01
    per_row = changed[touched].sum(dim=1)
    assert per_row.float().mean().item() / p == pytest.approx(fraction, abs=0.01)
    # every swapped value comes from one other row, in the same column
    for i in torch.nonzero(touched).squeeze(1)[:200].tolist():
        cols = torch.nonzero(changed[i]).squeeze(1)
        donors = torch.nonzero((X[:, cols] == out[i, cols]).all(dim=1)).squeeze(1).tolist()
        assert len(donors) == 1 and donors[0] != i


def test_swap_noise_reproducible_and_edge_cases():
    X = torch.rand(500, 20, generator=torch.Generator().manual_seed(0))
    a = swap_noise(X, 0.5, 0.3, generator=torch.Generator().manual_seed(7))
    b = swap_noise(X, 0.5, 0.3, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b) and not torch.equal(a, X)
    for kwargs in ({"prob": 0.0}, {"fraction": 0.0}, {"fraction": 0.01}):  # 0.01 · 20 rounds to no feature
        out = swap_noise(X, **{"prob": 0.5, "fraction": 0.5, **kwargs})
        assert torch.equal(out, X) and out is not X
    assert torch.equal(swap_noise(X[:1], 1.0, 1.0), X[:1])  # one row: no other row to swap with
    everything = swap_noise(X[:2], 1.0, 1.0)
    assert torch.equal(everything, X[:2].flip(0))  # two rows, full swap: each takes the other's
    with pytest.raises(ValueError):
        swap_noise(X, 1.5, 0.1)


def test_swap_noise_columns_only_as_the_winners():
    """columns: swapped features come from those positions only (their g-/c- columns, never cp_type/cp_dose/
    cp_time), round(fraction · p) of them with p all the columns (their int(875 · 0.15) = 131)."""
    n, p = 4_000, 40
    X = torch.rand(n, p, generator=torch.Generator().manual_seed(0))
    allowed = torch.arange(3, p)
    out = swap_noise(X, 0.2, 0.15, generator=torch.Generator().manual_seed(3), columns=allowed)
    changed = out != X
    assert not changed[:, :3].any()
    touched = changed.any(dim=1)
    assert set(changed[touched].sum(dim=1).tolist()) == {6}  # round(0.15 · 40), all among the 37 allowed
    few = swap_noise(X, 1.0, 0.5, generator=torch.Generator().manual_seed(3), columns=torch.tensor([5, 7]))
    assert set((few != X).sum(dim=1).tolist()) == {2}  # capped at the allowed columns
    with pytest.raises(ValueError, match="columns"):
        swap_noise(X, 0.1, 0.1, columns=torch.tensor([p]))


def test_swap_column_index_by_name_patterns():
    from moastack.models.deepinsight import swap_column_index

    names = ["g-0", "g-1", "c-0", "cp_type_code", "cp_time_code"]
    assert swap_column_index(names, None) is None
    assert swap_column_index(names, ["g-*", "c-*"]).tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="swap_columns"):
        swap_column_index(names, ["x-*"])
