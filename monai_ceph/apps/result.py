"""The landmarks, confidence and analysis of one radiograph as :class:`~monai_ceph.apps.LandmarkDetector` returns
them: a small dataclass that converts to JSON, to a CSV row and to a plot."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from monai_ceph.analysis.writers import measurements_to_csv_row
from monai_ceph.data import get_landmark_set
from monai_ceph.handlers.provenance import model_description

__all__ = ["LandmarkResult"]


def _number(v: Any) -> float | None:
    v = float(v)
    return None if math.isnan(v) else v


@dataclass
class LandmarkResult:
    """The detection of one radiograph.

    Attributes:
        id: the image's id (a file's stem; ``"array_<i>"`` for in-memory images).
        source: the image file, or None for an in-memory image.
        landmark_set: the name of the set naming the rows of ``landmarks``.
        spacing: ``(2,)`` mm per pixel in (x, y) order.
        landmarks: ``(N, 2)`` in source pixels, (x, y) = (column, row), pixel centres at integers; NaN if missing.
        confidence: ``(N,)`` heatmap peak confidence in [0, 1].
        sigma_mm: ``(N,)`` per-landmark uncertainty (mm) when the bundle's post-processing gives one, else None.
        measurements: ``{name: value}`` (degrees, mm or ratios; NaN when undeterminable).
        classes: ``{name: class}`` of the classified measurements.
        image: the ``(x, y)`` source image of an in-memory input (for :meth:`plot`), else None.
        model: which model made it: ``{"kind": "released", "name", "version"}``, ``{"kind": "trained"}`` or
            ``{"kind": "phantom demo"}`` (:func:`monai_ceph.handlers.model_provenance`).
        pipeline: the steps that ran (``"global stage"``, ``"local stage"``, ``"shape refinement"``,
            ``"calibrated uncertainty"``).
        warnings: what the user must know before trusting the points (a phantom-demo model, an implausible shape).
        orientation: which way the radiograph was found to face (``"as given"``, ``"mirrored"``, ``"rotated 90"``,
            ...; :class:`~monai_ceph.inferers.OrientationInferer`), None when not checked.
    """

    id: str
    source: str | None
    landmark_set: str
    spacing: np.ndarray
    landmarks: np.ndarray
    confidence: np.ndarray
    sigma_mm: np.ndarray | None = None
    measurements: dict[str, float] = field(default_factory=dict)
    classes: dict[str, str] = field(default_factory=dict)
    image: np.ndarray | None = field(default=None, repr=False)
    model: dict[str, Any] = field(default_factory=dict)
    pipeline: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    orientation: str | None = None

    @property
    def landmarks_mm(self) -> np.ndarray:
        """``(N, 2)`` landmarks in mm from the image origin (source pixels times spacing)."""
        return self.landmarks * self.spacing

    @property
    def abbreviations(self) -> list[str]:
        return list(get_landmark_set(self.landmark_set).abbreviations)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able record: ``{"id", "source", "landmark_set", "spacing", "landmarks": [{"abbreviation",
        "x", "y", "x_mm", "y_mm", "confidence"[, "sigma_mm"]}, ...], "measurements", "classes", "model",
        "pipeline", "warnings", "orientation"}``; missing values are None."""
        rows = []
        for i, abbr in enumerate(self.abbreviations):
            row = dict(zip(("x", "y", "x_mm", "y_mm"), map(_number, (*self.landmarks[i], *self.landmarks_mm[i]))))
            row = {"abbreviation": abbr, **row, "confidence": _number(self.confidence[i])}
            if self.sigma_mm is not None:
                row["sigma_mm"] = _number(self.sigma_mm[i])
            rows.append(row)
        return {
            "id": self.id,
            "source": self.source,
            "landmark_set": self.landmark_set,
            "spacing": [float(s) for s in self.spacing],
            "landmarks": rows,
            "measurements": {k: _number(v) for k, v in self.measurements.items()},
            "classes": dict(self.classes),
            "model": dict(self.model),
            "pipeline": list(self.pipeline),
            "warnings": list(self.warnings),
            "orientation": self.orientation,
        }

    def to_csv_row(self) -> dict[str, Any]:
        """One flat row: ``id, source, <abbr>_x, <abbr>_y, <abbr>_confidence[, <abbr>_sigma_mm] ...`` in source
        pixels, then every measurement and, for the classified ones, ``<name>_class``; missing values are empty
        strings."""
        record = self.to_dict()
        row: dict[str, Any] = {"id": self.id, "source": self.source or "", "model": model_description(self.model),
                               "warnings": "; ".join(self.warnings)}
        for lm in record["landmarks"]:
            for key in ("x", "y", "confidence", "sigma_mm"):
                if key in lm:
                    row[f"{lm['abbreviation']}_{key}"] = "" if lm[key] is None else lm[key]
        return measurements_to_csv_row(self.measurements, self.classes, **row)

    def source_image(self) -> np.ndarray:
        """The ``(x, y)`` source image: the in-memory one, else re-read from :attr:`source`."""
        if self.image is not None:
            return self.image
        if self.source is None:
            raise ValueError(f"{self.id}: no image to plot (an in-memory result without its image).")
        from monai.transforms import LoadImage

        from monai_ceph.data import RadiographReader

        image = LoadImage(reader=RadiographReader(), image_only=True, ensure_channel_first=True)(self.source)
        return np.asarray(image)[0]

    def plot(self, ax: Any = None) -> Any:
        """Draw the radiograph with the landmarks, their abbreviations and a legend on a matplotlib ``ax`` (a new
        figure when None); returns the axes. Needs matplotlib (``pip install matplotlib``)."""
        try:
            import matplotlib.pyplot as plt
        except ImportError as e:
            raise ImportError("LandmarkResult.plot needs matplotlib: pip install matplotlib") from e
        if ax is None:
            _, ax = plt.subplots(figsize=(6, 7))
        ax.imshow(np.asarray(self.source_image()).T, cmap="gray")  # (x, y) -> rows = y, columns = x
        x, y = self.landmarks[:, 0], self.landmarks[:, 1]
        points = ax.scatter(x, y, c=self.confidence, cmap="viridis", vmin=0.0, vmax=1.0, s=18, label="landmark")
        for abbr, px, py in zip(self.abbreviations, x, y):
            if np.isfinite(px) and np.isfinite(py):
                ax.annotate(abbr, (px, py), xytext=(4, 4), textcoords="offset points", color="yellow", fontsize=7)
        ax.figure.colorbar(points, ax=ax, fraction=0.04, label="confidence")
        ax.legend(loc="lower left", fontsize=7)
        ax.set_title(f"{self.id} ({model_description(self.model)})" if self.model else self.id)
        if self.warnings:
            ax.text(0.01, 0.99, "\n".join(self.warnings), transform=ax.transAxes, va="top", color="red", fontsize=8,
                    bbox={"facecolor": "white", "alpha": 0.8})
        ax.set_axis_off()
        return ax
