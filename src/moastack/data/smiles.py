"""Reading SMILES: parse with RDKit, repair one common defect, canonicalise.

One implementation for every place a SMILES enters moastack: ``prepare``'s table source
(:mod:`moastack.data.table`), ``moastack predict`` on new molecules (through the same table code), the
molecular feature steps and the scaffold folds (which only parse what these functions produced).

**Repair.** Public files often write an aromatic ring nitrogen that carries a hydrogen without it
(``c1nc2ccccc2n1`` for benzimidazole, ``c1ccc2[nH]cnc2c1``): the SMILES is valid syntax, but RDKit
cannot kekulise the ring and refuses it. :func:`read_smiles` tries, for such a SMILES only (its one
problem is a failed kekulisation), ``[nH]`` in place of each bare aromatic ``n`` in turn. When the
repairs that parse give exactly one molecule (benzimidazole's two nitrogens give the same tautomer),
that molecule is taken and the row is counted as repaired; when they give several different molecules
(``Cc1ccc2ncnc2c1``: the 5- and the 6-methyl tautomer) the SMILES is ambiguous and stays invalid, like
one that no repair parses.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd

_quiet_depth = 0


@contextmanager
def quiet_rdkit() -> Iterator[None]:
    """Silence RDKit's stderr log (parse errors, valence warnings) inside the block, which may nest: we
    report problems ourselves, with file and row."""
    from rdkit import RDLogger

    global _quiet_depth
    if _quiet_depth == 0:
        RDLogger.DisableLog("rdApp.*")
    _quiet_depth += 1
    try:
        yield
    finally:
        _quiet_depth -= 1
        if _quiet_depth == 0:
            RDLogger.EnableLog("rdApp.*")


def parse_smiles(smiles: Sequence[object]) -> list:
    """RDKit molecules, None where a SMILES is missing, blank or unparsable (RDKit reads '' as no atoms)."""
    from rdkit import Chem

    with quiet_rdkit():
        return [Chem.MolFromSmiles(s) if isinstance(s, str) and s.strip() else None for s in smiles]


# ------------------------------------------------------------------------------------------- repair
def _bare_aromatic_n(smiles: str) -> list[int]:
    """Positions of the aromatic nitrogens written without brackets (``n``, never inside ``[...]``,
    where ``n`` may belong to ``[Zn]`` or already be ``[nH]``)."""
    positions, depth = [], 0
    for i, char in enumerate(smiles):
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        elif char == "n" and depth == 0:
            positions.append(i)
    return positions


def repair_aromatic_nh(smiles: str) -> tuple[str | None, int]:
    """Canonical SMILES of the one molecule that ``[nH]`` at one bare aromatic ``n`` gives, and how many
    different molecules the parsing repairs give (0: not this defect or no repair parses; 1: repaired;
    more: ambiguous, the first element is then None)."""
    from rdkit import Chem

    with quiet_rdkit():
        raw = Chem.MolFromSmiles(smiles, sanitize=False)
        if raw is None:  # a syntax error, not a ring that lacks its H
            return None, 0
        problems = Chem.DetectChemistryProblems(raw)
        if not problems or any(p.GetType() != "KekulizeException" for p in problems):
            return None, 0
        molecules = set()
        for pos in _bare_aromatic_n(smiles):
            mol = Chem.MolFromSmiles(f"{smiles[:pos]}[nH]{smiles[pos + 1:]}")
            if mol is not None:
                molecules.add(Chem.MolToSmiles(mol))
    return (next(iter(molecules)) if len(molecules) == 1 else None), len(molecules)


# ---------------------------------------------------------------------------------------- reading
@dataclass
class ReadSmiles:
    """Per entry: the canonical SMILES (None where invalid), whether it was repaired, and whether it is
    invalid because its repair is ambiguous (a subset of the invalid entries)."""

    canonical: np.ndarray
    repaired: np.ndarray
    ambiguous: np.ndarray

    @property
    def invalid(self) -> np.ndarray:
        return np.array([c is None for c in self.canonical], dtype=bool)


def read_smiles(smiles: Sequence[object]) -> ReadSmiles:
    """Canonical RDKit SMILES per entry, repairing an aromatic n written without its H (module doc).

    Missing, blank and unparsable entries are None; each distinct string is read once.
    """
    from rdkit import Chem

    codes, uniques = pd.factorize(pd.Series(smiles, dtype=object), use_na_sentinel=True)
    canon: list[str | None] = []
    repaired, ambiguous = np.zeros(len(uniques) + 1, dtype=bool), np.zeros(len(uniques) + 1, dtype=bool)
    for i, (text, mol) in enumerate(zip(uniques, parse_smiles(list(uniques)), strict=True)):
        if mol is not None:
            canon.append(Chem.MolToSmiles(mol))
            continue
        fixed, n_molecules = repair_aromatic_nh(text) if isinstance(text, str) else (None, 0)
        canon.append(fixed)
        repaired[i], ambiguous[i] = fixed is not None, n_molecules > 1
    index = np.where(codes < 0, len(uniques), codes)  # the extra last slot: missing entries
    return ReadSmiles(np.array([*canon, None], dtype=object)[index], repaired[index], ambiguous[index])

