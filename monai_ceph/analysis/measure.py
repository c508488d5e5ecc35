"""Evaluate the declared measurements (:data:`~monai_ceph.analysis.definitions.MEASUREMENTS`) on landmarks."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from monai.utils import convert_to_numpy

from monai_ceph.data import LandmarkSet, SpacingError, check_spacing, get_landmark_set

from . import geometry
from .definitions import DERIVED_POINTS, MEASUREMENTS, Measurement, get_measurement

__all__ = ["GeometryWarning", "UNDETERMINED", "measure", "measure_with_reasons", "classify", "profile_facing",
           "anatomical_axes"]

# the anatomy's frame (see geometry.canonical_frame): pairs (from, to) of landmarks, the first present one of each
# giving the anterior direction (Frankfort horizontal first: on the upright ISBI films its mean tilt is 0.03 deg)
# and the inferior one (its side of the anterior direction tells a mirrored film)
_ANTERIOR_PAIRS = (("Po", "Or"), ("S", "N"), ("PNS", "ANS"), ("Go", "Me"), ("Ar", "Pog"))
_INFERIOR_PAIRS = (("N", "Me"), ("S", "Go"), ("ANS", "Me"), ("S", "Me"), ("N", "Gn"), ("Ar", "Go"))

_FUNCTIONS = {
    "vertex_angle": geometry.vertex_angle,
    "line_angle": geometry.line_angle,
    "signed_line_angle": geometry.signed_line_angle,
    "distance": geometry.distance,
    "signed_distance": geometry.signed_distance,
    "point_line_distance": geometry.point_line_distance,
    "projection": geometry.projection,
    "ratio": lambda p1, p2, p3, p4: geometry.distance(p1, p2) / _nonzero(geometry.distance(p3, p4)),
}


class GeometryWarning(RuntimeWarning):
    """A measurement is NaN because its landmarks give degenerate geometry (coincident points)."""


def _nonzero(length: float) -> float:
    if length < geometry.EPS:
        raise geometry.DegenerateGeometryError("the ratio's second pair of points coincide")
    return length


def _landmarks(landmarks: Any, lset: LandmarkSet) -> np.ndarray:
    points = np.asarray(convert_to_numpy(landmarks, wrap_sequence=True), dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"landmarks must be an (N, 2) array, got shape {points.shape}.")
    if len(points) != len(lset):
        raise ValueError(f"got {len(points)} landmarks but the {lset.name} landmark set has {len(lset)}.")
    return points


def _spacing(spacing: Any) -> tuple[np.ndarray | None, str | None]:
    """``(spacing (2,), None)``, or ``(None, why)`` when it is missing or unusable (mm measures are then NaN): not
    finite, not positive or outside a radiograph's range (:func:`monai_ceph.data.check_spacing`)."""
    if spacing is None:
        return None, "pixel spacing is missing"
    s = np.asarray(convert_to_numpy(spacing, wrap_sequence=True), dtype=np.float64).reshape(-1)
    if s.size == 1:
        s = np.repeat(s, 2)
    if s.size != 2:
        raise ValueError(f"spacing must be a scalar or (2,) mm/pixel, got {s.size} values.")
    try:
        return check_spacing(s, "spacing"), None
    except SpacingError as e:
        return None, str(e).rstrip(".")


def _direction(landmarks: np.ndarray, lset: LandmarkSet, pairs) -> np.ndarray | None:
    """``to - from`` of the first pair of ``pairs`` whose landmarks are in the set, present and distinct."""
    for start, end in pairs:
        if start in lset.abbreviations and end in lset.abbreviations:
            v = landmarks[lset.index(end)] - landmarks[lset.index(start)]
            if np.all(np.isfinite(v)) and np.hypot(*v) >= geometry.EPS:
                return v
    return None


def anatomical_axes(landmarks: np.ndarray, landmark_set: str | LandmarkSet = "isbi2015"):
    """``(anterior, inferior)`` directions of the anatomy in the image (``None`` where no landmark pair gives one):
    anterior from the first present of Po->Or, S->N, PNS->ANS, Go->Me, Ar->Pog; inferior from N->Me, S->Go,
    ANS->Me, S->Me, N->Gn, Ar->Go. :func:`measure` reads every landmark in the frame they span."""
    lset = get_landmark_set(landmark_set)
    points = np.asarray(landmarks, dtype=np.float64)
    return _direction(points, lset, _ANTERIOR_PAIRS), _direction(points, lset, _INFERIOR_PAIRS)


def profile_facing(landmarks: np.ndarray, landmark_set: str | LandmarkSet = "isbi2015") -> float:
    """+1 when the profile faces right (the anterior direction of :func:`anatomical_axes` has x >= 0), -1 when it
    faces left (+1 when no landmark pair gives the direction)."""
    anterior, _ = anatomical_axes(landmarks, landmark_set)
    return -1.0 if anterior is not None and anterior[0] < 0 else 1.0


class _Evaluator:
    """Evaluates measurements on one set of canonical-frame points, memoising (combinations reuse terms)."""

    def __init__(self, points: np.ndarray, lset: LandmarkSet, spacing_problem: str | None):
        self.points, self.lset, self.spacing_problem = points, lset, spacing_problem
        self.values: dict[str, float] = {}
        self.reasons: dict[str, str] = {}

    def point(self, name: str) -> np.ndarray:
        members = DERIVED_POINTS.get(name, (name,))
        absent = [a for a in members if a not in self.lset.abbreviations]
        if absent:
            raise LookupError(f"landmark {', '.join(absent)} is not in the {self.lset.name} landmark set")
        p = np.mean([self.points[self.lset.index(a)] for a in members], axis=0)
        if not np.all(np.isfinite(p)):
            missing = [a for a in members if not np.all(np.isfinite(self.points[self.lset.index(a)]))]
            raise LookupError(f"landmark {', '.join(missing)} is missing")
        return p

    def __call__(self, m: Measurement) -> float:
        if m.name in self.values:
            return self.values[m.name]
        value, reason = math.nan, None
        try:
            if m.kind == "combination":
                parts = [(self(get_measurement(t)), t, w) for t, w in m.terms]
                bad = [t for v, t, _ in parts if math.isnan(v)]
                if bad:
                    raise LookupError(f"{bad[0]} is NaN ({self.reasons[bad[0]]})")
                value = float(sum(w * v for v, _, w in parts))
            elif m.needs_spacing and self.spacing_problem:
                raise LookupError(f"{self.spacing_problem}: an mm measurement")
            else:
                value = float(_FUNCTIONS[m.kind](*(self.point(p) for p in m.points)) * m.scale)
        except LookupError as e:
            reason = str(e)
        except geometry.DegenerateGeometryError as e:
            reason = f"degenerate geometry: {e} ({', '.join(m.points)})"
            warnings.warn(f"measurement {m.name!r}: {reason}; its value is NaN.", GeometryWarning, stacklevel=3)
        self.values[m.name] = value
        if reason is not None:
            self.reasons[m.name] = reason
        return value


def _selected(names: Iterable[str] | None) -> list[Measurement]:
    return list(MEASUREMENTS) if names is None else [get_measurement(n) for n in names]


def measure_with_reasons(
    landmarks: Any,
    spacing: Any = None,
    landmark_set: str | LandmarkSet = "isbi2015",
    names: Sequence[str] | None = None,
) -> tuple[dict[str, float], dict[str, str]]:
    """:func:`measure`, and the reason of every NaN value (``{name: "landmark UIA is not in the isbi2015 landmark
    set"}``, ``"landmark Go is missing"``, ``"pixel spacing is missing: an mm measurement"``, ...)."""
    lset = get_landmark_set(landmark_set)
    points = _landmarks(landmarks, lset)
    selected = _selected(names)
    s, problem = _spacing(spacing)
    if problem is not None and names is not None:
        needing = [m.name for m in selected if m.needs_spacing]
        if needing:
            raise ValueError(f"{problem}; it is needed for the mm measurements {needing}.")
    scaled = points * s if s is not None else points  # without spacing: square pixels (angles and ratios only)
    evaluate = _Evaluator(geometry.canonical_frame(scaled, *anatomical_axes(scaled, lset)), lset, problem)
    values = {m.name: evaluate(m) for m in selected}
    return values, {k: v for k, v in evaluate.reasons.items() if k in values}


def measure(
    landmarks: Any,
    spacing: Any = None,
    landmark_set: str | LandmarkSet = "isbi2015",
    names: Sequence[str] | None = None,
) -> dict[str, float]:
    """The cephalometric measurements of one radiograph's landmarks.

    Args:
        landmarks: ``(N, 2)`` numpy array, tensor or nested list in source pixels, ``(x, y)`` as the package
            carries them (x = column, y = row), NaN where missing; N must match ``landmark_set``.
        spacing: mm/pixel, ``(2,)`` in the same order or a scalar. Missing (None), not positive or outside a
            radiograph's range (:data:`monai_ceph.data.PLAUSIBLE_SPACING_MM`): the mm measurements are NaN (an error
            naming the fault when ``names`` asks for one); angles and ratios are still computed, taking the pixels
            as square.
        landmark_set: a name of :func:`monai_ceph.data.get_landmark_set` or a set.
        names: the measurements to compute (names of :data:`~monai_ceph.analysis.definitions.MEASUREMENTS`);
            None for all of them.

    Returns:
        ``{name: value}`` in degrees, mm, ratios or % (see each measurement's ``unit``), in the order of
        :data:`~monai_ceph.analysis.definitions.MEASUREMENTS`. NaN where a landmark it needs is missing or not
        in the set, where mm spacing is missing, or where the geometry is degenerate (with a
        :class:`GeometryWarning`); :func:`measure_with_reasons` says why. The values do not change when the
        image is mirrored (a profile facing left, a film flipped upside down) or rotated: every landmark is read in
        the anatomy's frame (:func:`anatomical_axes`: x along the Frankfort horizontal, anteriorly; y inferiorly),
        so signs follow anatomy, not the image axes.

    Raises:
        ValueError: the landmark array has the wrong shape or length for the set; the set is unknown; spacing
            is missing or not positive while ``names`` asks for mm measurements.
        KeyError: a name in ``names`` is not a measurement.
    """
    return measure_with_reasons(landmarks, spacing, landmark_set, names)[0]


def classify(measurements: Mapping[str, float]) -> dict[str, str]:
    """The class of every classified measurement of ``measurements`` (as :func:`measure` returns them).

    Classes are each measurement's declared ones (the ISBI 2015 challenge's for its eight measures) or, for the
    textbook measures, ``"decreased"`` / ``"normal"`` / ``"increased"`` at norm +- 1 SD; normal ranges are closed.
    Measurements without classes are left out; a NaN value is ``"undetermined"``.

    Raises:
        KeyError: a name is not a measurement.
    """
    out = {}
    for name, value in measurements.items():
        m = get_measurement(name)
        if m.labels:
            label = m.classify(float(value))
            out[name] = UNDETERMINED if label is None else label
    return out


UNDETERMINED = "undetermined"
