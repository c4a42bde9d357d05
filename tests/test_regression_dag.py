"""``data.task: regression`` through the DAG: configs/perturbation-smoke.yaml end to end, and its parts.

The end-to-end run (one Snakemake run of the smoke preset, shared by the tests below it) checks the
contracts a regression run adds: MRRMSE score records, unclipped predictions, the median over seeds,
pseudo-labels that only ever reach training rows, target encodings that never see a validation target,
and ``moastack predict`` replaying all of it. The unit tests cover the fold rules, the config checks,
the MRRMSE blend objective and the feature step without Snakemake.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import ROOT, planned_jobs, run_snakemake, write_config

from moastack.config import ConfigError, check_config, collect_slice, data_slice, validate_schema

SMOKE = ROOT / "configs" / "perturbation-smoke.yaml"
FULL = ROOT / "configs" / "perturbation.yaml"


def smoke_config() -> dict:
    return yaml.safe_load(SMOKE.read_text())


def _checked(config: dict) -> dict:
    validate_schema(config)
    check_config(config)
    return config


# ============================================================================================ unit tests
# ------------------------------------------------------------------------------------------------ folds
def _perturbation_tables(**spec):
    from moastack.data.synthetic_perturbation import PerturbationSpec, generate_perturbation

    return generate_perturbation(PerturbationSpec(**{"n_genes": 10, "seed": 1, **spec}))


def test_group_folds_never_split_a_compound_and_are_balanced():
    from moastack.folds import make_folds

    t = _perturbation_tables()
    a = make_folds({"method": "group", "k": 5, "seed": 3}, t["train_targets_scored"], t["train_drug"])
    b = make_folds({"method": "group", "k": 5, "seed": 3}, t["train_targets_scored"], t["train_drug"])
    c = make_folds({"method": "group", "k": 5, "seed": 4}, t["train_targets_scored"], t["train_drug"])
    pd.testing.assert_frame_equal(a, b)
    assert not a["fold"].equals(c["fold"])
    assert list(a["sig_id"]) == list(t["train_targets_scored"]["sig_id"])
    drug = t["train_drug"].set_index("sig_id")["drug_id"].reindex(a["sig_id"]).to_numpy()
    assert (pd.Series(a["fold"].to_numpy()).groupby(drug).nunique() == 1).all()
    sizes = a["fold"].value_counts()
    assert set(sizes.index) == set(range(5)) and sizes.max() - sizes.min() <= pd.Series(drug).value_counts().max()


def test_rare_cell_type_folds_hold_each_rare_cell_type_out_in_its_own_fold():
    from moastack.folds import make_folds, rare_cell_types_of

    t = _perturbation_tables()
    cells = t["train_features"]["cell_type"]
    assert rare_cell_types_of(cells.to_numpy(), None, None) == ["B cells", "Myeloid cells"]  # fewest rows
    folds = make_folds({"method": "rare_cell_type", "k": 4, "seed": 0}, t["train_targets_scored"], t["train_drug"],
                       cell_types=cells)
    fold = folds["fold"].to_numpy()
    rare_folds = [set(fold[(cells == ct).to_numpy()]) for ct in ("B cells", "Myeloid cells")]
    assert all(len(f) == 1 for f in rare_folds) and rare_folds[0] != rare_folds[1]
    common = ~cells.isin(["B cells", "Myeloid cells"]).to_numpy()
    compound = t["train_features"]["compound"].to_numpy()
    assert (pd.Series(fold[common]).groupby(compound[common]).nunique() == 1).all()  # compounds stay whole
    # a held-out rare row's compound is in training in the common cell types
    fold_of_compound = dict(zip(compound[common], fold[common]))
    rare = ~common
    assert all(fold_of_compound[c] != f for c, f in zip(compound[rare], fold[rare]))
    assert set(fold) == set(range(4))
    # explicit rare cell types; too many for k
    one = make_folds({"method": "rare_cell_type", "k": 2, "seed": 0, "rare_cell_types": ["NK cells"]},
                     t["train_targets_scored"], t["train_drug"], cell_types=cells)
    assert one.loc[(cells == "NK cells").to_numpy(), "fold"].nunique() == 1
    with pytest.raises(ValueError, match="need k >= 3"):
        make_folds({"method": "rare_cell_type", "k": 2, "seed": 0, "n_rare": 3}, t["train_targets_scored"],
                   t["train_drug"], cell_types=cells)


# ----------------------------------------------------------------------------------------------- config
def test_presets_are_valid_and_multilabel_slices_are_unchanged():
    _checked(smoke_config())
    full = _checked(yaml.safe_load(FULL.read_text()))
    assert full["data"]["synthetic_perturbation"]["n_genes"] == 18211
    lish = _checked(yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text()))
    assert "task" not in data_slice(lish) and "seed_aggregate" not in collect_slice(lish, "nn")
    assert data_slice(_checked(smoke_config()))["task"] == "regression"
    assert collect_slice(_checked(smoke_config()), "mlp")["seed_aggregate"] == "median"


def test_the_registry_says_which_archs_serve_the_regression_task():
    from moastack.archs import archs_for
    from moastack.models.registry import model_class
    from moastack.models.regressors import MLPRegressor, RidgeRegressor

    assert archs_for("regression") == ["ridge", "mlp_regressor"]
    assert model_class("ridge") is RidgeRegressor and model_class("mlp_regressor") is MLPRegressor
    assert "simple_nn" in archs_for("multilabel") and "ridge" not in archs_for("multilabel")


def _edit(path: str, value):
    def edit(config):
        *parents, last = path.split(".")
        node = config
        for key in parents:
            node = node[key]
        if value is None:
            del node[last]
        else:
            node[last] = value
    return edit


@pytest.mark.parametrize("edit, message", [
    (_edit("data.metric", "log_loss"), "but data.task is regression; use one of mrrmse"),
    (_edit("models.baseline.arch", "simple_nn"), "serves multilabel tasks, not this regression one"),
    (_edit("folds.rare2.method", "multilabel_stratified"), "not for a regression task"),
    (_edit("folds.rare2.k", 1), "schema"),  # k >= 2 by schema
    (_edit("models.mlp_pseudo.pseudo_from", "nope"), "unknown model"),
    (_edit("models.mlp_pseudo.pseudo_from", "mlp_pseudo"), "own training rows"),
    (_edit("models.mlp_pseudo.seeds", [0, 7]), r"no seeds \[7\]"),
    (_edit("models.mlp.meta", ["mlp_pseudo"]), "stacking cycle"),
    (_edit("models.mlp.seed_aggregate", "mode"), "schema"),
    (_edit("data.source", "synthetic"), "synthetic_perturbation"),
])
def test_regression_config_errors(edit, message):
    config = smoke_config()
    edit(config)
    with pytest.raises(ConfigError, match=message):
        _checked(config)


def test_pseudo_labels_need_the_same_fold_scheme():
    config = smoke_config()
    config["folds"]["group2"] = {"method": "group", "k": 2, "seed": 0}
    config["models"]["mlp_pseudo"]["folds"] = "group2"
    config["blend"]["members"] = ["baseline", "mlp"]
    with pytest.raises(ConfigError, match="pseudo-labels need the same folds"):
        _checked(config)


def test_multilabel_task_refuses_regression_keys():
    lish = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
    for edit, message in [
        (_edit("data.metric", "mrrmse"), "set data.task: regression"),
        (_edit("models.nn.arch", "mlp_regressor"), "regressor"),
        (_edit("models.nn.target_encoding", {"columns": ["cell_type"]}), r"\(a regression task\) only"),
        (_edit("folds.ml3.method", "rare_cell_type"), "not for a multilabel task"),
    ]:
        config = copy.deepcopy(lish)
        edit(config)
        with pytest.raises(ConfigError, match=message):
            _checked(config)


# ---------------------------------------------------------------------------------- metrics and blend
def test_score_record_and_metric_value_dispatch_mrrmse():
    from moastack.metrics import metric_value, mrrmse, score_record

    y = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    p = np.array([[1.0, 2.0, 6.0], [5.0, 6.0, 7.0]])
    assert metric_value("mrrmse", y, p) == pytest.approx((np.sqrt(3) + 1) / 2) == mrrmse(y, p)
    rec = score_record(y, p, ["a", "b", "c"], metric="mrrmse", model="m")
    assert rec["metric"] == "mrrmse" and rec["greater_is_better"] is False and rec["model"] == "m"
    assert set(rec["metrics"]) == {"mrrmse", "rmse_col_mean", "mae_col_mean"} and set(rec["per_target"]) == {"a", "b", "c"}
    assert "mrrmse" not in score_record(np.eye(3), np.eye(3) * 0.5, ["a", "b", "c"])["metrics"]  # multilabel as before


def test_mrrmse_blend_objective_value_gradient_and_search():
    from scipy.optimize import approx_fprime

    from moastack.blend import MRRMSEObjective, apply_weights, search_weights
    from moastack.metrics import mrrmse

    rng = np.random.default_rng(0)
    y = rng.standard_normal((40, 25)) * 3
    members = [y + rng.standard_normal(y.shape) * s for s in (0.4, 0.7, 1.5)]
    obj = MRRMSEObjective(y, members)
    for w in (np.array([0.2, 0.3, 0.5]), np.array([0.7, 0.5, 0.1])):  # on and off the simplex
        assert obj(w) == pytest.approx(mrrmse(y, apply_weights(w, members)), rel=1e-12)
        np.testing.assert_allclose(obj.gradient(w), approx_fprime(w, obj, 1e-7), rtol=1e-4, atol=1e-6)
    w = search_weights(y, members, "slsqp", metric="mrrmse")
    assert w.sum() == pytest.approx(1.0) and (w >= 0).all()
    assert obj(w) < min(obj(np.eye(3)[i]) for i in range(3)) and obj(w) <= obj(np.full(3, 1 / 3))
    tpe = search_weights(y, members, "optuna_tpe", metric="mrrmse", n_trials=60)
    assert obj(tpe) < obj(np.eye(3)[2])
    perfect = MRRMSEObjective(y, [y, members[0]])  # a perfect member: zero rows must not divide by zero
    assert perfect(np.array([1.0, 0.0])) == pytest.approx(0.0, abs=1e-9)
    assert np.isfinite(perfect.gradient(np.array([1.0, 0.0]))).all()


def test_predictions_are_clipped_to_0_1_only_for_multilabel():
    from moastack.models.base import FitContext
    from moastack.models.regressors import RidgeRegressor
    from moastack.targets import prediction_frame
    from moastack.train import predict_rows

    values = np.array([[-2.0, 0.5, 3.0]], dtype=np.float32)
    assert prediction_frame(["a"], values, ["x", "y", "z"]).iloc[0, 1:].tolist() == [0.0, 0.5, 1.0]
    assert prediction_frame(["a"], values, ["x", "y", "z"], task="regression").iloc[0, 1:].tolist() == [-2.0, 0.5, 3.0]
    X = np.arange(20, dtype=np.float32).reshape(10, 2)
    Y = np.stack([X[:, 0] * 3 - 10, X[:, 1] * 2], axis=1)
    model = RidgeRegressor(alpha=1e-6).fit(X, Y, None, None, FitContext())
    from moastack.task import REGRESSION

    pred = predict_rows(model, X, np.zeros(10, bool), REGRESSION)
    np.testing.assert_allclose(pred, Y, atol=1e-3)  # outside [0, 1], in the training range
    assert pred.min() < 0 and pred.max() > 1


def test_onehot_columns_step():
    from moastack.features.feature_set import build_feature_set

    train = pd.DataFrame({"sig_id": ["a", "b", "c"], "cell_type": ["x", "y", "x"], "compound": ["p", "q", "r"]})
    test = pd.DataFrame({"sig_id": ["d"], "cell_type": ["new"], "compound": ["q"]})
    _, tr, te = build_feature_set({"fit_on": "train", "steps": [
        {"name": "onehot_columns", "columns": ["cell_type", "compound"]}]}, train, test)
    assert list(tr.columns) == ["sig_id", "cell_type=x", "cell_type=y", "compound=p", "compound=q", "compound=r"]
    assert tr.iloc[:, 1:].to_numpy().tolist() == [[1, 0, 1, 0, 0], [0, 1, 0, 1, 0], [1, 0, 0, 0, 1]]
    assert te.iloc[0, 1:].tolist() == [0, 0, 0, 1, 0]  # an unseen cell type: no indicator


def test_mlp_ignores_inputs_constant_in_training():
    """A one-hot column of a held-out category is all zero in training; a 1 there must not blow up."""
    from moastack.models.base import FitContext
    from moastack.models.regressors import MLPRegressor

    rng = np.random.default_rng(0)
    X = np.hstack([rng.standard_normal((64, 3)), np.zeros((64, 1))]).astype(np.float32)
    Y = (X[:, :3] @ rng.standard_normal((3, 5))).astype(np.float32)
    model = MLPRegressor(hidden=[16], epochs=5, clip=False).fit(X, Y, None, None, FitContext())
    hot = X.copy()
    hot[:, 3] = 1.0
    np.testing.assert_array_equal(model.predict(hot), model.predict(X))
    assert model.n_in_ == 3


def test_prepare_synthetic_perturbation(tmp_path):
    from moastack.data.prepare import prepare
    from moastack.data.validate import InputError

    outputs = {t: str(tmp_path / f"{t}.parquet") for t in ("train_features", "test_features", "train_targets_scored",
                                                          "train_targets_nonscored", "train_drug")}
    cfg = {"task": "regression", "source": "synthetic_perturbation", "synthetic_perturbation": {"n_genes": 7}}
    tables = prepare(cfg, outputs)
    y = pd.read_parquet(outputs["train_targets_scored"])
    assert y.shape == (len(tables["train_features"]), 8) and (y.dtypes.iloc[1:] == np.float32).all()
    assert list(pd.read_parquet(outputs["test_features"]).columns) == ["sig_id", "cell_type", "compound", "smiles"]
    with pytest.raises(InputError, match="unknown settings"):
        prepare({**cfg, "synthetic_perturbation": {"n_gene": 7}}, outputs)


# ======================================================================================= end to end
@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """configs/perturbation-smoke.yaml through the real workflow (19 small jobs)."""
    workdir = tmp_path_factory.mktemp("regression")
    write_config(workdir, smoke_config())
    run_snakemake(workdir)
    return workdir


def _r(run, rel):
    return run / "results" / rel


def _json(run, rel):
    return json.loads(_r(run, rel).read_text())


def _parquet(run, rel):
    return pd.read_parquet(_r(run, rel))


def _truth():
    from moastack.data.synthetic_perturbation import PerturbationSpec, perturbation_test_truth

    return perturbation_test_truth(PerturbationSpec(**smoke_config()["data"]["synthetic_perturbation"]))


@pytest.mark.slow
def test_scores_are_mrrmse_records_and_predictions_are_not_clipped(run):
    y = _parquet(run, "data/train_targets_scored.parquet")
    genes = list(y.columns[1:])
    assert (y.dtypes.iloc[1:] == np.float32).all()
    for rel in ("models/baseline/score.json", "models/mlp/score.json", "models/mlp_pseudo/score.json",
                "blend/score.json"):
        score = _json(run, rel)
        assert score["metric"] == "mrrmse" and score["greater_is_better"] is False and np.isfinite(score["value"])
        assert set(score["metrics"]) == {"mrrmse", "rmse_col_mean", "mae_col_mean"}
        assert list(score["per_target"]) == genes and "q50" in score["per_row_rmse_quantiles"]
    weights = _json(run, "blend/weights.json")
    assert weights["metric"] == "mrrmse" and set(weights["methods"]) == {"slsqp", "optuna_tpe"}
    assert _json(run, "blend/score.json")["value"] <= min(_json(run, "blend/score.json")["members"].values()) + 1e-9
    oof = _parquet(run, "models/mlp/oof.parquet")
    values = oof[genes].to_numpy()
    assert values.dtype == np.float32 and (values < 0).any() and (values > 1).any()
    # each job clips to its training rows' range of each target
    job = _parquet(run, "models/baseline/seed0/fold0/oof.parquet")
    folds = _parquet(run, "folds/rare2.parquet")
    train_rows = y[(folds["fold"] != 0).to_numpy()][genes]
    assert (job[genes].to_numpy() >= train_rows.min().to_numpy() - 1e-6).all()
    sub = pd.read_csv(_r(run, "submission.csv"))
    assert list(sub.columns) == ["sig_id", *genes] and (sub[genes].to_numpy() < 0).any()
    assert _r(run, "report/index.html").stat().st_size > 0
    metrics = _json(run, "models/mlp/seed1/fold0/metrics.json")
    assert "valid_mrrmse" in metrics and "valid_log_loss" not in metrics


@pytest.mark.slow
def test_mlp_beats_the_per_cell_type_baseline(run):
    assert _json(run, "models/mlp/score.json")["value"] < _json(run, "models/baseline/score.json")["value"]
    from moastack.metrics import mrrmse

    truth = _truth().set_index("sig_id")

    def test_score(rel):
        pred = _parquet(run, rel).set_index("sig_id").reindex(truth.index)
        return mrrmse(truth.to_numpy(), pred.to_numpy())

    # the test rows: rare cell type × compound pairs never measured (measured: baseline 1.89, MLP 1.50)
    assert test_score("models/mlp/test.parquet") < 0.9 * test_score("models/baseline/test.parquet")


@pytest.mark.slow
def test_pseudo_labelled_rows_train_only(run):
    train_ids = _parquet(run, "data/train_features.parquet")["sig_id"]
    test_ids = set(_parquet(run, "data/test_features.parquet")["sig_id"])
    folds = _parquet(run, "folds/rare2.parquet")
    for fold in (0, 1):
        job = f"models/mlp_pseudo/seed0/fold{fold}"
        oof_ids = _parquet(run, f"{job}/oof.parquet")["sig_id"]
        assert set(oof_ids) == set(folds.loc[folds["fold"] == fold, "sig_id"]) and not set(oof_ids) & test_ids
        grown, plain = _json(run, f"{job}/metrics.json"), _json(run, f"models/mlp/seed0/fold{fold}/metrics.json")
        assert grown["n_pseudo"] == len(test_ids) and grown["n_train"] == plain["n_train"] + len(test_ids)
        assert grown["n_valid"] == plain["n_valid"]
    assert list(_parquet(run, "models/mlp_pseudo/oof.parquet")["sig_id"]) == list(train_ids)  # exactly the train ids


@pytest.mark.slow
def test_median_over_seeds_is_the_hand_computed_median(run):
    ids = _parquet(run, "data/train_features.parquet")["sig_id"]
    genes = list(_parquet(run, "data/train_targets_scored.parquet").columns[1:])
    seeds = []
    for s in (0, 1, 2):
        parts = pd.concat([_parquet(run, f"models/mlp/seed{s}/fold{f}/oof.parquet") for f in (0, 1)])
        seeds.append(parts.set_index("sig_id").reindex(ids)[genes].to_numpy(np.float64))
    oof = _parquet(run, "models/mlp/oof.parquet")[genes].to_numpy()
    by_hand = np.empty_like(seeds[0])
    for i in range(by_hand.shape[0]):
        for j in range(by_hand.shape[1]):
            by_hand[i, j] = sorted(s[i, j] for s in seeds)[1]  # the middle one of three
    np.testing.assert_array_equal(oof, by_hand.astype(np.float32))
    assert not np.allclose(oof, np.mean(seeds, axis=0).astype(np.float32))
    fold_means = [np.mean([_parquet(run, f"models/mlp/seed{s}/fold{f}/test.parquet")[genes].to_numpy(np.float64)
                           for f in (0, 1)], axis=0) for s in (0, 1, 2)]
    test = _parquet(run, "models/mlp/test.parquet")[genes].to_numpy()
    np.testing.assert_array_equal(test, np.sort(np.stack(fold_means), axis=0)[1].astype(np.float32))
    assert _json(run, "models/mlp/score.json")["seed_aggregate"] == "median"


@pytest.mark.slow
def test_target_encoding_never_sees_the_validation_fold(run, tmp_path):
    """Poison the validation rows' targets: the fold's encodings of every row stay the same; an encoder fitted
    on all rows (the leak) would move."""
    from moastack.features.target_encoding import TargetEncoder
    from moastack.spec import ModelSpec
    from moastack.train import FoldJob, load_fold_data

    results = run / "results"
    targets = pd.read_parquet(results / "data" / "train_targets_scored.parquet")
    folds = pd.read_parquet(results / "folds" / "rare2.parquet")
    valid = (folds["fold"] == 0).to_numpy()
    poisoned = targets.copy()
    poisoned.iloc[valid, 1:] = 1e4
    poisoned.to_parquet(tmp_path / "poisoned.parquet", index=False)
    cfg = smoke_config()["models"]["mlp"]

    def data(target_path):
        return load_fold_data(FoldJob(
            ModelSpec.from_entry("mlp", cfg, "regression"), 0, 0, str(results / "features/cell/train.parquet"),
            str(results / "features/cell/test.parquet"),
            str(results / "folds/rare2.parquet"), target_path, str(results / "data/train_features.parquet"),
            str(results / "data/test_features.parquet")))

    honest, after = data(str(results / "data/train_targets_scored.parquet")), data(str(tmp_path / "poisoned.parquet"))
    assert honest.feature_names[-1].startswith("te_compound_mean")
    np.testing.assert_array_equal(honest.X_valid, after.X_valid)
    np.testing.assert_array_equal(honest.X_train, after.X_train)
    np.testing.assert_array_equal(honest.X_test, after.X_test)
    assert np.abs(after.Y_valid).max() == 1e4  # the poison did reach the fold's targets
    # the same check fails for an encoder that sees every row
    keys = pd.read_parquet(results / "data/train_features.parquet")[["cell_type", "compound"]]
    te = cfg["target_encoding"]
    leaky = [TargetEncoder(te["columns"], te["stats"], te["n_components"]).fit(keys, t.iloc[:, 1:].to_numpy())
             .transform(keys[valid]) for t in (targets, poisoned)]
    assert np.abs(leaky[0] - leaky[1]).max() > 1.0


@pytest.mark.slow
def test_predict_replays_encodings_median_and_blend(run, tmp_path):
    from moastack.predict import predict

    src = _parquet(run, "data/test_features.parquet")
    src.to_csv(tmp_path / "new.csv", index=False)
    out = predict(run / "results", tmp_path / "new.csv", tmp_path / "pred.csv", progress=False)
    blend = _parquet(run, "blend/test.parquet")
    assert list(out.columns) == list(blend.columns) and list(out["sig_id"]) == list(blend["sig_id"])
    np.testing.assert_allclose(out.iloc[:, 1:].to_numpy(np.float64), blend.iloc[:, 1:].to_numpy(np.float64),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_a_finished_run_plans_nothing_and_an_aggregate_edit_reruns_collect_only(run, tmp_path):
    workdir = tmp_path / "again"
    shutil.copytree(run, workdir)
    assert planned_jobs(workdir) == set()
    config = smoke_config()
    config["models"]["mlp"]["seed_aggregate"] = "mean"
    write_config(workdir, config)
    jobs = planned_jobs(workdir)
    assert ("collect", "model=mlp") in jobs and not any(rule == "train" for rule, _ in jobs)
