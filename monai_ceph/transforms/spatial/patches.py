"""Patches around landmarks at a local spacing, carrying the landmarks and their patch -> image mapping exactly.

A patch is ``round(patch_size / patch_spacing)`` pixels per dim (both in mm, so it covers the same anatomy on any
scanner). Its pixel ``i`` samples the image at

    ``p = origin + scale * i``,   ``scale = patch_spacing / image_spacing``,   ``origin = centre - scale * (n - 1) / 2``

(per dim, pixel-index units, integer = pixel centre), the homogeneous matrix ``patch_to_image`` of the module
:mod:`monai_ceph.transforms.spatial.array`. With ``align_to_grid`` (default) the origin is rounded to a whole image
pixel, so a patch at the image's own spacing is a plain crop (no interpolation) centred within half a pixel of
the requested point; the landmarks follow exactly either way. Outside the image the patch is padded
(``padding_mode``); a patch larger than the image is padded, never an error. A patch whose centre is not finite
is all zeros, its landmarks are NaN and its matrix has a NaN translation, so anything mapped back stays NaN.

A ``MetaTensor`` patch gets the affine ``image.affine @ patch_to_image`` and keeps the image's meta (including the
source affine), so :class:`~monai_ceph.transforms.LandmarksToSourced` maps patch predictions to source pixels the
same way it maps model predictions. Sampling is bilinear at pixel centres (``torch.nn.functional.grid_sample``,
``align_corners=False``); downsampling is not anti-aliased, so resample the image to about the patch spacing first
(:class:`~monai_ceph.transforms.ResizeWithLandmarksd` with ``target_spacing``).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from monai.config import KeysCollection
from monai.config.type_definitions import NdarrayOrTensor
from monai.data.meta_tensor import MetaTensor
from monai.transforms.transform import MapTransform, RandomizableTransform, Transform
from monai.utils import TransformBackends, ensure_tuple
from monai.utils.type_conversion import convert_to_dst_type

from monai_ceph.transforms.landmarks.array import as_spacing, landmark_visibility
from monai_ceph.transforms.landmarks.dictionary import describe_item
from monai_ceph.transforms.utils import SPATIAL_DIMS, check_image, offset_bound_mm, transform_points

__all__ = [
    "LandmarkPatches",
    "LandmarkPatchesd",
    "LandmarkPatchesD",
    "LandmarkPatchesDict",
    "RandLandmarkPatchd",
    "RandLandmarkPatchD",
    "RandLandmarkPatchDict",
    "landmarks_in_patches",
    "sample_patches",
]


def _pair(value, name: str) -> tuple[float, float]:
    v = np.broadcast_to(np.asarray(value, dtype=np.float64), (SPATIAL_DIMS,))
    if not np.all(np.isfinite(v)) or np.any(v <= 0):
        raise ValueError(f"{name} must be {SPATIAL_DIMS} positive numbers (mm), got {value!r}.")
    return float(v[0]), float(v[1])


def sample_patches(
    image: torch.Tensor, patch_to_image: torch.Tensor, shape: Sequence[int], mode="bilinear", padding_mode="zeros"
) -> torch.Tensor:
    """Resample ``image`` on ``M`` patch grids of ``shape``: ``(M, C, *shape)``.

    ``image`` is one image ``(C, dim0, dim1)`` shared by all patches, or ``M`` images ``(M, C, dim0, dim1)``, one
    per patch. ``patch_to_image`` ``(M, 3, 3)`` maps patch pixel indices to image pixel indices; rows with a
    non-finite matrix give all-zero patches. Bilinear at pixel centres (``align_corners=False``).
    """
    img = torch.as_tensor(image).as_subclass(torch.Tensor)
    dtype = img.dtype if torch.is_floating_point(img) else torch.float32
    m = torch.as_tensor(patch_to_image, dtype=torch.float64, device=img.device)
    finite = torch.isfinite(m).flatten(1).all(1)
    m = torch.where(finite[:, None, None], m, torch.eye(3, dtype=m.dtype, device=m.device))
    i0 = torch.arange(shape[0], dtype=torch.float64, device=img.device)[:, None]
    i1 = torch.arange(shape[1], dtype=torch.float64, device=img.device)[None]
    p0 = m[:, 0, 0, None, None] * i0 + m[:, 0, 1, None, None] * i1 + m[:, 0, 2, None, None]
    p1 = m[:, 1, 0, None, None] * i0 + m[:, 1, 1, None, None] * i1 + m[:, 1, 2, None, None]
    size = img.shape[-2:]
    # grid_sample: input (N, C, H=dim0, W=dim1), grid[..., 0] indexes W (dim1), grid[..., 1] indexes H (dim0)
    grid = torch.stack([(2 * p1 + 1) / size[1] - 1, (2 * p0 + 1) / size[0] - 1], dim=-1).to(dtype)
    src = img.to(dtype) if img.ndim == SPATIAL_DIMS + 2 else img.to(dtype)[None].expand(len(m), *img.shape)
    out = F.grid_sample(src, grid, mode=mode, padding_mode=padding_mode, align_corners=False)
    return out * finite[:, None, None, None].to(dtype)


def landmarks_in_patches(landmarks: NdarrayOrTensor, patch_to_image: torch.Tensor, spatial_size: Sequence[int]):
    """``(N, 2)`` image-pixel landmarks in the pixels of each of ``M`` patches: ``(M, N, 2)`` of the input's type.

    Points that are not finite or fall outside the patch (``-0.5 <= q < size - 0.5``) are NaN.
    """
    m = torch.as_tensor(patch_to_image, dtype=torch.float64)
    inverse = torch.linalg.inv(torch.where(torch.isfinite(m), m, torch.nan))
    pts = torch.as_tensor(landmarks, dtype=torch.float64).detach().cpu()
    local = torch.stack([transform_points(pts, mi) for mi in inverse]) if len(m) else pts[None][:0]
    inside = landmark_visibility(local, spatial_size).bool()
    local = torch.where(inside[..., None], local, torch.nan)
    return convert_to_dst_type(local, landmarks, dtype=getattr(landmarks, "dtype", torch.float32))[0]


class LandmarkPatches(Transform):
    """Crop a patch of a fixed physical size at a chosen spacing around each of several points.

    See the module notes for the geometry. Numpy and torch inputs give outputs of the same type; a ``MetaTensor``
    image gives ``MetaTensor`` patches whose affine is ``image.affine @ patch_to_image`` with the image's meta.

    Args:
        patch_size: physical size of a patch in mm, one number or one per dim.
        patch_spacing: mm per patch pixel, one number or one per dim.
        align_to_grid: round each patch origin to a whole image pixel (a plain crop at the image's own spacing).
        mode: interpolation mode of ``grid_sample`` (``"bilinear"``, ``"nearest"``, ``"bicubic"``).
        padding_mode: ``"zeros"``, ``"border"`` or ``"reflection"``.

    Example::

        patches = LandmarkPatches(patch_size=19.2, patch_spacing=0.3)   # 64 x 64 pixels
        crops, local_landmarks, patch_to_image = patches(image, centres, spacing=(0.3, 0.3), landmarks=gt)
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        patch_size: Sequence[float] | float,
        patch_spacing: Sequence[float] | float,
        align_to_grid: bool = True,
        mode: str = "bilinear",
        padding_mode: str = "zeros",
    ) -> None:
        self.patch_size = _pair(patch_size, "patch_size")
        self.patch_spacing = _pair(patch_spacing, "patch_spacing")
        self.spatial_size = tuple(max(1, int(round(s / p))) for s, p in zip(self.patch_size, self.patch_spacing))
        self.align_to_grid = align_to_grid
        self.mode = mode
        self.padding_mode = padding_mode

    def patch_to_image(self, centres: NdarrayOrTensor, spacing) -> torch.Tensor:
        """``(M, 3, 3)`` float64 matrices mapping patch pixels to image pixels for ``(M, 2)`` image-pixel centres."""
        c = torch.as_tensor(centres, dtype=torch.float64).detach().cpu()
        if c.ndim != 2 or c.shape[-1] != SPATIAL_DIMS:
            raise ValueError(f"centres must have shape (M, 2), got {tuple(c.shape)}.")
        scale = torch.as_tensor(self.patch_spacing, dtype=torch.float64) / as_spacing(spacing).to(torch.float64)
        half = (torch.as_tensor(self.spatial_size, dtype=torch.float64) - 1) / 2
        origin = c - scale * half
        if self.align_to_grid:
            origin = torch.round(origin)
        m = torch.zeros(len(c), 3, 3, dtype=torch.float64)
        m[:, 0, 0], m[:, 1, 1], m[:, 2, 2] = scale[0], scale[1], 1.0
        m[:, :2, 2] = origin
        return m

    def __call__(self, img: NdarrayOrTensor, centres: NdarrayOrTensor, spacing, landmarks=None):
        """
        Args:
            img: channel-first 2-D image ``(C, dim0, dim1)``.
            centres: ``(M, 2)`` patch centres in ``img``'s pixels (NaN rows: empty patches).
            spacing: mm/pixel ``(2,)`` of ``img``.
            landmarks: optional ``(N, 2)`` in ``img``'s pixels, carried into every patch.

        Returns:
            ``(patches, patch_landmarks, patch_to_image)``: a list of ``M`` patches ``(C, *spatial_size)`` of
            ``img``'s type; ``(M, N, 2)`` landmarks in patch pixels of ``landmarks``' type, NaN where not finite or
            outside the patch (``None`` without landmarks); the ``(M, 3, 3)`` float64 patch -> image matrices.
        """
        check_image(img)
        matrices = self.patch_to_image(centres, spacing)
        data = torch.as_tensor(img)
        patches = sample_patches(data, matrices, self.spatial_size, self.mode, self.padding_mode)
        out = [self._like(p, img, m) for p, m in zip(patches, matrices)]
        carried = None if landmarks is None else landmarks_in_patches(landmarks, matrices, self.spatial_size)
        return out, carried, matrices

    def _like(self, patch: torch.Tensor, img, matrix: torch.Tensor):
        if isinstance(img, MetaTensor):
            affine = img.affine.to(torch.float64).clone()
            embedded = torch.eye(affine.shape[-1], dtype=torch.float64)
            embedded[:SPATIAL_DIMS, :SPATIAL_DIMS] = matrix[:SPATIAL_DIMS, :SPATIAL_DIMS]
            embedded[:SPATIAL_DIMS, -1] = matrix[:SPATIAL_DIMS, -1]
            meta = dict(img.meta)
            meta["affine"] = affine @ embedded
            meta["spatial_shape"] = np.asarray(self.spatial_size)
            return MetaTensor(patch.to(img.dtype), meta=meta)
        result, *_ = convert_to_dst_type(patch, img)
        return result


class LandmarkPatchesd(MapTransform):
    """Dictionary-based :class:`LandmarkPatches`: one item per patch, for a list of landmarks.

    Returns a list of dictionaries (as MONAI's ``RandCropByPosNegLabeld``; a ``DataLoader`` flattens it), one per
    requested landmark ``k``, holding: the image keys cropped around the centre of landmark ``k`` (read from
    ``centres_key``), the landmark keys in patch pixels (NaN outside the patch), the visibility masks, the patch
    spacing in ``spacing_key``, ``k`` in ``index_key`` and the patch -> image matrix in ``affine_key``. Other keys
    are shared.

    Args:
        keys: image keys, cropped alike (the first one's geometry is used).
        patch_size, patch_spacing, align_to_grid, mode, padding_mode: as :class:`LandmarkPatches`.
        landmark_keys: ``(N, 2)`` keys carried into the patches.
        centres_key: ``(N, 2)`` key giving the patch centres (e.g. the ground truth, or coarse predictions).
        indices: the landmarks to crop around (default: all rows of ``centres_key``).
        spacing_key: the image spacing (mm/pixel), replaced by the patch spacing.
        mask_keys: visibility outputs aligned with ``landmark_keys``.
        index_key: receives the landmark index of the patch.
        affine_key: receives the ``(3, 3)`` patch -> image matrix (``None``: not written).
        allow_missing_keys: don't raise if an image key is missing.
    """

    backend = LandmarkPatches.backend

    def __init__(
        self,
        keys: KeysCollection = "image",
        patch_size: Sequence[float] | float = 19.2,
        patch_spacing: Sequence[float] | float = 0.3,
        landmark_keys: KeysCollection | None = "landmarks",
        centres_key: str = "landmarks",
        indices: Sequence[int] | None = None,
        spacing_key: str = "spacing",
        mask_keys: KeysCollection | None = "landmark_mask",
        index_key: str = "patch_landmark",
        affine_key: str | None = "patch_affine",
        align_to_grid: bool = True,
        mode: str = "bilinear",
        padding_mode: str = "zeros",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.patcher = LandmarkPatches(patch_size, patch_spacing, align_to_grid, mode, padding_mode)
        self.landmark_keys = ensure_tuple(landmark_keys) if landmark_keys is not None else ()
        self.mask_keys = ensure_tuple(mask_keys) if mask_keys is not None else (None,) * len(self.landmark_keys)
        if len(self.mask_keys) != len(self.landmark_keys):
            raise ValueError(f"mask_keys must align with landmark_keys {self.landmark_keys}, got {self.mask_keys}.")
        self.centres_key = centres_key
        self.indices = None if indices is None else [int(i) for i in indices]
        self.spacing_key = spacing_key
        self.index_key = index_key
        self.affine_key = affine_key

    def _centres(self, d: Mapping) -> torch.Tensor:
        if self.centres_key not in d:
            raise KeyError(f"{describe_item(d)}: no patch centres: key {self.centres_key!r} is missing.")
        return torch.as_tensor(d[self.centres_key], dtype=torch.float64).detach().cpu()

    def _spacing(self, d: Mapping):
        if self.spacing_key not in d:
            raise KeyError(f"{describe_item(d)}: patches in mm need the spacing: key {self.spacing_key!r} is missing.")
        return d[self.spacing_key]

    def patches(self, d: Mapping, centres: torch.Tensor, indices: Sequence[int]) -> list[dict]:
        """One output item per ``(centre, landmark index)`` pair (centres in the first image key's pixels)."""
        spacing = self._spacing(d)
        items = [dict(d) for _ in indices]
        matrices = None
        for key in self.key_iterator(d):
            patches, _, matrices = self.patcher(d[key], centres, spacing)
            for item, patch in zip(items, patches):
                item[key] = patch
        if matrices is None:
            return items
        for key, mask_key in zip(self.landmark_keys, self.mask_keys):
            if key not in d:
                continue
            local = landmarks_in_patches(d[key], matrices, self.patcher.spatial_size)
            for item, points in zip(items, local):
                item[key] = points
                if mask_key is not None:
                    item[mask_key] = landmark_visibility(points, self.patcher.spatial_size)
        patch_spacing = torch.as_tensor(self.patcher.patch_spacing, dtype=torch.float32)
        for item, k, m in zip(items, indices, matrices):
            item[self.spacing_key] = convert_to_dst_type(patch_spacing, spacing)[0] if isinstance(
                spacing, (np.ndarray, torch.Tensor)) else patch_spacing
            item[self.index_key] = int(k)
            if self.affine_key is not None:
                item[self.affine_key] = m
        return items

    def __call__(self, data: Mapping[Hashable, object]) -> list[dict[Hashable, object]]:
        d = dict(data)
        centres = self._centres(d)
        indices = list(range(len(centres))) if self.indices is None else self.indices
        if any(i < 0 or i >= len(centres) for i in indices):
            raise IndexError(f"{describe_item(d)}: landmark indices {indices} out of range for {len(centres)} centres.")
        return self.patches(d, centres[indices], indices)


class RandLandmarkPatchd(RandomizableTransform, LandmarkPatchesd):
    """Sample ``num_samples`` training patches per item, each around a random annotated landmark plus a jitter.

    For each sample a landmark ``k`` is drawn uniformly among the finite rows of ``centres_key``, and the patch is
    centred on it plus a uniform jitter in ``[-jitter, jitter]`` mm per dim (so the landmark is not always in the
    centre). Every patch carries *all* landmarks that fall inside it (NaN outside), so all heatmaps are targets.
    Returns one dictionary when ``num_samples == 1``, else a list (flattened by the ``DataLoader``).

    Args:
        keys, patch_size, patch_spacing, landmark_keys, centres_key, spacing_key, mask_keys, index_key, affine_key,
        align_to_grid, mode, padding_mode, allow_missing_keys: as :class:`LandmarkPatchesd`.
        num_samples: patches per item.
        jitter: maximum offset of the centre from the landmark, mm, one number or one per dim (0: centred).
    """

    def __init__(
        self,
        keys: KeysCollection = "image",
        patch_size: Sequence[float] | float = 19.2,
        patch_spacing: Sequence[float] | float = 0.3,
        num_samples: int = 1,
        jitter: Sequence[float] | float = 4.0,
        landmark_keys: KeysCollection | None = "landmarks",
        centres_key: str = "landmarks",
        spacing_key: str = "spacing",
        mask_keys: KeysCollection | None = "landmark_mask",
        index_key: str = "patch_landmark",
        affine_key: str | None = "patch_affine",
        align_to_grid: bool = True,
        mode: str = "bilinear",
        padding_mode: str = "zeros",
        allow_missing_keys: bool = False,
    ) -> None:
        RandomizableTransform.__init__(self, prob=1.0)
        LandmarkPatchesd.__init__(
            self,
            keys,
            patch_size=patch_size,
            patch_spacing=patch_spacing,
            landmark_keys=landmark_keys,
            centres_key=centres_key,
            spacing_key=spacing_key,
            mask_keys=mask_keys,
            index_key=index_key,
            affine_key=affine_key,
            align_to_grid=align_to_grid,
            mode=mode,
            padding_mode=padding_mode,
            allow_missing_keys=allow_missing_keys,
        )
        if int(num_samples) != num_samples or num_samples < 1:
            raise ValueError(f"num_samples must be an integer >= 1, got {num_samples!r}.")
        self.num_samples = int(num_samples)
        self.jitter = offset_bound_mm(jitter, "jitter")
        self._indices: np.ndarray = np.zeros(0, dtype=int)
        self._offsets_mm: np.ndarray = np.zeros((0, SPATIAL_DIMS))

    def randomize(self, valid: np.ndarray) -> None:
        """Draw the landmarks (among the ``valid`` indices) and the jitter in mm of each sample."""
        self._indices = self.R.choice(valid, size=self.num_samples, replace=True)
        self._offsets_mm = self.R.uniform(-1.0, 1.0, size=(self.num_samples, SPATIAL_DIMS)) * self.jitter

    def __call__(self, data: Mapping[Hashable, object]):
        d = dict(data)
        centres = self._centres(d)
        valid = np.flatnonzero(torch.isfinite(centres).all(-1).numpy())
        if len(valid) == 0:
            raise ValueError(
                f"{describe_item(d)}: no finite landmark in {self.centres_key!r} to sample a patch around."
            )
        self.randomize(valid)
        spacing = as_spacing(self._spacing(d)).to(torch.float64)
        jittered = centres[self._indices] + torch.as_tensor(self._offsets_mm) / spacing
        items = self.patches(d, jittered, self._indices.tolist())
        return items[0] if self.num_samples == 1 else items


LandmarkPatchesD = LandmarkPatchesDict = LandmarkPatchesd
RandLandmarkPatchD = RandLandmarkPatchDict = RandLandmarkPatchd
