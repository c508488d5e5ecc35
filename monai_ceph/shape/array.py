"""Array transform: per-landmark covariance in source mm from a predicted heatmap."""

from __future__ import annotations

import math
import os

import torch

from monai.config.type_definitions import NdarrayOrTensor
from monai.transforms.transform import Transform
from monai.utils import TransformBackends
from monai.utils.type_conversion import convert_to_dst_type

from monai_ceph.transforms.landmarks.codec import GaussianHeatmapCodec

from .uncertainty import UncertaintyCalibration, covariance_sigma, covariance_to_source, heatmap_covariance

__all__ = ["LandmarkUncertainty"]


class LandmarkUncertainty(Transform):
    """``(K, h0, h1)`` heatmap (or logits) -> ``sigma_mm`` ``(K,)`` and ``cov_mm`` ``(K, 2, 2)`` on the source image.

    Each channel's peak is decoded with the codec, its :func:`heatmap_covariance` taken around it (heatmap
    pixels), scaled to model-input pixels by the codec's stride, mapped to source pixels through ``matrix`` (the
    model-to-source affine the landmarks go through, :func:`~monai_ceph.transforms.model_to_source_affine`),
    then to mm with the source spacing, and finally calibrated.

    Args:
        codec: the bundle's :class:`GaussianHeatmapCodec` (default: the default codec).
        logits: the heatmaps are ``BCEWithLogits`` logits.
        radius: covariance window half-width in heatmap pixels (default ``ceil(4 sigma / stride)``).
        calibration: an :class:`UncertaintyCalibration`, or the path of its JSON; ``None``: uncalibrated.
        background: subtract the window's border-ring mean (see :func:`heatmap_covariance`).
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        codec: GaussianHeatmapCodec | None = None,
        logits: bool = True,
        radius: int | None = None,
        calibration: UncertaintyCalibration | str | os.PathLike | None = None,
        background: bool = True,
    ) -> None:
        self.codec = codec or GaussianHeatmapCodec()
        self.logits = logits
        if radius is None:
            if self.codec.sigma_unit != "pixel":
                raise ValueError("a codec with sigma in mm needs an explicit radius (heatmap pixels).")
            radius = max(1, math.ceil(4 * self.codec.sigma / self.codec.stride))
        self.radius = int(radius)
        if calibration is not None and not isinstance(calibration, UncertaintyCalibration):
            calibration = UncertaintyCalibration.load(calibration)
        self.calibration = calibration
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
        points, _ = self.codec.decode(hm, logits=self.logits)
        peaks = self.codec.to_heatmap_coords(points.to(torch.float64))
        cov = heatmap_covariance(hm, peaks, self.radius, logits=self.logits, background=self.background)
        cov = covariance_to_source(cov.to(torch.float64) * self.codec.stride**2, matrix, spacing)
        if self.calibration is not None:
            cov = self.calibration(cov)
        sigma = covariance_sigma(cov)
        sigma, *_ = convert_to_dst_type(sigma, heatmap, dtype=torch.float32)
        cov, *_ = convert_to_dst_type(cov, heatmap, dtype=torch.float32)
        return sigma, cov
