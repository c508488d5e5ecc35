"""The cephalometric tracing: reference planes and measured angles on the radiograph, with a table of values,
norms and classes."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from monai.utils import convert_to_numpy, optional_import

from monai_ceph.data import LandmarkSet, get_landmark_set
from monai_ceph.handlers.overlay_saver import _to_display

from .definitions import ISBI2015_CLASSIFICATION, get_measurement

Figure, _ = optional_import("matplotlib.figure", name="Figure")
FigureCanvasAgg, _ = optional_import("matplotlib.backends.backend_agg", name="FigureCanvasAgg")

__all__ = ["render_analysis_overlay", "TRACING_LINES", "TRACING_ANGLES", "TABLE_MEASUREMENTS"]

# (label, first landmark, second landmark, colour, line style): drawn extended by 15 % past both points
TRACING_LINES: tuple[tuple[str, str, str, str, str], ...] = (
    ("S-N", "S", "N", "tab:cyan", "-"),
    ("FH", "Po", "Or", "tab:orange", "-"),
    ("palatal", "PNS", "ANS", "tab:green", "-"),
    ("mandibular", "Go", "Me", "tab:red", "-"),
    ("A-B", "A", "B", "tab:purple", "-"),
    ("N-Pog", "N", "Pog", "0.8", "--"),
)
# (measurement, vertex, first ray's end, second ray's end): an arc at the vertex, labelled with the value
TRACING_ANGLES: tuple[tuple[str, str, str, str], ...] = (
    ("SNA", "N", "S", "A"),
    ("SNB", "N", "S", "B"),
    ("Ar-Go-Me", "Go", "Ar", "Me"),
    ("N-S-Ar", "S", "N", "Ar"),
)
TABLE_MEASUREMENTS: tuple[str, ...] = (*ISBI2015_CLASSIFICATION, "FH-MP", "SN-GoGn", "Y-axis", "ANS-Me", "S-Go/N-Me")


def _fmt(value: float, unit: str) -> str:
    if value is None or math.isnan(value):
        return "–"
    return f"{value:.2f}" if unit == "ratio" else f"{value:.1f}"


def render_analysis_overlay(
    image: Any,
    landmarks: Any,
    measurements: Mapping[str, float],
    classes: Mapping[str, str] | None = None,
    landmark_set: str | LandmarkSet = "isbi2015",
    table: Sequence[str] = TABLE_MEASUREMENTS,
    title: str | None = None,
    width: float = 12.0,
    dpi: int = 100,
):
    """Draw the cephalometric tracing of one radiograph.

    Left: the radiograph with the landmarks, the S-N, Frankfort (Po-Or), palatal (PNS-ANS), mandibular (Go-Me),
    A-B and facial (N-Pog) lines, and arcs for the angles of :data:`TRACING_ANGLES` with their values. Right: a
    table of the ``table`` measurements' value, norm (mean ± SD, or the normal class interval) and class.
    Lines and arcs whose landmarks are missing (NaN, or not in the set) are left out.

    Args:
        image: ``(C, x, y)`` source image as MONAI's ``LoadImage`` gives it (numpy or torch).
        landmarks: ``(N, 2)`` source pixels (x, y) of ``landmark_set``.
        measurements: ``{name: value}`` as :func:`~monai_ceph.analysis.measure` returns them.
        classes: ``{name: class}`` as :func:`~monai_ceph.analysis.classify` returns them, or None.
        landmark_set: names the landmarks.
        table: the measurements listed in the table (those absent from ``measurements`` are skipped).
        title: drawn above the image (e.g. the image id).
        width: figure width in inches; the height follows the image's aspect.
        dpi: resolution of the saved figure.

    Returns:
        a ``matplotlib.figure.Figure`` with an Agg canvas: ``fig.savefig("tracing.png")``.
    """
    lset = get_landmark_set(landmark_set)
    points = np.asarray(convert_to_numpy(landmarks, wrap_sequence=True), dtype=np.float64)
    if points.shape != (len(lset), 2):
        raise ValueError(f"landmarks must be ({len(lset)}, 2) for the {lset.name} set, got {points.shape}.")
    rgb = _to_display(np.asarray(convert_to_numpy(image)))
    height_px, width_px = rgb.shape[:2]

    def point(abbreviation: str) -> np.ndarray | None:
        if abbreviation not in lset.abbreviations:
            return None
        p = points[lset.index(abbreviation)]
        return p if np.all(np.isfinite(p)) else None

    fig = Figure(figsize=(width, width * 0.62 * height_px / width_px + 0.5), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.0, 0.0, 0.62, 0.95 if title else 1.0))
    ax.imshow(rgb, interpolation="bilinear")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=10)
    size = max(height_px, width_px)

    for label, a, b, color, style in TRACING_LINES:
        pa, pb = point(a), point(b)
        if pa is None or pb is None or np.allclose(pa, pb):
            continue
        d = pb - pa
        ends = np.stack([pa - 0.15 * d, pb + 0.15 * d])
        ax.plot(ends[:, 0], ends[:, 1], style, color=color, linewidth=1.2, label=label)

    for name, vertex, a, b in TRACING_ANGLES:
        pv, pa, pb = point(vertex), point(a), point(b)
        value = measurements.get(name, math.nan)
        if pv is None or pa is None or pb is None or math.isnan(value):
            continue
        t1, t2 = (math.degrees(math.atan2(*(p - pv)[::-1])) for p in (pa, pb))
        t1, t2 = sorted((t1, t2))
        if t2 - t1 > 180:  # the arc of the angle itself, not its reflex
            t1, t2 = t2, t1 + 360
        radius = 0.04 * size * (1.6 if name == "SNB" else 1.0)
        arc = np.radians(np.linspace(t1, t2, 32))
        ax.plot(pv[0] + radius * np.cos(arc), pv[1] + radius * np.sin(arc), color="yellow", linewidth=1.0)
        mid = np.radians((t1 + t2) / 2)
        ax.text(pv[0] + 1.3 * radius * np.cos(mid), pv[1] + 1.3 * radius * np.sin(mid), f"{name} {value:.1f}°",
                color="yellow", fontsize=7, ha="center", va="center")

    present = points[np.all(np.isfinite(points), axis=1)]
    ax.scatter(present[:, 0], present[:, 1], s=10, c="red", marker="o", linewidths=0)
    ax.set_xlim(-0.5, width_px - 0.5)
    ax.set_ylim(height_px - 0.5, -0.5)
    ax.legend(loc="lower left", fontsize=7, framealpha=0.6)

    rows = []
    for name in table:
        if name not in measurements:
            continue
        m = get_measurement(name)
        unit = "°" if m.unit == "deg" else ("" if m.unit == "ratio" else m.unit)
        value = float(measurements[name])
        rows.append([name, f"{_fmt(value, m.unit)} {unit}".strip(), m.norm_text(), (classes or {}).get(name, "")])
    tab_ax = fig.add_axes((0.63, 0.02, 0.36, 0.96))
    tab_ax.set_axis_off()
    if rows:
        t = tab_ax.table(cellText=rows, colLabels=["measure", "value", "norm", "class"], loc="upper center",
                         colWidths=[0.22, 0.2, 0.26, 0.38])
        t.auto_set_font_size(False)
        t.set_fontsize(7)
        t.scale(1.0, 1.3)
    return fig
