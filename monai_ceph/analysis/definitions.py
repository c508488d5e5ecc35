"""Cephalometric measurements declared as data.

Each :class:`Measurement` is one row of :data:`MEASUREMENTS`: its name, the analyses it belongs to, the
landmarks it uses (by abbreviation of :mod:`monai_ceph.data.landmark_sets`, or a derived point of
:data:`DERIVED_POINTS`), its kind (one function of :mod:`monai_ceph.analysis.geometry`, a ratio or a weighted
sum of other measurements), its unit, its norm and its classes. :func:`monai_ceph.analysis.measure` evaluates
them all; nothing here is code per measure.

Geometry is read in the canonical frame of :mod:`monai_ceph.analysis.geometry` (the anatomy's: x along the
Frankfort horizontal, anteriorly; y inferiorly), so every value is the same for a profile facing right or left, a
film turned by any angle or flipped upside down. A sign that says "ahead" or "behind" (MW, Wits, the E-line
distances) is read along that horizontal; a sign that says "tips down" along its inferior side.

**ISBI 2015 classification task** (Wang et al., "A benchmark for comparison of dental radiography analysis
algorithms", Medical Image Analysis 31, 2016, pp. 63-76; its Table of the eight measures on the 19 landmarks):
ANB = SNA - SNB (class I 3.2-5.7 deg, class II > 5.7, class III < 3.2); SNB (normal 74.6-78.7 deg,
retrognathic < 74.6, prognathic > 78.7); SNA (normal 79.4-83.2 deg, prognathic > 83.2, retrognathic < 79.4);
ODI = angle A-B plane to mandibular plane (Me-Go) + signed angle palatal plane (PNS-ANS) to FH (Po-Or)
(normal 74.5 +- 6.07 = 68.4-80.5 deg, deep bite > 80.5, open bite < 68.4); APDI = facial angle (FH to N-Pog)
+ signed angle A-B plane to facial plane + signed palatal plane to FH (normal 81.4 +- 3.8 = 77.6-85.2 deg,
class II < 77.6, class III > 85.2); FHI = S-Go / N-Me (normal 0.65-0.75, short face > 0.75, long face
< 0.65); the challenge's "FMA" = angle S-N to Go-Gn (normal 26.8-31.4 deg, high angle > 31.4, low angle
< 26.8) -- the textbook Frankfort-mandibular plane angle is ``FH-MP`` below; MW ("modified Wits") = |UIT LIT|
in mm, negative when UIT lies posterior of LIT (normal 2-4.5 mm, edge to edge 0 mm, anterior cross bite
< 0 mm, large overjet > 4.5 mm). That table, as usually quoted, assigns no class to 0 < MW < 2 mm; here it is
"edge to edge" (the reduced overjet next to 0). Normal ranges are closed intervals, as in the challenge's classification.

**Textbook norms** (adult means +- SD as tabulated in the orthodontic literature; for McNamara's linear
measures the adult female values): Steiner (Am J Orthod 1953), Downs (Am J Orthod 1948), Tweed (Angle Orthod
1954), McNamara (Am J Orthod 1984), Bjork (1969) and Jarabak, Kim (ODI 1974, APDI 1978), Jacobson (Wits,
1975), Ricketts (E-line). Measures without explicit classes are classed "decreased" / "normal" / "increased"
at norm +- 1 SD.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from monai_ceph.data import LandmarkSet, get_landmark_set

__all__ = [
    "Interval",
    "Measurement",
    "MEASUREMENTS",
    "DERIVED_POINTS",
    "KINDS",
    "ANALYSES",
    "ISBI2015_CLASSIFICATION",
    "get_measurement",
    "determinable_measurements",
]

# kind -> number of points it takes (combination: 0, it sums other measurements)
KINDS: dict[str, int] = {
    "vertex_angle": 3,
    "line_angle": 4,
    "signed_line_angle": 4,
    "distance": 2,
    "signed_distance": 2,
    "point_line_distance": 3,
    "projection": 4,
    "ratio": 4,
    "combination": 0,
}
UNITS = ("deg", "mm", "ratio", "%")
ANALYSES = ("ISBI2015", "Steiner", "Downs", "Tweed", "McNamara", "Bjork-Jarabak", "Kim", "Jacobson", "Ricketts")

# points that are not landmarks: the mean of the landmarks named (functional occlusal plane: molar and premolar
# cusp overlaps, Jacobson's Wits appraisal)
DERIVED_POINTS: dict[str, tuple[str, ...]] = {
    "molar_occlusion": ("UMT", "LMT"),
    "premolar_occlusion": ("UPM", "LPM"),
}

_INTERVAL = re.compile(r"^\s*([\[(])\s*([-+]?(?:inf|[0-9.]+))\s*,\s*([-+]?(?:inf|[0-9.]+))\s*([\])])\s*$")


@dataclass(frozen=True)
class Interval:
    """A real interval written as text, ``"[3.2, 5.7]"``, ``"(5.7, inf)"``, ``"[0, 2)"``."""

    text: str

    def __post_init__(self):
        m = _INTERVAL.match(self.text)
        if m is None:
            raise ValueError(f"cannot read interval {self.text!r}; write e.g. '[3.2, 5.7]' or '(5.7, inf)'.")
        lo, hi = float(m.group(2)), float(m.group(3))
        if not lo <= hi:
            raise ValueError(f"interval {self.text!r}: lower bound above the upper bound.")
        object.__setattr__(self, "bounds", (lo, hi, m.group(1) == "[", m.group(4) == "]"))

    def __contains__(self, value: float) -> bool:
        lo, hi, lo_closed, hi_closed = self.bounds  # type: ignore[attr-defined]
        above = value >= lo if lo_closed else value > lo
        below = value <= hi if hi_closed else value < hi
        return above and below


@dataclass(frozen=True)
class Measurement:
    """One cephalometric measurement.

    Args:
        name: the key in every result (e.g. ``"SNA"``).
        description: what it is, in words.
        analyses: the analyses it belongs to (of :data:`ANALYSES`).
        kind: a key of :data:`KINDS`: ``vertex_angle`` (a, vertex, b), ``line_angle`` / ``signed_line_angle``
            (a1, a2, b1, b2: directed lines), ``distance`` (p, q), ``signed_distance`` (p, q: negative when p is
            posterior of q), ``point_line_distance`` (p, a, b: anterior of a->b positive), ``projection``
            (p, q, a, b: q->p along a->b), ``ratio`` (p1, p2, p3, p4: |p1p2| / |p3p4| * scale) or
            ``combination`` (``terms``: weighted sum of other measurements).
        points: landmark abbreviations or :data:`DERIVED_POINTS` names, as the kind takes them.
        unit: ``"deg"``, ``"mm"``, ``"ratio"`` or ``"%"``; only ``"mm"`` needs the pixel spacing.
        norm: ``(mean, sd)`` or None.
        classes: ``((label, interval), ...)`` in order, the first being the normal class; None: derived from the
            norm (``decreased`` below mean - sd, ``normal`` within, ``increased`` above).
        terms: for ``combination``: ``((measurement name, weight), ...)``.
        scale: factor of a ``ratio`` (100 for a percentage).
    """

    name: str
    description: str
    analyses: tuple[str, ...]
    kind: str
    unit: str
    points: tuple[str, ...] = ()
    norm: tuple[float, float] | None = None
    classes: tuple[tuple[str, str], ...] | None = None
    terms: tuple[tuple[str, float], ...] = ()
    scale: float = 1.0

    def __post_init__(self):
        where = f"measurement {self.name!r}"
        if self.kind not in KINDS:
            raise ValueError(f"{where}: unknown kind {self.kind!r}; use one of {sorted(KINDS)}.")
        if len(self.points) != KINDS[self.kind]:
            raise ValueError(f"{where}: kind {self.kind!r} takes {KINDS[self.kind]} points, got {len(self.points)}.")
        if (self.kind == "combination") != bool(self.terms):
            raise ValueError(f"{where}: terms are given exactly for a 'combination'.")
        if self.unit not in UNITS:
            raise ValueError(f"{where}: unit must be one of {UNITS}, got {self.unit!r}.")
        unknown = set(self.analyses) - set(ANALYSES)
        if unknown:
            raise ValueError(f"{where}: unknown analyses {sorted(unknown)}.")
        if self.norm is not None and not self.norm[1] > 0:
            raise ValueError(f"{where}: the norm's SD must be positive.")
        rules = self.class_intervals()
        for i, (a, ia) in enumerate(rules):
            for b, ib in rules[i + 1 :]:
                lo, hi = max(ia.bounds[0], ib.bounds[0]), min(ia.bounds[1], ib.bounds[1])  # type: ignore[attr-defined]
                if lo < hi or (lo == hi and lo in ia and lo in ib):
                    raise ValueError(f"{where}: classes {a!r} {ia.text} and {b!r} {ib.text} overlap.")

    @property
    def needs_spacing(self) -> bool:
        return self.unit == "mm"

    def class_intervals(self) -> tuple[tuple[str, Interval], ...]:
        """The classes as ``(label, Interval)``; empty when the measurement has neither classes nor a norm."""
        if self.classes is not None:
            return tuple((label, Interval(text)) for label, text in self.classes)
        if self.norm is None:
            return ()
        lo, hi = self.norm[0] - self.norm[1], self.norm[0] + self.norm[1]
        return (
            ("normal", Interval(f"[{lo!r}, {hi!r}]")),
            ("decreased", Interval(f"(-inf, {lo!r})")),
            ("increased", Interval(f"({hi!r}, inf)")),
        )

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(label for label, _ in self.class_intervals())

    def classify(self, value: float) -> str | None:
        """The class of ``value`` (None for NaN, for a measurement without classes, or a value in no class)."""
        if value is None or math.isnan(value):
            return None
        return next((label for label, interval in self.class_intervals() if value in interval), None)

    def norm_text(self) -> str:
        """The norm as ``mean ± sd`` (or the normal class interval when there is no norm), e.g. for a table."""
        if self.norm is not None:
            return f"{self.norm[0]:g} ± {self.norm[1]:g}"
        rules = self.class_intervals()
        return rules[0][1].text if rules else ""


def _m(name, description, analyses, kind, unit, points=(), norm=None, classes=None, terms=(), scale=1.0):
    return Measurement(
        name, description, tuple(analyses), kind, unit, tuple(points), norm, classes, tuple(terms), scale
    )


_ISBI, _ST, _DO, _TW, _MC, _BJ = "ISBI2015", "Steiner", "Downs", "Tweed", "McNamara", "Bjork-Jarabak"

MEASUREMENTS: tuple[Measurement, ...] = (
    # the eight measures of the ISBI 2015 classification task (Wang et al. 2016), then the textbook ones
    _m("SNA", "angle S-N-A: maxilla to the cranial base", (_ISBI, _ST), "vertex_angle", "deg", ("S", "N", "A"),
       norm=(82.0, 2.0),
       classes=(
           ("normal", "[79.4, 83.2]"),
           ("prognathic maxilla", "(83.2, inf)"),
           ("retrognathic maxilla", "(-inf, 79.4)"),
       )),
    _m("SNB", "angle S-N-B: mandible to the cranial base", (_ISBI, _ST), "vertex_angle", "deg", ("S", "N", "B"),
       norm=(80.0, 2.0),
       classes=(
           ("normal", "[74.6, 78.7]"),
           ("retrognathic mandible", "(-inf, 74.6)"),
           ("prognathic mandible", "(78.7, inf)"),
       )),
    _m("ANB", "SNA - SNB: sagittal jaw relation", (_ISBI, _ST), "combination", "deg",
       terms=(("SNA", 1.0), ("SNB", -1.0)),
       norm=(2.0, 2.0), classes=(("class I", "[3.2, 5.7]"), ("class II", "(5.7, inf)"), ("class III", "(-inf, 3.2)"))),
    _m("ODI", "overbite depth indicator: AB-MP + FH-PP (Kim 1974)", (_ISBI, "Kim"), "combination", "deg",
       terms=(("AB-MP", 1.0), ("FH-PP", 1.0)), norm=(74.5, 6.07),
       classes=(
           ("normal", "[68.4, 80.5]"),
           ("deep bite tendency", "(80.5, inf)"),
           ("open bite tendency", "(-inf, 68.4)"),
       )),
    _m("APDI", "anteroposterior dysplasia indicator: FH-NPog + AB-NPog + FH-PP (Kim 1978)", (_ISBI, "Kim"),
       "combination", "deg", terms=(("FH-NPog", 1.0), ("AB-NPog", 1.0), ("FH-PP", 1.0)), norm=(81.4, 3.79),
       classes=(
           ("normal", "[77.6, 85.2]"),
           ("class II tendency", "(-inf, 77.6)"),
           ("class III tendency", "(85.2, inf)"),
       )),
    _m("FHI", "facial height index: posterior (S-Go) / anterior (N-Me) face height", (_ISBI,), "ratio", "ratio",
       ("S", "Go", "N", "Me"),
       classes=(
           ("normal", "[0.65, 0.75]"),
           ("short face tendency", "(0.75, inf)"),
           ("long face tendency", "(-inf, 0.65)"),
       )),
    _m("FMA", "the ISBI 2015 challenge's 'FMA': angle S-N to Go-Gn (textbook FMA: FH-MP)", (_ISBI,), "line_angle",
       "deg",
       ("S", "N", "Go", "Gn"),
       classes=(
           ("normal", "[26.8, 31.4]"),
           ("high angle tendency", "(31.4, inf)"),
           ("low angle tendency", "(-inf, 26.8)"),
       )),
    _m("MW", "the ISBI 2015 challenge's modified Wits: |UIT LIT|, negative when UIT is behind LIT", (_ISBI,),
       "signed_distance", "mm", ("UIT", "LIT"),
       classes=(
           ("normal", "[2, 4.5]"),
           ("edge to edge", "[0, 2)"),
           ("anterior cross bite", "(-inf, 0)"),
           ("large overjet", "(4.5, inf)"),
       )),
    # Steiner
    _m("SN-GoGn", "mandibular plane (Go-Gn) to S-N", (_ST,), "line_angle", "deg", ("S", "N", "Go", "Gn"),
       norm=(32.0, 5.0)),
    # Downs
    _m("FH-NPog", "facial angle: FH (Po-Or) to the facial plane N-Pog", (_DO, "Kim"), "line_angle", "deg",
       ("Or", "Po", "N", "Pog"), norm=(87.8, 3.6)),
    _m("NA-APog", "angle of convexity: N-A to A-Pog, positive when A lies ahead of N-Pog", (_DO,), "signed_line_angle",
       "deg", ("N", "A", "A", "Pog"), norm=(0.0, 5.1)),
    _m("AB-NPog", "A-B plane angle: A-B to N-Pog, negative when B lies behind A", (_DO, "Kim"), "signed_line_angle",
       "deg", ("A", "B", "N", "Pog"), norm=(-4.6, 3.7)),
    _m("Y-axis", "Y-axis: S-Gn to FH", (_DO,), "line_angle", "deg", ("Po", "Or", "S", "Gn"), norm=(59.4, 3.8)),
    _m("U1-APog", "upper incisal edge to the A-Pog line, positive ahead of it", (_DO,), "point_line_distance", "mm",
       ("UIT", "A", "Pog"), norm=(2.7, 1.8)),
    # Tweed (also Downs' and McNamara's mandibular plane angle)
    _m("FH-MP", "Frankfort-mandibular plane angle (textbook FMA): FH (Po-Or) to Go-Me", (_TW, _DO, _MC), "line_angle",
       "deg", ("Po", "Or", "Go", "Me"), norm=(25.0, 5.0)),
    # Kim's components of ODI and APDI
    _m("AB-MP", "A-B plane to the mandibular plane (Me-Go), ODI's first term", ("Kim",), "line_angle", "deg",
       ("Me", "Go", "B", "A")),
    _m("FH-PP", "palatal plane (PNS-ANS) to FH, positive when ANS tips down", ("Kim",), "signed_line_angle", "deg",
       ("Po", "Or", "PNS", "ANS")),
    # McNamara
    _m("A-Nperp", "A to the nasion perpendicular (through N, normal to FH), positive ahead", (_MC,), "projection", "mm",
       ("A", "N", "Po", "Or"), norm=(0.4, 2.3)),
    _m("Pog-Nperp", "Pog to the nasion perpendicular, positive ahead", (_MC,), "projection", "mm",
       ("Pog", "N", "Po", "Or"),
       norm=(-1.8, 4.5)),
    _m("ANS-Me", "lower anterior face height", (_MC,), "distance", "mm", ("ANS", "Me"), norm=(66.7, 4.1)),
    # Bjork-Jarabak
    _m("N-S-Ar", "saddle angle", (_BJ,), "vertex_angle", "deg", ("N", "S", "Ar"), norm=(123.0, 5.0)),
    _m("S-Ar-Go", "articular angle", (_BJ,), "vertex_angle", "deg", ("S", "Ar", "Go"), norm=(143.0, 6.0)),
    _m("Ar-Go-Me", "gonial angle", (_BJ,), "vertex_angle", "deg", ("Ar", "Go", "Me"), norm=(130.0, 7.0)),
    _m("Bjork sum", "sum of the saddle, articular and gonial angles", (_BJ,), "combination", "deg",
       terms=(("N-S-Ar", 1.0), ("S-Ar-Go", 1.0), ("Ar-Go-Me", 1.0)), norm=(396.0, 6.0)),
    _m("S-N", "anterior cranial base length", (_BJ,), "distance", "mm", ("S", "N"), norm=(71.0, 3.0)),
    _m("S-Ar", "posterior cranial base length", (_BJ,), "distance", "mm", ("S", "Ar"), norm=(32.0, 3.0)),
    _m("Ar-Go", "ramus height", (_BJ,), "distance", "mm", ("Ar", "Go"), norm=(44.0, 5.0)),
    _m("Go-Me", "mandibular body length", (_BJ,), "distance", "mm", ("Go", "Me"), norm=(71.0, 5.0)),
    _m("S-Go/N-Me", "Jarabak ratio: posterior / anterior face height", (_BJ,), "ratio", "%", ("S", "Go", "N", "Me"),
       norm=(63.5, 1.5), scale=100.0),
    # unlocked by the Aariz landmarks (incisor apices, molar and premolar cusps, pronasale, condylion)
    _m("IMPA", "lower incisor axis (LIA-LIT) to the mandibular plane", (_TW,), "line_angle", "deg",
       ("Me", "Go", "LIA", "LIT"), norm=(90.0, 5.0)),
    _m("FMIA", "lower incisor axis to FH", (_TW,), "line_angle", "deg", ("Or", "Po", "LIT", "LIA"), norm=(65.0, 5.0)),
    _m("U1-SN", "upper incisor axis (UIA-UIT) to S-N", (_ST,), "line_angle", "deg", ("N", "S", "UIA", "UIT"),
       norm=(103.0, 6.0)),
    _m("U1-L1", "interincisal angle", (_DO, _ST), "line_angle", "deg", ("UIT", "UIA", "LIT", "LIA"), norm=(135.4, 5.8)),
    _m("Wits", "AO - BO on the functional occlusal plane, positive when AO is ahead", ("Jacobson",), "projection", "mm",
       ("A", "B", "molar_occlusion", "premolar_occlusion"), norm=(0.0, 2.0)),
    _m("Ls-E", "upper lip to the E-line (Pn-Pog'), positive ahead", ("Ricketts",), "point_line_distance", "mm",
       ("Ls", "Pn", "Pog'"), norm=(-4.0, 2.0)),
    _m("Li-E", "lower lip to the E-line (Pn-Pog'), positive ahead", ("Ricketts",), "point_line_distance", "mm",
       ("Li", "Pn", "Pog'"), norm=(-2.0, 2.0)),
    _m("Co-A", "effective midfacial length", (_MC,), "distance", "mm", ("Co", "A"), norm=(91.0, 4.3)),
    _m("Co-Gn", "effective mandibular length", (_MC,), "distance", "mm", ("Co", "Gn"), norm=(120.2, 5.3)),
)

_BY_NAME = {m.name: m for m in MEASUREMENTS}
if len(_BY_NAME) != len(MEASUREMENTS):
    raise RuntimeError("duplicate measurement names in MEASUREMENTS.")
for _entry in MEASUREMENTS:
    for _term, _ in _entry.terms:
        if _term not in _BY_NAME:
            raise RuntimeError(f"measurement {_entry.name!r} sums unknown measurement {_term!r}.")

ISBI2015_CLASSIFICATION: tuple[str, ...] = tuple(m.name for m in MEASUREMENTS if _ISBI in m.analyses)
"""The eight measures of the ISBI 2015 classification task, in the challenge's order."""


def get_measurement(name: str) -> Measurement:
    """The :class:`Measurement` named ``name`` (a clear ``KeyError`` listing the names otherwise)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown measurement {name!r}; available: {list(_BY_NAME)}.") from None


def _uses(name: str) -> set[str]:
    """The landmarks a measurement needs, through its terms and derived points."""
    m = get_measurement(name)
    if m.terms:
        return set().union(*(_uses(t) for t, _ in m.terms))
    return {a for p in m.points for a in DERIVED_POINTS.get(p, (p,))}


def determinable_measurements(landmark_set: str | LandmarkSet) -> tuple[str, ...]:
    """The names of the measurements whose every landmark is in ``landmark_set``, in declaration order."""
    abbreviations = set(get_landmark_set(landmark_set).abbreviations)
    return tuple(m.name for m in MEASUREMENTS if _uses(m.name) <= abbreviations)
