"""A seeded generator of lish-moa-like raw tables.

The pipeline must run end to end without the Kaggle files, and its models must have something real to
learn. The generator therefore reproduces the structure that matters to the winning recipe:

* drugs carry mechanisms (MoAs) in fixed drug-level bundles (nfkb + proteasome, kit + pdgfr + flt3, ...);
  every row of a drug shares its labels; about 40% of rows have no scored MoA (controls, inactive drugs);
* each mechanism moves a sparse gene signature, cytotoxic ones push all cell-viability columns down;
  dose and time scale the effect;
* each drug also has its own idiosyncratic signature, so rows of a drug resemble each other beyond their
  mechanisms: row-wise CV is optimistic compared with drug-aware CV, as on the real data;
* the noise is block-correlated for genes and strongly shared for cells, heavy-tailed and clipped at ±10;
* non-scored targets hang off scored mechanisms (children) or off otherwise inactive drugs (orphans).

Everything is drawn from one ``numpy.random.default_rng(seed)`` in a fixed order, so the same spec gives
byte-identical frames. Target names do not depend on the seed.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

from moastack import columns as C
from moastack.io import write_csv

log = logging.getLogger(__name__)

CONTROL_DRUG = "cacb2b860"
FULL_TRAIN_ROWS = 23814

# Sizes (rows, train + test) of the largest real drugs; scaled with the data set size.
_BIG_DRUG_SIZES = (718, 246, 203, 202, 196, 194, 186, 178)
# Fixed co-occurring label sets (the real data's strongest ones); more are drawn per seed.
_NAMED_BUNDLES = (
    ("nfkb_inhibitor", "proteasome_inhibitor"),
    ("flt3_inhibitor", "kit_inhibitor", "pdgfr_inhibitor"),
    ("dopamine_receptor_antagonist", "serotonin_receptor_antagonist"),
)
_CYTOTOXIC_FAMILIES = ("proteasome", "nfkb", "tubulin", "hdac", "topoisomerase", "cdk", "hsp", "dna")

_RECEPTORS = (
    "acetylcholine_receptor", "adenosine_receptor", "adrenergic_receptor", "androgen_receptor",
    "angiotensin_receptor", "bradykinin_receptor", "cannabinoid_receptor", "cholecystokinin_receptor",
    "dopamine_receptor", "estrogen_receptor", "gaba_receptor", "glucocorticoid_receptor",
    "glutamate_receptor", "histamine_receptor", "leukotriene_receptor", "melatonin_receptor",
    "opioid_receptor", "orexin_receptor", "ppar_receptor", "progesterone_receptor", "prostanoid_receptor",
    "retinoid_receptor", "serotonin_receptor", "sigma_receptor", "thyroid_hormone_receptor", "tlr",
    "vasopressin_receptor", "vitamin_d_receptor",
)  # fmt: skip
_ENZYMES = (
    "abl", "acetylcholinesterase", "akt", "alk", "atpase", "aurora_kinase", "bcl", "bromodomain", "btk",
    "carbonic_anhydrase", "cdk", "chk", "cyclooxygenase", "dna", "dna_methyltransferase", "egfr", "erbb2",
    "faah", "fgfr", "flt3", "gsk", "hdac", "hiv_protease", "hmgcr", "hsp", "igf_1", "ikk", "jak", "kit",
    "lipoxygenase", "mek", "met", "monoamine_oxidase", "mtor", "nfkb", "p38_mapk", "parp", "pdgfr",
    "phosphodiesterase", "pi3k", "plk", "proteasome", "raf", "ret", "rho_associated_kinase",
    "ribonucleotide_reductase", "rna_polymerase", "src", "syk", "thymidylate_synthase", "topoisomerase",
    "tubulin", "vegfr", "wee1",
)  # fmt: skip
_CHANNELS = ("calcium_channel", "chloride_channel", "potassium_channel", "sodium_channel")
_ACTIVATED = ("ampk", "glucokinase", "pkc", "sirtuin", "adenylyl_cyclase", "guanylate_cyclase")
_NUMBERED = (
    ("kinase", "inhibitor"), ("receptor", "agonist"), ("receptor", "antagonist"), ("enzyme", "inhibitor"),
    ("transporter", "inhibitor"), ("channel", "blocker"),
)  # fmt: skip


@dataclass(frozen=True)
class SyntheticSpec:
    """Size and strength knobs of the generator; the defaults give a 4,000-row demo data set."""

    n_train: int = 4000
    n_test: int = 1000
    seed: int = 42
    n_scored: int = 206
    n_nonscored: int = 402
    control_fraction: float = 0.08
    inactive_fraction: float = 0.35  # share of treated rows whose drug has no scored MoA
    multi_fraction: float = 0.09  # share of regular active drugs with a 2+ mechanism bundle
    effect_strength: float = 1.0  # scale of the mechanism signatures (genes and cells)
    drug_effect_strength: float = 1.0  # scale of each drug's idiosyncratic signature
    noise: float = 1.0  # scale of the background noise
    new_drug_fraction: float = 0.5  # share of treated test rows from drugs absent from train


# --------------------------------------------------------------------------------------------- names
def target_names(n_scored: int, n_nonscored: int) -> tuple[list[str], list[str]]:
    """Plausible, unique, seed-independent mechanism names; each list sorted like the real files."""
    pool = _name_pool(n_scored + n_nonscored)
    forced = [n for bundle in _NAMED_BUNDLES for n in bundle]
    rest = [n for n in pool if n not in forced]
    order = np.random.default_rng(20201).permutation(len(rest))
    ordered = forced + [rest[i] for i in order]
    return sorted(ordered[:n_scored]), sorted(ordered[n_scored : n_scored + n_nonscored])


def _name_pool(n: int) -> list[str]:
    """Curated family × action names, topped up with numbered variants until there are ``n``."""
    names = [f"{r}_{a}" for r in _RECEPTORS for a in ("agonist", "antagonist")]
    names += [f"{e}_inhibitor" for e in _ENZYMES]
    names += [f"{c}_{a}" for c in _CHANNELS for a in ("blocker", "opener")]
    names += [f"{e}_activator" for e in _ACTIVATED]
    k = 1
    while len(names) < n:
        names += [f"{fam}_{k}_{act}" for fam, act in _NUMBERED]
        k += 1
    return names


# --------------------------------------------------------------------------------------------- drugs
@dataclass
class _Drugs:
    """Drug-level draws: sizes, labels, and which drugs must stay in train."""

    sizes: np.ndarray  # rows per drug (train + test)
    big: np.ndarray  # bool
    scored: np.ndarray  # (n_drugs, n_scored) int8
    nonscored: np.ndarray  # (n_drugs, n_nonscored) int8
    reserved: np.ndarray  # bool: carries a target's only guaranteed drug -> never a test-only drug
    potency: np.ndarray  # float
    parent: np.ndarray  # scored parent of each non-scored target, -1 if none


def _drug_sizes(
    rng: np.random.Generator, spec: SyntheticSpec, n_treated: int
) -> tuple[np.ndarray, np.ndarray]:
    """A few big drugs (scaled to the data size), then mostly 6/12/18-row drugs, summing to n_treated."""
    scale = spec.n_train / FULL_TRAIN_ROWS
    big = np.rint(np.array(_BIG_DRUG_SIZES) * scale).astype(np.int64)
    big = big[big > 18]
    while big.sum() > n_treated // 3 and len(big):
        big = big[1:]
    need = n_treated - int(big.sum())
    kinds = rng.choice(6, size=need // 4 + 16, p=[0.72, 0.10, 0.04, 0.07, 0.04, 0.03])
    base = np.array([6, 12, 18, 0, 0, 0])
    odd = rng.choice(np.r_[7:12, 13:18], size=kinds.size)
    sizes = np.where(kinds == 3, odd, base[kinds])
    sizes = np.where(kinds == 4, rng.integers(1, 6, size=kinds.size), sizes)
    sizes = np.where(kinds == 5, rng.integers(19, 61, size=kinds.size), sizes)
    cum = np.cumsum(sizes)
    n_reg = int(np.searchsorted(cum, need)) + 1
    sizes = sizes[:n_reg].copy()
    sizes[-1] -= int(cum[n_reg - 1] - need)
    sizes = sizes[sizes > 0]
    all_sizes = np.concatenate([big, sizes])
    return all_sizes, np.arange(all_sizes.size) < big.size


def _bundles(rng: np.random.Generator, scored: list[str]) -> list[np.ndarray]:
    """Fixed multi-mechanism label sets: the named real ones plus a few drawn pairs and triples."""
    index = {n: i for i, n in enumerate(scored)}
    out = [np.array([index[n] for n in b]) for b in _NAMED_BUNDLES if all(n in index for n in b)]
    n_extra = max(2, len(scored) // 12)
    sizes = rng.choice([2, 3, 4], size=n_extra, p=[0.6, 0.3, 0.1])
    for k in sizes:
        if k <= len(scored):
            out.append(np.sort(rng.choice(len(scored), size=k, replace=False)))
    return out


def _popularity(rng: np.random.Generator, n: int, exponent: float = 1.1) -> np.ndarray:
    """Zipf-like weights in random order: a few common mechanisms, a long tail of rare ones."""
    w = 1.0 / (np.arange(n) + 3.0) ** exponent
    return rng.permutation(w) / w.sum()


def _assign_labels(
    rng: np.random.Generator, spec: SyntheticSpec, sizes: np.ndarray, big: np.ndarray, scored: list[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scored label matrix per drug, with every target given at least one reserved drug where possible."""
    n_drugs, n_s = sizes.size, len(scored)
    labels = np.zeros((n_drugs, n_s), dtype=np.int8)
    reserved = np.zeros(n_drugs, dtype=bool)
    if n_s == 0:
        return labels, reserved, np.zeros(n_drugs, dtype=bool)
    reg_rows = sizes[~big].sum()
    p_inactive = min(0.95, spec.inactive_fraction * sizes.sum() / max(reg_rows, 1))
    active = big | (rng.random(n_drugs) >= p_inactive)
    bundles = _bundles(rng, scored)
    weights = _popularity(rng, n_s)

    # Big drugs: the biggest carries the nfkb/proteasome bundle, the others a popular single mechanism.
    big_idx = np.flatnonzero(big)
    if big_idx.size:
        labels[big_idx[0], bundles[0]] = 1
        labels[big_idx[1:], rng.choice(n_s, size=big_idx.size - 1, p=weights)] = 1
    # Regular active drugs: coverage first (one drug per target, in random order), then popularity draws.
    # Single-row drugs go last so that a target's coverage drug gives it at least two positives.
    reg = rng.permutation(np.flatnonzero(active & ~big))
    reg = reg[np.argsort(sizes[reg] < 2, kind="stable")]
    n_cover = min(n_s, reg.size)
    cover_targets = rng.permutation(n_s)[:n_cover]
    labels[reg[:n_cover], cover_targets] = 1
    reserved[reg[:n_cover]] = True
    rest = reg[n_cover:]
    multi = rng.random(rest.size) < spec.multi_fraction * reg.size / max(rest.size, 1)
    singles = rest[~multi]
    labels[singles, rng.choice(n_s, size=singles.size, p=weights)] = 1
    picks = rng.integers(len(bundles), size=int(multi.sum()))
    for d, b in zip(rest[multi], picks):
        labels[d, bundles[b]] = 1
    return labels, reserved, active


def _assign_nonscored(
    rng: np.random.Generator, scored_labels: np.ndarray, active: np.ndarray, n_ns: int
) -> tuple[np.ndarray, np.ndarray]:
    """Non-scored labels: children follow a parent scored mechanism, orphans mark inactive drugs.

    About a fifth of the non-scored targets are never used, as in the real data (zero positives).
    Returns the label matrix and each target's parent (-1 for orphans and unused ones).
    """
    n_drugs, n_s = scored_labels.shape
    labels = np.zeros((n_drugs, n_ns), dtype=np.int8)
    kind = rng.choice(3, size=n_ns, p=[0.5, 0.32, 0.18])  # 0 child, 1 orphan, 2 never used
    if n_s == 0:
        kind[kind == 0] = 1
    parent = np.where(kind == 0, rng.integers(max(n_s, 1), size=n_ns), -1)
    children = np.flatnonzero(kind == 0)
    if children.size:
        keep = rng.random((n_drugs, children.size)) < rng.uniform(0.15, 0.7, size=children.size)
        labels[:, children] = (scored_labels[:, parent[children]].astype(bool) & keep).astype(np.int8)
    orphans = np.flatnonzero(kind == 1)
    if orphans.size:
        w = _popularity(rng, orphans.size, exponent=1.3)
        has = np.where(active, rng.random(n_drugs) < 0.08, rng.random(n_drugs) < 0.6)
        drugs = np.flatnonzero(has)
        labels[drugs, rng.choice(orphans, size=drugs.size, p=w)] = 1
    return labels, parent


def _draw_drugs(rng: np.random.Generator, spec: SyntheticSpec, n_treated: int, scored: list[str]) -> _Drugs:
    sizes, big = _drug_sizes(rng, spec, n_treated)
    labels, reserved, active = _assign_labels(rng, spec, sizes, big, scored)
    ns_labels, parent = _assign_nonscored(rng, labels, active, spec.n_nonscored)
    potency = rng.lognormal(0.0, 0.35, size=sizes.size)
    return _Drugs(sizes, big, labels, ns_labels, reserved, potency, parent)


# ----------------------------------------------------------------------------------------------- rows
def _split_rows(
    rng: np.random.Generator, drugs: _Drugs, n_test_treated: int, new_fraction: float
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of every drug, then a test set: whole new drugs plus a random share of seen drugs' rows.

    Returns (drug index per treated row, is-test flag per treated row). Reserved and big drugs are never
    test-only, and every seen drug keeps at least its first two rows in train.
    """
    sizes = drugs.sizes
    drug_of_row = np.repeat(np.arange(sizes.size), sizes)
    pos_in_drug = np.arange(drug_of_row.size) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    candidates = rng.permutation(np.flatnonzero(~drugs.reserved & ~drugs.big & (sizes <= 18)))
    cum = np.cumsum(sizes[candidates])
    n_new = int(np.searchsorted(cum, new_fraction * n_test_treated, side="right"))
    new = np.zeros(sizes.size, dtype=bool)
    new[candidates[:n_new]] = True
    is_test = new[drug_of_row]
    remaining = n_test_treated - int(is_test.sum())
    # Seen-drug test rows come from beyond a drug's first 6 rows where possible (big and 12/18-row drugs),
    # so the common 6-row drugs stay whole in train, as in the real data.
    for keep in (6, 2, 1):
        pool = np.flatnonzero(~is_test & (pos_in_drug >= keep))
        if pool.size >= remaining:
            break
    is_test[rng.choice(pool, size=min(remaining, pool.size), replace=False)] = True
    return drug_of_row, is_test


def _meta(rng: np.random.Generator, drug_of_row: np.ndarray, sizes: np.ndarray, n_ctl: int):
    """cp_time/cp_dose: a drug's rows walk the 6 time × dose cells from a random start; controls random."""
    start = rng.integers(6, size=sizes.size)
    pos = np.arange(drug_of_row.size) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    cell = np.concatenate([(start[drug_of_row] + pos) % 6, rng.integers(6, size=n_ctl)])
    return cell // 2, cell % 2  # time index (0..2), dose index (0..1)


# ------------------------------------------------------------------------------------------ features
def _gene_blocks(rng: np.random.Generator, n_blocks: int = 40) -> np.ndarray:
    """Block id of every gene: co-regulated modules of uneven size."""
    cuts = np.sort(rng.choice(np.arange(1, C.N_GENES), size=n_blocks - 1, replace=False))
    block = np.zeros(C.N_GENES, dtype=np.int64)
    block[cuts] = 1
    return rng.permutation(np.cumsum(block))


def _background(rng: np.random.Generator, n: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """Unaffected g-/c- values: block + global factors for genes, one shared viability factor for cells.

    Genes: sd about 0.78, slight right skew; cells: sd about 0.65, left-skewed and strongly inter-correlated.
    Occasional outliers give heavy tails.
    """
    block = _gene_blocks(rng)
    n_blocks = int(block.max()) + 1
    f_block = rng.standard_normal((n, n_blocks), dtype=np.float32)
    load = rng.uniform(0.3, 0.6, size=C.N_GENES).astype(np.float32)
    genes = f_block[:, block] * load
    f_glob = rng.standard_normal((n, 4), dtype=np.float32)
    genes += f_glob @ rng.normal(0, 0.12, size=(4, C.N_GENES)).astype(np.float32)
    genes += rng.standard_normal((n, C.N_GENES), dtype=np.float32) * np.float32(0.58)
    genes += np.float32(0.06) * (genes**2 - np.float32(0.6))  # right skew
    genes *= np.float32(noise)

    z = rng.standard_normal(n, dtype=np.float32)
    via = z - np.float32(0.1) * (z**2 - 1)  # left skew: viability drops more than it rises
    c_load = rng.uniform(0.5, 0.62, size=C.N_CELLS).astype(np.float32)
    cells = via[:, None] * c_load + rng.standard_normal((n, C.N_CELLS), dtype=np.float32) * np.float32(0.25)
    cells *= np.float32(noise)

    for x in (genes, cells):
        out = rng.random(x.shape, dtype=np.float32) < 0.004
        x[out] *= np.float32(3.0)
    return genes, cells


def _sparse_signature(rng: np.random.Generator, n_sig: int, lo: int, hi: int, scale: float) -> np.ndarray:
    """(n_sig, N_GENES) signatures with lo..hi non-zero genes each, lognormal magnitudes, random signs."""
    sig = np.zeros((n_sig, C.N_GENES), dtype=np.float32)
    if n_sig == 0:
        return sig
    k = rng.integers(lo, hi + 1, size=n_sig)
    # Random top-k genes per signature, drawn vectorised via argsort of uniform keys.
    order = np.argsort(rng.random((n_sig, C.N_GENES)), axis=1)
    mask = np.arange(C.N_GENES)[None, :] < k[:, None]
    rows = np.repeat(np.arange(n_sig), k)
    cols = order[mask]
    mag = rng.lognormal(0.0, 0.45, size=cols.size) * rng.choice([-1.0, 1.0], size=cols.size, p=[0.45, 0.55])
    sig[rows, cols] = (scale * mag).astype(np.float32)
    return sig


def _cell_signature(rng: np.random.Generator, n_sig: int, cytotoxic: np.ndarray, scale: float) -> np.ndarray:
    """(n_sig, N_CELLS): cytotoxic mechanisms kill broadly (all cells strongly down), others barely."""
    mild = -np.abs(rng.normal(0, 0.15, size=(n_sig, 1))) * rng.uniform(0.5, 1.0, size=(n_sig, C.N_CELLS))
    strong = -rng.uniform(2.5, 5.0, size=(n_sig, 1)) * rng.uniform(0.7, 1.0, size=(n_sig, C.N_CELLS))
    return (scale * np.where(cytotoxic[:, None], strong, mild)).astype(np.float32)


def _signatures(rng: np.random.Generator, spec: SyntheticSpec, scored: list[str], parent: np.ndarray):
    """Gene and cell effect of every mechanism (scored then non-scored rows) at full dose and 72 h."""
    n_s, n_ns = len(scored), spec.n_nonscored
    s = spec.effect_strength
    cyto = np.array([n.split("_")[0] in _CYTOTOXIC_FAMILIES for n in scored], dtype=bool)
    cyto |= rng.random(n_s) < 0.05
    g_s = _sparse_signature(rng, n_s, 20, 60, 1.2 * s)
    stress = _sparse_signature(rng, 1, 120, 160, 0.8 * s)[0]
    g_s[cyto] += stress * rng.uniform(0.5, 1.5, size=(int(cyto.sum()), 1)).astype(np.float32)
    c_s = _cell_signature(rng, n_s, cyto, s)
    # Non-scored: children add a weaker own signature on top of their parent's; orphans stand alone.
    child = parent >= 0
    g_ns = _sparse_signature(rng, n_ns, 20, 60, 1.0 * s)
    g_ns[child] *= np.float32(0.5)
    c_ns = _cell_signature(rng, n_ns, (~child) & (rng.random(n_ns) < 0.05), s)
    return np.vstack([g_s, g_ns]), np.vstack([c_s, c_ns])


def _drug_effects(rng: np.random.Generator, spec: SyntheticSpec, drugs: _Drugs, scored: list[str]):
    """Per-drug (genes, cells) effect: its mechanisms (with per-drug jitter) plus its own signature."""
    g_sig, c_sig = _signatures(rng, spec, scored, drugs.parent)
    lab = np.hstack([drugs.scored, drugs.nonscored]).astype(np.float32)
    n_drugs = lab.shape[0]
    g_eff = lab @ g_sig
    c_eff = lab @ c_sig
    g_eff *= (1 + 0.25 * rng.standard_normal(g_eff.shape)).astype(np.float32)
    c_eff *= (1 + 0.15 * rng.standard_normal(c_eff.shape)).astype(np.float32)
    g_eff += _sparse_signature(rng, n_drugs, 30, 80, 0.9 * spec.drug_effect_strength)
    c_eff += (rng.normal(0, 0.25, size=(n_drugs, 1)) * spec.drug_effect_strength).astype(np.float32)
    pot = drugs.potency.astype(np.float32)[:, None]
    return g_eff * pot, c_eff * pot


# -------------------------------------------------------------------------------------------- tables
def _hex_ids(rng: np.random.Generator, n: int, exclude: str = "") -> list[str]:
    """n unique 9-hex-digit ids (the real sig_id / drug_id shape)."""
    vals = rng.choice(16**9, size=n + 1, replace=False)
    ids = [f"{v:09x}" for v in vals.tolist()]
    return [i for i in ids if i != exclude][:n]


def generate(spec: SyntheticSpec) -> dict[str, pd.DataFrame]:
    """Draw the five raw tables (keys are ``columns.TABLES``) with the dtypes of the real CSVs."""
    rng = np.random.default_rng(spec.seed)
    scored, nonscored = target_names(spec.n_scored, spec.n_nonscored)
    ctl_train = int(round(spec.control_fraction * spec.n_train))
    ctl_test = int(round(spec.control_fraction * spec.n_test))
    t_test = spec.n_test - ctl_test
    drugs = _draw_drugs(rng, spec, spec.n_train - ctl_train + t_test, scored)
    drug_of_row, is_test = _split_rows(rng, drugs, t_test, spec.new_drug_fraction)
    n_ctl = ctl_train + ctl_test
    x, time_i, dose_i = _features(rng, spec, drugs, drug_of_row, n_ctl, scored)
    # Rows: treated first (train and test mixed), then train controls, then test controls.
    test = np.concatenate([is_test, np.zeros(ctl_train, dtype=bool), np.ones(ctl_test, dtype=bool)])
    drug_ids = np.array(_hex_ids(rng, drugs.sizes.size, exclude=CONTROL_DRUG) + [CONTROL_DRUG], dtype=object)
    row_drug = drug_ids[np.concatenate([drug_of_row, np.full(n_ctl, drugs.sizes.size)])]
    sig = np.array(["id_" + h for h in _hex_ids(rng, test.size)], dtype=object)
    y_s = np.vstack([drugs.scored[drug_of_row], np.zeros((n_ctl, len(scored)), dtype=np.int8)])
    y_ns = np.vstack([drugs.nonscored[drug_of_row], np.zeros((n_ctl, len(nonscored)), dtype=np.int8)])

    frames: dict[str, pd.DataFrame] = {}
    for part, mask in (("train", ~test), ("test", test)):
        idx = np.flatnonzero(mask)
        idx = idx[rng.permutation(idx.size)]  # real files are in random order
        frames[f"{part}_features"] = _feature_frame(
            sig[idx], idx >= drug_of_row.size, time_i[idx], dose_i[idx], x[idx]
        )
        if part == "train":
            ids = frames["train_features"][[C.ID_COL]]
            frames["train_targets_scored"] = _targets(ids, y_s[idx], scored)
            frames["train_targets_nonscored"] = _targets(ids, y_ns[idx], nonscored)
            frames["train_drug"] = ids.assign(**{C.DRUG_COL: pd.array(row_drug[idx], dtype="str")})
    log.info(
        "synthetic data: %d train, %d test rows, %d drugs, seed %d",
        spec.n_train, spec.n_test, drugs.sizes.size, spec.seed,
    )  # fmt: skip
    return {name: frames[name] for name in C.TABLES}


def _features(
    rng: np.random.Generator, spec: SyntheticSpec, drugs: _Drugs, drug_of_row: np.ndarray, n_ctl: int, scored
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """g-/c- matrix (treated rows, then controls), clipped to ±10 and rounded like the Kaggle CSVs.

    A treated row is background noise plus its drug's effect scaled by dose and time (viability reacts
    more slowly than expression, so the cell effect grows more steeply with time).
    """
    time_i, dose_i = _meta(rng, drug_of_row, drugs.sizes, n_ctl)
    genes, cells = _background(rng, drug_of_row.size + n_ctl, spec.noise)
    g_eff, c_eff = _drug_effects(rng, spec, drugs, scored)
    t = drug_of_row.size
    dose_scale = np.array([0.6, 1.0], dtype=np.float32)[dose_i[:t]]
    amp = dose_scale * np.array([0.55, 0.8, 1.0], dtype=np.float32)[time_i[:t]]
    amp *= rng.lognormal(0.0, 0.15, size=t).astype(np.float32)
    amp_c = dose_scale * np.array([0.35, 0.75, 1.0], dtype=np.float32)[time_i[:t]]
    genes[:t] += amp[:, None] * g_eff[drug_of_row]
    cells[:t] += amp_c[:, None] * c_eff[drug_of_row]
    x = np.round(np.clip(np.hstack([genes, cells]).astype(np.float64), -10, 10), 4)
    return x, time_i, dose_i


def _feature_frame(sig, is_ctl, time_i, dose_i, x) -> pd.DataFrame:
    """A features table in the Kaggle column order and dtypes."""
    head = pd.DataFrame(
        {
            C.ID_COL: pd.array(sig, dtype="str"),
            "cp_type": pd.array(np.where(is_ctl, C.CONTROL, C.TREATED), dtype="str"),
            "cp_time": np.array(C.CP_TIMES, dtype=np.int64)[time_i],
            "cp_dose": pd.array(np.array(C.CP_DOSES, dtype=object)[dose_i], dtype="str"),
        }
    )
    return pd.concat([head, pd.DataFrame(x, columns=C.GENE_COLS + C.CELL_COLS)], axis=1)


def _targets(ids: pd.DataFrame, y: np.ndarray, names: list[str]) -> pd.DataFrame:
    return pd.concat([ids, pd.DataFrame(y.astype(np.int64), columns=names)], axis=1)


def write_raw_csvs(frames: dict[str, pd.DataFrame], out_dir: str | os.PathLike) -> None:
    """Write ``<table>.csv`` for every table, atomically, in the layout of the Kaggle download."""
    for name in C.TABLES:
        write_csv(frames[name], os.path.join(out_dir, f"{name}.csv"))
