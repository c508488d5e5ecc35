"""Spatial transforms that carry landmarks, and the mapping of predictions back to source pixels.

How landmarks follow the pixels: every MONAI spatial transform updates the image ``MetaTensor``'s ``affine``
(pixel -> world) to ``affine @ A``, where ``A`` maps an output pixel index to the input pixel index it samples
(for ``Resize`` with ``align_corners=False``: ``src = (dst + 0.5) * old / new - 0.5``, the pixel-centre
convention of ``torch.nn.functional.interpolate``). So, for affines ``before`` and ``after`` a transform,

    ``inv(after) @ before``  maps old pixel indices to new ones   (applied to the landmarks), and
    ``inv(original) @ current``  maps current pixel indices to the source pixels the image was loaded with.

The source affine is kept in the image meta under MONAI's ``"original_affine"`` key (``MetaKeys.ORIGINAL_AFFINE``,
which readers such as ITK/NiBabel set; for PIL images it is recorded by :func:`record_source_affine`, called by
``EnsureLandmarksd`` and by the transforms here). The geometry helpers (:func:`image_affine`,
:func:`transform_points`, ...) live in :mod:`monai_ceph.transforms.utils` and are importable from here too. Both are plain meta entries, so the mapping survives
``list_data_collate`` and ``decollate_batch``.

Landmarks that leave the image (after a crop or a random affine) keep their exact coordinates; their visibility
(:func:`~monai_ceph.transforms.landmarks.array.landmark_visibility`, the ``"landmark_mask"``) becomes 0.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch

from monai.config.type_definitions import NdarrayOrTensor
from monai.data.meta_tensor import MetaTensor
from monai.transforms.croppad.array import ResizeWithPadOrCrop
from monai.transforms.inverse import InvertibleTransform
from monai.transforms.spatial.array import RandAffine, Resize
from monai.transforms.transform import RandomizableTransform, Transform
from monai.utils import TraceKeys, TransformBackends

from monai_ceph.deprecation import renamed_arg
from monai_ceph.transforms.spatial.separable_resize import separable_resize
from monai_ceph.transforms.utils import (
    MODEL_SPATIAL_SIZE,
    SPATIAL_DIMS,
    as_meta,
    as_spacing,
    carry_landmarks,
    check_image,
    convert_like,
    image_affine,
    landmarks_to_source,
    model_to_source_affine,
    record_source_affine,
    transform_points,
    transform_spacing,
)

__all__ = [
    "MODEL_SPATIAL_SIZE",
    "ResizeWithLandmarks",
    "RandAffineWithLandmarks",
    "LandmarksToSource",
    "image_affine",
    "record_source_affine",
    "model_to_source_affine",
    "landmarks_to_source",
    "transform_points",
    "transform_spacing",
]

class ResizeWithLandmarks(InvertibleTransform):
    """Resample a 2-D image to the model size (or to a pixel spacing), carrying landmarks and spacing exactly.

    Built from MONAI's :class:`~monai.transforms.Resize` (``align_corners=False``) and
    :class:`~monai.transforms.ResizeWithPadOrCrop`: the image ``MetaTensor``'s affine and ``applied_operations``
    are updated by them as usual, landmarks are mapped with the affine change (so they move exactly as the pixel
    grid does), the spacing becomes ``old * old_size / new_size`` per dim, and the source affine is recorded so
    :class:`LandmarksToSource` maps predictions back. The image op is invertible (``Invertd`` works).

    Target size:

    - default: ``spatial_size`` (independent scale per dim);
    - ``keep_aspect=True``: the largest size that fits in ``spatial_size`` with the *physical* aspect ratio
      (using the spacing when given, else square pixels), then padded symmetrically to ``spatial_size``;
    - ``target_spacing=(sx, sy)``: ``round(size * spacing / target_spacing)``, then, if ``spatial_size`` is given,
      centre-padded or cropped to it (landmarks cut off by the crop keep their coordinates; see the mask).

    Interpolation defaults to ``"bilinear"`` with Gaussian anti-aliasing when downsampling (a symmetric filter, so
    no shift): MONAI's default ``"area"`` averages pooling windows that are not centred on the resampled pixel
    centres for non-integer factors, which jitters sub-pixel positions.

    Args:
        spatial_size: output (canvas) size in MONAI order; default :data:`MODEL_SPATIAL_SIZE` ``(576, 736)``,
            i.e. 736 x 576 (H x W) for images loaded as ``(C, x, y)``. May be ``None`` with ``target_spacing``.
        target_spacing: target mm/pixel ``(2,)`` or a number; needs the spacing at call time.
        keep_aspect: fit inside ``spatial_size`` keeping the physical aspect ratio, and pad.
        mode: interpolation mode of :class:`~monai.transforms.Resize`.
        anti_aliasing: smooth before downsampling (see :class:`~monai.transforms.Resize`).
        anti_aliasing_sigma: see :class:`~monai.transforms.Resize`.
        padding_mode: padding mode of :class:`~monai.transforms.ResizeWithPadOrCrop`.
        dtype: computation dtype of the resampling.
        pixel_spacing: deprecated name of ``target_spacing``.
    """

    backend = [TransformBackends.TORCH]

    @renamed_arg("pixel_spacing", "target_spacing")
    def __init__(
        self,
        spatial_size: Sequence[int] | None = MODEL_SPATIAL_SIZE,
        target_spacing: Sequence[float] | float | None = None,
        keep_aspect: bool = False,
        mode: str = "bilinear",
        anti_aliasing: bool = True,
        anti_aliasing_sigma: Sequence[float] | float | None = None,
        padding_mode: str = "constant",
        dtype: torch.dtype = torch.float32,
        pixel_spacing: Sequence[float] | float | None = None,
    ) -> None:
        if spatial_size is None and target_spacing is None:
            raise ValueError("give spatial_size, target_spacing, or both.")
        if spatial_size is not None:
            if len(spatial_size) != SPATIAL_DIMS or any(int(s) != s or s < 1 for s in spatial_size):
                raise ValueError(f"spatial_size must be 2 positive integers, got {spatial_size!r}.")
            spatial_size = tuple(int(s) for s in spatial_size)
        if keep_aspect and (spatial_size is None or target_spacing is not None):
            raise ValueError("keep_aspect needs spatial_size and no target_spacing.")
        if target_spacing is not None:
            target_spacing = tuple(as_spacing(target_spacing).tolist())
        self.spatial_size = spatial_size
        self.target_spacing = target_spacing
        self.keep_aspect = keep_aspect
        self.mode = mode
        self.anti_aliasing = anti_aliasing
        self.anti_aliasing_sigma = anti_aliasing_sigma
        self.dtype = dtype
        needs_pad = keep_aspect or (target_spacing is not None and spatial_size is not None)
        self.padder = ResizeWithPadOrCrop(spatial_size, mode=padding_mode) if needs_pad else None

    def resize_size(self, img_size: Sequence[int], spacing=None) -> tuple[int, ...]:
        """The size the image is resampled to (before any pad/crop)."""
        n = np.asarray(img_size, dtype=np.float64)
        if self.target_spacing is not None:
            if spacing is None:
                raise ValueError("resampling to a target_spacing needs the image's spacing (mm/pixel).")
            extent = n * np.asarray(torch.as_tensor(spacing, dtype=torch.float64).cpu())
            return tuple(max(1, int(round(e / p))) for e, p in zip(extent, self.target_spacing))
        if not self.keep_aspect:
            return tuple(self.spatial_size)
        extent = n if spacing is None else n * np.asarray(torch.as_tensor(spacing, dtype=torch.float64).cpu())
        new_spacing = max(e / t for e, t in zip(extent, self.spatial_size))
        return tuple(min(t, max(1, int(round(e / new_spacing)))) for e, t in zip(extent, self.spatial_size))

    def __call__(self, img: NdarrayOrTensor, landmarks: NdarrayOrTensor | None = None, spacing=None):
        """
        Args:
            img: channel-first 2-D image ``(C, dim0, dim1)``; a ``MetaTensor`` keeps (and updates) its metadata.
            landmarks: ``(N, 2)`` in ``img``'s pixels (NaN rows stay NaN).
            spacing: mm/pixel ``(2,)`` of ``img``.

        Returns:
            ``(image, landmarks, spacing)`` in the output grid, each of its input's type (``None`` stays ``None``).
        """
        check_image(img)
        img_t = as_meta(img)
        record_source_affine(img_t)
        before = image_affine(img_t)
        orig_size = tuple(img_t.peek_pending_shape())
        size = self.resize_size(orig_size, spacing)
        # MONAI's anti-aliased bilinear resize, computed as two matrix products (same values, a fraction of the
        # time on a full-size radiograph): MONAI's Resize without anti-aliasing keeps the metadata and the trace
        downsampled = any(n < o for n, o in zip(size, orig_size))  # MONAI smooths only then
        fast = self.mode == "bilinear" and self.anti_aliasing and downsampled and not img_t.pending_operations
        resizer = Resize(
            size,
            mode=self.mode,
            anti_aliasing=self.anti_aliasing and not fast,
            anti_aliasing_sigma=self.anti_aliasing_sigma,
            dtype=self.dtype,
        )
        out = resizer(img_t)
        if fast:
            data = img_t.as_tensor().to(self.dtype)
            out.set_array(separable_resize(data, size, self.anti_aliasing_sigma).to(out.dtype))
        extra_info = {"resize_info": out.applied_operations.pop()}
        if self.padder is not None:
            out = self.padder(out)
            extra_info["pad_info"] = out.applied_operations.pop()
        self.push_transform(out, orig_size=orig_size, extra_info=extra_info)
        landmarks, spacing = carry_landmarks(before, out, landmarks, spacing)
        return convert_like(out, img), landmarks, spacing

    def inverse(self, data: MetaTensor) -> MetaTensor:
        """Resample the image back to its grid before this transform (landmarks: see :class:`LandmarksToSource`)."""
        transform = self.pop_transform(data)
        return self.inverse_transform(data, transform)

    def inverse_transform(self, data: MetaTensor, transform) -> MetaTensor:
        extra_info = copy.deepcopy(transform[TraceKeys.EXTRA_INFO])
        if "pad_info" in extra_info:
            data = self.padder.inverse_transform(data, extra_info["pad_info"])  # type: ignore[union-attr]
        return Resize(spatial_size=transform[TraceKeys.ORIG_SIZE]).inverse_transform(data, extra_info["resize_info"])


class RandAffineWithLandmarks(RandomizableTransform, InvertibleTransform):
    """MONAI's :class:`~monai.transforms.RandAffine` (rotate, scale, shear, translate) that moves landmarks too.

    The image is resampled by ``RandAffine``; landmarks are mapped with the change of the image's affine, i.e. the
    same matrix that moved the pixels, so they move exactly as the pixels do. The spacing is updated to the
    physical size of the new pixels (a zoom changes it). Landmarks that leave the image keep their coordinates;
    their visibility becomes 0 (see :func:`~monai_ceph.transforms.landmarks.array.landmark_visibility`).

    Args:
        prob, rotate_range, shear_range, translate_range, scale_range, spatial_size, mode, padding_mode,
        cache_grid, device: as :class:`~monai.transforms.RandAffine` (``rotate_range`` in radians,
        ``translate_range`` in pixels, ``scale_range`` as offsets from 1).
    """

    backend = RandAffine.backend

    def __init__(
        self,
        prob: float = 0.1,
        rotate_range=None,
        shear_range=None,
        translate_range=None,
        scale_range=None,
        spatial_size: Sequence[int] | int | None = None,
        mode: str = "bilinear",
        padding_mode: str = "zeros",
        cache_grid: bool = False,
        device: torch.device | None = None,
    ) -> None:
        RandomizableTransform.__init__(self, prob)
        self.rand_affine = RandAffine(
            prob=prob,
            rotate_range=rotate_range,
            shear_range=shear_range,
            translate_range=translate_range,
            scale_range=scale_range,
            spatial_size=spatial_size,
            mode=mode,
            padding_mode=padding_mode,
            cache_grid=cache_grid,
            device=device,
        )

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        super().set_random_state(seed, state)
        self.rand_affine.set_random_state(seed, state)
        return self

    def randomize(self, data=None) -> None:
        self.rand_affine.randomize()
        self._do_transform = self.rand_affine._do_transform

    def __call__(self, img: NdarrayOrTensor, landmarks=None, spacing=None, randomize: bool = True):
        """
        Args:
            img: channel-first 2-D image ``(C, dim0, dim1)``.
            landmarks: ``(N, 2)`` in ``img``'s pixels.
            spacing: mm/pixel ``(2,)`` of ``img``.
            randomize: draw new parameters (``False`` reuses the last ones).

        Returns:
            ``(image, landmarks, spacing)`` in the output grid, each of its input's type.
        """
        check_image(img)
        if randomize:
            self.randomize()
        img_t = as_meta(img)
        record_source_affine(img_t)
        before = image_affine(img_t)
        out = self.rand_affine(img_t, randomize=False)
        landmarks, spacing = carry_landmarks(before, out, landmarks, spacing)
        return convert_like(out, img), landmarks, spacing

    def inverse(self, data: MetaTensor) -> MetaTensor:
        return self.rand_affine.inverse(data)


class LandmarksToSource(Transform):
    """Map landmarks from an image's current pixel grid back to the source pixels it was loaded with.

    The mapping is ``inv(original_affine) @ affine`` of the reference image (see the module notes); it inverts
    every MONAI spatial transform applied since the source affine was recorded, including
    :class:`ResizeWithLandmarks` (resize and pad) and random affines. Works on a decollated item ``(N, 2)`` or on a
    batch ``(B, N, 2)`` with a collated ``MetaTensor`` ``(B, C, dim0, dim1)``.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __call__(self, points: NdarrayOrTensor, img: MetaTensor) -> NdarrayOrTensor:
        """
        Args:
            points: ``(N, 2)`` (or ``(B, N, 2)``) in ``img``'s current pixels.
            img: the reference image (a ``MetaTensor`` carrying ``affine`` and ``original_affine``).
        """
        return landmarks_to_source(points, img)
