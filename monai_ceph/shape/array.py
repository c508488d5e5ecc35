"""Array transforms: per-landmark covariance in source mm from a predicted heatmap; shape-constrained refinement."""

from __future__ import annotations

import math
import os

import numpy as np
import torch

from monai.config.type_definitions import NdarrayOrTensor
from monai.transforms.transform import Transform
from monai.utils import TransformBackends
from monai.utils.type_conversion import convert_to_dst_type

from monai_ceph.data.landmark_sets import get_landmark_set
from monai_ceph.transforms.landmarks.codec import GaussianHeatmapCodec

from .model import CHI2_2_99, ShapeModel
from .uncertainty import (
    UncertaintyCalibration,
    covariance_radius,
    covariance_sigma,
    covariance_to_source,
    heatmap_covariance,
)

__all__ = ["CovarianceToSource", "LandmarkUncertainty", "ShapeRefine"]


class CovarianceToSource(Transform):
    """Per-landmark covariances in model-input pixels -> ``sigma_mm`` ``(K,)`` and ``cov_mm`` ``(K, 2, 2)`` on the
    source image, calibrated: the last steps of :class:`LandmarkUncertainty`, for a covariance that comes from
    elsewhere (the two-stage inferer's refined points, ``pred_covariance``).

    Args:
        calibration: an :class:`UncertaintyCalibration`, or the path of its JSON; ``None``: uncalibrated.
        landmark_set: the model's landmark set; a calibration fitted on another set is refused, naming both.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self, calibration: UncertaintyCalibration | str | os.PathLike | None = None, landmark_set: str | None = None
    ) -> None:
        source = calibration
        if calibration is not None and not isinstance(calibration, UncertaintyCalibration):
            calibration = UncertaintyCalibration.load(calibration)
        if calibration is not None and landmark_set is not None:
            lset = get_landmark_set(landmark_set)
            where = f"{source}: " if not isinstance(source, UncertaintyCalibration) else ""
            if calibration.landmark_set is not None and calibration.landmark_set != lset.name:
                raise ValueError(f"{where}the uncertainty calibration was fitted on the {calibration.landmark_set!r} "
                                 f"landmark set, the model predicts {lset.name!r}.")
            if len(calibration.scales) != len(lset):
                raise ValueError(f"{where}the uncertainty calibration has {len(calibration.scales)} scales, the "
                                 f"model predicts the {len(lset)} landmarks of the {lset.name!r} set.")
        self.calibration = calibration

    def __call__(self, cov: NdarrayOrTensor, matrix, spacing, confidence=None) -> tuple[NdarrayOrTensor, ...]:
        """
        Args:
            cov: ``(K, 2, 2)`` covariances in model-input pixels.
            matrix: ``(3, 3)`` model-input pixels -> source pixels.
            spacing: ``(2,)`` source spacing, mm/pixel.
            confidence: ``(K,)`` the points' peak confidence; needed by a calibration with a confidence power.

        Returns:
            ``(sigma_mm, cov_mm)``, ``(K,)`` and ``(K, 2, 2)``, float32 of ``cov``'s type.
        """
        c = torch.as_tensor(cov).as_subclass(torch.Tensor)
        if c.ndim != 3 or tuple(c.shape[1:]) != (2, 2):
            raise ValueError(f"covariances must have shape (K, 2, 2), got {tuple(c.shape)}.")
        out = covariance_to_source(c.detach().cpu().to(torch.float64), matrix, spacing)
        if self.calibration is not None:
            out = self.calibration(out, None if confidence is None else torch.as_tensor(confidence).reshape(-1))
        sigma, *_ = convert_to_dst_type(covariance_sigma(out), cov, dtype=torch.float32)
        out, *_ = convert_to_dst_type(out, cov, dtype=torch.float32)
        return sigma, out


class LandmarkUncertainty(Transform):
    """``(K, h0, h1)`` heatmap (or logits) -> ``sigma_mm`` ``(K,)`` and ``cov_mm`` ``(K, 2, 2)`` on the source image.

    Each channel's peak is decoded with the codec, its :func:`heatmap_covariance` taken around it (heatmap
    pixels), scaled to model-input pixels by the codec's stride, mapped to source pixels through ``matrix`` (the
    model-to-source affine the landmarks go through, :func:`~monai_ceph.transforms.model_to_source_affine`),
    then to mm with the source spacing, and finally calibrated (with the decoded peak's confidence, for a
    calibration that uses it).

    Args:
        codec: the bundle's :class:`GaussianHeatmapCodec` (default: the default codec).
        logits: the heatmaps are ``BCEWithLogits`` logits.
        radius: covariance window half-width in heatmap pixels (default ``ceil(4 sigma / stride)``).
        calibration: an :class:`UncertaintyCalibration`, or the path of its JSON; ``None``: uncalibrated.
        background: subtract the window's border-ring mean (see :func:`heatmap_covariance`).
        landmark_set: the model's landmark set; a calibration fitted on another set is refused, naming both.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        codec: GaussianHeatmapCodec | None = None,
        logits: bool = True,
        radius: int | None = None,
        calibration: UncertaintyCalibration | str | os.PathLike | None = None,
        background: bool = True,
        landmark_set: str | None = None,
    ) -> None:
        self.codec = codec or GaussianHeatmapCodec()
        self.logits = logits
        self.radius = covariance_radius(self.codec) if radius is None else int(radius)
        self.to_source = CovarianceToSource(calibration, landmark_set)
        self.background = background

    def __call__(self, heatmap: NdarrayOrTensor, matrix, spacing) -> tuple[NdarrayOrTensor, NdarrayOrTensor]:
        """
        Args:
            heatmap: ``(K, h0, h1)`` prediction for one image.
            matrix: ``(3, 3)`` model-input pixels -> source pixels.
            spacing: ``(2,)`` source spacing, mm/pixel.

        Returns:
            ``(sigma_mm, cov_mm)``, ``(K,)`` and ``(K, 2, 2)``, float32 of the heatmap's type.
        """
        hm = torch.as_tensor(heatmap).as_subclass(torch.Tensor)
        if hm.ndim != 3:
            raise ValueError(f"heatmap must have shape (K, h0, h1), got {tuple(hm.shape)}.")
        points, confidence = self.codec.decode(hm, logits=self.logits)
        peaks = self.codec.to_heatmap_coords(points.to(torch.float64))
        cov = heatmap_covariance(hm, peaks, self.radius, logits=self.logits, background=self.background)
        sigma, cov = self.to_source(cov.to(torch.float64) * self.codec.stride**2, matrix, spacing, confidence)
        sigma, *_ = convert_to_dst_type(sigma, heatmap, dtype=torch.float32)
        cov, *_ = convert_to_dst_type(cov, heatmap, dtype=torch.float32)
        return sigma, cov

    @property
    def calibration(self) -> UncertaintyCalibration | None:
        return self.to_source.calibration


class ShapeRefine(Transform):
    """Shape-constrained refinement of one image's landmarks in source pixels (:meth:`ShapeModel.refine`).

    The points ``(K, 2)`` (source pixels, NaN missing) and their covariances ``(K, 2, 2)`` in source mm (e.g.
    :class:`LandmarkUncertainty`'s) are turned into mm with the source ``spacing``; the MAP estimate under the
    shape prior drops the evidence that the other points contradict (those points are ``flagged``), and the
    posterior gives the refined points and their new covariances. The network's own shape is scored too
    (:meth:`ShapeModel.plausibility`).

    Args:
        shape_model: a :class:`ShapeModel` or the path of its JSON (e.g. ``models/shape_model.json``).
        landmark_set: the model's landmark set; a shape model built from another set is refused, naming both.
        threshold, max_outliers: as :meth:`ShapeModel.refine`.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        shape_model: ShapeModel | str | os.PathLike,
        landmark_set: str | None = None,
        threshold: float = math.sqrt(CHI2_2_99),
        max_outliers: int | None = None,
    ) -> None:
        model = shape_model if isinstance(shape_model, ShapeModel) else ShapeModel.load(shape_model)
        if landmark_set is not None:
            try:
                model.check_landmark_set(landmark_set)
            except ValueError as e:
                where = "" if isinstance(shape_model, ShapeModel) else f"{shape_model}: "
                raise ValueError(f"{where}{e}") from None
        self.shape_model = model
        self.threshold, self.max_outliers = threshold, max_outliers

    def __call__(self, landmarks: NdarrayOrTensor, cov_mm: NdarrayOrTensor, spacing) -> dict[str, NdarrayOrTensor]:
        """
        Args:
            landmarks: ``(K, 2)`` source pixels, NaN missing.
            cov_mm: ``(K, 2, 2)`` evidence covariances in source mm (non-finite: no evidence).
            spacing: ``(2,)`` source spacing, mm/pixel.

        Returns:
            ``"landmarks"`` ``(K, 2)`` refined source pixels and ``"cov_mm"`` ``(K, 2, 2)`` / ``"sigma_mm"`` ``(K,)``
            their posterior uncertainty (landmarks' type), ``"flagged"`` ``(K,)`` bool, ``"distance"`` (float,
            the Mahalanobis distance of the unrefined shape) and ``"landmark_distance"`` ``(K,)`` (each unrefined
            point's distance from where the others put it; NaN missing), numpy.
        """
        s = np.asarray(torch.as_tensor(spacing).cpu(), dtype=np.float64).reshape(2)
        mm = np.asarray(torch.as_tensor(landmarks).cpu(), dtype=np.float64) * s
        cov = np.asarray(torch.as_tensor(cov_mm).cpu(), dtype=np.float64)
        _, flagged = self.shape_model.refine(mm, cov, self.threshold, self.max_outliers)
        evidence = np.where(flagged[:, None, None], np.inf, cov)
        mean, post = self.shape_model.posterior(mm, None, evidence)
        score = self.shape_model.plausibility(mm)
        out = {}
        out["landmarks"], *_ = convert_to_dst_type(mean / s, landmarks, dtype=torch.float32)
        out["cov_mm"], *_ = convert_to_dst_type(post, landmarks, dtype=torch.float32)
        out["sigma_mm"] = covariance_sigma(out["cov_mm"])
        out.update(flagged=flagged, distance=score.distance, landmark_distance=score.landmark_distance)
        return out
