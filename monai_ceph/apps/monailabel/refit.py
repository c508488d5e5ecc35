"""Interactive re-fit: the landmarks an annotator fixed (and marked missing) in an infer request, and the other
landmarks re-estimated from the shape model conditioned on them, fused with the image's heatmap evidence (the
robust posterior of :meth:`~monai_ceph.shape.ShapeModel.refit`).

- :func:`parse_edit`: the request's ``"fixed": {"Me": [x, y], ...}`` (source pixels) and ``"missing": ["Ar"]``
  as a :class:`LandmarkEdit`, every mistake a :class:`~.errors.RequestError` naming the entry;
- :class:`Evidence`: what one network pass says about an image (points, covariances in mm, confidences, and
  the plain result they came from), kept by the app's cache so that a re-fit needs no network pass;
- :func:`refit_landmarks`: the re-fit itself, with or without a :class:`~monai_ceph.shape.ShapeModel`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from monai_ceph.apps.monailabel.errors import RequestError
from monai_ceph.apps.monailabel.images import check_landmarks_inside
from monai_ceph.data import LandmarkSet
from monai_ceph.shape import CHI2_2_99, REFIT_NU, ShapeModel, mahalanobis_squared

__all__ = ["LandmarkEdit", "Evidence", "parse_edit", "refit_landmarks", "covariance_px"]


@dataclass(frozen=True)
class LandmarkEdit:
    """What an annotator decided about an image: ``fixed`` ``{index: (x, y)}`` in source pixels (these points
    never move), and ``missing`` (indices of landmarks that are not visible: returned ``null``)."""

    fixed: dict[int, tuple[float, float]] = field(default_factory=dict)
    missing: tuple[int, ...] = ()

    def check_inside(self, size: Sequence[int], landmark_set: LandmarkSet) -> None:
        """Refuse a fixed point outside an image of ``size`` ``(x, y)`` pixels (a 400 naming it)."""
        points = np.full((len(landmark_set), 2), np.nan)
        for i, xy in self.fixed.items():
            points[i] = xy
        check_landmarks_inside(points, size, landmark_set, "request 'fixed'")


def _index(name, landmark_set: LandmarkSet, where: str) -> int:
    if not isinstance(name, str):
        raise RequestError(f"{where}: expected a landmark abbreviation or name, got {name!r}.")
    try:
        return landmark_set.index(name)
    except KeyError as e:
        raise RequestError(f"{where}: {e.args[0]}") from None


def _coordinate(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RequestError(f"{where}: coordinate {value!r} is not a number.")
    if not math.isfinite(value):
        raise RequestError(f"{where}: coordinate {value!r} is not finite.")
    return float(value)


def parse_edit(request: Mapping, landmark_set: LandmarkSet) -> LandmarkEdit | None:
    """The request's ``"fixed"`` / ``"missing"`` params as a :class:`LandmarkEdit`, ``None`` when it has neither.

    Landmarks are named by abbreviation or full name (any case). Raises :class:`~.errors.RequestError` naming the
    entry: ``fixed`` not an object, an unknown landmark, a position that is not ``[x, y]`` of two finite numbers,
    ``missing`` not a list of names, a landmark given twice or both fixed and missing.
    """
    fixed, missing = request.get("fixed"), request.get("missing")
    if fixed is None and missing is None:
        return None
    if fixed is None:
        fixed = {}
    if not isinstance(fixed, Mapping):
        raise RequestError(f"request 'fixed': expected an object {{landmark: [x, y]}} in source pixels, got "
                           f"{type(fixed).__name__} {fixed!r:.80}.")
    points: dict[int, tuple[float, float]] = {}
    for name, value in fixed.items():
        where = f"request 'fixed' entry {name!r}"
        i = _index(name, landmark_set, where)
        if i in points:
            raise RequestError(f"{where}: landmark {landmark_set.abbreviations[i]!r} is given twice.")
        if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2:
            raise RequestError(f"{where}: expected [x, y] in source pixels, got {value!r:.80}.")
        points[i] = (_coordinate(value[0], f"{where} x"), _coordinate(value[1], f"{where} y"))
    if missing is None:
        missing = []
    if isinstance(missing, str) or not isinstance(missing, Sequence):
        raise RequestError(f"request 'missing': expected a list of landmark names, got {missing!r:.80}.")
    gone: list[int] = []
    for k, name in enumerate(missing):
        where = f"request 'missing'[{k}]"
        i = _index(name, landmark_set, where)
        if i in points:
            raise RequestError(f"{where}: landmark {landmark_set.abbreviations[i]!r} is also in 'fixed'.")
        if i in gone:
            raise RequestError(f"{where}: landmark {landmark_set.abbreviations[i]!r} is given twice.")
        gone.append(i)
    return LandmarkEdit(points, tuple(sorted(gone)))


@dataclass(frozen=True)
class Evidence:
    """One network pass over an image, in the source image.

    Attributes:
        landmarks: ``(K, 2)`` decoded points, source pixels (NaN where none decoded).
        cov_mm: ``(K, 2, 2)`` their covariances, source mm^2 (calibrated where the app is).
        confidence: ``(K,)`` their heatmap peaks (NaN: none).
        spacing: ``(2,)`` the source spacing, mm/pixel.
        result: the plain infer result they came from (its other keys are reused by a re-fit result).
    """

    landmarks: np.ndarray
    cov_mm: np.ndarray
    confidence: np.ndarray
    spacing: np.ndarray
    result: dict

    @classmethod
    def from_result(cls, result: Mapping) -> Evidence:
        """The evidence in a plain infer result (its entries' ``x``, ``y``, ``covariance_mm`` and ``confidence``;
        ``null``: NaN)."""
        entries = result["landmarks"]
        landmarks = np.array([[np.nan if e["x"] is None else e["x"], np.nan if e["y"] is None else e["y"]]
                              for e in entries], dtype=np.float64)
        cov = np.array([np.full((2, 2), np.nan) if e.get("covariance_mm") is None else e["covariance_mm"]
                        for e in entries], dtype=np.float64)
        confidence = np.array([np.nan if e.get("confidence") is None else e["confidence"] for e in entries])
        return cls(landmarks, cov, confidence, np.asarray(result["spacing"], dtype=np.float64), dict(result))


def covariance_px(cov_mm, spacing) -> np.ndarray:
    """``(..., 2, 2)`` covariances from source mm^2 to source pixels^2 (``diag(1/s) C diag(1/s)``)."""
    s = np.asarray(spacing, dtype=np.float64).reshape(2)
    return np.asarray(cov_mm, dtype=np.float64) / (s[:, None] * s[None, :])


def _evidence_covariance(cov_mm: np.ndarray) -> np.ndarray:
    """Evidence covariances as :meth:`ShapeModel.posterior` takes them: an entry that is not a finite positive
    definite matrix (a heatmap with no mass, a degenerate one) is no evidence (inf)."""
    c = np.array(cov_mm, dtype=np.float64)
    finite = np.isfinite(c).all((-1, -2))
    safe = np.where(finite[:, None, None], c, np.eye(2))
    good = finite & (safe[:, 0, 0] > 0) & (np.linalg.det(safe) > 0)
    c[~good] = np.inf
    return c


def refit_landmarks(
    evidence: Evidence,
    edit: LandmarkEdit,
    shape_model: ShapeModel | None = None,
    threshold: float | None = math.sqrt(CHI2_2_99),
    nu: float | None = REFIT_NU,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The landmarks of an image after an annotator's edit.

    With a ``shape_model`` (built in mm on the same landmark set), every landmark that is neither fixed nor
    missing is re-estimated as :meth:`ShapeModel.refit` does it: the robust posterior
    (:meth:`ShapeModel.posterior` with Student-t weights of ``nu`` degrees of freedom) of the shape model
    conditioned on the fixed points and fused with its own evidence (``evidence.landmarks`` with covariance
    ``evidence.cov_mm``), with the posterior covariance. Evidence that the fixed points and the other evidence
    contradict is down-weighted by the fit itself; a point whose evidence ends farther than ``threshold``
    (Mahalanobis under its evidence covariance, default the chi^2 99 % radius 3.03) from its re-fitted position
    is flagged. Without a shape model, the other landmarks keep their evidence unchanged.

    Fixed points are returned exactly as given, with a zero covariance; missing ones as NaN.

    Args:
        evidence: the image's network evidence.
        edit: the fixed and missing landmarks.
        shape_model: the shape prior (``None``: none).
        threshold: the flag radius; ``None``: flag nothing.
        nu: the robust weights' degrees of freedom (default :data:`~monai_ceph.shape.REFIT_NU`, as
            :meth:`ShapeModel.refit`); ``None``: Gaussian fusion of all evidence.

    Returns:
        ``(landmarks, cov_mm, flagged)``: ``(K, 2)`` source pixels, ``(K, 2, 2)`` source mm^2, ``(K,)`` bool.

    Raises:
        RequestError: the edit leaves fewer than two fixed or evidence points to place the shape.
    """
    spacing = np.asarray(evidence.spacing, dtype=np.float64).reshape(2)
    points = np.array(evidence.landmarks, dtype=np.float64).reshape(-1, 2)
    cov = np.array(evidence.cov_mm, dtype=np.float64).reshape(-1, 2, 2)
    flagged = np.zeros(len(points), dtype=bool)
    fixed = np.array(sorted(edit.fixed), dtype=np.int64)
    missing = list(edit.missing)
    points[missing] = np.nan
    for i, xy in edit.fixed.items():
        points[i] = xy
    if shape_model is not None:
        mm, noise = points * spacing, _evidence_covariance(cov)
        # a position without evidence is left out (NaN): the shape model places (and mirrors) the shape by the
        # positions it is given
        mm[~np.isfinite(noise).all((-1, -2)) & ~np.isin(np.arange(len(mm)), fixed)] = np.nan
        try:
            mean_mm, cov = shape_model.posterior(mm, fixed, noise, nu=nu)
        except ValueError as e:
            raise RequestError(f"request 'fixed'/'missing': {e}") from None
        if threshold is not None:
            distance = mahalanobis_squared(mm - mean_mm, np.where(np.isfinite(noise), noise, np.nan))
            flagged = np.nan_to_num(distance, nan=0.0) > threshold**2
            flagged[fixed] = False
        points = mean_mm / spacing
    for i, xy in edit.fixed.items():
        points[i] = xy  # exactly as given, not through mm and back
    cov[fixed] = 0.0
    points[missing] = np.nan
    cov[missing] = np.nan
    return points, cov, flagged
