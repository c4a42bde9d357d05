import numpy as np
import pytest

from moastack.blend import BlendObjective, apply_weights, check_same_scheme, search_weights
from moastack.metrics import mean_log_loss


def _truth_and_members(seed=0, n=3000, t=6):
    rng = np.random.default_rng(seed)
    p_true = rng.uniform(0.02, 0.4, size=(n, t))
    y = (rng.uniform(size=(n, t)) < p_true).astype(float)

    def noisy(scale):
        logit = np.log(p_true / (1 - p_true)) + rng.normal(0, scale, size=p_true.shape)
        return 1 / (1 + np.exp(-logit))

    return y, p_true, noisy


def test_objective_gradient_matches_finite_differences():
    y, p_true, noisy = _truth_and_members()
    members = [noisy(0.5), noisy(1.0), np.full_like(p_true, 0.2)]
    obj = BlendObjective(y, members)
    w = np.array([0.5, 0.3, 0.2])
    eps = 1e-6
    numeric = np.array([(obj(w + eps * e) - obj(w - eps * e)) / (2 * eps) for e in np.eye(3)])
    np.testing.assert_allclose(obj.gradient(w), numeric, rtol=1e-4)
    assert obj(w) == pytest.approx(mean_log_loss(y, apply_weights(w, members)), rel=1e-9)


def test_two_noisy_copies_of_the_truth_get_equal_weights_from_both_searches():
    # Equal noise on two independent copies: the optimum is w = (0.5, 0.5) by symmetry.
    y, p_true, noisy = _truth_and_members(seed=1, n=20000, t=4)
    members = [noisy(0.8), noisy(0.8)]
    w_slsqp = search_weights(y, members, "slsqp")
    w_tpe = search_weights(y, members, "optuna_tpe", n_trials=80, seed=0)
    assert w_slsqp.sum() == pytest.approx(1.0) and (w_slsqp >= 0).all()
    assert w_tpe.sum() == pytest.approx(1.0) and (w_tpe >= 0).all()
    assert w_slsqp == pytest.approx([0.5, 0.5], abs=0.08)
    assert np.abs(w_slsqp - w_tpe).max() < 0.1


def test_blend_is_no_worse_than_best_member_and_ignores_a_useless_member():
    y, p_true, noisy = _truth_and_members(seed=2)
    good, weaker, prior = noisy(0.4), noisy(1.2), np.tile(y.mean(axis=0), (len(y), 1))
    members = [good, weaker, prior]
    w = search_weights(y, members, "slsqp")
    blended = mean_log_loss(y, apply_weights(w, members))
    assert blended <= min(mean_log_loss(y, m) for m in members) + 1e-12
    assert w[0] > w[1]


def test_drop_threshold_zeroes_small_weights():
    y, p_true, noisy = _truth_and_members(seed=3)
    members = [noisy(0.3), noisy(2.5)]
    w = search_weights(y, members, "slsqp", drop_threshold=0.2)
    assert w[1] == 0.0 and w[0] == pytest.approx(1.0)


def test_mixed_fold_schemes_are_refused_with_an_explanation():
    with pytest.raises(ValueError, match="different fold schemes.*mlsk5: a.*drug5: b|not comparable"):
        check_same_scheme({"a": "mlsk5", "b": "drug5"})
    assert check_same_scheme({"a": "x", "b": "x"}) == "x"


def test_unknown_method():
    y, p_true, noisy = _truth_and_members(n=50)
    with pytest.raises(ValueError, match="unknown blend method"):
        search_weights(y, [noisy(1)], "nelder")


# ------------------------------------------------------------------------------- run_blend: thresholds
def _blend_folder(tmp_path) -> tuple[dict, dict[str, str], np.ndarray]:
    """Two members' collected outputs and targets with missing labels and a target without positive."""
    import pandas as pd

    from moastack import io

    y, p_true, noisy = _truth_and_members(seed=4, n=600, t=3)
    y[:, 2] = 0.0  # no positive
    y[np.random.default_rng(5).random(y.shape) < 0.2] = np.nan  # Tox21-style gaps
    names = ["t0", "t1", "t2"]
    ids = [f"id_{i}" for i in range(len(y))]
    io.write_parquet(pd.DataFrame(y, columns=names).assign(sig_id=ids)[["sig_id", *names]], tmp_path / "y.parquet")
    members = {}
    for m, scale in (("good", 0.4), ("weak", 1.5)):
        frame = pd.DataFrame(noisy(scale).astype(np.float32), columns=names).assign(sig_id=ids)[["sig_id", *names]]
        paths = {k: str(tmp_path / m / f"{k}.{'json' if k == 'score' else 'parquet'}") for k in ("oof", "test", "score")}
        io.write_parquet(frame, paths["oof"])
        io.write_parquet(frame.head(50), paths["test"])
        io.write_json({"folds_scheme": "k3", "value": 0.5}, paths["score"])
        members[m] = paths
    outputs = {k: str(tmp_path / "blend" / f"{k}.{'parquet' if k in ('oof', 'test') else 'json'}")
               for k in ("weights", "oof", "test", "score")}
    return members, outputs, y


@pytest.mark.parametrize("threshold_metric", ["f1", "mcc"])
def test_blend_stores_each_targets_threshold_chosen_on_its_oof(tmp_path, threshold_metric):
    from sklearn.metrics import average_precision_score, roc_auc_score

    from moastack import io
    from moastack.blend import run_blend
    from moastack.thresholds import best_cut

    members, outputs, y = _blend_folder(tmp_path)
    run_blend(members, str(tmp_path / "y.parquet"), {"methods": ["slsqp"], "threshold_metric": threshold_metric},
              outputs, metric="roc_auc")
    record = io.read_json(outputs["weights"])["thresholds"]
    assert record["metric"] == threshold_metric and record["never_called"] == ["t2"]
    oof = io.read_parquet(outputs["oof"])
    for j, target in enumerate(["t0", "t1"]):
        labelled = ~np.isnan(y[:, j])
        want = best_cut(y[labelled, j], oof[target].to_numpy()[labelled], threshold_metric)
        got = record["targets"][target]
        assert got["threshold"] == want["threshold"] and got[threshold_metric] == pytest.approx(want[threshold_metric])
        assert set(got) >= {"f1", "mcc", "precision", "recall", "roc_auc", "pr_auc", "labelled", "positives"}
        assert 0.5 < got["roc_auc"] <= 1 and got["labelled"] == labelled.sum()
        assert got["roc_auc"] == pytest.approx(roc_auc_score(y[labelled, j], oof[target].to_numpy()[labelled]))
        assert got["pr_auc"] == pytest.approx(
            average_precision_score(y[labelled, j], oof[target].to_numpy()[labelled]))
        # every cell at or above the threshold is called: the threshold is a score of the OOF table itself
        assert (oof[target].to_numpy()[labelled] == got["threshold"]).any()
    assert record["targets"]["t2"]["threshold"] == 1.0 and record["targets"]["t2"]["f1"] is None


def test_a_regression_blend_stores_no_thresholds(tmp_path):
    from moastack import io
    from moastack.blend import run_blend

    members, outputs, _ = _blend_folder(tmp_path)
    y = io.read_parquet(tmp_path / "y.parquet").fillna(0.0)  # regression targets: no gaps
    io.write_parquet(y, tmp_path / "y.parquet")
    run_blend(members, str(tmp_path / "y.parquet"), {"methods": ["slsqp"]}, outputs, metric="mrrmse")
    assert "thresholds" not in io.read_json(outputs["weights"])
