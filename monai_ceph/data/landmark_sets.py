"""Landmark sets as data: names, abbreviations, anatomical groups, and the mappings between sets.

A :class:`LandmarkSet` is the single place where the order of landmarks is defined. Everything else
(readers, heatmap channels, network heads, reports) refers to landmarks through a set, by index or by
abbreviation, so no list of names is repeated elsewhere in the package.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Sequence

__all__ = [
    "LandmarkSet",
    "ISBI2015",
    "AARIZ",
    "AARIZ_TO_ISBI2015",
    "LANDMARK_SETS",
    "get_landmark_set",
    "map_landmarks",
]


@dataclass(frozen=True)
class LandmarkSet:
    """An ordered set of named landmarks with anatomical groups.

    Args:
        name: identifier of the set, e.g. ``"isbi2015"``.
        abbreviations: short names in channel order; unique.
        names: full anatomical names, same order.
        groups: mapping of group name to abbreviations; every landmark in exactly one group.
    """

    name: str
    abbreviations: tuple[str, ...]
    names: tuple[str, ...]
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self):
        if len(self.abbreviations) != len(self.names):
            raise ValueError(f"landmark set {self.name!r}: {len(self.abbreviations)} abbreviations for {len(self.names)} names.")
        if len(set(self.abbreviations)) != len(self.abbreviations):
            raise ValueError(f"landmark set {self.name!r}: duplicate abbreviations.")
        grouped = [a for g in self.groups.values() for a in g]
        if self.groups and sorted(grouped) != sorted(self.abbreviations):
            raise ValueError(f"landmark set {self.name!r}: groups must cover every landmark exactly once.")

    def __len__(self) -> int:
        return len(self.abbreviations)

    def index(self, abbreviation: str) -> int:
        """Channel index of a landmark given by abbreviation or full name (case-insensitive)."""
        key = abbreviation.strip().lower()
        for i, (a, n) in enumerate(zip(self.abbreviations, self.names)):
            if key in (a.lower(), n.lower()):
                return i
        raise KeyError(f"landmark {abbreviation!r} is not in the {self.name} landmark set {list(self.abbreviations)}.")

    @property
    def group_indices(self) -> tuple[tuple[int, ...], ...]:
        """Channel indices of each group, in group order (what a multi-head network consumes)."""
        return tuple(tuple(self.index(a) for a in g) for g in self.groups.values())


ISBI2015 = LandmarkSet(
    name="isbi2015",
    abbreviations=(
        "S", "N", "Or", "Po", "A", "B", "Pog", "Me", "Gn", "Go",
        "LIT", "UIT", "Ls", "Li", "Sn", "Pog'", "PNS", "ANS", "Ar",
    ),
    names=(
        "Sella", "Nasion", "Orbitale", "Porion", "Subspinale", "Supramentale", "Pogonion", "Menton",
        "Gnathion", "Gonion", "Lower incisal incision", "Upper incisal incision", "Upper lip", "Lower lip",
        "Subnasale", "Soft tissue pogonion", "Posterior nasal spine", "Anterior nasal spine", "Articulare",
    ),
    groups={
        "cranial_base_maxilla": ("S", "N", "Or", "Po", "A", "PNS", "ANS", "Ar"),
        "mandible": ("B", "Pog", "Me", "Gn", "Go"),
        "dental_soft_tissue": ("LIT", "UIT", "Ls", "Li", "Sn", "Pog'"),
    },
)

AARIZ = LandmarkSet(
    name="aariz",
    abbreviations=(
        "A", "ANS", "B", "Me", "N", "Or", "Pog", "PNS", "Pn", "R", "S", "Ar", "Co", "Gn", "Go", "Po",
        "LPM", "LIT", "LMT", "UPM", "UIA", "UIT", "UMT", "LIA", "Li", "Ls", "N'", "Pog'", "Sn",
    ),
    names=(
        "Subspinale", "Anterior nasal spine", "Supramentale", "Menton", "Nasion", "Orbitale", "Pogonion",
        "Posterior nasal spine", "Pronasale", "Ramus", "Sella", "Articulare", "Condylion", "Gnathion",
        "Gonion", "Porion", "Lower second premolar cusp tip", "Lower incisal incision", "Lower molar cusp tip",
        "Upper second premolar cusp tip", "Upper incisor apex", "Upper incisal incision", "Upper molar cusp tip",
        "Lower incisor apex", "Lower lip", "Upper lip", "Soft tissue nasion", "Soft tissue pogonion",
        "Subnasale",
    ),
    groups={
        "cranial_base_maxilla": ("S", "N", "Or", "Po", "A", "PNS", "ANS", "Ar"),
        "mandible": ("B", "Pog", "Me", "Gn", "Go", "R", "Co"),
        "dental_soft_tissue": (
            "LIT", "UIT", "Ls", "Li", "Sn", "Pog'", "Pn", "N'", "LPM", "LMT", "UPM", "UIA", "UMT", "LIA",
        ),
    },
)

# Aariz carries all 19 ISBI landmarks under the same abbreviations (the 19 the CephRes-MHNet paper uses).
AARIZ_TO_ISBI2015: tuple[int, ...] = tuple(AARIZ.index(a) for a in ISBI2015.abbreviations)

LANDMARK_SETS: dict[str, LandmarkSet] = {s.name: s for s in (ISBI2015, AARIZ)}


def get_landmark_set(name: str | LandmarkSet) -> LandmarkSet:
    """Look a landmark set up by name (``"isbi2015"``, ``"aariz"``); a set passes through."""
    if isinstance(name, LandmarkSet):
        return name
    try:
        return LANDMARK_SETS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown landmark set {name!r}; available: {sorted(LANDMARK_SETS)}.") from None


def map_landmarks(points: Sequence, source: str | LandmarkSet, target: str | LandmarkSet):
    """Reorder ``points`` (N, ...) of the ``source`` set into the ``target`` set, matching abbreviations.

    Raises ``KeyError`` naming the first target landmark that the source set lacks.
    """
    src, dst = get_landmark_set(source), get_landmark_set(target)
    if len(points) != len(src):
        raise ValueError(f"expected {len(src)} points for the {src.name} set, got {len(points)}.")
    return [points[src.index(a)] for a in dst.abbreviations]
