"""DeepInsight feature map: the log scaler, t-SNE placement, minimum-area rectangle, persistence."""

from __future__ import annotations

import numpy as np
import pytest

from moastack.deepinsight.feature_map import (
    FeatureMap,
    LogNorm2Scaler,
    embed_features,
    fit_feature_map,
    image_shape,
    map_settings,
    min_area_rotation,
    positions_to_pixels,
    pydeepinsight_pixels,
    rotate,
)


def grouped(n: int = 200, groups: int = 8, per: int = 5, noise: float = 0.3, seed: int = 0) -> np.ndarray:
    """n × (groups·per) matrix: each block of ``per`` features shares one latent factor."""
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n, groups))
    return (Z.repeat(per, axis=1) + noise * rng.normal(size=(n, groups * per))).astype(np.float32)


def names(p: int) -> list[str]:
    return [f"g-{i}" for i in range(p // 2)] + [f"c-{i}" for i in range(p // 2, p - 1)] + ["cp_time"]


@pytest.fixture(scope="module")
def fmap() -> FeatureMap:
    return fit_feature_map(grouped(), names(40), 12, 16, seed=3)


# --------------------------------------------------------------------------- scaler


def test_scaler_hand_values_and_clipping():
    X = np.array([[-1.0, 0.0], [1.0, 2.0]])
    scaler = LogNorm2Scaler().fit(X)
    # shift |min| + 1 = [2, 1] → log([[1, 1], [3, 3]]) = [[0, 0], [ln 3, ln 3]]; global max ln 3
    assert scaler.transform(X) == pytest.approx(np.array([[0.0, 0.0], [1.0, 1.0]]))
    assert scaler.max_ == pytest.approx(np.log(3.0))
    unseen = scaler.transform(np.array([[-5.0, -5.0], [7.0, 2.0]]))
    assert unseen[0].tolist() == [0.0, 0.0]  # below the training min: clipped at log(1) = 0
    assert unseen[1, 0] == pytest.approx(np.log(9.0) / np.log(3.0))  # above the max: may exceed 1
    assert unseen.dtype == np.float32
    again = LogNorm2Scaler.from_arrays(scaler.min_, scaler.max_)
    assert np.array_equal(again.transform(X), scaler.transform(X))


def test_scaler_constant_zero_matrix_does_not_divide_by_zero():
    assert np.all(LogNorm2Scaler().fit_transform(np.zeros((3, 2))) == 0.0)


# --------------------------------------------------------------------------- placement


def test_map_deterministic_and_inside_grid(fmap):
    again = fit_feature_map(grouped(), names(40), 12, 16, seed=3)
    assert np.array_equal(fmap.rows, again.rows) and np.array_equal(fmap.cols, again.cols)
    assert fmap.rows.shape == fmap.cols.shape == (40,)
    assert fmap.rows.min() >= 0 and fmap.rows.max() <= 11
    assert fmap.cols.min() >= 0 and fmap.cols.max() <= 15
    # min-max scaling uses the whole grid: both ends of both axes are reached
    assert {fmap.rows.min(), fmap.rows.max(), fmap.cols.min(), fmap.cols.max()} == {0, 11, 15}
    assert np.array_equal(fmap.pixel_index, fmap.rows * 16 + fmap.cols)
    assert fmap.occupancy().sum() == 40


def test_correlated_features_land_near_each_other(fmap):
    xy = np.stack([fmap.rows, fmap.cols], axis=1).astype(float)
    dist = np.linalg.norm(xy[:, None] - xy[None], axis=-1)
    group = np.arange(40) // 5
    same = group[:, None] == group[None]
    off_diag = ~np.eye(40, dtype=bool)
    within, between = dist[same & off_diag].mean(), dist[~same].mean()
    assert within < 0.5 * between, (within, between)


def test_min_area_rectangle_recovers_axis_alignment():
    gx, gy = np.meshgrid(np.linspace(0, 10, 11), np.linspace(0, 2, 5))
    rect = np.stack([gx.ravel(), gy.ravel()], axis=1)
    angle = 0.3
    points = rotate(rect, angle) + np.array([5.0, -3.0])
    found = min_area_rotation(points)
    assert np.isclose(np.mod(found - angle + np.pi / 4, np.pi / 2), np.pi / 4, atol=1e-9)
    spans = sorted(np.ptp(rotate(points, -found), axis=0))
    assert spans == pytest.approx([2.0, 10.0])
    rows, cols = positions_to_pixels(points, 3, 11)  # long side along the width
    corners = {(int(r), int(c)) for r, c in zip(rows, cols)}
    assert {(0, 0), (0, 10), (2, 0), (2, 10)} <= corners
    assert len(corners) == 33  # 11 × 5 points on 11 × 3 pixels: every pixel used
    rows_t, cols_t = positions_to_pixels(points, 11, 3)  # a tall grid: the long side goes down the rows
    assert rows_t.max() == 10 and cols_t.max() == 2 and len(set(zip(rows_t, cols_t))) == 33


@pytest.mark.parametrize("p", [1, 2, 3, 5])
def test_tiny_feature_counts_do_not_crash(p):
    X = np.random.default_rng(p).normal(size=(30, p))
    fm = fit_feature_map(X, [f"f{j}" for j in range(p)], 4, 5)
    assert fm.rows.shape == (p,) and fm.rows.max() < 4 and fm.cols.max() < 5


def test_collinear_and_coincident_positions():
    line = np.stack([np.arange(6.0), 2 * np.arange(6.0)], axis=1)
    rows, cols = positions_to_pixels(line, 2, 6)
    assert rows.max() == 0 and sorted(cols) == [0, 1, 2, 3, 4, 5]  # the line lies along the width
    rows, cols = positions_to_pixels(np.ones((4, 2)), 3, 3)
    assert rows.tolist() == cols.tolist() == [0, 0, 0, 0]
    X = np.tile(np.arange(5.0), (10, 1))  # identical rows: every feature is a constant column
    fm = fit_feature_map(X, [f"f{j}" for j in range(5)], 3, 3)
    assert fm.rows.max() < 3 and fm.cols.max() < 3


def test_bad_inputs():
    with pytest.raises(ValueError, match="feature names"):
        fit_feature_map(np.zeros((5, 3)), ["a", "b"], 4, 4)
    with pytest.raises(ValueError, match="NaN"):
        fit_feature_map(np.full((5, 2), np.nan), ["a", "b"], 4, 4)
    assert image_shape(32) == (32, 32) and image_shape([8, 12]) == (8, 12)
    for bad in (0, [8], "32", True):
        with pytest.raises(ValueError):
            image_shape(bad)


# --------------------------------------------------------------------------- persistence


def test_save_load_round_trip_and_plot(fmap, tmp_path):
    path = tmp_path / "map.npz"
    fmap.save(path)
    loaded = FeatureMap.load(path)
    assert loaded.feature_names == fmap.feature_names
    assert (loaded.height, loaded.width, loaded.seed) == (12, 16, 3)
    assert np.array_equal(loaded.rows, fmap.rows) and np.array_equal(loaded.cols, fmap.cols)
    X = grouped(n=7, seed=9)
    assert np.array_equal(loaded.scale(X), fmap.scale(X))
    with pytest.raises(ValueError, match="40 features"):
        loaded.scale(X[:, :10])
    png = tmp_path / "plots" / "map.png"
    fmap.plot(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    leftovers = [p.name for p in tmp_path.rglob("*.part")]
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["map.npz", "map.png", "plots"] and not leftovers


# --------------------------------------------------------------------------- the winners' settings


def test_scaler_clip_is_their_logscaler(tmp_path):
    """clip: a value is raised to its feature's training min first (their LogScaler.transform) and the result
    clipped to [0, 1]. By hand: min (-1, 0.5), shift (2, 1.5), global max log 3.5."""
    X = np.array([[-1.0, 0.5], [1.0, 2.0]])
    plain, clipped = LogNorm2Scaler().fit(X), LogNorm2Scaler(clip=True).fit(X)
    new = np.array([[5.0, 0.0]])  # above feature 0's max; below feature 1's (positive) min
    top = np.log(3.5)
    np.testing.assert_allclose(plain.transform(new), [[np.log(7.0) / top, np.log(1.5) / top]], rtol=1e-6)
    np.testing.assert_allclose(clipped.transform(new), [[1.0, np.log(2.0) / top]], rtol=1e-6)
    np.testing.assert_array_equal(plain.transform(X), clipped.transform(X))  # the training rows: the same
    fm = fit_feature_map(grouped(60), names(40), 6, 6, scaler_clip=True)
    fm.save(tmp_path / "m.npz")
    assert FeatureMap.load(tmp_path / "m.npz").scaler.clip is True and fm.settings["scaler_clip"] is True


def test_pydeepinsight_placement_rows_first_and_floor_binning():
    """An axis-aligned rectangle of positions (no rotation): x goes down the rows and y along the columns,
    whatever the grid's shape, each binned by np.digitize on linspace(min, max, size) (a floor)."""
    pos = np.array([[0, 0], [10, 0], [10, 2], [0, 2], [4.9, 1.0], [9.99, 0.2]])
    rows, cols = pydeepinsight_pixels(pos, 11, 5)
    assert rows.tolist() == [0, 10, 10, 0, 4, 9]  # 4.9 -> 4 (rounding: 5); 9.99 -> 9; only the max reaches 10
    # their rotation matrix for angle 0 is [[cos 0, cos(-π/2)], [cos(π/2), cos 0]]: y' = y + 6e-17 · x, so
    # (0, 2) lands a hair below the max (10, 2) and one pixel short of it, as in theirs
    assert cols.tolist() == [0, 0, 4, 3, 2, 0]
    wide_rows, wide_cols = pydeepinsight_pixels(pos, 3, 11)  # a wide grid: the long x axis still goes down rows
    assert wide_rows.tolist() == [0, 2, 2, 0, 0, 1] and wide_cols.tolist() == [0, 0, 10, 9, 5, 1]
    rows_c, cols_c = positions_to_pixels(pos, 3, 11)  # compact: the long side along the width, rounded
    assert rows_c.tolist() == [0, 0, 2, 2, 1, 0] and cols_c.tolist() == [0, 10, 10, 0, 5, 10]


def test_pydeepinsight_leaves_the_hull_closing_edge_out():
    """An obtuse triangle turned 90°: scipy lists its hull so that the long edge, the side the minimum-area
    rectangle lies on, is the closing one (last vertex to first), which pyDeepInsight's rectangle search
    never tries. Its layout is then not aligned with that edge; the compact placement's is."""
    from scipy.spatial import ConvexHull

    upright = np.array([[0.0, 0.0], [10.0, 0.0], [6.0, 1.0]])
    tri = rotate(upright, np.pi / 2)
    hull = tri[ConvexHull(tri).vertices]
    closing = hull[0] - hull[-1]
    assert np.linalg.norm(closing) == pytest.approx(10.0)  # the long edge closes the hull
    rows, cols = pydeepinsight_pixels(tri, 20, 20)
    assert rows[0] != rows[1] and cols[0] != cols[1]  # its ends share no pixel row or column
    rows_c, cols_c = positions_to_pixels(tri, 20, 20)
    assert rows_c[0] == rows_c[1] or cols_c[0] == cols_c[1]  # aligned with the long edge
    rows_u, cols_u = pydeepinsight_pixels(upright, 20, 20)  # upright, the long edge is listed first: tried
    assert (rows_u[0], rows_u[1], cols_u[0], cols_u[1]) == (0, 19, 0, 0)


def test_unsquared_cosine_tsne_sees_the_distances_as_they_are():
    """square_distances false: t-SNE's affinities come from the cosine distances themselves (scikit-learn
    < 1.2), not their squares (since): the same layout as scikit-learn's exact t-SNE handed the square roots
    as precomputed distances (it squares them back), and another than the squared one."""
    from sklearn.manifold import TSNE
    from sklearn.metrics.pairwise import cosine_distances

    scaled = LogNorm2Scaler().fit_transform(grouped(80, groups=4, per=4))
    kw = dict(seed=5, perplexity=5.0, metric="cosine", method="exact", init="random", learning_rate=200.0)
    got = embed_features(scaled, square_distances=False, **kw)
    D = cosine_distances(scaled.T.astype(np.float64))
    ref = TSNE(2, perplexity=5.0, metric="precomputed", method="exact", init="random", learning_rate=200.0,
               random_state=5).fit_transform(np.sqrt(np.maximum(D, 0.0)))
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
    assert not np.allclose(got, embed_features(scaled, square_distances=True, **kw), atol=1e-3)
    with pytest.raises(ValueError, match="init random"):
        embed_features(scaled, square_distances=False, **{**kw, "init": "pca"})


def test_map_settings_are_checked_kept_and_refit(tmp_path):
    """Every setting is checked with its key named; a map keeps its settings through save/load, and refit
    fits one like it (same settings, size, seed) on other rows: the per-fold map of ``fit_on: fold``."""
    winners = dict(perplexity=5, seed=11, metric="cosine", method="exact", init="random", learning_rate=200,
                   square_distances=False, placement="pydeepinsight", scaler_clip=True, fit_on="fold")
    X = grouped(120, groups=4, per=4)
    cols = [f"g-{i}" for i in range(16)]
    fm = fit_feature_map(X, cols, 8, 8, **winners)
    assert fm.fit_on == "fold" and fm.seed == 11
    assert fm.settings == {k: v for k, v in map_settings(winners).items() if k != "seed"}
    fm.save(tmp_path / "m.npz")
    again = FeatureMap.load(tmp_path / "m.npz")
    assert again.settings == fm.settings and again.fit_on == "fold"
    other = X[:60] * 2.0
    refit = again.refit(other)
    fresh = fit_feature_map(other, cols, 8, 8, **winners)
    np.testing.assert_array_equal(refit.rows, fresh.rows)
    np.testing.assert_array_equal(refit.cols, fresh.cols)
    np.testing.assert_allclose(refit.scaler.min_, other.min(axis=0))
    assert FeatureMap.from_arrays({k: v for k, v in fm.to_arrays().items() if k != "settings"}).fit_on == "train"
    for key, bad in [("metric", "manhattan"), ("method", "fast"), ("placement", "grid"), ("fit_on", "test"),
                     ("learning_rate", -1), ("square_distances", "no"), ("scaler_clip", 1), ("seed", -2)]:
        with pytest.raises(ValueError, match=key):
            map_settings({key: bad})
    with pytest.raises(ValueError, match="unknown settings"):
        fit_feature_map(X, cols, 8, 8, perplexity_=5)
