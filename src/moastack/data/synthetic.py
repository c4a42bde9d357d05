"""A seeded generator of lish-moa-like raw tables.

The pipeline must run end to end without the Kaggle files, and its models must have something real to
learn. The generator therefore reproduces the structure that matters to the winning recipe:

* drug sizes, labels per row, label sets and drugs per mechanism follow the real train files
  (:mod:`moastack.data.realism` measures them); below full size, mechanisms rather than drugs are
  subsampled, so each keeps several drugs;
* drugs carry mechanisms (MoAs) in fixed drug-level bundles (nfkb + proteasome, kit + pdgfr + flt3, ...);
  every row of a drug shares its labels; about 40% of rows have no scored MoA (controls, inactive drugs);
* each mechanism moves a sparse gene signature shared by its drugs (the signal that transfers to unseen
  drugs), cytotoxic ones push all cell-viability columns down; dose, time and a per-drug potency scale
  the effect, and some drugs are nearly silent;
* each drug also has its own, weaker signature, so rows of a drug resemble each other beyond their
  mechanisms: row-wise CV is somewhat optimistic compared with drug-aware CV, as on the real data;
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

# Train rows of the nine largest real treated drugs (with the control's 1,866: 4,008 rows in drugs of more
# than 18 rows); scaled with the data set size.
_BIG_DRUG_SIZES = (718, 246, 203, 202, 196, 194, 186, 178, 19)
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
    """Size, structure and difficulty knobs of the generator; the defaults give a 4,000-row demo data set.

    The structure knobs reproduce the statistics of the real label files at full size (23,814 train rows,
    see README, "The synthetic data"); the difficulty knobs are set so that the simple NN's CV log loss is
    near the winners' ~0.75 x the prior's: 0.716 / 0.735 at full size on row-wise / drug-aware folds (all
    5 folds; real about 0.75 / 0.73), 0.78 / 0.80 at demo size (``benchmarks/synthetic_realism.py``).
    """

    n_train: int = 4000
    n_test: int = 1000
    seed: int = 42
    n_scored: int = 206
    n_nonscored: int = 402
    #: share of rows that are controls (real train: 1,866 / 23,814), all of one control "drug"
    control_fraction: float = 0.07836
    #: share of treated rows whose drug has no scored MoA (real: 31.5% of all rows = 34% of treated rows)
    inactive_fraction: float = 0.342
    #: share of regular active drugs that carry a bundle of 2-7 mechanisms instead of one
    multi_fraction: float = 0.10
    #: below full size, only n_scored x min(1, mechanism_scale x n_train / 23,814) mechanisms (at least 10)
    #: get drugs, so that a mechanism keeps several drugs and drug-aware CV can measure transfer to unseen
    #: drugs; the other scored targets have no positive. 0 keeps every mechanism at every size.
    mechanism_scale: float = 2.0
    #: scale of the mechanism gene signatures, shared by every drug of a mechanism (the transferable signal)
    effect_strength: float = 0.55
    #: scale of the cell-viability effects: cytotoxic mechanisms push every c- column down at once
    cell_effect_strength: float = 1.0
    #: scale of each drug's own gene signature (weaker than its mechanism's: only row-wise CV can use it)
    drug_effect_strength: float = 0.15
    #: per-drug multiplicative jitter of each mechanism signature gene (drugs of a mechanism differ)
    mechanism_jitter: float = 0.15
    #: sd of the lognormal per-drug potency that scales the whole effect of a drug
    potency_sigma: float = 0.5
    #: share of drugs whose treatment barely moves the features (potency x silent_level): labelled but
    #: undetectable, the main source of irreducible loss on the real data
    silent_fraction: float = 0.3
    silent_level: float = 0.1
    #: effect scale at dose D1 (D2 = 1) and at 24 / 48 / 72 h, for genes; cells react more slowly
    low_dose_scale: float = 0.6
    time_scale: tuple[float, float, float] = (0.55, 0.8, 1.0)
    #: scale of the background noise
    noise: float = 1.0
    #: share of treated test rows from drugs absent from train
    new_drug_fraction: float = 0.5


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
    """Drug-level draws: train and test rows, labels, potency."""

    train_sizes: np.ndarray  # train rows per drug (0 for a test-only drug)
    test_sizes: np.ndarray  # test rows per drug
    big: np.ndarray  # bool: one of the few drugs with hundreds of rows
    scored: np.ndarray  # (n_drugs, n_scored) int8
    nonscored: np.ndarray  # (n_drugs, n_nonscored) int8
    potency: np.ndarray  # float
    parent: np.ndarray  # scored parent of each non-scored target, -1 if none

    @property
    def sizes(self) -> np.ndarray:
        return self.train_sizes + self.test_sizes


# Real train drugs outside the ten big ones: 2,774 of 6 rows, 196 of 7, 64 of 12, 129 of 1, the rest
# (116) spread over 2-18 rows.
_SIZE_KINDS = np.array([6, 7, 12, 1, 0])
_SIZE_P = np.array([0.846, 0.060, 0.020, 0.039, 0.035])
_ODD_SIZES = np.r_[2:6, 8:12, 13:19]


def _regular_sizes(rng: np.random.Generator, n_rows: int) -> np.ndarray:
    """Drug sizes with the real train distribution, summing to ``n_rows``."""
    if n_rows <= 0:
        return np.zeros(0, dtype=np.int64)
    kinds = rng.choice(_SIZE_KINDS.size, size=n_rows // 5 + 16, p=_SIZE_P)
    odd = rng.choice(_ODD_SIZES, size=kinds.size, p=(1 / _ODD_SIZES) / (1 / _ODD_SIZES).sum())
    sizes = np.where(kinds == 4, odd, _SIZE_KINDS[kinds]).astype(np.int64)
    cum = np.cumsum(sizes)
    n_reg = int(np.searchsorted(cum, n_rows)) + 1
    sizes = sizes[:n_reg].copy()
    sizes[-1] -= int(cum[n_reg - 1] - n_rows)
    return sizes[sizes > 0]


def _drug_sizes(
    rng: np.random.Generator, spec: SyntheticSpec, n_train_treated: int, n_test_treated: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train and test rows per drug: big drugs, regular train drugs, then test-only (new) drugs.

    Train drugs follow the real train file's size distribution exactly (the big drugs scaled with the
    data size); the test takes whole new drugs (``new_drug_fraction`` of its treated rows) plus extra
    rows of train drugs, drawn in proportion to their size, so train drug sizes stay as drawn.
    """
    scale = spec.n_train / FULL_TRAIN_ROWS
    big = np.rint(np.array(_BIG_DRUG_SIZES) * scale).astype(np.int64)
    big = big[big > 18]
    while big.sum() > n_train_treated // 3 and len(big):
        big = big[1:]
    train = np.concatenate([big, _regular_sizes(rng, n_train_treated - int(big.sum()))])
    n_new = int(round(spec.new_drug_fraction * n_test_treated)) if train.size else n_test_treated
    new = _regular_sizes(rng, n_new)
    seen = rng.multinomial(n_test_treated - int(new.sum()), train / train.sum()) if train.size else []
    train_sizes = np.concatenate([train, np.zeros(new.size, dtype=np.int64)])
    test_sizes = np.concatenate([np.asarray(seen, dtype=np.int64), new])
    is_big = np.arange(train_sizes.size) < big.size
    return train_sizes, test_sizes, is_big


def _active_mechanisms(rng: np.random.Generator, spec: SyntheticSpec, scored: list[str]) -> np.ndarray:
    """Indices of the scored mechanisms that get drugs: all at full size, a random subset below it.

    Subsampling mechanisms rather than drugs keeps the full-size number of drugs per mechanism in a
    small data set, so that a drug-aware fold still has other drugs of a held-out drug's mechanism.
    The named bundles are always kept.
    """
    n_s = len(scored)
    share = spec.mechanism_scale * spec.n_train / FULL_TRAIN_ROWS
    n_keep = n_s if spec.mechanism_scale <= 0 or share >= 1 else max(min(n_s, 10), int(round(n_s * share)))
    index = {n: i for i, n in enumerate(scored)}
    forced = [index[n] for b in _NAMED_BUNDLES for n in b if n in index]
    others = rng.permutation(np.setdiff1d(np.arange(n_s), forced))
    keep = np.array(forced + others.tolist(), dtype=np.int64)[: max(n_keep, 0)]
    return np.sort(keep)


def _bundles(
    rng: np.random.Generator, scored: list[str], active: np.ndarray, weights: np.ndarray
) -> list[np.ndarray]:
    """Fixed multi-mechanism label sets: the named real ones, then drawn ones of 2-7 mechanisms.

    About 0.9 bundles per mechanism, mostly pairs: with the real share of multi-label drugs this gives
    about 120 distinct multi-label sets at full size (real: 328 label sets in all, ~200 of them single).
    The first drawn bundle has 7 mechanisms (the real maximum) when there are that many. Members are
    drawn by popularity (``weights`` over ``active``), so rare mechanisms stay rare.
    """
    index = {n: i for i, n in enumerate(scored)}
    out = [np.array([index[n] for n in b]) for b in _NAMED_BUNDLES if all(n in index for n in b)]
    if active.size < 2:
        return out
    n_extra = max(2, int(round(0.9 * active.size)))
    sizes = rng.choice([2, 3, 4, 5, 6], size=n_extra, p=[0.55, 0.32, 0.08, 0.03, 0.02])
    if active.size >= 7:
        sizes[0] = 7
    for k in sizes:
        if k <= active.size:
            out.append(np.sort(rng.choice(active, size=k, replace=False, p=weights)))
    return out


def _popularity(rng: np.random.Generator, n: int, exponent: float = 1.1) -> np.ndarray:
    """Zipf-like weights in random order: a few common mechanisms, a long tail of rare ones."""
    w = 1.0 / (np.arange(n) + 3.0) ** exponent
    return rng.permutation(w) / w.sum()


# Drugs per scored mechanism at quantiles of the mechanisms. Real train files: 19 of 206 with one drug,
# quartiles 3 / 6.5 / 13, the 90th percentile ~40 (252 positives at ~6.2 rows a drug), at most 74. The
# lower points sit a little higher than the real curve because draws scatter around their expectation
# (a mechanism expecting 0.2 extra drugs often gets none); these values reproduce the real statistics.
_DRUGS_PER_MECHANISM = ((0.0, 1.2), (0.1, 2.2), (0.25, 4.0), (0.5, 7.0), (0.75, 13.0), (0.9, 40.0), (1.0, 74.0))


def _mechanism_popularity(rng: np.random.Generator, n: int) -> np.ndarray:
    """Weights in random order following the real drugs-per-mechanism quantiles.

    A mechanism's weight is its expected number of drugs beyond its coverage drug, read off the real
    quantile curve (interpolated in log space), so the draws reproduce the real spread: a tenth of the
    mechanisms keep a single drug, the most popular ones get dozens.
    """
    q, d = np.array(_DRUGS_PER_MECHANISM).T
    u = (np.arange(n) + 0.5) / max(n, 1)
    w = np.exp(np.interp(u, q, np.log(d))) - 1.0
    return rng.permutation(w) / max(w.sum(), 1e-12)


def _assign_labels(
    rng: np.random.Generator, spec: SyntheticSpec, train_sizes: np.ndarray, sizes: np.ndarray,
    big: np.ndarray, scored: list[str],
) -> tuple[np.ndarray, np.ndarray]:
    """Scored label matrix per drug and which drugs are active (carry any scored MoA).

    Every active mechanism gets one train drug of at least two rows first (coverage), then drugs draw a
    mechanism by popularity, or a bundle. The biggest drug carries nfkb + proteasome, the other big drugs
    distinct popular mechanisms.
    """
    n_drugs, n_s = sizes.size, len(scored)
    labels = np.zeros((n_drugs, n_s), dtype=np.int8)
    if n_s == 0:
        return labels, np.zeros(n_drugs, dtype=bool)
    mech = _active_mechanisms(rng, spec, scored)
    reg_rows = sizes[~big].sum()
    p_inactive = min(0.95, spec.inactive_fraction * sizes.sum() / max(reg_rows, 1))
    active = big | (rng.random(n_drugs) >= p_inactive)
    weights = _mechanism_popularity(rng, mech.size)
    bundles = _bundles(rng, scored, mech, weights)
    n_named = sum(all(n in scored for n in b) for b in _NAMED_BUNDLES)
    # Drawn bundles equally likely up to size (each extra mechanism takes 30% off the weight), so most are used
    # by one or two drugs, as the real data's ~120 multi-label sets are; kit/pdgfr/flt3 and
    # dopamine/serotonin are common, nfkb/proteasome mostly the big drug.
    drawn = np.array([0.65 ** (len(b) - 2) for b in bundles[n_named:]])
    typical = drawn.mean() if drawn.size else 1.0
    b_weights = np.concatenate([np.array([1.0, 4.0, 3.0])[:n_named] * typical, drawn])
    b_weights /= max(b_weights.sum(), 1e-12)

    big_idx = np.flatnonzero(big)
    if big_idx.size and bundles:
        labels[big_idx[0], bundles[0]] = 1
        # nfkb/proteasome get an ordinary popularity on top of the big drug (real nfkb: 832 positives,
        # 718 of them from the one big drug); the other big drugs take mechanisms regardless of popularity.
        in_first = np.isin(mech, bundles[0])
        weights[in_first] = np.median(weights)
        weights /= weights.sum()
        others = mech[~in_first]
        n_pick = min(big_idx.size - 1, others.size)
        labels[big_idx[1 : 1 + n_pick], rng.choice(others, size=n_pick, replace=False)] = 1
    # Regular active train drugs: coverage first (one drug per mechanism, in random order), then draws.
    drugs_train = train_sizes > 0
    reg = rng.permutation(np.flatnonzero(active & ~big & drugs_train))
    n_cover = min(mech.size, reg.size)
    labels[reg[:n_cover], rng.permutation(mech)[:n_cover]] = 1
    rest = np.concatenate([reg[n_cover:], np.flatnonzero(active & ~drugs_train)])
    n_regular = int((active & ~big).sum())
    multi = rng.random(rest.size) < spec.multi_fraction * n_regular / max(rest.size, 1) * bool(bundles)
    singles = rest[~multi]
    labels[singles, rng.choice(mech, size=singles.size, p=weights)] = 1
    picks = rng.choice(len(bundles), size=int(multi.sum()), p=b_weights)
    if picks.size and len(bundles) > n_named:
        picks[0] = n_named  # the first multi-label drug carries the largest drawn bundle (7 at full size)
    for d, b in zip(rest[multi], picks):
        labels[d, bundles[b]] = 1
    return labels, active


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
    used = np.flatnonzero(scored_labels.any(axis=0))
    if used.size == 0:
        kind[kind == 0] = 1
    parent = np.where(kind == 0, used[rng.integers(max(used.size, 1), size=n_ns) % max(used.size, 1)]
                      if used.size else -1, -1)
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


def _draw_drugs(
    rng: np.random.Generator, spec: SyntheticSpec, n_train_treated: int, n_test_treated: int, scored: list[str]
) -> _Drugs:
    train_sizes, test_sizes, big = _drug_sizes(rng, spec, n_train_treated, n_test_treated)
    labels, active = _assign_labels(rng, spec, train_sizes, train_sizes + test_sizes, big, scored)
    ns_labels, parent = _assign_nonscored(rng, labels, active, spec.n_nonscored)
    potency = rng.lognormal(0.0, spec.potency_sigma, size=train_sizes.size)
    silent = rng.random(train_sizes.size) < spec.silent_fraction
    potency[silent] *= spec.silent_level
    return _Drugs(train_sizes, test_sizes, big, labels, ns_labels, potency, parent)


# ----------------------------------------------------------------------------------------------- rows
def _rows(drugs: _Drugs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Drug index, position within the drug and is-test flag of every treated row.

    A drug's train rows come first, then its test rows, so a 6-row train drug covers all 6 time x dose
    cells in train and its extra test rows repeat cells, as replicates do.
    """
    sizes = drugs.sizes
    drug_of_row = np.repeat(np.arange(sizes.size), sizes)
    pos_in_drug = np.arange(drug_of_row.size) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    is_test = pos_in_drug >= drugs.train_sizes[drug_of_row]
    return drug_of_row, pos_in_drug, is_test


def _meta(rng: np.random.Generator, drug_of_row: np.ndarray, pos_in_drug: np.ndarray, n_drugs: int, n_ctl: int):
    """cp_time/cp_dose: a drug's rows walk the 6 time x dose cells from a random start; controls random."""
    start = rng.integers(6, size=n_drugs)
    cell = np.concatenate([(start[drug_of_row] + pos_in_drug) % 6, rng.integers(6, size=n_ctl)])
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
    c_s = _cell_signature(rng, n_s, cyto, spec.cell_effect_strength)
    # Non-scored: children add a weaker own signature on top of their parent's; orphans stand alone.
    child = parent >= 0
    g_ns = _sparse_signature(rng, n_ns, 20, 60, 1.0 * s)
    g_ns[child] *= np.float32(0.5)
    c_ns = _cell_signature(rng, n_ns, (~child) & (rng.random(n_ns) < 0.05), spec.cell_effect_strength)
    return np.vstack([g_s, g_ns]), np.vstack([c_s, c_ns])


def _drug_effects(rng: np.random.Generator, spec: SyntheticSpec, drugs: _Drugs, scored: list[str]):
    """Per-drug (genes, cells) effect: its mechanisms (with per-drug jitter) plus its own signature."""
    g_sig, c_sig = _signatures(rng, spec, scored, drugs.parent)
    lab = np.hstack([drugs.scored, drugs.nonscored]).astype(np.float32)
    n_drugs = lab.shape[0]
    g_eff = lab @ g_sig
    c_eff = lab @ c_sig
    g_eff *= (1 + spec.mechanism_jitter * rng.standard_normal(g_eff.shape)).astype(np.float32)
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
    drugs = _draw_drugs(rng, spec, spec.n_train - ctl_train, spec.n_test - ctl_test, scored)
    drug_of_row, pos_in_drug, is_test = _rows(drugs)
    n_ctl = ctl_train + ctl_test
    x, time_i, dose_i = _features(rng, spec, drugs, drug_of_row, pos_in_drug, n_ctl, scored)
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
    rng: np.random.Generator, spec: SyntheticSpec, drugs: _Drugs, drug_of_row: np.ndarray,
    pos_in_drug: np.ndarray, n_ctl: int, scored: list[str],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """g-/c- matrix (treated rows, then controls), clipped to ±10 and rounded like the Kaggle CSVs.

    A treated row is background noise plus its drug's effect scaled by dose and time (viability reacts
    more slowly than expression, so the cell effect grows more steeply with time).
    """
    time_i, dose_i = _meta(rng, drug_of_row, pos_in_drug, drugs.sizes.size, n_ctl)
    genes, cells = _background(rng, drug_of_row.size + n_ctl, spec.noise)
    g_eff, c_eff = _drug_effects(rng, spec, drugs, scored)
    t = drug_of_row.size
    dose_scale = np.array([spec.low_dose_scale, 1.0], dtype=np.float32)[dose_i[:t]]
    amp = dose_scale * np.array(spec.time_scale, dtype=np.float32)[time_i[:t]]
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
