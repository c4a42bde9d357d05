import copy
from pathlib import Path

import pytest
import yaml

from moastack.config import (
    ConfigError,
    blend_members,
    check_config,
    load_config,
    model_jobs,
    resources_for,
    train_slice,
    validate_schema,
    wants_gpu,
)

ROOT = Path(__file__).resolve().parents[1]


def _config():
    return validate_schema(yaml.safe_load((ROOT / "config.yaml").read_text()))


def test_default_config_is_valid_and_defaults_are_filled():
    config = load_config(ROOT / "config.yaml")
    assert config["models"]["prior"]["seeds"] == [0]
    assert config["models"]["simple_nn"]["targets"] == "scored"
    assert config["models"]["simple_nn"]["device"] == "auto"
    assert config["features"]["rankgauss_pca"]["fit_on"] == "train+test"


def test_schema_rejects_unknown_keys_and_bad_values():
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["models"]["simple_nn"]["epochz"] = 3
    with pytest.raises(ConfigError, match=r"models.simple_nn: Additional properties .*epochz"):
        validate_schema(config)
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["folds"]["mlsk5"]["k"] = 1
    with pytest.raises(ConfigError, match=r"folds.mlsk5.k: 1 is less than the minimum of 2"):
        validate_schema(config)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c["models"]["simple_nn"].update(features="nope"), r"models.simple_nn.features: unknown feature set 'nope'"),
        (lambda c: c["models"]["simple_nn"].update(folds="nope"), r"models.simple_nn.folds: unknown fold scheme"),
        (lambda c: c["models"]["simple_nn"].update(meta=["ghost"]), r"models.simple_nn.meta: unknown model 'ghost'"),
        (lambda c: c["models"]["simple_nn"].update(meta=["prior_drug"]), r"fold scheme 'mlsk5' but prior_drug uses 'drug5'"),
        (lambda c: c["models"]["simple_nn"].update(meta_only=True), r"meta_only is true"),
        (lambda c: c["blend"].update(members=["simple_nn_drug"]), r"blend.members: simple_nn_drug uses fold scheme 'drug5'"),
        (lambda c: c["blend"].update(folds="x"), r"blend.folds: unknown fold scheme 'x'"),
    ],
)
def test_cross_reference_errors_name_the_key(edit, message):
    config = _config()
    edit(config)
    with pytest.raises(ConfigError, match=message):
        check_config(config)


def test_deepinsight_feature_map_and_valid_controls_checks():
    """valid_controls needs a model that trains on its controls; a map's settings are type-checked by the
    schema and t-SNE on unsquared distances needs init random; every error names the key."""
    from moastack.spec import ModelSpec
    from moastack.train import early_stopping_rows

    config = _config()
    config["models"]["deepinsight"]["valid_controls"] = True
    check_config(config)
    config["models"]["deepinsight"]["drop_controls"] = True
    with pytest.raises(ConfigError, match="models.deepinsight.valid_controls"):
        check_config(config)
    config = _config()
    config["feature_maps"]["di20"].update(metric="cosine", square_distances=False)
    with pytest.raises(ConfigError, match="feature_maps.di20.square_distances"):
        check_config(config)
    config["feature_maps"]["di20"]["init"] = "random"
    check_config(config)
    raw = yaml.safe_load((ROOT / "config.yaml").read_text())
    for key, bad in [("placement", "grid"), ("fit_on", "test"), ("learning_rate", "fast"), ("scaler_clip", "yes")]:
        edited = copy.deepcopy(raw)
        edited["feature_maps"]["di20"][key] = bad
        with pytest.raises(ConfigError, match=f"feature_maps.di20.{key}"):
            validate_schema(edited)
    filled = _config()["feature_maps"]["di20"]
    assert (filled["fit_on"], filled["placement"], filled["learning_rate"], filled["scaler_clip"]) == (
        "train", "compact", "auto", False)
    from moastack.config import feature_map_slice

    config = _config()
    assert feature_map_slice(config, "di20") == {"features": "raw_onehot", "height": 20, "width": 20,
                                                 "perplexity": 30, "seed": 0}  # the slice it always had
    config["feature_maps"]["di20"]["fit_on"] = "fold"
    assert feature_map_slice(config, "di20")["fit_on"] == "fold"
    assert "valid_controls" not in train_slice(_config(), "deepinsight")
    config["models"]["deepinsight"]["valid_controls"] = True
    assert train_slice(config, "deepinsight")["valid_controls"] is True
    controls = [False, True, False]
    entry = {**_config()["models"]["deepinsight"]}
    assert early_stopping_rows(ModelSpec.from_entry("d", entry), controls).tolist() == [True, False, True]
    both = ModelSpec.from_entry("d", {**entry, "valid_controls": True})
    assert early_stopping_rows(both, controls).tolist() == [True, True, True]


def test_stacking_cycle_is_refused():
    config = _config()
    config["models"]["prior"]["meta"] = ["simple_nn"]
    config["models"]["simple_nn"]["meta"] = ["prior"]
    with pytest.raises(ConfigError, match="stacking cycle (prior -> simple_nn -> prior|simple_nn -> prior -> simple_nn)"):
        check_config(config)


def test_slices_and_job_lists():
    config = _config()
    assert model_jobs(config, "simple_nn") == [(0, f) for f in range(5)]
    sliced = train_slice(config, "simple_nn")
    assert "seeds" not in sliced and sliced["params"]["epochs"] == 20
    edited = copy.deepcopy(config)
    edited["models"]["simple_nn"]["seeds"] = [0, 1]
    assert train_slice(edited, "simple_nn") == sliced
    assert len(model_jobs(edited, "simple_nn")) == 10
    assert blend_members(config) == ["prior", "simple_nn", "nn3_stage2", "nn3_stage3", "deepinsight"]


def test_resources_and_gpu_requests():
    config = _config()
    assert resources_for(config, "train", "simple_nn")["threads"] == 1  # runtime.rules.train (the demo's)
    assert resources_for(config, "blend")["mem_mb"] == 2000
    config["models"]["simple_nn"]["resources"] = {"threads": 4}  # a model's own resources win
    assert resources_for(config, "train", "simple_nn")["threads"] == 4
    config["models"]["simple_nn"]["resources"] = {"mem_mb": 9000}
    assert resources_for(config, "train", "simple_nn")["mem_mb"] == 9000
    assert not wants_gpu(config, "simple_nn")
    config["models"]["simple_nn"]["device"] = "cuda"
    assert wants_gpu(config, "simple_nn")


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c["models"]["simple_nn"].update(init_from="ghost"), r"init_from: unknown model 'ghost'"),
        (lambda c: c["models"]["simple_nn"].update(init_from="simple_nn"), r"cannot start from its own weights"),
        (lambda c: c["models"]["simple_nn"].update(init_from="simple_nn_drug"), r"fold scheme 'drug5'.*same folds"),
        (lambda c: c["models"]["simple_nn"].update(init_from="prior"), r"arch simple_nn has no transfer"),
    ],
)
def test_transfer_source_must_match(edit, message):
    config = _config()
    edit(config)
    with pytest.raises(ConfigError, match=message):
        check_config(config)


def test_transfer_source_needs_every_seed():
    config = _config()
    config["models"]["phase1"] = {**copy.deepcopy(config["models"]["simple_nn"]), "arch": "resnet2h", "params": {}}
    config["models"]["simple_nn"].update(init_from="phase1", seeds=[0, 3], arch="resnet2h", params={})
    with pytest.raises(ConfigError, match=r"phase1 has no seeds \[3\]"):
        check_config(config)
    config["models"]["phase1"]["seeds"] = [0, 1, 2, 3]
    check_config(config)
    config["models"]["phase1"]["arch"] = "simple_nn"
    with pytest.raises(ConfigError, match=r"phase1 is a simple_nn, simple_nn a resnet2h"):
        check_config(config)


def _tox21_config():
    return validate_schema(yaml.safe_load((ROOT / "configs" / "tox21-smoke.yaml").read_text()))


@pytest.mark.parametrize("edit, message", [
    (lambda c: c["models"]["deepinsight"].pop("feature_map"), r"models.deepinsight: arch deepinsight needs feature_map"),
    (lambda c: c["models"]["deepinsight"].update(feature_map="nope"), r"models.deepinsight.feature_map: unknown map 'nope'"),
    (lambda c: c["models"]["deepinsight"].update(features="rankgauss_pca"),
     r"map 'di20' places the columns of feature set 'raw_onehot' but the model reads 'rankgauss_pca'"),
    (lambda c: c["models"]["simple_nn"].update(feature_map="di20"), r"only arch deepinsight renders images"),
    (lambda c: c["models"]["simple_nn"].update(params_from="tune/missing"), r"models.simple_nn.params_from: no study 'missing'"),
    (lambda c: c["folds"].update(scaf={"method": "scaffold", "k": 3, "seed": 0}), r"folds.scaf: scaffold folds need molecules"),
])
def test_cross_checks_name_the_key(edit, message):
    config = _config()
    edit(config)
    validate_schema(config)
    with pytest.raises(ConfigError, match=message):
        check_config(config)


def test_tox21_preset_checks_and_its_cross_checks():
    config = _tox21_config()
    check_config(config)
    bad = copy.deepcopy(config)
    bad["folds"]["drug"] = {"method": "drug_aware", "k": 3, "seed": 0, "drug_threshold": 18}
    with pytest.raises(ConfigError, match=r"folds.drug: drug_aware folds need lish-moa's train_drug"):
        check_config(validate_schema(bad))
    bad = copy.deepcopy(config)
    bad["tune"]["nn"]["folds"] = [5]
    with pytest.raises(ConfigError, match=r"tune.nn.folds: folds \[5\] do not exist"):
        check_config(bad)
    bad = copy.deepcopy(config)
    bad["tune"]["nn"]["space"]["width"] = {"type": "int", "low": 10, "high": 5}
    with pytest.raises(ConfigError, match=r"tune.nn.space.width: int needs low <= high"):
        check_config(bad)


def test_prepare_does_not_depend_on_the_metric():
    from moastack.config import data_slice

    a, b = _tox21_config(), _tox21_config()
    b["data"]["metric"] = "pr_auc"
    assert data_slice(a) == data_slice(b)


def test_schema_offers_every_synthetic_knob_and_checks_its_type():
    """data.synthetic takes every SyntheticSpec field (the dataclass holds the defaults), and only those."""
    import dataclasses

    from moastack.data.synthetic import SyntheticSpec

    schema = yaml.safe_load((ROOT / "schema" / "config.schema.yaml").read_text())
    offered = set(schema["properties"]["data"]["properties"]["synthetic"]["properties"])
    assert offered == {f.name for f in dataclasses.fields(SyntheticSpec)}
    config = _config()
    config["data"]["synthetic"] = {**config["data"]["synthetic"], "effect_strength": 0.5, "time_scale": [0.5, 0.8, 1.0]}
    validate_schema(config)
    config["data"]["synthetic"]["time_scale"] = [0.5, 1.0]
    with pytest.raises(ConfigError, match="time_scale"):
        validate_schema(config)
