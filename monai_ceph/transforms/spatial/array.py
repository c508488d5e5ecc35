"""Spatial transforms that carry landmarks, and the mapping of predictions back to source pixels.

How landmarks follow the pixels: every MONAI spatial transform updates the image ``MetaTensor``'s ``affine``
(pixel -> world) to ``affine @ A``, where ``A`` maps an output pixel index to the input pixel index it samples
(for ``Resize`` with ``align_corners=False``: ``src = (dst + 0.5) * old / new - 0.5``, the pixel-centre
convention of ``torch.nn.functional.interpolate``). So, for affines ``before`` and ``after`` a transform,

    ``inv(after) @ before``  maps old pixel indices to new ones   (applied to the landmarks), and
    ``inv(original) @ current``  maps current pixel indices to the source pixels the image was loaded with.

The source affine is kept in the image meta under MONAI's ``"original_affine"`` key (``MetaKeys.ORIGINAL_AFFINE``,
which readers such as ITK/NiBabel set; for PIL images it is recorded by :func:`record_source_affine`, called by
``LoadLandmarksd`` and by the transforms here). Both are plain meta entries, so the mapping survives
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
from monai.data.meta_obj import get_track_meta
from monai.data.meta_tensor import MetaTensor
from monai.data.utils import to_affine_nd
from monai.transforms.croppad.array import ResizeWithPadOrCrop
from monai.transforms.inverse import InvertibleTransform
from monai.transforms.spatial.array import RandAffine, Resize
from monai.transforms.transform import RandomizableTransform, Transform
from monai.transforms.utils import apply_affine_to_points
from monai.utils import MetaKeys, TraceKeys, TransformBackends
from monai.utils.type_conversion import convert_to_dst_type

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

# The paper's model input, 736 x 576 (height x width), in MONAI's (dim0=x, dim1=y) order.
MODEL_SPATIAL_SIZE = (576, 736)

SPATIAL_DIMS = 2


def _check_image(img) -> None:
    if getattr(img, "ndim", None) != SPATIAL_DIMS + 1:
        raise ValueError(
            f"expected a 2-D channel-first image (C, dim0, dim1), got shape {tuple(getattr(img, 'shape', ()))}."
        )


def _homogeneous(affine, batched: bool = False) -> torch.Tensor:
    """A (4x4, 3x3, or batched) affine as float64 2-D homogeneous ``(3, 3)`` (or ``(B, 3, 3)``)."""
    a = torch.as_tensor(affine, dtype=torch.float64).cpu()
    if a.ndim == 3:
        return torch.stack([torch.as_tensor(to_affine_nd(SPATIAL_DIMS, m)) for m in a])
    return torch.as_tensor(to_affine_nd(SPATIAL_DIMS, a))


def image_affine(img) -> torch.Tensor:
    """The image's pixel-to-world affine as a float64 ``(3, 3)`` matrix (identity for a non-MetaTensor)."""
    if isinstance(img, MetaTensor):
        return _homogeneous(img.peek_pending_affine())
    return torch.eye(SPATIAL_DIMS + 1, dtype=torch.float64)


def record_source_affine(img) -> None:
    """Record ``img``'s current affine as its source affine (``meta["original_affine"]``), unless already there."""
    if isinstance(img, MetaTensor) and img.meta.get(MetaKeys.ORIGINAL_AFFINE) is None:
        img.meta[MetaKeys.ORIGINAL_AFFINE] = torch.as_tensor(img.peek_pending_affine(), dtype=torch.float64).clone()


def model_to_source_affine(img) -> torch.Tensor:
    """``inv(original_affine) @ affine``: current pixel indices -> source pixel indices, float64 ``(3, 3)``.

    A batched ``MetaTensor`` (meta collated by ``list_data_collate``) gives ``(B, 3, 3)``.
    """
    if not isinstance(img, MetaTensor):
        raise ValueError(f"the reference image must be a MetaTensor with an affine, got {type(img).__name__}.")
    source = img.meta.get(MetaKeys.ORIGINAL_AFFINE)
    if source is None:
        raise ValueError(
            f"the image has no {MetaKeys.ORIGINAL_AFFINE!r} in its meta, so its source pixel grid is unknown: "
            "apply LoadLandmarksd or ResizeWithLandmarksd (which record it) before changing the image's geometry."
        )
    current = img.affine
    return torch.linalg.solve(_homogeneous(source), _homogeneous(current))


def transform_points(points: NdarrayOrTensor, matrix) -> NdarrayOrTensor:
    """Apply a 2-D homogeneous ``matrix`` (3x3, or (B, 3, 3) for (B, N, 2) points) to ``(..., N, 2)`` points.

    Uses MONAI's :func:`monai.transforms.utils.apply_affine_to_points` (the kernel of ``ApplyTransformToPoints``),
    in float64; returns the input's type, dtype and device. NaN (missing) points stay NaN.
    """
    p = torch.as_tensor(points)
    if p.shape[-1] != SPATIAL_DIMS:
        raise ValueError(f"points must have shape (..., N, 2), got {tuple(p.shape)}.")
    m = torch.as_tensor(matrix, dtype=torch.float64).cpu()
    flat = p.detach().cpu().to(torch.float64).reshape(-1, p.shape[-2], SPATIAL_DIMS)
    if m.ndim == 3:
        if m.shape[0] != flat.shape[0]:
            raise ValueError(f"{m.shape[0]} matrices for {flat.shape[0]} sets of points.")
        out = torch.cat([apply_affine_to_points(f[None], mi) for f, mi in zip(flat, m)])
    else:
        out = apply_affine_to_points(flat, m)
    out = out.reshape(p.shape)
    result, *_ = convert_to_dst_type(out, points, dtype=getattr(points, "dtype", torch.float32))
    return result


def transform_spacing(spacing, new_to_old) -> torch.Tensor:
    """Spacing of a new pixel grid: the length in mm of one step along each new axis.

    Args:
        spacing: mm/pixel ``(2,)`` of the old grid.
        new_to_old: 2-D homogeneous matrix mapping new pixel indices to old ones.

    Returns:
        float32 ``(2,)``: ``|diag(spacing) @ new_to_old[:2, i]|`` per axis ``i`` (``spacing * old/new`` for a resize).
    """
    sp = torch.as_tensor(spacing, dtype=torch.float64).cpu().reshape(SPATIAL_DIMS)
    m = torch.as_tensor(new_to_old, dtype=torch.float64).cpu()[:SPATIAL_DIMS, :SPATIAL_DIMS]
    return torch.linalg.vector_norm(sp[:, None] * m, dim=0).to(torch.float32)


def landmarks_to_source(points: NdarrayOrTensor, img: MetaTensor) -> NdarrayOrTensor:
    """Map ``points`` (``(N, 2)``, or ``(B, N, 2)`` with a batched image) from ``img``'s pixels to source pixels."""
    return transform_points(points, model_to_source_affine(img))


def _carry(before: torch.Tensor, out, landmarks, spacing):
    """Landmarks and spacing that follow an image whose affine went from ``before`` to that of ``out``."""
    old_to_new = torch.linalg.solve(image_affine(out), before)
    if landmarks is not None:
        landmarks = transform_points(landmarks, old_to_new)
    if spacing is not None:
        new_spacing = transform_spacing(spacing, torch.linalg.inv(old_to_new))
        if isinstance(spacing, (np.ndarray, torch.Tensor)):
            new_spacing = convert_to_dst_type(new_spacing, spacing)[0]
        spacing = new_spacing
    return landmarks, spacing


def _as_meta(img) -> MetaTensor:
    """``img`` as a MetaTensor (identity affine for plain arrays), so MONAI records the geometry change."""
    if not get_track_meta():
        raise RuntimeError(
            "landmark-carrying transforms read the image geometry from MetaTensor affines; "
            "enable meta tracking with monai.data.set_track_meta(True)."
        )
    return img if isinstance(img, MetaTensor) else MetaTensor(torch.as_tensor(img))


def _like_input(out: MetaTensor, img) -> NdarrayOrTensor:
    if isinstance(img, MetaTensor):
        return out
    if isinstance(img, np.ndarray):
        return out.detach().cpu().numpy()
    return out.as_tensor()


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
    - ``pixel_spacing=(sx, sy)``: ``round(size * spacing / pixel_spacing)``, then, if ``spatial_size`` is given,
      centre-padded or cropped to it (landmarks cut off by the crop keep their coordinates; see the mask).

    Interpolation defaults to ``"bilinear"`` with Gaussian anti-aliasing when downsampling (a symmetric filter, so
    no shift): MONAI's default ``"area"`` averages pooling windows that are not centred on the resampled pixel
    centres for non-integer factors, which jitters sub-pixel positions.

    Args:
        spatial_size: output (canvas) size in MONAI order; default :data:`MODEL_SPATIAL_SIZE` ``(576, 736)``,
            i.e. 736 x 576 (H x W) for images loaded as ``(C, x, y)``. May be ``None`` with ``pixel_spacing``.
        pixel_spacing: target mm/pixel ``(2,)`` or a number; needs the spacing at call time.
        keep_aspect: fit inside ``spatial_size`` keeping the physical aspect ratio, and pad.
        mode: interpolation mode of :class:`~monai.transforms.Resize`.
        anti_aliasing: smooth before downsampling (see :class:`~monai.transforms.Resize`).
        anti_aliasing_sigma: see :class:`~monai.transforms.Resize`.
        padding_mode: padding mode of :class:`~monai.transforms.ResizeWithPadOrCrop`.
        dtype: computation dtype of the resampling.
    """

    backend = [TransformBackends.TORCH]

    def __init__(
        self,
        spatial_size: Sequence[int] | None = MODEL_SPATIAL_SIZE,
        pixel_spacing: Sequence[float] | float | None = None,
        keep_aspect: bool = False,
        mode: str = "bilinear",
        anti_aliasing: bool = True,
        anti_aliasing_sigma: Sequence[float] | float | None = None,
        padding_mode: str = "constant",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if spatial_size is None and pixel_spacing is None:
            raise ValueError("give spatial_size, pixel_spacing, or both.")
        if spatial_size is not None:
            if len(spatial_size) != SPATIAL_DIMS or any(int(s) != s or s < 1 for s in spatial_size):
                raise ValueError(f"spatial_size must be 2 positive integers, got {spatial_size!r}.")
            spatial_size = tuple(int(s) for s in spatial_size)
        if keep_aspect and (spatial_size is None or pixel_spacing is not None):
            raise ValueError("keep_aspect needs spatial_size and no pixel_spacing.")
        if pixel_spacing is not None:
            from monai_ceph.transforms.landmarks.array import as_spacing

            pixel_spacing = tuple(as_spacing(pixel_spacing).tolist())
        self.spatial_size = spatial_size
        self.pixel_spacing = pixel_spacing
        self.keep_aspect = keep_aspect
        self.mode = mode
        self.anti_aliasing = anti_aliasing
        self.anti_aliasing_sigma = anti_aliasing_sigma
        self.dtype = dtype
        needs_pad = keep_aspect or (pixel_spacing is not None and spatial_size is not None)
        self.padder = ResizeWithPadOrCrop(spatial_size, mode=padding_mode) if needs_pad else None

    def resize_size(self, img_size: Sequence[int], spacing=None) -> tuple[int, ...]:
        """The size the image is resampled to (before any pad/crop)."""
        n = np.asarray(img_size, dtype=np.float64)
        if self.pixel_spacing is not None:
            if spacing is None:
                raise ValueError("resampling to a pixel_spacing needs the image's spacing (mm/pixel).")
            extent = n * np.asarray(torch.as_tensor(spacing, dtype=torch.float64).cpu())
            return tuple(max(1, int(round(e / p))) for e, p in zip(extent, self.pixel_spacing))
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
        _check_image(img)
        img_t = _as_meta(img)
        record_source_affine(img_t)
        before = image_affine(img_t)
        orig_size = tuple(img_t.peek_pending_shape())
        resizer = Resize(
            self.resize_size(orig_size, spacing),
            mode=self.mode,
            anti_aliasing=self.anti_aliasing,
            anti_aliasing_sigma=self.anti_aliasing_sigma,
            dtype=self.dtype,
        )
        out = resizer(img_t)
        extra_info = {"resize_info": out.applied_operations.pop()}
        if self.padder is not None:
            out = self.padder(out)
            extra_info["pad_info"] = out.applied_operations.pop()
        self.push_transform(out, orig_size=orig_size, extra_info=extra_info)
        landmarks, spacing = _carry(before, out, landmarks, spacing)
        return _like_input(out, img), landmarks, spacing

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
        _check_image(img)
        if randomize:
            self.randomize()
        img_t = _as_meta(img)
        record_source_affine(img_t)
        before = image_affine(img_t)
        out = self.rand_affine(img_t, randomize=False)
        landmarks, spacing = _carry(before, out, landmarks, spacing)
        return _like_input(out, img), landmarks, spacing

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
