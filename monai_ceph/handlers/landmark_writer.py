from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from monai.utils import convert_to_numpy

from monai_ceph.data import LandmarkSet, get_landmark_set
from monai_ceph.data.json_io import dump_json
from monai_ceph.metrics.radial_error import compute_radial_error

from .provenance import result_warnings
from .utils import (
    ItemHandler,
    check_formats,
    item_covariance,
    item_id,
    item_points,
    item_source_filename,
    landmark_labels,
    write_csv,
)

__all__ = ["LandmarkWriter", "landmark_table"]

_COLUMNS = ("index", "abbreviation", "name", "x", "y", "x_mm", "y_mm", "confidence")
_GT_COLUMNS = ("gt_x", "gt_y", "gt_x_mm", "gt_y_mm", "error_mm")
_UNCERTAINTY_COLUMNS = ("sigma_mm", "cov_xx_mm", "cov_xy_mm", "cov_yy_mm", "cov_xx_px", "cov_xy_px", "cov_yy_px")
_SHAPE_COLUMNS = ("flagged", "shape_distance", "unrefined_x", "unrefined_y")


def _value(v: float) -> float | None:
    """JSON/CSV-friendly number: None for NaN (a missing landmark), else a float."""
    return None if math.isnan(v) else float(v)


def landmark_table(
    pred: np.ndarray,
    spacing: np.ndarray,
    confidence: np.ndarray | None = None,
    gt: np.ndarray | None = None,
    landmark_set: str | LandmarkSet | None = "isbi2015",
    cov_mm: np.ndarray | None = None,
    shape: Mapping[str, np.ndarray] | None = None,
) -> list[dict[str, Any]]:
    """One row per landmark: names, source-pixel ``x, y``, mm ``x_mm, y_mm`` (pixel * spacing), confidence, and,
    when ``gt`` is given, the ground truth in pixels and mm and the radial ``error_mm`` (None where missing); with
    ``cov_mm`` the uncertainty ``sigma_mm`` (``sqrt(trace / 2)``) and the covariance in mm^2 and source pixels^2
    (``cov_xx_mm, cov_xy_mm, cov_yy_mm, cov_xx_px, ...``); with ``shape`` (``"flagged"`` ``(N,)``,
    ``"distance"`` ``(N,)``, ``"unrefined"`` ``(N, 2)``) the columns ``flagged, shape_distance, unrefined_x,
    unrefined_y``.

    Args:
        pred: ``(N, 2)`` predicted landmarks in source pixels (x, y).
        spacing: ``(2,)`` mm per pixel (x, y).
        confidence: ``(N,)`` or None.
        gt: ``(N, 2)`` ground truth in source pixels, NaN where not annotated, or None.
        landmark_set: names the rows; None gives ``L1..LN``.
        cov_mm: ``(N, 2, 2)`` predicted covariances in source mm^2, or None.
        shape: the shape refinement's outputs, or None.
    """
    abbreviations, names = landmark_labels(landmark_set, len(pred))
    pred_mm = pred * spacing
    errors = None if gt is None else compute_radial_error(pred[None], gt[None], spacing)[0]
    rows = []
    for i, (abbr, name) in enumerate(zip(abbreviations, names)):
        row: dict[str, Any] = {"index": i, "abbreviation": abbr, "name": name}
        row.update(zip(("x", "y", "x_mm", "y_mm"), map(_value, (*pred[i], *pred_mm[i]))))
        row["confidence"] = None if confidence is None else _value(confidence[i])
        if gt is not None and errors is not None:
            row.update(zip(_GT_COLUMNS, map(_value, (*gt[i], *(gt[i] * spacing), errors[i]))))
            if math.isinf(errors[i]):
                row["error_mm"] = None  # missed prediction: no finite error (a failure for the SDR)
        if cov_mm is not None:
            c, px = cov_mm[i], cov_mm[i] / np.outer(spacing, spacing)
            sigma = math.sqrt(max((c[0, 0] + c[1, 1]) / 2, 0.0)) if np.isfinite(c).all() else math.nan
            values = (sigma, c[0, 0], c[0, 1], c[1, 1], px[0, 0], px[0, 1], px[1, 1])
            row.update(zip(_UNCERTAINTY_COLUMNS, map(_value, values)))
        if shape is not None:
            row["flagged"] = bool(shape["flagged"][i])
            row.update(zip(_SHAPE_COLUMNS[1:], map(_value, (shape["distance"][i], *shape["unrefined"][i]))))
        rows.append(row)
    return rows


class LandmarkWriter(ItemHandler):
    """
    Event handler triggered on completing every iteration: writes the predicted landmarks of each image of
    ``engine.state.output`` to ``<output_dir>/<id>.json`` and ``<output_dir>/<id>.csv``, each naming the source
    file (JSON ``source``, CSV column ``source``).

    Reads, from each decollated output item, ``pred_key`` (``(N, 2)`` source pixels), ``spacing_key`` (``(2,)``
    mm/px), optionally ``confidence_key`` (``(N,)``) and ``label_key`` (``(N, 2)`` ground truth in source pixels;
    when present the files also carry it and the error in mm), and ``id_key`` or, when that is absent, the stem of
    the ``image_key`` meta ``filename_or_obj``. Missing values are written as JSON ``null`` / an empty CSV cell.
    In multi-process runs every rank writes the files of its own images.

    The JSON holds ``{"id", "source", "landmark_set", "spacing", "landmarks": [row, ...], "mre_mm"}``
    (``mre_mm`` only with ground truth); the CSV has one row per landmark with the columns
    ``index, abbreviation, name, x, y, x_mm, y_mm, confidence[, gt_x, gt_y, gt_x_mm, gt_y_mm, error_mm]``.

    Items with a covariance ``cov_key`` (source mm^2, :class:`~monai_ceph.shape.LandmarkUncertaintyd`) add the
    columns ``sigma_mm, cov_xx_mm, cov_xy_mm, cov_yy_mm, cov_xx_px, cov_xy_px, cov_yy_px`` (see
    :func:`landmark_table`) and a JSON ``"uncertainty": {"calibrated": ...}`` (``calibrated_key``; ``false``:
    the covariances are the heatmaps' own, not calibrated on validation errors). Items refined by
    :class:`~monai_ceph.shape.ShapeRefined` (``flagged_key`` present) add ``flagged, shape_distance,
    unrefined_x, unrefined_y`` and a JSON ``"shape": {"plausibility", "flagged": [abbreviation, ...]}``.

    Args:
        output_dir: folder for the files; created when missing.
        landmark_set: the set naming the landmarks (``monai_ceph.data.get_landmark_set``); None gives ``L1..LN``.
        formats: any of ``"json"``, ``"csv"``.
        pred_key, confidence_key, spacing_key, label_key, id_key, image_key: keys of the output items;
            ``confidence_key`` / ``label_key`` may be absent from the items (or None to ignore them).
        cov_key, calibrated_key: the uncertainty keys (absent or None: not written).
        flagged_key, distance_key, plausibility_key, unrefined_key: the shape refinement's keys (absent or None:
            not written).
        model: which model made the points (:func:`~monai_ceph.handlers.provenance.model_provenance`): when given,
            the JSON holds it as ``"model"`` and the result's ``"warnings"`` (a phantom-demo model, an implausible
            shape).
        pipeline: the steps that made the points (the bundle's ``pipeline``: ``"global stage"``, ``"local stage"``,
            ``"shape refinement"``, ``"calibrated uncertainty"``), written as the JSON's ``"pipeline"``.
        output_transform: maps ``engine.state.output`` to the list of per-image dicts (or a batch dict).
        name: identifier of logging.logger to use, defaulting to ``engine.logger``.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike = "./",
        landmark_set: str | LandmarkSet | None = "isbi2015",
        formats: Sequence[str] | str = ("json", "csv"),
        pred_key: str = "pred_landmarks",
        confidence_key: str | None = "pred_confidence",
        spacing_key: str = "spacing",
        label_key: str | None = "landmarks",
        id_key: str | None = "id",
        image_key: str = "image",
        cov_key: str | None = "cov_mm",
        calibrated_key: str | None = "uncertainty_calibrated",
        flagged_key: str | None = "shape_flagged",
        distance_key: str = "shape_distance",
        plausibility_key: str = "shape_plausibility",
        unrefined_key: str = "unrefined_pred_landmarks",
        model: Mapping | None = None,
        pipeline: Sequence[str] | None = None,
        output_transform: Callable = lambda x: x,
        name: str | None = None,
    ) -> None:
        self.output_dir = output_dir
        self.landmark_set = None if landmark_set is None else get_landmark_set(landmark_set)
        self.formats = check_formats(formats, "landmark")
        self.pred_key, self.confidence_key, self.spacing_key = pred_key, confidence_key, spacing_key
        self.label_key, self.id_key, self.image_key = label_key, id_key, image_key
        self.cov_key, self.calibrated_key = cov_key, calibrated_key
        self.flagged_key, self.distance_key = flagged_key, distance_key
        self.plausibility_key, self.unrefined_key = plausibility_key, unrefined_key
        self.model = None if model is None else dict(model)
        self.pipeline = None if pipeline is None else list(pipeline)
        super().__init__(output_transform, name)

    def handle(self, item: Mapping):
        return self.write(item)

    def write(self, item: Mapping) -> list[str]:
        """Write the files of one decollated output item; returns their paths."""
        image_id = item_id(item, self.id_key, self.image_key)
        pred = item_points(item, self.pred_key)
        spacing = item_points(item, self.spacing_key, ndim=1)
        has = lambda key: key is not None and item.get(key) is not None  # noqa: E731
        confidence = item_points(item, self.confidence_key, ndim=1) if has(self.confidence_key) else None
        gt = item_points(item, self.label_key) if has(self.label_key) else None  # type: ignore[arg-type]
        cov = item_covariance(item, self.cov_key, len(pred)) if has(self.cov_key) else None
        shape = None
        if has(self.flagged_key):
            shape = {"flagged": np.asarray(convert_to_numpy(item[self.flagged_key]), dtype=bool).reshape(-1),
                     "distance": item_points(item, self.distance_key, ndim=1),
                     "unrefined": item_points(item, self.unrefined_key)}
        rows = landmark_table(pred, spacing, confidence, gt, self.landmark_set, cov, shape)

        base = os.path.join(self.output_dir, image_id)
        source = item_source_filename(item, self.image_key)
        paths = []
        if "json" in self.formats:
            record: dict[str, Any] = {
                "id": image_id,
                "source": source,
                "landmark_set": None if self.landmark_set is None else self.landmark_set.name,
                "spacing": [float(s) for s in spacing],
                "landmarks": rows,
            }
            if gt is not None:
                finite = [r["error_mm"] for r in rows if r["error_mm"] is not None]
                record["mre_mm"] = float(np.mean(finite)) if finite else None
            if cov is not None:
                calibrated = item.get(self.calibrated_key) if self.calibrated_key is not None else None
                record["uncertainty"] = {
                    "calibrated": None if calibrated is None else bool(calibrated),
                    "sigma_mm": "per-axis SD sqrt(trace(cov) / 2) in source mm",
                    "covariance": "source (x, y) axes; cov_*_mm in mm^2, cov_*_px in source pixels^2",
                }
            if shape is not None:
                plausibility = float(np.asarray(convert_to_numpy(item[self.plausibility_key])).reshape(()))
                record["shape"] = {
                    "plausibility": _value(plausibility),
                    "flagged": [r["abbreviation"] for r in rows if r["flagged"]],
                }
            if self.pipeline is not None:
                record["pipeline"] = self.pipeline
            if item.get("orientation") is not None:  # how the radiograph faced (OrientationInferer)
                record["orientation"] = str(item["orientation"])
            if self.model is not None:
                record["model"] = self.model
                record["warnings"] = result_warnings(
                    self.model, item.get(self.plausibility_key), item.get(self.unrefined_key))
            dump_json(record, f"{base}.json")
            paths.append(f"{base}.json")
        if "csv" in self.formats:
            columns = _COLUMNS + (_GT_COLUMNS if gt is not None else ())
            columns += (_UNCERTAINTY_COLUMNS if cov is not None else ()) + (_SHAPE_COLUMNS if shape is not None else ())
            table = ({**{k: ("" if r[k] is None else r[k]) for k in columns}, "source": source or ""} for r in rows)
            write_csv(f"{base}.csv", (*columns, "source"), table)
            paths.append(f"{base}.csv")
        self.logger.debug(f"landmarks of {image_id} written to {paths}.")
        return paths
