"""The few plane-geometry functions every cephalometric measurement is evaluated with.

Points are ``(2,)`` float arrays in millimetres (or square pixels) in the *canonical frame* of
:func:`canonical_frame`: the anatomy's own frame, x along the Frankfort horizontal growing anteriorly (towards
the face) and y inferiorly, whatever the side the profile faces, the film's rotation or a mirrored film. Angles are in degrees. A line through two coincident points raises
:class:`DegenerateGeometryError`; the caller turns it into NaN with a warning.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "DegenerateGeometryError",
    "EPS",
    "canonical_frame",
    "vertex_angle",
    "line_angle",
    "signed_line_angle",
    "distance",
    "signed_distance",
    "point_line_distance",
    "projection",
]

EPS = 1e-9
"""Shortest vector (mm) that still defines a direction."""


class DegenerateGeometryError(ValueError):
    """Two points that should define a direction coincide."""


def _direction(a: np.ndarray, b: np.ndarray, what: str) -> np.ndarray:
    v = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    n = float(np.hypot(*v))
    if n < EPS:
        raise DegenerateGeometryError(f"{what} coincide")
    return v / n


def _cross(u: np.ndarray, v: np.ndarray) -> float:
    return float(u[0] * v[1] - u[1] * v[0])


def canonical_frame(points: np.ndarray, anterior=None, inferior=None) -> np.ndarray:
    """``points`` (N, 2) in the anatomy's frame: rotated so that the direction ``anterior`` (e.g. Po->Or) is +x, and
    mirrored (y negated) when the direction ``inferior`` (e.g. N->Me) then points to -y, so y grows inferiorly.

    A rotation of all points and a mirror (a film flipped either way) leave the result unchanged up to a
    translation, so every measurement made from differences of canonical points is unchanged. ``anterior`` None
    (or of zero length): not rotated; ``inferior`` None: not mirrored.
    """
    out = np.array(points, dtype=np.float64, copy=True)
    if anterior is not None:
        a = np.asarray(anterior, dtype=np.float64)
        n = float(np.hypot(*a))
        if n >= EPS:
            c, s = a / n
            rotation = np.array([[c, s], [-s, c]])  # turns anterior onto +x
            out = out @ rotation.T
            if inferior is not None:
                inferior = rotation @ np.asarray(inferior, dtype=np.float64)
    if inferior is not None and np.asarray(inferior)[1] < 0:
        out[:, 1] = -out[:, 1]
    return out


def vertex_angle(a: np.ndarray, vertex: np.ndarray, b: np.ndarray) -> float:
    """Unsigned angle a-vertex-b at ``vertex``, in [0, 180]."""
    u, v = _direction(vertex, a, "vertex and first point"), _direction(vertex, b, "vertex and second point")
    return float(np.degrees(np.arctan2(abs(_cross(u, v)), float(np.dot(u, v)))))


def line_angle(a1: np.ndarray, a2: np.ndarray, b1: np.ndarray, b2: np.ndarray) -> float:
    """Unsigned angle between the directed lines a1->a2 and b1->b2, in [0, 180]."""
    return abs(signed_line_angle(a1, a2, b1, b2))


def signed_line_angle(a1: np.ndarray, a2: np.ndarray, b1: np.ndarray, b2: np.ndarray) -> float:
    """Angle (-180, 180] that turns the directed line a1->a2 onto b1->b2; positive when b1->b2 is turned
    clockwise as seen on a radiograph with the face to the right (towards +y from +x: e.g. a palatal plane whose
    anterior end tips down from the Frankfort horizontal)."""
    u, v = _direction(a1, a2, "the first line's points"), _direction(b1, b2, "the second line's points")
    return float(np.degrees(np.arctan2(_cross(u, v), float(np.dot(u, v)))))


def distance(p: np.ndarray, q: np.ndarray) -> float:
    """Euclidean distance |pq|."""
    return float(np.hypot(*(np.asarray(p, dtype=np.float64) - q)))


def signed_distance(p: np.ndarray, q: np.ndarray) -> float:
    """|pq|, negative when p lies posterior of q (smaller canonical x)."""
    d = distance(p, q)
    return -d if p[0] < q[0] else d


def point_line_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Perpendicular distance of p from the line a->b, positive on its anterior side when a->b runs downwards
    (the side to the left of a->b on the radiograph with the face to the right)."""
    u = _direction(a, b, "the line's points")
    return _cross(np.asarray(p, dtype=np.float64) - a, u)


def projection(p: np.ndarray, q: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Signed length of the vector q->p projected on the direction a->b (positive when p is ahead of q)."""
    u = _direction(a, b, "the reference line's points")
    return float(np.dot(np.asarray(p, dtype=np.float64) - q, u))
