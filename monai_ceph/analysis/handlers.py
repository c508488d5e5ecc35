"""Ignite handlers that write each image's cephalometric measurements beside its landmarks, and its tracing."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Mapping

from monai_ceph.data import LandmarkSet, atomic_write_bytes, dump_json, get_landmark_set
from monai_ceph.handlers.overlay_saver import OverlaySaver
from monai_ceph.handlers.utils import ItemHandler, check_formats, item_id, item_points, item_source_filename, write_csv

from .overlay import render_analysis_overlay
from .writers import measurements_to_csv_row, measurements_to_json

__all__ = ["MeasurementWriter", "AnalysisOverlaySaver"]


class MeasurementWriter(ItemHandler):
    """
    Event handler triggered on completing every iteration: writes the measurements and classes that
    :py:class:`monai_ceph.analysis.CephalometricMeasurementsd` put in each output item to ``<output_dir>/<id>.json``
    (``{"id", "source", "landmark_set", "measurements": {name: {"value", "unit", "norm", "class"[, "reason"]}}}``,
    NaN as ``null``) and ``<output_dir>/<id>.csv`` (one row: ``id``, then ``<name>`` and ``<name>_class``).

    Args:
        output_dir: folder for the files; created when missing.
        landmark_set: the set the measurements were computed for (recorded in the JSON).
        formats: any of ``"json"``, ``"csv"``.
        measurements_key, classes_key, reasons_key, id_key, image_key: keys of the output items
            (``reasons_key`` may be absent or None).
        output_transform: maps ``engine.state.output`` to the list of per-image dicts (or a batch dict).
        name: identifier of logging.logger to use, defaulting to ``engine.logger``.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike = "./",
        landmark_set: str | LandmarkSet = "isbi2015",
        formats: tuple[str, ...] | str = ("json", "csv"),
        measurements_key: str = "measurements",
        classes_key: str = "classes",
        reasons_key: str | None = "measurement_reasons",
        id_key: str | None = "id",
        image_key: str = "image",
        output_transform: Callable = lambda x: x,
        name: str | None = None,
    ) -> None:
        self.output_dir = output_dir
        self.landmark_set = get_landmark_set(landmark_set)
        self.formats = check_formats(formats, "measurement")
        self.measurements_key, self.classes_key, self.reasons_key = measurements_key, classes_key, reasons_key
        self.id_key, self.image_key = id_key, image_key
        super().__init__(output_transform, name)

    def handle(self, item: Mapping) -> list[str]:
        if item.get(self.measurements_key) is None:
            raise KeyError(
                f"engine output item has no {self.measurements_key!r}: add CephalometricMeasurementsd to the "
                "post-processing before this handler."
            )
        image_id = item_id(item, self.id_key, self.image_key)
        values, classes = item[self.measurements_key], item.get(self.classes_key)
        reasons = item.get(self.reasons_key) if self.reasons_key else None
        base = os.path.join(self.output_dir, image_id)
        paths = []
        if "json" in self.formats:
            record = measurements_to_json(
                values, classes, reasons=reasons, id=image_id,
                source=item_source_filename(item, self.image_key), landmark_set=self.landmark_set.name,
            )
            paths.append(str(dump_json(record, f"{base}.json")))
        if "csv" in self.formats:
            row = measurements_to_csv_row(values, classes, id=image_id)
            paths.append(write_csv(f"{base}.csv", list(row), [row]))
        self.logger.debug(f"measurements of {image_id} written to {paths}.")
        return paths


class AnalysisOverlaySaver(OverlaySaver):
    """
    :py:class:`monai_ceph.handlers.OverlaySaver` that saves the cephalometric tracing instead
    (:py:func:`monai_ceph.analysis.render_analysis_overlay`: the S-N, Frankfort, palatal, mandibular, A-B and
    facial lines, the measured angles and a table of values, norms and classes) as ``<output_dir>/<id>.png``.
    Reads the source image the same way (the bundle's reader), the predicted landmarks from ``pred_key`` and
    the measurements and classes from ``measurements_key`` / ``classes_key``.

    Args:
        measurements_key, classes_key: keys written by :py:class:`monai_ceph.analysis.CephalometricMeasurementsd`.
        dpi: resolution of the saved figure.
        kwargs: the arguments of :py:class:`monai_ceph.handlers.OverlaySaver` (``scale`` sets the figure width
            relative to 12 inches).
    """

    def __init__(self, measurements_key: str = "measurements", classes_key: str = "classes", dpi: int = 100,
                 **kwargs) -> None:
        kwargs.setdefault("landmark_set", "isbi2015")
        super().__init__(**kwargs)
        self.measurements_key, self.classes_key, self.dpi = measurements_key, classes_key, dpi

    def save(self, item: Mapping) -> str:
        import matplotlib.pyplot as plt

        image_id = item_id(item, self.id_key, self.image_key)
        figure = render_analysis_overlay(
            self.source_image(item), item_points(item, self.pred_key), item.get(self.measurements_key) or {},
            item.get(self.classes_key), landmark_set=self.landmark_set, title=image_id, width=12.0 * self.scale,
            dpi=self.dpi,
        )
        buffer = io.BytesIO()
        try:
            figure.savefig(buffer, format="png", dpi=self.dpi)
        finally:
            plt.close(figure)
        path = str(atomic_write_bytes(os.path.join(self.output_dir, f"{image_id}.png"), buffer.getvalue()))
        self.logger.debug(f"cephalometric tracing saved to {path}.")
        return path
