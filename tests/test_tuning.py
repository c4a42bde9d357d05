"""The Optuna search: param mapping, resume after a stop or a kill, a new study per search definition."""

from __future__ import annotations

import copy

import numpy as np
import optuna
import pytest
from optuna.trial import FixedTrial, TrialState

from moastack import io, tuning
from moastack.metrics import metric_value

MODEL = {
    "arch": "simple_nn", "features": "small", "folds": "ml3", "seeds": [0], "device": "cpu",
    "params": {"hidden": [16], "dropout": [0.1, 0.2], "epochs": 2, "batch_size": 32, "lr": 0.001,
               "max_lr": 0.01, "patience": None},
}
TUNE = {
    "model": "nn", "n_trials": 3, "seed": 0, "folds": [0, 1], "metric": "log_loss", "timeout_minutes": None,
    "space": {
        "max_lr": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True},
        "width": {"type": "int", "low": 8, "high": 32, "step": 8},
        "dropout": {"type": "float", "low": 0.0, "high": 0.4},
    },
}


def tune_cfg(**changes) -> dict:
    cfg = copy.deepcopy(TUNE)
    cfg.update(changes)
    return cfg


def run(inputs, tmp_path, cfg, name="nn_search"):
    return tuning.run_study(name, cfg, MODEL, inputs, tmp_path / "studies.journal", tmp_path / f"{name}.json")


def stored(tmp_path, cfg, name="nn_search"):
    storage = tuning.journal_storage(tmp_path / "studies.journal")
    return optuna.load_study(study_name=tuning.study_id(name, cfg, MODEL), storage=storage)


def test_suggest_params_maps_width_depth_dropout_onto_lists():
    space = {"width": {"type": "int", "low": 8, "high": 64}, "depth": {"type": "int", "low": 1, "high": 4},
             "dropout": {"type": "float", "low": 0.0, "high": 0.5}, "lr": {"type": "float", "low": 1e-4, "high": 1e-2}}
    params = tuning.suggest_params(FixedTrial({"width": 32, "depth": 3, "dropout": 0.25, "lr": 0.003}), space,
                                   {"hidden_size": 2048, "n_hidden": 2, "epochs": 5, "lr": 0.1})
    assert params == {"hidden": [32, 32, 32], "dropout": [0.25] * 4, "epochs": 5, "lr": 0.003}

    base = {"hidden": [64, 64], "dropout": [0.1, 0.3, 0.3], "epochs": 5}
    only_width = tuning.suggest_params(FixedTrial({"width": 16}), {"width": space["width"]}, base)
    assert only_width["hidden"] == [16, 16] and only_width["dropout"] == [0.1, 0.3, 0.3]
    only_depth = tuning.suggest_params(FixedTrial({"depth": 4}), {"depth": space["depth"]}, base)
    assert only_depth["hidden"] == [64] * 4 and only_depth["dropout"] == [0.1, 0.3, 0.3, 0.3, 0.3]
    only_drop = tuning.suggest_params(FixedTrial({"dropout": 0.2}), {"dropout": space["dropout"]}, {})
    assert only_drop["dropout"] == [0.2] * 3  # SimpleNN's default layout: two hidden layers
    assert base == {"hidden": [64, 64], "dropout": [0.1, 0.3, 0.3], "epochs": 5}  # not mutated

    # list choices are stored as JSON by Optuna and decoded back
    cat = {"hidden": {"type": "categorical", "choices": [[8], [16, 16]]}}
    assert tuning.suggest_params(FixedTrial({"hidden": "[16, 16]"}), cat, {})["hidden"] == [16, 16]
    with pytest.raises(ValueError, match="structural"):
        tuning.check_space({"width": space["width"]}, "tabnet")


def test_study_runs_then_continues_to_more_trials(inputs, tmp_path, monkeypatch):
    first = run(inputs, tmp_path, tune_cfg(n_trials=3))
    assert first["n_trials_complete"] == 3 and [t["number"] for t in first["trials"]] == [0, 1, 2]
    assert io.read_json(tmp_path / "nn_search.json") == first
    assert first["direction"] == "minimize" and first["study"].startswith("nn_search-")
    assert first["best_value"] == min(t["value"] for t in first["trials"])
    best = next(t for t in first["trials"] if t["number"] == first["best_trial"])
    assert first["best_params"] == best["params"]
    width, drop = first["best_params"]["width"], first["best_params"]["dropout"]
    assert first["params"]["hidden"] == [width] and first["params"]["dropout"] == [drop, drop]
    assert first["params"]["epochs"] == 2 and first["params"]["max_lr"] == first["best_params"]["max_lr"]
    assert all(set(t["fold_values"]) == {"0", "1"} for t in first["trials"])

    more = run(inputs, tmp_path, tune_cfg(n_trials=5))
    assert more["study"] == first["study"] and more["n_trials_complete"] == 5
    assert [t["number"] for t in more["trials"]] == [0, 1, 2, 3, 4]
    assert more["trials"][:3] == first["trials"]
    # the resumed sampler is reseeded past the stored trials: it does not replay the first points
    new = [t["params"] for t in more["trials"][3:]]
    assert all(p not in [t["params"] for t in first["trials"]] for p in new)
    assert more["best_value"] == min(t["value"] for t in more["trials"])

    def no_fit(*args, **kwargs):
        raise AssertionError("a finished study trained again")

    monkeypatch.setattr(tuning, "fit_and_score", no_fit)
    again = run(inputs, tmp_path, tune_cfg(n_trials=5))
    assert again["trials"] == more["trials"]


def test_changed_space_starts_a_new_study_in_the_same_file(inputs, tmp_path):
    run(inputs, tmp_path, tune_cfg(n_trials=2))
    narrow = tune_cfg(n_trials=2)
    narrow["space"]["width"] = {"type": "int", "low": 8, "high": 16, "step": 8}
    assert tuning.study_id("nn_search", narrow, MODEL) != tuning.study_id("nn_search", TUNE, MODEL)
    assert tuning.study_id("nn_search", tune_cfg(n_trials=50, timeout_minutes=5), MODEL) == \
        tuning.study_id("nn_search", TUNE, MODEL)  # budget changes continue the study
    other = run(inputs, tmp_path, narrow)
    assert other["n_trials_complete"] == 2 and [t["number"] for t in other["trials"]] == [0, 1]
    assert all(t["params"]["width"] in (8, 16) for t in other["trials"])
    names = optuna.get_all_study_names(tuning.journal_storage(tmp_path / "studies.journal"))
    assert sorted(names) == sorted([tuning.study_id("nn_search", TUNE, MODEL), other["study"]])


def test_killed_search_resumes_without_counting_dead_trials(inputs, tmp_path, monkeypatch):
    real = tuning.fit_and_score
    calls = {"n": 0}

    def dies_in_third_trial(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 4:  # two folds per trial: the third trial's first fit
            raise KeyboardInterrupt("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(tuning, "fit_and_score", dies_in_third_trial)
    cfg = tune_cfg(n_trials=4)
    with pytest.raises(KeyboardInterrupt):
        run(inputs, tmp_path, cfg)
    assert not (tmp_path / "nn_search.json").exists()
    study = stored(tmp_path, cfg)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.FAIL]
    study.ask()  # a trial a SIGKILL would leave RUNNING
    monkeypatch.setattr(tuning, "fit_and_score", real)

    resumed = run(inputs, tmp_path, cfg)
    assert resumed["n_trials_complete"] == 4
    assert [t["number"] for t in resumed["trials"]] == [0, 1, 4, 5]  # exactly 2 new ones
    states = [t.state for t in stored(tmp_path, cfg).trials]
    assert states == [TrialState.COMPLETE] * 2 + [TrialState.FAIL] * 2 + [TrialState.COMPLETE] * 2


def test_auc_metric_is_maximised_on_labelled_cells(inputs, tmp_path):
    y = np.array([[1, 0, np.nan], [0, 0, 1], [1, np.nan, 0], [0, 1, 1]], dtype=float)
    p = np.array([[0.9, 0.1, 0.5], [0.2, 0.3, 0.6], [0.7, 0.9, 0.4], [0.4, 0.8, 0.9]])
    assert metric_value("roc_auc", y, p) == pytest.approx(1.0)
    assert metric_value("pr_auc", y, p) == pytest.approx(1.0)
    assert metric_value("roc_auc", y, 1 - p) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="metric"):
        metric_value("accuracy", y, p)

    res = run(inputs, tmp_path, tune_cfg(n_trials=2, metric="roc_auc", folds=[2]), name="auc")
    assert res["direction"] == "maximize" and res["metric"] == "roc_auc"
    assert res["best_value"] == max(t["value"] for t in res["trials"])
    assert all(set(t["fold_values"]) == {"2"} for t in res["trials"])


def test_merge_tuned_params_overrides_base(tmp_path):
    path = tmp_path / "tuned.json"
    io.write_json({"params": {"hidden": [32, 32], "dropout": [0.2, 0.2, 0.2], "max_lr": 0.02}}, path)
    base = {"hidden": [64], "dropout": [0.1, 0.2], "max_lr": 0.01, "epochs": 12}
    merged = tuning.merge_tuned_params(base, path)
    assert merged == {"hidden": [32, 32], "dropout": [0.2, 0.2, 0.2], "max_lr": 0.02, "epochs": 12}
    assert base["hidden"] == [64]
    assert tuning.merge_tuned_params(None, path)["max_lr"] == 0.02


def grid_map(X: np.ndarray, names: list[str]):
    """A feature map that places the features row by row (no t-SNE: the test is about the plumbing)."""
    from moastack.deepinsight.feature_map import FeatureMap, LogNorm2Scaler

    index, side = np.arange(len(names)), int(np.ceil(np.sqrt(len(names))))
    return FeatureMap(list(names), side, side, index // side, index % side, LogNorm2Scaler().fit(X))


def test_a_study_of_a_deepinsight_model_renders_with_the_saved_feature_map(inputs, tmp_path):
    """Tuning fits through the train jobs' function, so a DeepInsight study reads its feature map input."""
    train = io.read_parquet(inputs["features_train"]).drop(columns=["sig_id"])
    X, names = train.to_numpy(np.float64), list(train.columns)
    grid_map(X, names).save(tmp_path / "map.npz")
    model = {"arch": "deepinsight", "features": "small", "folds": "ml3", "feature_map": "m", "device": "cpu",
             "params": {"epochs": 1, "batch_size": 64, "head_hidden": 16, "patience": None}}
    cfg = tune_cfg(n_trials=1, folds=[0], space={"lr": {"type": "float", "low": 1e-4, "high": 1e-3, "log": True}})
    with_map = {**inputs, "feature_map": str(tmp_path / "map.npz")}
    res = tuning.run_study("di", cfg, model, with_map, tmp_path / "di.journal", tmp_path / "di.json")
    assert res["n_trials_complete"] == 1 and np.isfinite(res["best_value"])
    grid_map(X[:, :-1], names[:-1]).save(tmp_path / "wrong.npz")
    with pytest.raises(ValueError, match="places other columns"):
        tuning.run_study("di2", cfg, model, {**inputs, "feature_map": str(tmp_path / "wrong.npz")},
                         tmp_path / "di2.journal", tmp_path / "di2.json")
