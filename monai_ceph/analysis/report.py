"""Ignite handler writing the agreement of predicted and ground-truth cephalometric measurements."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from monai.handlers import from_engine
from monai.utils import IgniteInfo, min_version, optional_import

from monai_ceph.data import LandmarkSet, dump_json, get_landmark_set
from monai_ceph.handlers.output_lock import hold_output_folder
from monai_ceph.handlers.utils import engine_output, write_csv

from .agreement import agreement
from .definitions import determinable_measurements, get_measurement
from .measure import measure

idist, _ = optional_import("ignite", IgniteInfo.OPT_IMPORT_VERSION, min_version, "distributed")
Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")

__all__ = ["AnalysisReport"]

_CSV_COLUMNS = ("measurement", "unit", "n", "mae", "accuracy", "kappa")


class AnalysisReport:
    """
    Event handler writing, when the engine COMPLETES, the agreement of the cephalometric measurements of the
    predicted landmarks with those of the ground truth (:func:`monai_ceph.analysis.agreement`):

    - ``<output_dir>/<filename>_summary.json``: ``{"landmark_set", "n_images", "measurements": {name: {"unit",
      "n", "mae", "accuracy", "kappa", "confusion": {"labels", "matrix"}}}}``;
    - ``<output_dir>/<filename>_per_measure.csv``: ``measurement, unit, n, mae, accuracy, kappa``.

    Every iteration's ``engine.state.output`` (completed by the batch keys) gives ``(pred_landmarks, landmarks,
    spacing)`` per image in source pixels (the bundle's ``validate#postprocessing`` leaves them there); images
    without ground truth are skipped. Attach it like :class:`monai_ceph.handlers.EvaluationReport`; in
    multi-process runs every rank gathers and ``save_rank`` writes. The last summary is kept in ``self.summary``.

    Args:
        output_dir: folder for the report; created when missing.
        landmark_set: names the landmarks.
        names: the measurements to report; default: every measurement the set can determine.
        output_transform: extracts ``(pred_landmarks, landmarks, spacing)`` from the engine output.
        filename: prefix of the file names.
        save_rank: the rank that writes the files.
        name: identifier of logging.logger to use, defaulting to ``engine.logger``.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike = "./",
        landmark_set: str | LandmarkSet = "isbi2015",
        names: Sequence[str] | None = None,
        output_transform: Callable = from_engine(["pred_landmarks", "landmarks", "spacing"]),
        filename: str = "analysis",
        save_rank: int = 0,
        name: str | None = None,
    ) -> None:
        self.output_dir = output_dir
        self.landmark_set = get_landmark_set(landmark_set)
        if names is None:
            names = determinable_measurements(self.landmark_set)
        self.names = [get_measurement(n).name for n in names]
        self.output_transform = output_transform
        self.filename = filename
        self.save_rank = save_rank
        self.summary: dict[str, Any] | None = None
        self.logger = logging.getLogger(name)
        self._name = name
        self._rows: list[list[float]] = []

    def attach(self, engine: Engine) -> None:
        """
        Args:
            engine: Ignite Engine, it can be a trainer, validator or evaluator.
        """
        if self._name is None:
            self.logger = engine.logger
        hold_output_folder(engine, self.output_dir, rank=self.save_rank)
        if not engine.has_event_handler(self._started, Events.STARTED):
            engine.add_event_handler(Events.STARTED, self._started)
        if not engine.has_event_handler(self, Events.ITERATION_COMPLETED):
            engine.add_event_handler(Events.ITERATION_COMPLETED, self)
        if not engine.has_event_handler(self._completed, Events.COMPLETED):
            engine.add_event_handler(Events.COMPLETED, self._completed)

    def _started(self, _engine: Engine) -> None:
        self._rows = []
        self.summary = None

    def __call__(self, engine: Engine) -> None:
        """Measure the predicted and ground-truth landmarks of one iteration's images."""
        for pred, gt, spacing in zip(*self.output_transform(engine_output(engine))):
            if gt is None:
                continue
            p = measure(pred, spacing, self.landmark_set, self.names)
            g = measure(gt, spacing, self.landmark_set, self.names)
            self._rows.append([p[n] for n in self.names] + [g[n] for n in self.names])

    def _completed(self, _engine: Engine) -> None:
        summary = self.compute_summary()
        if idist.get_rank() == self.save_rank:
            self.write(summary)

    def compute_summary(self) -> dict[str, Any]:
        """Gather the measurements of every rank and compute the report content (see the class docstring)."""
        rows = torch.as_tensor(np.asarray(self._rows, dtype=np.float64).reshape(-1, 2 * len(self.names)))
        if idist.get_world_size() > 1:
            rows = idist.all_gather(rows)
        k = len(self.names)
        pred = [dict(zip(self.names, r[:k])) for r in rows.tolist()]
        gt = [dict(zip(self.names, r[k:])) for r in rows.tolist()]
        self.summary = {
            "landmark_set": self.landmark_set.name,
            "n_images": len(pred),
            "measurements": agreement(pred, gt, self.names),
        }
        return self.summary

    def write(self, summary: dict[str, Any]) -> list[str]:
        """Write the JSON and CSV files of ``summary``; returns their paths."""
        os.makedirs(self.output_dir, exist_ok=True)
        base = os.path.join(self.output_dir, self.filename)
        paths = [f"{base}_summary.json", f"{base}_per_measure.csv"]
        dump_json(summary, paths[0])
        rows = []
        for name, entry in summary["measurements"].items():
            row = [name, entry["unit"], entry["n"], entry["mae"], entry.get("accuracy"), entry.get("kappa")]
            rows.append(dict(zip(_CSV_COLUMNS, ["" if v is None else v for v in row])))
        write_csv(paths[1], _CSV_COLUMNS, rows)
        skeletal = [
            f"{n} {e['accuracy']:.1f}%"
            for n, e in summary["measurements"].items()
            if n in ("ANB", "SNB", "SNA") and e.get("accuracy") is not None
        ]
        self.logger.info(
            f"cephalometric agreement over {summary['n_images']} images "
            f"({', '.join(skeletal) or 'no skeletal classes'}); report in {self.output_dir}."
        )
        return paths
