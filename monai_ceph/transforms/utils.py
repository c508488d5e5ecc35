"""Geometry helpers that the landmark, spatial and intensity transforms share (so none imports another's).

Conventions (see the package's design notes): a 2-D image is channel-first ``(C, dim0, dim1)`` as MONAI loads
it (for PNG, JPEG and DICOM dim0 is x, dim1 is y); landmarks are ``(N, 2)`` in the same order, in pixel-index
units (integer = pixel centre), NaN rows for missing ones; spacing is mm/pixel ``(2,)`` in the same order.

How landmarks follow the pixels: every MONAI spatial transform updates the image ``MetaTensor``'s ``affine``
(pixel -> world) to ``affine @ A``, where ``A`` maps an output pixel index to the input pixel index it samples.
So for affines ``before`` and ``after`` a transform, ``inv(after) @ before`` maps old pixel indices to new ones
(:func:`carry_landmarks`), and ``inv(original) @ current`` maps current pixel indices to the source pixels the
image was loaded with (:func:`model_to_source_affine`). The source affine is kept under MONAI's
``"original_affine"`` meta key (``MetaKeys.ORIGINAL_AFFINE``), recorded by :func:`record_source_affine`.

MONAI's own helpers do the work: :func:`monai.data.utils.to_affine_nd` (any affine to 2-D homogeneous),
:func:`monai.data.utils.affine_to_spacing` (pixel size of a grid), :func:`monai.transforms.utils.apply_affine_to_points`
and :func:`monai.utils.convert_to_dst_type` (the caller's array type back).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from monai.config.type_definitions import NdarrayOrTensor
from monai.data.meta_obj import get_track_meta
from monai.data.meta_tensor import MetaTensor
from monai.data.utils import affine_to_spacing, to_affine_nd
from monai.transforms.utils import apply_affine_to_points
from monai.utils import MetaKeys
from monai.utils.type_conversion import convert_to_dst_type

from monai_ceph.data.readers import check_spacing

__all__ = [
    "MODEL_SPATIAL_SIZE",
    "SPATIAL_DIMS",
    "check_image",
    "convert_like",
    "as_meta",
    "as_spacing",
    "landmark_visibility",
    "image_affine",
    "record_source_affine",
    "model_to_source_affine",
    "transform_points",
    "transform_spacing",
    "landmarks_to_source",
    "carry_landmarks",
]

MODEL_SPATIAL_SIZE = (576, 736)
"""The CephRes-MHNet paper's model input, 736 x 576 (height x width), in MONAI's ``(dim0 = x, dim1 = y)`` order: the
default of :class:`~monai_ceph.transforms.ResizeWithLandmarks` and of the bundle's ``spatial_size``."""

SPATIAL_DIMS = 2


def check_image(img, owner: str = "") -> None:
    """Raise ``ValueError`` unless ``img`` is a channel-first 2-D image ``(C, dim0, dim1)``."""
    if getattr(img, "ndim", None) != SPATIAL_DIMS + 1:
        raise ValueError(
            f"{owner + ': ' if owner else ''}expected a 2-D channel-first image (C, dim0, dim1), "
            f"got shape {tuple(getattr(img, 'shape', ()))}."
        )


def convert_like(out: torch.Tensor, like: NdarrayOrTensor, keep_meta: bool = True) -> NdarrayOrTensor:
    """``out`` as ``like``'s type with ``out``'s dtype (:func:`monai.utils.convert_to_dst_type`).

    numpy stays numpy; a tensor stays a tensor on ``like``'s device; a ``MetaTensor`` ``like`` gives a
    ``MetaTensor`` (``out``'s own metadata if it has some, else ``like``'s) only with ``keep_meta`` and while MONAI
    tracks metadata, else a plain tensor (e.g. landmarks decoded from a ``MetaTensor`` heatmap).
    """
    if isinstance(like, MetaTensor) and not (keep_meta and get_track_meta()):
        like = like.as_tensor()
    result, *_ = convert_to_dst_type(out, dst=like, dtype=out.dtype)
    return result


def as_meta(img) -> MetaTensor:
    """``img`` as a MetaTensor (identity affine for plain arrays), so MONAI records the geometry change."""
    if not get_track_meta():
        raise RuntimeError(
            "landmark-carrying transforms read the image geometry from MetaTensor affines; "
            "enable meta tracking with monai.data.set_track_meta(True)."
        )
    return img if isinstance(img, MetaTensor) else MetaTensor(torch.as_tensor(img))


def offset_bound_mm(value, name: str) -> np.ndarray:
    """A largest random offset in mm, one number or one per dim, as a ``(2,)`` float64 array (finite, >= 0)."""
    bound = np.broadcast_to(np.asarray(value, dtype=np.float64), (SPATIAL_DIMS,))
    if not np.all(np.isfinite(bound)) or np.any(bound < 0):
        raise ValueError(f"{name} must be finite numbers >= 0 (mm), got {value!r}.")
    return bound.copy()


def as_spacing(spacing, spatial_dims: int = SPATIAL_DIMS, plausible=None) -> torch.Tensor:
    """Validate a pixel spacing (mm/pixel) and return it as a float32 tensor ``(spatial_dims,)``.

    A single number means isotropic spacing. Raises ``ValueError`` (:class:`~monai_ceph.data.SpacingError`) for a
    wrong length, text, a non-numeric value, or a value that is not finite and > 0; the checks are
    :func:`monai_ceph.data.check_spacing`'s. ``plausible``: the range a source image's spacing must lie in
    (:data:`monai_ceph.data.PLAUSIBLE_SPACING_MM` where a sample's spacing enters, as in
    :class:`~monai_ceph.transforms.EnsureLandmarksd`); ``None`` (default) for a derived spacing (model input,
    patch), which may be coarser than any radiograph's.
    """
    if isinstance(spacing, (str, bytes)) or spacing is None:
        raise ValueError(f"spacing must be {spatial_dims} positive numbers (mm/pixel), got {spacing!r}.")
    if isinstance(spacing, torch.Tensor):
        if spacing.dtype == torch.bool or spacing.is_complex():
            raise ValueError(f"spacing must be {spatial_dims} real numbers (mm/pixel), got {spacing!r}.")
        spacing = spacing.detach().cpu().numpy()
    return torch.as_tensor(check_spacing(spacing, "spacing", spatial_dims, plausible), dtype=torch.float32)


def landmark_visibility(landmarks: NdarrayOrTensor, spatial_size: Sequence[int]) -> NdarrayOrTensor:
    """Visibility ``(N,)`` float32: 1 where a landmark is finite and inside the image, else 0.

    Inside means ``-0.5 <= p < size - 0.5`` per dim (the area covered by the pixels, integer = pixel centre).
    Returns the input's type (a plain tensor for a ``MetaTensor``).
    """
    p = torch.as_tensor(landmarks, dtype=torch.float64)
    size = torch.as_tensor([float(s) for s in spatial_size], dtype=torch.float64, device=p.device)
    finite = torch.isfinite(p).all(-1)
    inside = ((p >= -0.5) & (p < size - 0.5)).all(-1)
    return convert_like((finite & inside).to(torch.float32), landmarks, keep_meta=False)


def _homogeneous(affine) -> torch.Tensor:
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
            "apply EnsureLandmarksd or ResizeWithLandmarksd (which record it) before changing the image's geometry."
        )
    return torch.linalg.solve(_homogeneous(source), _homogeneous(img.affine))


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
        float32 ``(2,)``: MONAI's :func:`~monai.data.utils.affine_to_spacing` of ``diag(spacing) @ new_to_old``,
        i.e. ``|diag(spacing) @ new_to_old[:2, i]|`` per axis ``i`` (``spacing * old/new`` for a resize).
    """
    sp = torch.as_tensor(spacing, dtype=torch.float64).cpu().reshape(SPATIAL_DIMS)
    m = torch.as_tensor(new_to_old, dtype=torch.float64).cpu()
    scaled = torch.diag(torch.cat([sp, sp.new_ones(1)])) @ _homogeneous(m)
    return affine_to_spacing(scaled, r=SPATIAL_DIMS, dtype=torch.float64, suppress_zeros=False).to(torch.float32)


def landmarks_to_source(landmarks: NdarrayOrTensor, img: MetaTensor) -> NdarrayOrTensor:
    """Map ``landmarks`` (``(N, 2)``, or ``(B, N, 2)`` with a batched image) from ``img``'s pixels to source pixels."""
    return transform_points(landmarks, model_to_source_affine(img))


def carry_landmarks(before: torch.Tensor, out, landmarks, spacing):
    """Landmarks and spacing that follow an image whose affine went from ``before`` to that of ``out``.

    Either may be ``None`` (returned as ``None``); each comes back in its own type.
    """
    old_to_new = torch.linalg.solve(image_affine(out), before)
    if landmarks is not None:
        landmarks = transform_points(landmarks, old_to_new)
    if spacing is not None:
        new_spacing = transform_spacing(spacing, torch.linalg.inv(old_to_new))
        if isinstance(spacing, (np.ndarray, torch.Tensor)):
            new_spacing = convert_to_dst_type(new_spacing, spacing)[0]
        spacing = new_spacing
    return landmarks, spacing
