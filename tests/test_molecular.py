"""Morgan fingerprints and RDKit descriptors as feature steps."""

from __future__ import annotations

import logging
import pickle

import numpy as np
import pandas as pd
import pytest
from rdkit import Chem, DataStructs
from rdkit.Chem import Descriptors, rdFingerprintGenerator

from moastack.features import molecular
from moastack.features.feature_set import make_step
from moastack.features.molecular import MorganFingerprint, RDKitDescriptors, descriptor_matrix

SMILES = ["CCO", "c1ccccc1O", "CCCCCC", "CC(=O)Oc1ccccc1C(=O)O", "CN1CCC[C@H]1c1cccnc1", "ClC(Cl)Cl",
          "CCN(CC)CC", "O=C(O)c1ccccc1", "CC(C)Cc1ccc(C(C)C(=O)O)cc1", "c1ccc2ccccc2c1"]
NAMES = ["MolWt", "MolLogP", "TPSA", "NumHDonors", "RingCount"]


def frame(smiles: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"sig_id": [f"m{i}" for i in range(len(smiles))], "smiles": smiles,
                         "x": np.arange(len(smiles), dtype=np.float32)})


def test_steps_are_registered_under_their_config_names():
    assert isinstance(make_step({"name": "morgan", "radius": 1, "n_bits": 64}), MorganFingerprint)
    assert isinstance(make_step({"name": "rdkit_descriptors", "names": NAMES}), RDKitDescriptors)


def test_morgan_bits_match_rdkit_and_known_ethanol_bits():
    df = frame(SMILES)
    out = MorganFingerprint().fit(df).transform(df)
    names = [f"morgan_{i}" for i in range(2048)]
    assert list(out.columns) == ["sig_id", "smiles", "x", *names]
    assert (out[names].dtypes == np.float32).all()
    bits = out[names].to_numpy()
    assert np.flatnonzero(bits[0]).tolist() == [80, 222, 294, 807, 1057, 1410]  # ethanol, radius 2, 2048 bits
    gen = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)
    for row, smi in zip(bits, SMILES):
        expected = np.zeros(2048)
        DataStructs.ConvertToNumpyArray(gen.GetFingerprint(Chem.MolFromSmiles(smi)), expected)
        np.testing.assert_array_equal(row, expected)
    np.testing.assert_array_equal(MorganFingerprint().fit(df).transform(df)[names].to_numpy(), bits)
    np.testing.assert_array_equal(out["x"].to_numpy(), df["x"].to_numpy())


def test_morgan_counts_are_at_least_the_bits_on_the_same_positions():
    df = frame(SMILES)
    bits = MorganFingerprint(n_bits=512).fit(df).transform(df).filter(like="morgan_").to_numpy()
    counts = MorganFingerprint(n_bits=512, counts=True).fit(df).transform(df).filter(like="morgan_").to_numpy()
    assert (counts >= bits).all()
    np.testing.assert_array_equal(counts > 0, bits > 0)
    assert counts[2].max() >= 2  # hexane repeats its CH2 environments


def test_morgan_unparsable_smiles_gives_zero_row_and_a_logged_count(caplog):
    df = frame(["CCO", "C1CC", "CCO", None])
    with caplog.at_level(logging.WARNING, logger="moastack.features.molecular"):
        out = MorganFingerprint(n_bits=256).fit(df).transform(df).filter(like="morgan_").to_numpy()
    assert out[1].sum() == 0 and out[3].sum() == 0 and out[0].sum() > 0
    np.testing.assert_array_equal(out[0], out[2])
    assert "morgan: 2 rows have SMILES RDKit cannot parse" in caplog.text


def test_morgan_zero_rows_and_pickled_step():
    df = frame(SMILES)
    step = pickle.loads(pickle.dumps(MorganFingerprint(radius=1, n_bits=128).fit(df)))
    assert step.transform(df.iloc[:0]).shape == (0, 3 + 128)
    assert step.transform(df).filter(like="morgan_").to_numpy().sum() > 0


def test_descriptors_are_finite_and_standardised_on_the_fit_rows():
    df = frame(SMILES)
    step = RDKitDescriptors().fit(df)
    out = step.transform(df)
    cols = [f"desc_{n}" for n, _ in Descriptors._descList]
    assert list(out.columns) == ["sig_id", "smiles", "x", *cols]
    values = out[cols].to_numpy(dtype=np.float64)
    assert np.isfinite(values).all()
    varying = step.std_ != 1.0
    np.testing.assert_allclose(values[:, varying].mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(values[:, varying].std(axis=0), 1.0, rtol=1e-4)


def test_descriptor_transform_of_new_rows_uses_fitted_state():
    df = frame(SMILES)
    step = RDKitDescriptors(names=NAMES).fit(df)
    new = frame(["CCCCCCCCCCCCCCCCCCCC", "not a smiles"])
    out = step.transform(new)[[f"desc_{n}" for n in NAMES]].to_numpy(dtype=np.float64)
    raw_train = np.array([[getattr(Descriptors, n)(Chem.MolFromSmiles(s)) for n in NAMES] for s in SMILES])
    lo, hi = np.percentile(raw_train, [0.1, 99.9], axis=0)
    mean, std = np.clip(raw_train, lo, hi).mean(axis=0), np.clip(raw_train, lo, hi).std(axis=0)
    np.testing.assert_allclose(step.median_, np.median(raw_train, axis=0))
    np.testing.assert_allclose(step.mean_, mean)
    icosane = np.array([getattr(Descriptors, n)(Chem.MolFromSmiles("C" * 20)) for n in NAMES])
    np.testing.assert_allclose(out[0], (np.clip(icosane, lo, hi) - mean) / std, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[1], (np.clip(np.median(raw_train, axis=0), lo, hi) - mean) / std, rtol=1e-5,
                               atol=1e-6)


def test_descriptors_unscaled_keep_raw_values():
    df = frame(SMILES)
    out = RDKitDescriptors(names=["MolWt"], scale=False).fit(df).transform(df)
    np.testing.assert_allclose(out["desc_MolWt"].to_numpy(), [Descriptors.MolWt(Chem.MolFromSmiles(s)) for s in SMILES],
                               rtol=1e-6)


def test_a_descriptor_that_raises_gives_nan_then_its_median(monkeypatch):
    def boom(mol):
        raise RuntimeError("no")

    monkeypatch.setattr(Descriptors, "_descList", [*Descriptors._descList, ("Boom", boom)])
    raw = descriptor_matrix(["CCO", "CCC"], ["Boom", "MolWt"])
    assert np.isnan(raw[:, 0]).all()
    np.testing.assert_allclose(raw[:, 1], [46.069, 44.097], atol=1e-3)
    out = RDKitDescriptors(names=["Boom", "MolWt"]).fit(frame(["CCO", "CCC"])).transform(frame(["CCO"]))
    assert out["desc_Boom"].tolist() == [0.0]


def test_unknown_descriptor_names_are_refused():
    with pytest.raises(ValueError, match=r"unknown or no descriptor names \['MolWeight'\]"):
        RDKitDescriptors(names=["MolWeight"]).fit(frame(SMILES))


def test_descriptor_rows_are_cached_per_smiles():
    molecular._descriptor_row.cache_clear()
    df = frame(["CCO", "CCO", "CCN"])
    RDKitDescriptors(names=NAMES).fit(df).transform(df)
    info = molecular._descriptor_row.cache_info()
    assert info.misses == 2 and info.hits == 2  # two distinct molecules; fit computed, transform reused


def test_log_counts_is_log1p_of_the_counts():
    import numpy as np
    import pandas as pd

    from moastack.features.molecular import MorganFingerprint

    frame = pd.DataFrame({"sig_id": ["a", "b"], "smiles": ["CCCCCCCCCC", "c1ccccc1O"]})
    counts = MorganFingerprint(n_bits=256, counts=True).fit(frame).transform(frame).iloc[:, 2:].to_numpy()
    logged = MorganFingerprint(n_bits=256, counts=True, log_counts=True).fit(frame).transform(frame).iloc[:, 2:]
    assert counts.max() > 2
    np.testing.assert_allclose(logged.to_numpy(), np.log1p(counts), rtol=1e-6)
