"""A seeded generator of Open Problems 2023-like single-cell perturbation tables.

Rows are (cell type, compound) pairs, targets are thousands of continuous gene responses. The structure
that matters to the winners' methods is reproduced:

* a compound's effect is low-rank: a latent vector (rank ``rank``, heavy-tailed potency) times gene
  loadings, so a truncated SVD of the targets recovers most of the signal;
* each cell type responds through its own scaling and mixing of that latent, plus its own baseline, so
  a compound's response in common cell types predicts (but does not equal) its response in a rare one;
* noise is Student-t (4 degrees of freedom) per cell: heavy-ish tails, as in the real differential
  expression values;
* the split mimics the real task: the common cell types are measured for every compound, the
  ``n_rare_cell_types`` rare ones (the last cell types) only for a shared ``rare_fraction`` of the
  compounds; the test rows are rare cell type × compound pairs absent from train (``test_fraction`` of
  all pairs), and the remaining rare pairs are never measured.

The full-size setting (the real de_train/id_map: 614 + 255 rows) is
``PerturbationSpec(n_cell_types=6, n_compounds=146, n_genes=18211, rare_fraction=17/146,
test_fraction=255/876)``; it generates in about a second.

Tables follow moastack's contracts (``columns.TABLES``): ``train_features`` / ``test_features`` hold
``sig_id``, ``cell_type``, ``compound`` and ``smiles``; ``train_targets_scored`` the float32 genes;
``train_targets_nonscored`` only ``sig_id``; ``train_drug`` maps ``sig_id`` to ``drug_id`` = compound.
Everything is drawn from one ``numpy.random.default_rng(seed)`` in a fixed order.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from moastack import columns as C

log = logging.getLogger(__name__)

COMMON_CELL_TYPES = ("NK cells", "T cells CD4+", "T cells CD8+", "T regulatory cells")
RARE_CELL_TYPES = ("B cells", "Myeloid cells")
FEATURE_COLUMNS = (C.ID_COL, "cell_type", "compound", "smiles")

# (name, SMILES) of well-known drugs and natural products; compounds cycle through this list.
DRUGS: tuple[tuple[str, str], ...] = (
    ("aspirin", "CC(=O)OC1=CC=CC=C1C(=O)O"),
    ("caffeine", "CN1C=NC2=C1C(=O)N(C(=O)N2C)C"),
    ("ibuprofen", "CC(C)CC1=CC=C(C=C1)C(C)C(=O)O"),
    ("paracetamol", "CC(=O)NC1=CC=C(C=C1)O"),
    ("naproxen", "COC1=CC2=C(C=C1)C=C(C=C2)C(C)C(=O)O"),
    ("metformin", "CN(C)C(=N)N=C(N)N"),
    ("nicotine", "CN1CCC[C@H]1C2=CN=CC=C2"),
    ("diclofenac", "OC(=O)CC1=CC=CC=C1NC1=C(Cl)C=CC=C1Cl"),
    ("theophylline", "CN1C2=C(C(=O)N(C1=O)C)NC=N2"),
    ("diphenhydramine", "CN(C)CCOC(C1=CC=CC=C1)C1=CC=CC=C1"),
    ("lidocaine", "CCN(CC)CC(=O)NC1=C(C)C=CC=C1C"),
    ("procaine", "CCN(CC)CCOC(=O)C1=CC=C(N)C=C1"),
    ("phenytoin", "O=C1NC(=O)C(N1)(C1=CC=CC=C1)C1=CC=CC=C1"),
    ("carbamazepine", "NC(=O)N1C2=CC=CC=C2C=CC2=CC=CC=C12"),
    ("diazepam", "CN1C(=O)CN=C(C2=CC=CC=C2)C2=C1C=CC(Cl)=C2"),
    ("fluoxetine", "CNCCC(OC1=CC=C(C=C1)C(F)(F)F)C1=CC=CC=C1"),
    ("haloperidol", "OC1(CCN(CCCC(=O)C2=CC=C(F)C=C2)CC1)C1=CC=C(Cl)C=C1"),
    ("chlorpromazine", "CN(C)CCCN1C2=CC=CC=C2SC2=C1C=C(Cl)C=C2"),
    ("imatinib", "CC1=C(C=C(C=C1)NC(=O)C2=CC=C(C=C2)CN3CCN(CC3)C)NC4=NC=CC(=N4)C5=CN=CC=C5"),
    ("gefitinib", "COC1=C(C=C2C(=C1)N=CN=C2NC3=CC(=C(C=C3)F)Cl)OCCCN4CCOCC4"),
    ("erlotinib", "COCCOC1=C(C=C2C(=C1)C(=NC=N2)NC3=CC=CC(=C3)C#C)OCCOC"),
    ("methotrexate", "CN(CC1=CN=C2C(=N1)C(=NC(=N2)N)N)C3=CC=C(C=C3)C(=O)N[C@@H](CCC(=O)O)C(=O)O"),
    ("fluorouracil", "FC1=CNC(=O)NC1=O"),
    ("tamoxifen", "CC/C(=C(\\C1=CC=CC=C1)/C2=CC=C(C=C2)OCCN(C)C)/C3=CC=CC=C3"),
    ("dexamethasone", "C[C@@H]1C[C@H]2[C@@H]3CCC4=CC(=O)C=C[C@@]4([C@]3([C@H](C[C@@]2([C@]1(C(=O)CO)O)C)O)F)C"),
    ("simvastatin", "CCC(C)(C)C(=O)O[C@H]1C[C@@H](C)C=C2C=C[C@H](C)[C@H](CC[C@@H]3C[C@@H](O)CC(=O)O3)[C@@H]12"),
    ("warfarin", "CC(=O)CC(C1=CC=CC=C1)C1=C(O)C2=CC=CC=C2OC1=O"),
    ("propranolol", "CC(C)NCC(O)COC1=CC=CC2=CC=CC=C21"),
    ("atenolol", "CC(C)NCC(O)COC1=CC=C(CC(N)=O)C=C1"),
    ("metoprolol", "COCCC1=CC=C(OCC(O)CNC(C)C)C=C1"),
    ("captopril", "C[C@H](CS)C(=O)N1CCC[C@H]1C(=O)O"),
    ("enalapril", "CCOC(=O)[C@H](CCC1=CC=CC=C1)N[C@@H](C)C(=O)N1CCC[C@H]1C(=O)O"),
    ("losartan", "CCCCC1=NC(Cl)=C(CO)N1CC1=CC=C(C=C1)C1=CC=CC=C1C1=NNN=N1"),
    ("amlodipine", "CCOC(=O)C1=C(COCCN)NC(C)=C(C1C1=CC=CC=C1Cl)C(=O)OC"),
    ("nifedipine", "COC(=O)C1=C(C)NC(C)=C(C1C1=CC=CC=C1[N+]([O-])=O)C(=O)OC"),
    ("verapamil", "COC1=C(OC)C=C(CCN(C)CCCC(C#N)(C(C)C)C2=CC(OC)=C(OC)C=C2)C=C1"),
    ("omeprazole", "COC1=CC2=C(C=C1)N=C(N2)S(=O)CC1=NC=C(C)C(OC)=C1C"),
    ("cimetidine", "CN=C(NCCSCC1=C(C)NC=N1)NC#N"),
    ("loratadine", "CCOC(=O)N1CCC(=C2C3=CC=C(Cl)C=C3CCC3=CC=CN=C23)CC1"),
    ("cetirizine", "OC(=O)COCCN1CCN(CC1)C(C1=CC=CC=C1)C1=CC=C(Cl)C=C1"),
    ("sildenafil", "CCCC1=NN(C)C2=C1N=C(NC2=O)C1=C(OCC)C=CC(=C1)S(=O)(=O)N1CCN(C)CC1"),
    ("furosemide", "NS(=O)(=O)C1=CC(C(O)=O)=C(NCC2=CC=CO2)C=C1Cl"),
    ("hydrochlorothiazide", "NS(=O)(=O)C1=C(Cl)C=C2NCNS(=O)(=O)C2=C1"),
    ("ciprofloxacin", "OC(=O)C1=CN(C2CC2)C2=CC(N3CCNCC3)=C(F)C=C2C1=O"),
    ("trimethoprim", "COC1=CC(CC2=CN=C(N)N=C2N)=CC(OC)=C1OC"),
    ("sulfamethoxazole", "CC1=CC(NS(=O)(=O)C2=CC=C(N)C=C2)=NO1"),
    ("metronidazole", "CC1=NC=C(N1CCO)[N+]([O-])=O"),
    ("isoniazid", "NNC(=O)C1=CC=NC=C1"),
    ("fluconazole", "OC(CN1C=NC=N1)(CN1C=NC=N1)C1=C(F)C=C(F)C=C1"),
    ("clotrimazole", "ClC1=CC=CC=C1C(N1C=CN=C1)(C1=CC=CC=C1)C1=CC=CC=C1"),
    ("acyclovir", "NC1=NC2=C(N=CN2COCCO)C(=O)N1"),
    ("chloroquine", "CCN(CC)CCCC(C)NC1=C2C=CC(Cl)=CC2=NC=C1"),
    ("colchicine", "COC1=CC2=C(C(OC)=C1OC)C1=CC=C(OC)C(=O)C=C1[C@H](CC2)NC(C)=O"),
    ("celecoxib", "CC1=CC=C(C=C1)C1=CC(=NN1C1=CC=C(C=C1)S(N)(=O)=O)C(F)(F)F"),
    ("indomethacin", "COC1=CC2=C(C=C1)N(C(=O)C1=CC=C(Cl)C=C1)C(C)=C2CC(O)=O"),
    ("ketoprofen", "CC(C(O)=O)C1=CC(=CC=C1)C(=O)C1=CC=CC=C1"),
    ("sertraline", "CN[C@H]1CC[C@@H](C2=CC=CC=C12)C1=CC(Cl)=C(Cl)C=C1"),
    ("vorinostat", "ONC(=O)CCCCCCC(=O)NC1=CC=CC=C1"),
    ("dasatinib", "CC1=NC(NC2=NC=C(S2)C(=O)NC2=C(C)C=CC=C2Cl)=CC(=N1)N1CCN(CCO)CC1"),
    ("resveratrol", "OC1=CC=C(C=C1)/C=C/C1=CC(O)=CC(O)=C1"),
    ("quercetin", "OC1=CC(O)=C2C(=O)C(O)=C(OC2=C1)C1=CC(O)=C(O)C=C1"),
    ("curcumin", "COC1=CC(/C=C/C(=O)CC(=O)/C=C/C2=CC(OC)=C(O)C=C2)=CC=C1O"),
)


@dataclass(frozen=True)
class PerturbationSpec:
    """Size and strength knobs; the defaults give a small, fast data set (276 train + 96 test pairs × 500 genes)."""

    n_cell_types: int = 4
    n_compounds: int = 120
    n_genes: int = 500
    rank: int = 8
    noise: float = 0.3
    n_rare_cell_types: int = 2
    rare_fraction: float = 0.15  # share of compounds a rare cell type is measured for (train rows)
    test_fraction: float = 0.2  # share of all (cell type, compound) pairs held out as test rows
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.n_cell_types, self.n_compounds, self.n_genes, self.rank) < 1:
            raise ValueError("n_cell_types, n_compounds, n_genes and rank must be >= 1")
        if not 1 <= self.n_rare_cell_types < self.n_cell_types:
            raise ValueError("need 1 <= n_rare_cell_types < n_cell_types (test rows are rare-cell pairs)")
        if not 0.0 < self.rare_fraction < 1.0 or not 0.0 <= self.test_fraction < 1.0:
            raise ValueError("rare_fraction must be in (0, 1) and test_fraction in [0, 1)")
        if self.n_test > self.n_rare_cell_types * (self.n_compounds - self.n_rare_measured):
            raise ValueError(
                f"test_fraction {self.test_fraction} asks for {self.n_test} test pairs but only "
                f"{self.n_rare_cell_types * (self.n_compounds - self.n_rare_measured)} rare-cell pairs are unmeasured"
            )

    @property
    def n_rare_measured(self) -> int:
        """Compounds each rare cell type is measured for in train (at least one)."""
        return min(self.n_compounds - 1, max(1, int(round(self.rare_fraction * self.n_compounds))))

    @property
    def n_test(self) -> int:
        return int(round(self.test_fraction * self.n_cell_types * self.n_compounds))


def cell_type_names(n: int, n_rare: int) -> list[str]:
    """The real task's cell types, common ones first and the ``n_rare`` rare ones last (numbered extras
    when there are more than the real 4 + 2)."""
    n_common = n - n_rare
    common = list(COMMON_CELL_TYPES[:n_common]) + [f"cell type {i + 1}" for i in range(4, n_common)]
    rare = list(RARE_CELL_TYPES[:n_rare]) + [f"rare cell type {i + 1}" for i in range(2, n_rare)]
    return common + rare


def compound_table(n: int) -> tuple[list[str], list[str]]:
    """(names, smiles) of ``n`` compounds cycling through :data:`DRUGS`; names stay distinct
    ("aspirin", then "aspirin-2" on the second pass) while a cycled compound reuses its SMILES as is."""
    names, smiles = [], []
    for i in range(n):
        name, smi = DRUGS[i % len(DRUGS)]
        cycle = i // len(DRUGS)
        names.append(name if cycle == 0 else f"{name}-{cycle + 1}")
        smiles.append(smi)
    return names, smiles


def gene_names(n: int) -> list[str]:
    width = max(4, len(str(n - 1)))
    return [f"gene_{i:0{width}d}" for i in range(n)]


def _simulate(spec: PerturbationSpec) -> dict[str, np.ndarray]:
    """All draws, in a fixed order: per-pair targets of every kept pair and its train/test flag."""
    rng = np.random.default_rng(spec.seed)
    n_ct, n_cp, n_g, r = spec.n_cell_types, spec.n_compounds, spec.n_genes, spec.rank
    # cell types: response = scale · (I + mixing), plus a per-gene baseline
    ct_scale = rng.lognormal(0.0, 0.3, size=n_ct)
    mixing = np.eye(r) + 0.5 * rng.standard_normal((n_ct, r, r)) / np.sqrt(r)
    response = ct_scale[:, None, None] * mixing  # (n_ct, r, r)
    gene_scale = rng.lognormal(0.0, 0.5, size=n_g)
    baseline = 0.5 * rng.standard_normal((n_ct, n_g)) * gene_scale
    # compounds: heavy-tailed potency times a latent direction
    potency = rng.lognormal(0.0, 0.6, size=n_cp)
    latent = potency[:, None] * rng.standard_normal((n_cp, r))
    loadings = rng.standard_normal((r, n_g)) * gene_scale / np.sqrt(r)
    # split: shared measured compounds for the rare cell types, then test pairs among the rest
    n_common = n_ct - spec.n_rare_cell_types
    measured = np.zeros((n_ct, n_cp), dtype=bool)
    measured[:n_common] = True
    measured[n_common:, rng.choice(n_cp, size=spec.n_rare_measured, replace=False)] = True
    unmeasured = np.flatnonzero(~measured.ravel())
    test = np.zeros(n_ct * n_cp, dtype=bool)
    test[rng.choice(unmeasured, size=spec.n_test, replace=False)] = True
    keep = np.flatnonzero(measured.ravel() | test)
    ct_of, cp_of = np.divmod(keep, n_cp)
    # targets of the kept pairs only: (compound latent · cell-type response) · loadings + baseline + noise
    mixed = np.einsum("pr,prs->ps", latent[cp_of], response[ct_of])
    y = (mixed @ loadings + baseline[ct_of]).astype(np.float32)
    df = 4.0
    t_scale = np.float32(spec.noise * np.sqrt((df - 2.0) / df))  # unit-variance Student-t times noise
    noise = rng.standard_normal((keep.size, n_g), dtype=np.float32)
    noise /= np.sqrt(rng.standard_gamma(df / 2.0, size=(keep.size, n_g), dtype=np.float32) / np.float32(df / 2.0))
    y += t_scale * noise
    order = rng.permutation(keep.size)  # sig_id numbers carry no information about the pair
    sig_num = np.empty(keep.size, dtype=np.int64)
    sig_num[order] = np.arange(1, keep.size + 1)
    return {"cell": ct_of, "compound": cp_of, "test": test[keep], "y": y, "sig_num": sig_num}


def _tables(spec: PerturbationSpec) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    sim = _simulate(spec)
    cells = np.array(cell_type_names(spec.n_cell_types, spec.n_rare_cell_types), dtype=object)
    names, smiles = (np.array(v, dtype=object) for v in compound_table(spec.n_compounds))
    genes = gene_names(spec.n_genes)
    width = max(5, len(str(len(sim["sig_num"]))))
    sig = np.array([f"pair-{i:0{width}d}" for i in sim["sig_num"].tolist()], dtype=object)
    frames: dict[str, pd.DataFrame] = {}
    truth = None
    for part, mask in (("train", ~sim["test"]), ("test", sim["test"])):
        idx = np.flatnonzero(mask)
        idx = idx[np.argsort(sig[idx], kind="stable")]
        ids = pd.array(sig[idx], dtype="str")
        frames[f"{part}_features"] = pd.DataFrame({
            C.ID_COL: ids,
            "cell_type": pd.array(cells[sim["cell"][idx]], dtype="str"),
            "compound": pd.array(names[sim["compound"][idx]], dtype="str"),
            "smiles": pd.array(smiles[sim["compound"][idx]], dtype="str"),
        })
        y = pd.concat([pd.DataFrame({C.ID_COL: ids}), pd.DataFrame(sim["y"][idx], columns=genes)], axis=1)
        if part == "train":
            frames["train_targets_scored"] = y
            frames["train_targets_nonscored"] = pd.DataFrame({C.ID_COL: ids})
            frames["train_drug"] = pd.DataFrame({C.ID_COL: ids, C.DRUG_COL: frames["train_features"]["compound"]})
        else:
            truth = y
    return frames, truth


def generate_perturbation(spec: PerturbationSpec | None = None) -> dict[str, pd.DataFrame]:
    """The five raw tables (keys ``columns.TABLES``), each sorted by ``sig_id``."""
    spec = spec or PerturbationSpec()
    frames, _ = _tables(spec)
    log.info("synthetic perturbation data: %d train, %d test pairs × %d genes, seed %d",
             len(frames["train_features"]), len(frames["test_features"]), spec.n_genes, spec.seed)
    return {name: frames[name] for name in C.TABLES}


def perturbation_test_truth(spec: PerturbationSpec | None = None) -> pd.DataFrame:
    """The test rows' targets (``sig_id`` + genes, in ``test_features`` order), for scoring benchmarks."""
    return _tables(spec or PerturbationSpec())[1]
