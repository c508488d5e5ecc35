"""Dictionary transform: write ``sigma_mm`` and ``cov_mm`` into a post-processed item."""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping

import numpy as np
import torch

from monai.config import KeysCollection
from monai.transforms.transform import MapTransform

from monai_ceph.transforms.landmarks.codec import GaussianHeatmapCodec
from monai_ceph.transforms.spatial.array import model_to_source_affine, transform_spacing

from .array import LandmarkUncertainty
from .uncertainty import UncertaintyCalibration

__all__ = ["LandmarkUncertaintyd", "LandmarkUncertaintyD", "LandmarkUncertaintyDict"]


class LandmarkUncertaintyd(MapTransform):
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
        codec, logits, radius, calibration, background: as :class:`LandmarkUncertainty`.
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
        codec: GaussianHeatmapCodec | None = None,
        logits: bool = True,
        radius: int | None = None,
        calibration: UncertaintyCalibration | str | os.PathLike | None = None,
        background: bool = True,
        ref_key: str = "image",
        spacing_key: str = "spacing",
        source_spacing: bool = False,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if len(self.keys) != 1:
            raise ValueError(f"one heatmap key writes one {sigma_key!r}; got keys {self.keys}.")
        self.uncertainty = LandmarkUncertainty(codec, logits, radius, calibration, background)
        self.sigma_key, self.cov_key = sigma_key, cov_key
        self.ref_key, self.spacing_key, self.source_spacing = ref_key, spacing_key, source_spacing

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        d = dict(data)
        for key in self.key_iterator(d):
            for needed in (self.ref_key, self.spacing_key):
                if needed not in d:
                    raise KeyError(f"{type(self).__name__}: key {needed!r} is not in the data (keys: {list(d)}).")
            matrix = model_to_source_affine(d[self.ref_key])
            spacing = torch.as_tensor(np.asarray(d[self.spacing_key], dtype=np.float64))
            if not self.source_spacing:
                spacing = transform_spacing(spacing, torch.linalg.inv(matrix))
            d[self.sigma_key], d[self.cov_key] = self.uncertainty(d[key], matrix, spacing)
        return d


LandmarkUncertaintyD = LandmarkUncertaintyDict = LandmarkUncertaintyd
