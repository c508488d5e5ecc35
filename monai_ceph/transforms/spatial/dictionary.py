"""Dictionary wrappers of :mod:`monai_ceph.transforms.spatial.array`.

The image keys are resampled; the landmark keys, the spacing key and the visibility masks of the sample follow
the first image key (see the module notes of :mod:`monai_ceph.transforms.spatial.array`). Companion keys that are
absent (e.g. no landmarks at inference) are skipped.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch

from monai.config import KeysCollection
from monai.transforms.inverse import InvertibleTransform
from monai.transforms.spatial.dictionary import RandAffined
from monai.transforms.transform import MapTransform
from monai.utils import ensure_tuple, ensure_tuple_rep

from monai_ceph.transforms.spatial.array import LandmarksToSource, ResizeWithLandmarks
from monai_ceph.deprecation import renamed_arg
from monai_ceph.transforms.utils import (
    MODEL_SPATIAL_SIZE,
    carry_landmarks,
    image_affine,
    landmark_visibility,
    model_to_source_affine,
    record_source_affine,
    transform_spacing,
)

__all__ = [
    "ResizeWithLandmarksd",
    "ResizeWithLandmarksD",
    "ResizeWithLandmarksDict",
    "RandAffineWithLandmarksd",
    "RandAffineWithLandmarksD",
    "RandAffineWithLandmarksDict",
    "LandmarksToSourced",
    "LandmarksToSourceD",
    "LandmarksToSourceDict",
]


class _LandmarkCompanions:
    """The landmark, mask and spacing keys that follow an image key, and how they are updated."""

    def __init__(self, landmark_keys: KeysCollection | None, mask_keys: KeysCollection | None, spacing_key):
        self.landmark_keys = ensure_tuple(landmark_keys) if landmark_keys is not None else ()
        if mask_keys is None:
            self.mask_keys = (None,) * len(self.landmark_keys)
        else:
            self.mask_keys = ensure_tuple(mask_keys)
            if len(self.mask_keys) != len(self.landmark_keys):
                raise ValueError(f"mask_keys must align with landmark_keys {self.landmark_keys}, got {self.mask_keys}.")
        self.spacing_key = spacing_key

    def spacing(self, d: Mapping):
        return d.get(self.spacing_key) if self.spacing_key is not None else None

    def follow(self, d: dict, before: torch.Tensor, image) -> None:
        """Move the companions of ``image`` from the grid with affine ``before`` to ``image``'s current grid."""
        for key, mask_key in zip(self.landmark_keys, self.mask_keys):
            if key not in d:
                continue
            d[key], _ = carry_landmarks(before, image, d[key], None)
            if mask_key is not None:
                d[mask_key] = landmark_visibility(d[key], image.shape[1:])
        if self.spacing(d) is not None:
            _, d[self.spacing_key] = carry_landmarks(before, image, None, d[self.spacing_key])


class ResizeWithLandmarksd(MapTransform, InvertibleTransform):
    """Dictionary-based :class:`~monai_ceph.transforms.ResizeWithLandmarks`.

    Resamples every image key (each with its own ``mode``); the landmark keys, the spacing and the visibility masks
    follow the first image key. The source affine is recorded on each image, so
    :class:`LandmarksToSourced` maps predictions back; ``inverse`` (and MONAI's ``Invertd``) undoes the image
    resampling and moves the companions back.

    Args:
        keys: image keys, default ``"image"``.
        landmark_keys: ``(N, 2)`` landmark keys that follow the first image key.
        spacing_key: spacing key (mm/pixel ``(2,)``) updated to ``old * old_size / new_size``; ``None`` to skip.
        mask_keys: visibility outputs aligned with ``landmark_keys`` (1 = finite and inside the output image).
        spatial_size, target_spacing, keep_aspect, anti_aliasing, anti_aliasing_sigma, padding_mode, dtype: as
            :class:`~monai_ceph.transforms.ResizeWithLandmarks`.
        mode: interpolation mode, one per key or shared (e.g. ``("bilinear", "nearest")``).
        allow_missing_keys: don't raise if an image key is missing.
        pixel_spacing: deprecated name of ``target_spacing``.
    """

    backend = ResizeWithLandmarks.backend

    @renamed_arg("pixel_spacing", "target_spacing")
    def __init__(
        self,
        keys: KeysCollection = "image",
        landmark_keys: KeysCollection | None = "landmarks",
        spacing_key: str | None = "spacing",
        mask_keys: KeysCollection | None = "landmark_mask",
        spatial_size: Sequence[int] | None = MODEL_SPATIAL_SIZE,
        target_spacing: Sequence[float] | float | None = None,
        keep_aspect: bool = False,
        mode: Sequence[str] | str = "bilinear",
        anti_aliasing: bool = True,
        anti_aliasing_sigma: Sequence[float] | float | None = None,
        padding_mode: str = "constant",
        dtype: torch.dtype = torch.float32,
        allow_missing_keys: bool = False,
        pixel_spacing: Sequence[float] | float | None = None,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.companions = _LandmarkCompanions(landmark_keys, mask_keys, spacing_key)
        self.resizers = [
            ResizeWithLandmarks(
                spatial_size=spatial_size,
                target_spacing=target_spacing,
                keep_aspect=keep_aspect,
                mode=m,
                anti_aliasing=anti_aliasing,
                anti_aliasing_sigma=anti_aliasing_sigma,
                padding_mode=padding_mode,
                dtype=dtype,
            )
            for m in ensure_tuple_rep(mode, len(self.keys))
        ]

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        d = dict(data)
        spacing = self.companions.spacing(d)  # every image key is resampled by the sample's (source) spacing
        first = True
        for key, resizer in self.key_iterator(d, self.resizers):
            before = image_affine(d[key])
            d[key] = resizer(d[key], spacing=spacing)[0]
            if first:
                self.companions.follow(d, before, d[key])
                first = False
        return d

    def inverse(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        d = dict(data)
        first_key = self.first_key(d)
        for key, resizer in self.key_iterator(d, self.resizers):
            before = image_affine(d[key])
            d[key] = resizer.inverse(d[key])
            if key == first_key:
                self.companions.follow(d, before, d[key])
        return d


class RandAffineWithLandmarksd(RandAffined):
    """MONAI's :class:`~monai.transforms.RandAffined` that moves landmarks (and spacing, masks) with the pixels.

    All image keys share one random affine (as in ``RandAffined``); the landmark keys are mapped with the change
    of the first image key's affine, so they move exactly as the pixels do. Landmarks that leave the image keep
    their coordinates and get visibility 0 in ``mask_keys``. ``inverse`` undoes both.

    Args:
        keys: image keys (e.g. ``"image"``).
        landmark_keys: landmark keys ``(N, 2)`` that follow the first image key.
        spacing_key: spacing key updated to the physical size of the new pixels (a zoom changes it); ``None`` to
            skip.
        mask_keys: visibility outputs aligned with ``landmark_keys``.
        spatial_size, prob, rotate_range, shear_range, translate_range, scale_range, mode, padding_mode,
        cache_grid, device, allow_missing_keys: as :class:`~monai.transforms.RandAffined`.
    """

    def __init__(
        self,
        keys: KeysCollection = "image",
        landmark_keys: KeysCollection | None = "landmarks",
        spacing_key: str | None = "spacing",
        mask_keys: KeysCollection | None = "landmark_mask",
        spatial_size: Sequence[int] | int | None = None,
        prob: float = 0.1,
        rotate_range=None,
        shear_range=None,
        translate_range=None,
        scale_range=None,
        mode="bilinear",
        padding_mode="zeros",
        cache_grid: bool = False,
        device: torch.device | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(
            keys,
            spatial_size=spatial_size,
            prob=prob,
            rotate_range=rotate_range,
            shear_range=shear_range,
            translate_range=translate_range,
            scale_range=scale_range,
            mode=mode,
            padding_mode=padding_mode,
            cache_grid=cache_grid,
            device=device,
            allow_missing_keys=allow_missing_keys,
        )
        self.companions = _LandmarkCompanions(landmark_keys, mask_keys, spacing_key)

    def __call__(self, data: Mapping[Hashable, object], lazy: bool | None = None) -> dict[Hashable, object]:
        if lazy:
            raise ValueError(f"{type(self).__name__} moves landmarks eagerly; it cannot run lazily.")
        d = dict(data)
        first_key = self.first_key(d)
        if first_key == ():
            return super().__call__(d, lazy=False)
        record_source_affine(d[first_key])
        before = image_affine(d[first_key])
        d = super().__call__(d, lazy=False)
        self.companions.follow(d, before, d[first_key])
        return d

    def inverse(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        d = dict(data)
        first_key = self.first_key(d)
        if first_key == ():
            return super().inverse(d)
        before = image_affine(d[first_key])
        d = super().inverse(d)
        self.companions.follow(d, before, d[first_key])
        return d


class LandmarksToSourced(MapTransform):
    """Dictionary-based :class:`~monai_ceph.transforms.LandmarksToSource`: map landmarks back to source pixels.

    Typical post-processing (on decollated items)::

        HeatmapToLandmarksd(keys="pred", codec=codec, logits=True),
        LandmarksToSourced(keys=("pred_landmarks",), ref_key="image"),

    Args:
        keys: landmark keys in the reference image's current pixels, default ``("pred_landmarks",)``.
        ref_key: the image whose ``affine`` and ``original_affine`` define the mapping.
        spacing_key: a spacing key (mm/pixel of the current grid) to map back to the source spacing too, in place
            (``None``: untouched). Exact for axis-aligned chains (resize, pad, crop: the evaluation/inference
            path); after a rotation or shear a per-axis spacing is only an approximation of the pixel geometry.
        allow_missing_keys: don't raise if a key is missing.
    """

    backend = LandmarksToSource.backend

    def __init__(
        self,
        keys: KeysCollection = ("pred_landmarks",),
        ref_key: str = "image",
        spacing_key: str | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.ref_key = ref_key
        self.spacing_key = spacing_key
        self.to_source = LandmarksToSource()

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        d = dict(data)
        if self.ref_key not in d:
            raise KeyError(f"reference image key {self.ref_key!r} is not in the data (keys: {list(d)}).")
        image = d[self.ref_key]
        for key in self.key_iterator(d):
            d[key] = self.to_source(d[key], image)
        if self.spacing_key is not None and self.spacing_key in d:
            spacing = d[self.spacing_key]
            new = transform_spacing(spacing, torch.linalg.inv(model_to_source_affine(image)))
            d[self.spacing_key] = new if not isinstance(spacing, np.ndarray) else new.numpy()
        return d


ResizeWithLandmarksD = ResizeWithLandmarksDict = ResizeWithLandmarksd
RandAffineWithLandmarksD = RandAffineWithLandmarksDict = RandAffineWithLandmarksd
LandmarksToSourceD = LandmarksToSourceDict = LandmarksToSourced
