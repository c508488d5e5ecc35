"""Dictionary transforms: ``sigma_mm`` and ``cov_mm`` of a post-processed item; its shape-constrained refinement."""

from __future__ import annotations

import math
import os
from collections.abc import Hashable, Mapping

import numpy as np
import torch

from monai.config import KeysCollection
from monai.transforms.transform import MapTransform

from monai_ceph.transforms.landmarks.codec import GaussianHeatmapCodec
from monai_ceph.transforms.spatial.array import model_to_source_affine, transform_spacing

from .array import CovarianceToSource, LandmarkUncertainty, ShapeRefine
from .model import CHI2_2_99, ShapeModel
from .uncertainty import UncertaintyCalibration

__all__ = [
    "CovarianceToSourced",
    "CovarianceToSourceD",
    "CovarianceToSourceDict",
    "LandmarkUncertaintyd",
    "LandmarkUncertaintyD",
    "LandmarkUncertaintyDict",
    "ShapeRefined",
    "ShapeRefineD",
    "ShapeRefineDict",
]


class _SourceUncertaintyd(MapTransform):
    """Writes ``sigma_key`` / ``cov_key`` (source mm) from one key through ``transform(value, matrix, spacing)``,
    with the item's model-to-source affine and source spacing: the shared body of the two transforms below."""

    def __init__(self, keys, transform, what, sigma_key, cov_key, calibrated_key, ref_key, spacing_key,
                 source_spacing, allow_missing_keys, confidence_key=None) -> None:  # fmt: skip
        super().__init__(keys, allow_missing_keys)
        self.confidence_key = confidence_key
        if len(self.keys) != 1:
            raise ValueError(f"one {what} key writes one {sigma_key!r}; got keys {self.keys}.")
        self.transform = transform
        self.sigma_key, self.cov_key, self.calibrated_key = sigma_key, cov_key, calibrated_key
        self.ref_key, self.spacing_key, self.source_spacing = ref_key, spacing_key, source_spacing

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        d = dict(data)
        for key in self.key_iterator(d):
            matrix, spacing = _model_to_source(self, d)
            extra = () if self.confidence_key is None else (self._confidence(d),)
            d[self.sigma_key], d[self.cov_key] = self.transform(d[key], matrix, spacing, *extra)
            if self.calibrated_key is not None:
                d[self.calibrated_key] = self.transform.calibration is not None
        return d

    def _confidence(self, d: Mapping):
        """The points' confidence, for a calibration that scales by it (None otherwise)."""
        calibration = self.transform.calibration
        if calibration is None or not calibration.uses_confidence:
            return d.get(self.confidence_key)
        if self.confidence_key not in d:
            raise KeyError(f"{type(self).__name__}: the calibration scales by the points' confidence, but key "
                           f"{self.confidence_key!r} is not in the data (keys: {list(d)}).")
        return d[self.confidence_key]


class LandmarkUncertaintyd(_SourceUncertaintyd):
    """Dictionary-based :class:`LandmarkUncertainty`: per-landmark uncertainty on the source image.

    Place it in the post-processing right after ``HeatmapToLandmarksd`` and before ``LandmarksToSourced`` (while
    the item's spacing is still that of the model grid)::

        HeatmapToLandmarksd(keys="pred", codec=codec, logits=True),
        LandmarkUncertaintyd(keys="pred", codec=codec, calibration="models/uncertainty_calibration.json"),
        LandmarksToSourced(keys=("pred_landmarks",), ref_key="image", spacing_key="spacing"),

    Args:
        keys: heatmap (logits) keys, default ``"pred"``; ``(K, h0, h1)`` per decollated item.
        sigma_key: output ``(K,)`` SD per axis in mm, default ``"sigma_mm"``.
        cov_key: output ``(K, 2, 2)`` covariance in source mm^2, default ``"cov_mm"``.
        calibrated_key: output ``True`` / ``False``: whether the covariance is calibrated (None: not written).
        codec, logits, radius, calibration, background, landmark_set: as :class:`LandmarkUncertainty`.
        ref_key: the image whose ``affine`` and ``original_affine`` give the model-to-source affine.
        spacing_key: the item's spacing.
        source_spacing: the spacing key already holds the source spacing (placed after ``LandmarksToSourced``);
            by default it holds the model grid's and is mapped back the way ``LandmarksToSourced`` maps it.
        allow_missing_keys: don't raise if a key is missing.
    """

    backend = LandmarkUncertainty.backend

    def __init__(
        self,
        keys: KeysCollection = "pred",
        sigma_key: str = "sigma_mm",
        cov_key: str = "cov_mm",
        calibrated_key: str | None = "uncertainty_calibrated",
        codec: GaussianHeatmapCodec | None = None,
        logits: bool = True,
        radius: int | None = None,
        calibration: UncertaintyCalibration | str | os.PathLike | None = None,
        background: bool = True,
        landmark_set: str | None = None,
        ref_key: str = "image",
        spacing_key: str = "spacing",
        source_spacing: bool = False,
        allow_missing_keys: bool = False,
    ) -> None:
        self.uncertainty = LandmarkUncertainty(codec, logits, radius, calibration, background, landmark_set)
        super().__init__(keys, self.uncertainty, "heatmap", sigma_key, cov_key, calibrated_key, ref_key, spacing_key,
                         source_spacing, allow_missing_keys)


LandmarkUncertaintyD = LandmarkUncertaintyDict = LandmarkUncertaintyd


def _model_to_source(transform, d: Mapping) -> tuple[torch.Tensor, torch.Tensor]:
    """The item's model-to-source affine and source spacing, from ``transform.ref_key`` / ``spacing_key``."""
    for needed in (transform.ref_key, transform.spacing_key):
        if needed not in d:
            raise KeyError(f"{type(transform).__name__}: key {needed!r} is not in the data (keys: {list(d)}).")
    matrix = model_to_source_affine(d[transform.ref_key])
    spacing = torch.as_tensor(np.asarray(d[transform.spacing_key], dtype=np.float64))
    if not transform.source_spacing:
        spacing = transform_spacing(spacing, torch.linalg.inv(matrix))
    return matrix, spacing


class CovarianceToSourced(_SourceUncertaintyd):
    """Dictionary-based :class:`CovarianceToSource`: ``sigma_mm`` and ``cov_mm`` on the source image from a
    covariance the inferer gives in model-input pixels, e.g. the two-stage inferer's ``pred_covariance``.

    Place it where :class:`LandmarkUncertaintyd` would go, before ``LandmarksToSourced``::

        FlattenSubKeysd(keys="pred"),
        CovarianceToSourced(keys="pred_covariance", calibration="models/local/uncertainty_calibration.json"),
        LandmarksToSourced(keys=("pred_landmarks",), ref_key="image", spacing_key="spacing"),

    Args:
        keys: the ``(K, 2, 2)`` covariance key (model-input pixels), default ``"pred_covariance"``.
        sigma_key, cov_key, calibrated_key, ref_key, spacing_key, source_spacing, allow_missing_keys: as
            :class:`LandmarkUncertaintyd`.
        calibration, landmark_set: as :class:`CovarianceToSource`.
        confidence_key: the points' ``(K,)`` peak confidence, read when the calibration scales by it (default
            ``"pred_confidence"``, where the two-stage inferer puts it).
    """

    backend = CovarianceToSource.backend

    def __init__(
        self,
        keys: KeysCollection = "pred_covariance",
        sigma_key: str = "sigma_mm",
        cov_key: str = "cov_mm",
        calibrated_key: str | None = "uncertainty_calibrated",
        calibration: UncertaintyCalibration | str | os.PathLike | None = None,
        landmark_set: str | None = None,
        ref_key: str = "image",
        spacing_key: str = "spacing",
        source_spacing: bool = False,
        allow_missing_keys: bool = False,
        confidence_key: str = "pred_confidence",
    ) -> None:
        self.to_source = CovarianceToSource(calibration, landmark_set)
        super().__init__(keys, self.to_source, "covariance", sigma_key, cov_key, calibrated_key, ref_key, spacing_key,
                         source_spacing, allow_missing_keys, confidence_key)


CovarianceToSourceD = CovarianceToSourceDict = CovarianceToSourced


class ShapeRefined(MapTransform):
    """Dictionary-based :class:`ShapeRefine`: shape-constrained refinement of the predicted landmarks.

    Place it after ``LandmarksToSourced`` (points in source pixels, the item's spacing the source spacing) and
    before the measurements, so that they are computed from the refined points::

        LandmarkUncertaintyd(keys="pred", codec=codec),
        LandmarksToSourced(keys=("pred_landmarks",), ref_key="image", spacing_key="spacing"),
        ShapeRefined(keys="pred_landmarks", shape_model="models/shape_model.json", landmark_set="isbi2015"),

    The refined points replace ``keys`` and their posterior uncertainty ``cov_key`` / ``sigma_key``; what they
    replace is kept under ``unrefined_prefix`` (``unrefined_pred_landmarks``, ``unrefined_cov_mm``,
    ``unrefined_sigma_mm``), so the gain stays visible. Also written: ``flagged_key`` ``(K,)`` bool (the point's
    evidence was contradicted by the others and dropped), ``distance_key`` ``(K,)`` (each unrefined point's
    Mahalanobis distance from where the others put it) and ``plausibility_key`` (that of the whole unrefined shape).

    Args:
        keys: the landmarks key, default ``"pred_landmarks"``.
        shape_model, landmark_set, threshold, max_outliers: as :class:`ShapeRefine`.
        cov_key, sigma_key: the item's evidence covariance (source mm) and SD.
        spacing_key: the item's source spacing.
        flagged_key, distance_key, plausibility_key, unrefined_prefix: output keys.
        allow_missing_keys: don't raise if a key is missing.
    """

    backend = ShapeRefine.backend

    def __init__(
        self,
        keys: KeysCollection = "pred_landmarks",
        shape_model: ShapeModel | str | os.PathLike | None = None,
        landmark_set: str | None = None,
        threshold: float = math.sqrt(CHI2_2_99),
        max_outliers: int | None = None,
        cov_key: str = "cov_mm",
        sigma_key: str = "sigma_mm",
        spacing_key: str = "spacing",
        flagged_key: str = "shape_flagged",
        distance_key: str = "shape_distance",
        plausibility_key: str = "shape_plausibility",
        unrefined_prefix: str = "unrefined_",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if len(self.keys) != 1:
            raise ValueError(f"one landmarks key is refined with one {cov_key!r}; got keys {self.keys}.")
        if shape_model is None:
            raise ValueError("ShapeRefined needs a shape model (a ShapeModel or its JSON, e.g. "
                             "models/shape_model.json).")
        self.refine = ShapeRefine(shape_model, landmark_set, threshold, max_outliers)
        self.cov_key, self.sigma_key, self.spacing_key = cov_key, sigma_key, spacing_key
        self.flagged_key, self.distance_key, self.plausibility_key = flagged_key, distance_key, plausibility_key
        self.unrefined_prefix = unrefined_prefix

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        d = dict(data)
        for key in self.key_iterator(d):
            for needed in (self.cov_key, self.spacing_key):
                if needed not in d:
                    raise KeyError(f"{type(self).__name__}: key {needed!r} is not in the data (keys: {list(d)}); "
                                   "place it after LandmarkUncertaintyd and LandmarksToSourced.")
            out = self.refine(d[key], d[self.cov_key], d[self.spacing_key])
            for name in (key, self.cov_key, self.sigma_key):
                if name in d:
                    d[f"{self.unrefined_prefix}{name}"] = d[name]
            d[key], d[self.cov_key], d[self.sigma_key] = out["landmarks"], out["cov_mm"], out["sigma_mm"]
            d[self.flagged_key] = out["flagged"]
            d[self.distance_key] = out["landmark_distance"]
            d[self.plausibility_key] = out["distance"]
        return d


ShapeRefineD = ShapeRefineDict = ShapeRefined
