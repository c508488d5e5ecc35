"""Measurements and classes of one image as a JSON-ready record and as one CSV row."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

from monai_ceph.data.json_io import dump_json

from .definitions import get_measurement

__all__ = ["measurements_record", "measurements_to_json", "measurements_to_csv_row"]


def _value(v: float) -> float | None:
    v = float(v)
    return None if math.isnan(v) else v


def measurements_record(
    measurements: Mapping[str, float],
    classes: Mapping[str, str] | None = None,
    reasons: Mapping[str, str] | None = None,
) -> dict[str, dict[str, Any]]:
    """``{name: {"value", "unit", "norm", "class", ["reason"]}}``: NaN as None, ``norm`` as ``[mean, sd]`` (None
    without one), ``class`` None where the measurement has none, ``reason`` where the value is NaN and one is known."""
    record = {}
    for name, value in measurements.items():
        m = get_measurement(name)
        entry = {
            "value": _value(value),
            "unit": m.unit,
            "norm": None if m.norm is None else list(m.norm),
            "class": None if classes is None else classes.get(name),
        }
        if reasons and name in reasons:
            entry["reason"] = reasons[name]
        record[name] = entry
    return record


def measurements_to_json(
    measurements: Mapping[str, float],
    classes: Mapping[str, str] | None = None,
    path: str | os.PathLike | None = None,
    reasons: Mapping[str, str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """``{**extra, "measurements": measurements_record(...)}``, written to ``path`` as JSON when given.

    ``extra`` carries the image's context (``id``, ``landmark_set``, ...), e.g. to sit beside the landmark JSON
    of :class:`monai_ceph.handlers.LandmarkWriter`.
    """
    record = {**extra, "measurements": measurements_record(measurements, classes, reasons)}
    if path is not None:
        dump_json(record, path)
    return record


def measurements_to_csv_row(
    measurements: Mapping[str, float], classes: Mapping[str, str] | None = None, **extra: Any
) -> dict[str, Any]:
    """One flat row for ``csv.DictWriter``: the ``extra`` columns (e.g. ``id``), then ``<name>`` (the value, ``""``
    for NaN) and, for classified measurements, ``<name>_class`` -- one row per image, one column per measure."""
    row: dict[str, Any] = dict(extra)
    for name, value in measurements.items():
        v = _value(value)
        row[name] = "" if v is None else v
        if classes is not None and name in classes:
            row[f"{name}_class"] = classes[name]
    return row
