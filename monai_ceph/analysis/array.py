"""Array-style transform computing the cephalometric measurements and classes of one set of landmarks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from monai.transforms.transform import Transform
from monai.utils import TransformBackends

from monai_ceph.data import LandmarkSet, get_landmark_set

from .measure import classify, measure_with_reasons

__all__ = ["CephalometricMeasurements"]


class CephalometricMeasurements(Transform):
    """
    Compute :func:`~monai_ceph.analysis.measure` and :func:`~monai_ceph.analysis.classify` of ``(N, 2)`` landmarks
    in source pixels (numpy or torch, x = column, y = row, NaN where missing) with their mm/pixel spacing.

    ``__call__`` returns ``(measurements, classes)``: ``{name: float}`` and ``{name: str}``; the reason of every
    NaN value is kept in ``self.reasons`` until the next call.

    Args:
        landmark_set: names the landmarks (``"isbi2015"``, ``"aariz"`` or a :class:`LandmarkSet`).
        names: the measurements to compute; None for all (those the set cannot determine are NaN).
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, landmark_set: str | LandmarkSet = "isbi2015", names: Sequence[str] | None = None) -> None:
        self.landmark_set = get_landmark_set(landmark_set)
        self.names = None if names is None else tuple(names)
        self.reasons: dict[str, str] = {}

    def __call__(self, landmarks: Any, spacing: Any = None) -> tuple[dict[str, float], dict[str, str]]:
        values, self.reasons = measure_with_reasons(landmarks, spacing, self.landmark_set, self.names)
        return values, classify(values)
