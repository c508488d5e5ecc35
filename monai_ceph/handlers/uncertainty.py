"""Predicted uncertainty against the actual errors: collected per image, gathered from every rank, summarised
(Spearman rho of ``sigma_mm`` and radial error, share inside the predicted ellipse) or turned into a calibration."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from monai.utils import IgniteInfo, evenly_divisible_all_gather, min_version, optional_import

from monai_ceph.data import LandmarkSet, get_landmark_set
from monai_ceph.shape import UncertaintyCalibration, covariance_sigma, ellipse_coverage, spearman_rho

from .utils import ItemHandler, item_covariance, item_points, landmark_labels

idist, _ = optional_import("ignite", IgniteInfo.OPT_IMPORT_VERSION, min_version, "distributed")
Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")

__all__ = ["UncertaintyRecords", "UncertaintyCalibrationSaver", "uncertainty_summary"]


def _float(v: float) -> float | None:
    return None if not math.isfinite(v) else float(v)


def uncertainty_summary(errors, cov, coverage: float = 0.95, landmark_set: str | LandmarkSet | None = None) -> dict:
    """How well predicted covariances ``(N, K, 2, 2)`` (mm^2) describe the errors ``(N, K, 2)`` (prediction -
    truth, mm; NaN where not annotated or missed): ``spearman_rho`` of ``sigma_mm`` against the radial error over
    all points, ``ellipse_coverage_percent`` (errors inside their ``coverage`` ellipse), ``n_points``, and per
    landmark its ``sigma_mm`` (mean), ``spearman_rho`` over the images and ``ellipse_coverage_percent``."""
    errors, cov = np.asarray(errors, dtype=np.float64), np.asarray(cov, dtype=np.float64)
    sigma = np.asarray(covariance_sigma(cov))
    radial = np.linalg.norm(errors, axis=-1)
    ok = np.isfinite(radial) & np.isfinite(sigma)
    abbreviations, _ = landmark_labels(landmark_set, errors.shape[1])
    per_landmark = []
    for k, abbreviation in enumerate(abbreviations):
        m = ok[:, k]
        per_landmark.append({
            "index": k,
            "abbreviation": abbreviation,
            "sigma_mm": _float(float(sigma[m, k].mean())) if m.any() else None,
            "spearman_rho": _float(spearman_rho(sigma[:, k], radial[:, k])),
            "ellipse_coverage_percent": _float(100 * ellipse_coverage(errors[:, k], cov[:, k], coverage)),
        })
    return {
        "coverage": coverage,
        "n_points": int(ok.sum()),
        "spearman_rho": _float(spearman_rho(sigma, radial)),
        "ellipse_coverage_percent": _float(100 * ellipse_coverage(errors, cov, coverage)),
        "per_landmark": per_landmark,
    }


class UncertaintyRecords:
    """Per-image errors ``(K, 2)`` (mm), predicted covariances ``(K, 2, 2)`` (mm^2) and peak confidences ``(K,)``
    of decollated output items.

    An item contributes when it has ``cov_key`` and ground truth ``label_key``; the error is ``(pred - truth) *
    spacing`` in source mm (NaN where either is missing), the confidence NaN when the item has no
    ``confidence_key``. :meth:`gathered` stacks those of every rank.

    Args:
        pred_key, label_key, spacing_key, cov_key, calibrated_key, confidence_key: keys of the output items (source
            pixels, source spacing, covariance in source mm, whether it is calibrated, the points' confidence).
    """

    def __init__(
        self,
        pred_key: str = "pred_landmarks",
        label_key: str = "landmarks",
        spacing_key: str = "spacing",
        cov_key: str = "cov_mm",
        calibrated_key: str | None = "uncertainty_calibrated",
        confidence_key: str | None = "pred_confidence",
    ) -> None:
        self.pred_key, self.label_key, self.spacing_key = pred_key, label_key, spacing_key
        self.cov_key, self.calibrated_key, self.confidence_key = cov_key, calibrated_key, confidence_key
        self.reset()

    def reset(self) -> None:
        self.errors: list[np.ndarray] = []
        self.cov: list[np.ndarray] = []
        self.confidence: list[np.ndarray] = []
        self.calibrated: set[bool] = set()

    def add(self, item: Mapping) -> bool:
        """Record one item; returns whether it had a covariance and ground truth."""
        if item.get(self.cov_key) is None or item.get(self.label_key) is None:
            return False
        pred, gt = item_points(item, self.pred_key), item_points(item, self.label_key)
        spacing = item_points(item, self.spacing_key, ndim=1)
        cov = item_covariance(item, self.cov_key, len(pred))
        self.errors.append((pred - gt) * spacing)
        self.cov.append(cov)
        has_confidence = self.confidence_key is not None and item.get(self.confidence_key) is not None
        self.confidence.append(item_points(item, self.confidence_key, ndim=1) if has_confidence
                               else np.full(len(pred), np.nan))
        if self.calibrated_key is not None and item.get(self.calibrated_key) is not None:
            self.calibrated.add(bool(item[self.calibrated_key]))
        return True

    def gathered(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """``(errors (N, K, 2), cov (N, K, 2, 2), confidence (N, K))`` of every rank, or None when no rank
        recorded any."""
        rows = np.zeros((0, 0))
        if self.errors:
            errors, cov, confidence = np.stack(self.errors), np.stack(self.cov), np.stack(self.confidence)
            rows = np.concatenate([errors, cov.reshape(*cov.shape[:2], 4), confidence[..., None]], -1)
            rows = rows.reshape(len(errors), -1)
        if idist.get_world_size() > 1:
            width = max(idist.all_gather(rows.shape[1]))
            rows = rows if rows.shape[1] == width else np.zeros((0, width))
            rows = evenly_divisible_all_gather(torch.as_tensor(rows), concat=True).cpu().numpy()
        if len(rows) == 0:
            return None
        rows = rows.reshape(len(rows), -1, 7)
        return rows[..., :2], rows[..., 2:6].reshape(*rows.shape[:2], 2, 2), rows[..., 6]


class UncertaintyCalibrationSaver(ItemHandler):
    """
    Fit an :class:`~monai_ceph.shape.UncertaintyCalibration` (one scale per landmark, and the power of the points'
    peak confidence when the items carry ``confidence_key``) on the predicted covariances and actual errors of an
    evaluation run, and save it when the engine COMPLETES (``save_rank`` only), e.g. as
    ``models/uncertainty_calibration.json`` beside the model. The post-processing must give uncalibrated covariances
    (``LandmarkUncertaintyd`` without a calibration); items with a calibrated one are refused.

    Args:
        filename: the JSON to write.
        landmark_set: recorded in the file (the model's landmark set).
        method, coverage, shrinkage: as :meth:`UncertaintyCalibration.fit` (``"quantile"``: a share ``coverage`` of
            the errors inside their ``coverage`` ellipse; ``shrinkage``: the pooled scale's weight in points).
        pred_key, label_key, spacing_key, cov_key, calibrated_key: as :class:`UncertaintyRecords`.
        confidence_key: the points' peak confidence (``None``: a calibration without a confidence term).
        save_rank: the rank that writes the file.
        output_transform: maps ``engine.state.output`` to the list of per-image dicts (or a batch dict).
        name: identifier of logging.logger to use, defaulting to ``engine.logger``.
    """

    def __init__(
        self,
        filename: str | os.PathLike,
        landmark_set: str | LandmarkSet | None = "isbi2015",
        method: str = "quantile",
        coverage: float = 0.95,
        shrinkage: float = 40.0,
        pred_key: str = "pred_landmarks",
        label_key: str = "landmarks",
        spacing_key: str = "spacing",
        cov_key: str = "cov_mm",
        calibrated_key: str | None = "uncertainty_calibrated",
        confidence_key: str | None = "pred_confidence",
        save_rank: int = 0,
        output_transform: Callable = lambda x: x,
        name: str | None = None,
    ) -> None:
        super().__init__(output_transform, name)
        self.filename = filename
        self.landmark_set = None if landmark_set is None else get_landmark_set(landmark_set).name
        self.method, self.coverage, self.shrinkage, self.save_rank = method, coverage, float(shrinkage), save_rank
        self.records = UncertaintyRecords(pred_key, label_key, spacing_key, cov_key, calibrated_key, confidence_key)
        self.calibration: UncertaintyCalibration | None = None

    def attach(self, engine) -> None:
        super().attach(engine)
        if not engine.has_event_handler(self.records.reset, Events.STARTED):
            engine.add_event_handler(Events.STARTED, self.records.reset)
        if not engine.has_event_handler(self.completed, Events.COMPLETED):
            engine.add_event_handler(Events.COMPLETED, self.completed)

    def handle(self, item: Mapping) -> Any:
        if not self.records.add(item):
            raise KeyError(f"{type(self).__name__}: an output item lacks {self.records.cov_key!r} or the ground truth "
                           f"{self.records.label_key!r}; calibrate on an annotated section with LandmarkUncertaintyd "
                           "in the post-processing.")
        if True in self.records.calibrated:
            raise ValueError(f"{type(self).__name__}: the covariances are calibrated already; fit a calibration on "
                             "uncalibrated ones (LandmarkUncertaintyd with calibration=None).")

    def completed(self, engine) -> None:
        gathered = self.records.gathered()
        if gathered is None:
            raise RuntimeError(f"{type(self).__name__}: no item with a covariance and ground truth to fit on.")
        errors, cov, confidence = gathered
        confidence = confidence if np.isfinite(confidence).any() else None
        self.calibration = UncertaintyCalibration.fit(errors, cov, self.method, self.coverage, self.landmark_set,
                                                      confidence, self.shrinkage)
        if idist.get_rank() == self.save_rank:
            path = self.calibration.save(self.filename)
            summary = uncertainty_summary(errors, self.calibration(cov, confidence), self.coverage)
            self.logger.info(f"uncertainty calibration on {len(errors)} images saved to {path}: {self.calibration}; "
                             f"{summary['ellipse_coverage_percent']:.1f} % of the errors inside the "
                             f"{100 * self.coverage:g} % ellipse.")
