"""Peak memory and time of the sparse-fingerprint path at Tox21-challenge size (about 12,000 compounds).

MoleculeNet's tox21.csv has 7,831 molecules; the challenge's training set about 12,000. ``prepare`` tops the
file up with methylated analogues of its own molecules (one carbon with a hydrogen gets a methyl group, the
first such carbon that gives a molecule not yet in the set, labels copied) so the rows are distinct
molecules with new environments, as a larger library would have, and runs moastack's own table source
and fold assignment on it. ``features`` and ``train`` are then the bodies of the ``features`` and
``train`` rules (``scripts/features.py``, ``scripts/train.py``) in one process each, to be measured with
``/usr/bin/time -v``:

    python benchmarks/sparse_rss.py prepare --workdir /tmp/sparse12k
    /usr/bin/time -v python benchmarks/sparse_rss.py features --workdir /tmp/sparse12k --radius 3
    /usr/bin/time -v python benchmarks/sparse_rss.py train --workdir /tmp/sparse12k --radius 3 --arch random_forest
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _common import ROOT

LABELS = ["NR-AR", "NR-AR-LBD", "NR-AhR", "NR-Aromatase", "NR-ER", "NR-ER-LBD", "NR-PPAR-gamma", "SR-ARE",
          "SR-ATAD5", "SR-HSE", "SR-MMP", "SR-p53"]
TABLE = {"id_column": "mol_id", "smiles_column": "smiles", "label_columns": LABELS, "duplicates": "merge",
         "invalid_smiles": "drop"}
PARAMS = {"random_forest": {"n_estimators": 200, "max_features": "sqrt", "class_weight": "balanced"},
          "simple_nn": {"hidden": [512, 256], "dropout": [0.6, 0.6, 0.6], "epochs": 25, "batch_size": 128,
                        "max_lr": 0.001, "weight_decay": 0.001, "label_smoothing": 0.0, "patience": 6}}


def methylated(smiles: str, seen: set[str]) -> str | None:
    """The first analogue of ``smiles`` with one more methyl group that is not in ``seen`` (canonical)."""
    from rdkit import Chem

    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        return None
    for atom in mol.GetAtoms():
        if atom.GetSymbol() != "C" or atom.GetTotalNumHs() == 0:
            continue
        edit = Chem.RWMol(mol)
        new = edit.AddAtom(Chem.Atom(6))
        edit.AddBond(atom.GetIdx(), new, Chem.BondType.SINGLE)
        try:
            Chem.SanitizeMol(edit)
        except Exception:  # noqa: BLE001 - an odd valence: try the next carbon
            continue
        out = Chem.MolToSmiles(edit)
        if out not in seen:
            return out
    return None


def prepare(workdir: Path, data: Path, rows: int) -> None:
    from moastack import io
    from moastack.columns import TABLES
    from moastack.data.prepare import prepare as prepare_tables
    from moastack.data.table import canonical_smiles
    from moastack.folds import make_folds

    raw = pd.read_csv(data)
    seen = set(canonical_smiles(raw["smiles"].to_numpy(dtype=object)).tolist())
    extra = []
    for _, row in raw.iterrows():
        if len(raw) + len(extra) >= rows:
            break
        analogue = methylated(row["smiles"], seen)
        if analogue is not None:
            seen.add(analogue)
            extra.append({**row.to_dict(), "mol_id": f"{row['mol_id']}_me", "smiles": analogue})
    big = pd.concat([raw, pd.DataFrame(extra)], ignore_index=True)
    workdir.mkdir(parents=True, exist_ok=True)
    big.to_csv(workdir / "tox21-big.csv", index=False)
    paths = {t: str(workdir / "data" / f"{t}.parquet") for t in TABLES}
    tables = prepare_tables({"task": "multilabel", "source": "table",
                             "table": {**TABLE, "path": str(workdir / "tox21-big.csv")}}, paths)
    folds = make_folds({"method": "multilabel_stratified", "k": 5, "seed": 42}, tables["train_targets_scored"],
                       tables["train_drug"])
    io.write_parquet(folds, workdir / "folds" / "random5.parquet")
    print(json.dumps({"csv_rows": len(big), "train_rows": len(tables["train_features"])}))


def feature_set_name(radius: int, min_frequency: int) -> str:
    return f"ecfp{2 * radius}_f{min_frequency}"


def features(workdir: Path, radius: int, min_frequency: int) -> None:
    from moastack import io
    from moastack.features.feature_set import build_feature_tables

    start = time.perf_counter()
    spec = {"fit_on": "train", "steps": [{"name": "sparse_fingerprint", "kind": "morgan", "radius": radius,
                                          "n_bits": None, "min_frequency": min_frequency, "log_counts": True}]}
    fitted, train, test = build_feature_tables(spec, io.read_parquet(workdir / "data" / "train_features.parquet"),
                                               io.read_parquet(workdir / "data" / "test_features.parquet"))
    out = workdir / "features" / feature_set_name(radius, min_frequency)
    train.write(out / "train.parquet")
    test.write(out / "test.parquet")
    io.write_joblib(fitted, out / "fitted.joblib")
    print(json.dumps({"feature_set": out.name, "rows": len(train), "kept_columns": len(train.sparse_names),
                      "nnz": int(train.sparse.nnz), "seconds": round(time.perf_counter() - start, 1)}))


def train(workdir: Path, radius: int, min_frequency: int, arch: str, fold: int, threads: int) -> None:
    from moastack.jobs import setup_job
    from moastack.spec import ModelSpec
    from moastack.train import FoldJob, run_fold_job

    setup_job(None, threads)
    fset = feature_set_name(radius, min_frequency)
    spec = ModelSpec.from_entry(f"{arch}_{fset}", {"arch": arch, "features": fset, "folds": "random5",
                                                   "params": PARAMS[arch]}, "multilabel")
    data = workdir / "data"
    job = FoldJob(spec=spec, seed=0, fold=fold, features_train=str(workdir / "features" / fset / "train.parquet"),
                  features_test=str(workdir / "features" / fset / "test.parquet"),
                  folds=str(workdir / "folds" / "random5.parquet"), targets=str(data / "train_targets_scored.parquet"),
                  train_features=str(data / "train_features.parquet"), test_features=str(data / "test_features.parquet"),
                  threads=threads)
    out = workdir / "models" / spec.name / f"fold{fold}"
    outputs = {k: str(out / f"{k}.{ext}") for k, ext in (("oof", "parquet"), ("test", "parquet"), ("model", "pt"),
                                                         ("metrics", "json"))}
    metrics = run_fold_job(job, outputs)
    print(json.dumps({k: v for k, v in metrics.items()
                      if k in ("model", "n_train", "n_valid", "n_features", "seconds") or k.startswith("valid_")}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("step", choices=["prepare", "features", "train"])
    ap.add_argument("--workdir", type=Path, default=ROOT / "results-bench" / "sparse12k")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "tox21" / "tox21.csv")
    ap.add_argument("--rows", type=int, default=12_000)
    ap.add_argument("--radius", type=int, default=2, help="ECFP radius (2 = ECFP4, 3 = ECFP6)")
    ap.add_argument("--min-frequency", type=int, default=5)
    ap.add_argument("--arch", choices=sorted(PARAMS), default="random_forest")
    ap.add_argument("--fold", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    np.seterr(all="ignore")
    if args.step == "prepare":
        prepare(args.workdir, args.data, args.rows)
    elif args.step == "features":
        features(args.workdir, args.radius, args.min_frequency)
    else:
        train(args.workdir, args.radius, args.min_frequency, args.arch, args.fold, args.threads)


if __name__ == "__main__":
    main()
