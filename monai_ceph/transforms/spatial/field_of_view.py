"""Field of view and physical scale: transforms that change what part of the patient the model sees, and at what size.

- :class:`PhysicalField` (``PhysicalFieldd``): the physical-scale input. Every image is resampled to one mm/pixel
  and centre-padded or cropped to one physical field (``field_mm``), so a skull has the same size in the model
  input whatever the scanner's pixel spacing or field of view. It is :class:`ResizeWithLandmarks` with
  ``pixel_spacing`` and ``spatial_size``, plus the choice of the spacing from the field and a check that the
  image has a usable spacing; its inverse (``LandmarksToSourced``) is exact like the resize's.
- :class:`FieldOfView` / :class:`RandFieldOfView` (``...d``): take a box of the image (which may reach outside
  it: the outside is filled, like a larger detector's empty border) and resample it to the output size. A box
  smaller than the image is a zoom-in with a crop, a larger one a zoom-out, an off-centre one a shift: another
  site's field of view and magnification. The box is axis-aligned and resampled with anti-aliasing (rotations
  stay with :class:`RandAffineWithLandmarks`).

Landmarks are carried exactly through the image ``MetaTensor``'s affine change (see
:mod:`monai_ceph.transforms.spatial.array`); a landmark that the box cuts off keeps its exact coordinates outside
the output image and gets visibility 0 (``landmark_mask``), or NaN with ``cut_off="nan"``; it is never clamped.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch

from monai.config import KeysCollection
from monai.config.type_definitions import NdarrayOrTensor
from monai.data.meta_tensor import MetaTensor
from monai.transforms.croppad.array import BorderPad, SpatialCrop
from monai.transforms.spatial.array import Resize
from monai.transforms.transform import MapTransform, RandomizableTransform, Transform
from monai.utils import TransformBackends

from monai_ceph.data.readers import SpacingError, check_spacing
from monai_ceph.transforms.landmarks.array import landmark_visibility
from monai_ceph.transforms.spatial.array import ResizeWithLandmarks
from monai_ceph.transforms.utils import (
    MODEL_SPATIAL_SIZE,
    SPATIAL_DIMS,
    as_meta,
    carry_landmarks,
    check_image,
    convert_like,
    image_affine,
    record_source_affine,
)
from monai_ceph.transforms.spatial.dictionary import ResizeWithLandmarksd, _LandmarkCompanions

__all__ = [
    "PhysicalField",
    "PhysicalFieldd",
    "PhysicalFieldD",
    "PhysicalFieldDict",
    "physical_pixel_spacing",
    "FieldOfView",
    "FieldOfViewd",
    "FieldOfViewD",
    "FieldOfViewDict",
    "RandFieldOfView",
    "RandFieldOfViewd",
    "RandFieldOfViewD",
    "RandFieldOfViewDict",
]

CUT_OFF = ("flag", "nan")


def physical_pixel_spacing(spatial_size: Sequence[int], field_mm: Sequence[float] | float) -> float:
    """The square pixel (mm/pixel) at which ``spatial_size`` pixels cover at least ``field_mm`` in every dim."""
    field = check_spacing(field_mm, "field_mm", len(spatial_size), plausible=None)  # a length, not a spacing
    return float(max(f / s for f, s in zip(field, spatial_size)))


def _source_name(img) -> str:
    name = img.meta.get("filename_or_obj") if isinstance(img, MetaTensor) else None
    return f"image {name}" if name else "the image"


class PhysicalField(ResizeWithLandmarks):
    """Resample to a fixed mm/pixel and centre pad/crop to a fixed physical field (the physical-scale input).

    The output is ``spatial_size`` pixels of ``pixel_spacing`` mm, i.e. a field of ``spatial_size * pixel_spacing``
    mm centred on the image centre. Give the pixel spacing directly, or a physical field ``field_mm`` that must fit:
    the spacing is then the square pixel :func:`physical_pixel_spacing` ``(spatial_size, field_mm)``. Images whose
    field is larger are centre-cropped (landmarks cut off keep their coordinates, visibility 0), smaller ones are
    padded with ``padding_mode``.

    The image must come with its pixel spacing; without a usable one the call raises a ``ValueError`` that names
    the image and says to pass the spacing or to use the fixed-size input (:class:`ResizeWithLandmarks`).

    Args:
        spatial_size: output size in MONAI order (default :data:`MODEL_SPATIAL_SIZE`).
        pixel_spacing: output mm/pixel, a number or ``(sx, sy)``; exclusive with ``field_mm``.
        field_mm: the physical field (mm, a number or ``(fx, fy)``) the output must cover.
        mode, anti_aliasing, anti_aliasing_sigma, padding_mode, dtype: as :class:`ResizeWithLandmarks`.
    """

    def __init__(
        self,
        spatial_size: Sequence[int] = MODEL_SPATIAL_SIZE,
        pixel_spacing: Sequence[float] | float | None = None,
        field_mm: Sequence[float] | float | None = None,
        mode: str = "bilinear",
        anti_aliasing: bool = True,
        anti_aliasing_sigma: Sequence[float] | float | None = None,
        padding_mode: str = "constant",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if spatial_size is None:
            raise ValueError("the physical-scale input needs spatial_size (the model input size).")
        if (pixel_spacing is None) == (field_mm is None):
            raise ValueError(f"give exactly one of pixel_spacing and field_mm, got {pixel_spacing!r}, {field_mm!r}.")
        if field_mm is not None:
            pixel_spacing = physical_pixel_spacing(spatial_size, field_mm)
        super().__init__(
            spatial_size=spatial_size,
            target_spacing=pixel_spacing,
            mode=mode,
            anti_aliasing=anti_aliasing,
            anti_aliasing_sigma=anti_aliasing_sigma,
            padding_mode=padding_mode,
            dtype=dtype,
        )

    @property
    def field_mm(self) -> tuple[float, ...]:
        """The physical field (mm) of the output, per dim."""
        return tuple(s * p for s, p in zip(self.spatial_size, self.target_spacing))  # type: ignore[arg-type]

    def check_spacing(self, img, spacing) -> np.ndarray:
        """``spacing`` as float64 ``(2,)``, or a ``ValueError`` naming the image and the way out."""
        hint = (
            "the physical-scale input needs the image's pixel spacing (mm/pixel): pass it (the datalist item's "
            "'spacing', --pixel_spacing for a folder of JPEG/PNG images; DICOM takes it from its tags), or use the "
            "fixed-size input (configs/fixed_size.json, i.e. ResizeWithLandmarksd)."
        )
        if spacing is None:
            raise ValueError(f"{_source_name(img)} has no pixel spacing: {hint}")
        if isinstance(spacing, (str, bytes)):
            raise ValueError(f"{_source_name(img)}: pixel spacing {spacing!r} is not numeric: {hint}")
        if isinstance(spacing, torch.Tensor):
            spacing = spacing.detach().cpu().numpy()
        try:
            return check_spacing(spacing, _source_name(img), SPATIAL_DIMS)
        except SpacingError as e:
            raise ValueError(f"{e} {hint}") from None

    def __call__(self, img: NdarrayOrTensor, landmarks: NdarrayOrTensor | None = None, spacing=None):
        """As :meth:`ResizeWithLandmarks.__call__`; ``spacing`` (mm/pixel of ``img``) is required."""
        self.check_spacing(img, spacing)
        return super().__call__(img, landmarks, spacing)


class PhysicalFieldd(ResizeWithLandmarksd):
    """Dictionary-based :class:`PhysicalField`: the physical-scale input of the bundle (its default ``resize``).

    Reads the sample's spacing from ``spacing_key`` (required); the landmarks, spacing and visibility masks follow
    the first image key as in :class:`~monai_ceph.transforms.ResizeWithLandmarksd`, and so does ``inverse``.

    Args:
        keys, landmark_keys, spacing_key, mask_keys, mode, allow_missing_keys: as ``ResizeWithLandmarksd``.
        spatial_size, pixel_spacing, field_mm, anti_aliasing, anti_aliasing_sigma, padding_mode, dtype: as
            :class:`PhysicalField`.
    """

    def __init__(
        self,
        keys: KeysCollection = "image",
        landmark_keys: KeysCollection | None = "landmarks",
        spacing_key: str = "spacing",
        mask_keys: KeysCollection | None = "landmark_mask",
        spatial_size: Sequence[int] = MODEL_SPATIAL_SIZE,
        pixel_spacing: Sequence[float] | float | None = None,
        field_mm: Sequence[float] | float | None = None,
        mode: Sequence[str] | str = "bilinear",
        anti_aliasing: bool = True,
        anti_aliasing_sigma: Sequence[float] | float | None = None,
        padding_mode: str = "constant",
        dtype: torch.dtype = torch.float32,
        allow_missing_keys: bool = False,
    ) -> None:
        if spacing_key is None:
            raise ValueError("the physical-scale input reads the pixel spacing: spacing_key cannot be None.")
        self.field = PhysicalField(spatial_size, pixel_spacing, field_mm)  # the output geometry and spacing check
        super().__init__(
            keys,
            landmark_keys=landmark_keys,
            spacing_key=spacing_key,
            mask_keys=mask_keys,
            spatial_size=spatial_size,
            target_spacing=self.field.target_spacing,
            mode=mode,
            anti_aliasing=anti_aliasing,
            anti_aliasing_sigma=anti_aliasing_sigma,
            padding_mode=padding_mode,
            dtype=dtype,
            allow_missing_keys=allow_missing_keys,
        )

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        first_key = self.first_key(data)
        if first_key != ():
            self.field.check_spacing(data[first_key], self.companions.spacing(data))
        return super().__call__(data)


def _check_cut_off(cut_off: str) -> str:
    if cut_off not in CUT_OFF:
        raise ValueError(f"cut_off must be one of {CUT_OFF}, got {cut_off!r}.")
    return cut_off


def _mark_cut_off(landmarks, spatial_size, cut_off: str):
    """Landmarks outside ``spatial_size`` set to NaN for ``cut_off="nan"``; unchanged for ``"flag"``."""
    if landmarks is None or cut_off == "flag":
        return landmarks
    outside = landmark_visibility(landmarks, spatial_size) == 0
    out = landmarks.clone() if isinstance(landmarks, torch.Tensor) else np.array(landmarks, copy=True)
    out[outside] = np.nan
    return out


class FieldOfView(Transform):
    """Resample the box ``[box_start, box_end)`` of an image (pixel edges, may reach outside it) to ``spatial_size``.

    The box is cropped (:class:`~monai.transforms.SpatialCrop`) and, where it reaches outside the image, padded
    (:class:`~monai.transforms.BorderPad` with ``padding_mode``, e.g. ``"constant"``: a black border), then resized
    (:class:`~monai.transforms.Resize`, anti-aliased). Box corners are rounded to whole pixels. Landmarks follow the
    affine change exactly; those outside the box are handled as ``cut_off`` says (see the module notes).

    Args:
        box_start: first pixel of the box per dim (negative: outside the image).
        box_end: one past the last pixel of the box per dim (beyond the size: outside the image).
        spatial_size: output size; ``None`` keeps the input size.
        mode, anti_aliasing: of the resize.
        padding_mode: of the pad (a ``torch.nn.functional.pad`` mode; ``"constant"`` fills with 0).
        cut_off: ``"flag"`` (keep exact coordinates, visibility 0) or ``"nan"`` (mark missing).
    """

    backend = [TransformBackends.TORCH]

    def __init__(
        self,
        box_start: Sequence[int],
        box_end: Sequence[int],
        spatial_size: Sequence[int] | None = None,
        mode: str = "bilinear",
        anti_aliasing: bool = True,
        padding_mode: str = "constant",
        cut_off: str = "flag",
    ) -> None:
        self.box_start = tuple(int(round(float(s))) for s in box_start)
        self.box_end = tuple(int(round(float(e))) for e in box_end)
        if len(self.box_start) != SPATIAL_DIMS or len(self.box_end) != SPATIAL_DIMS:
            raise ValueError(f"box_start and box_end need {SPATIAL_DIMS} values, got {box_start!r}, {box_end!r}.")
        if any(e <= s for s, e in zip(self.box_start, self.box_end)):
            raise ValueError(f"the box [{self.box_start}, {self.box_end}) is empty.")
        self.spatial_size = None if spatial_size is None else tuple(int(s) for s in spatial_size)
        self.mode = mode
        self.anti_aliasing = anti_aliasing
        self.padding_mode = padding_mode
        self.cut_off = _check_cut_off(cut_off)

    def __call__(self, img: NdarrayOrTensor, landmarks: NdarrayOrTensor | None = None, spacing=None):
        """
        Args:
            img: channel-first 2-D image ``(C, dim0, dim1)``.
            landmarks: ``(N, 2)`` in ``img``'s pixels.
            spacing: mm/pixel ``(2,)`` of ``img``.

        Returns:
            ``(image, landmarks, spacing)`` in the output grid, each of its input's type.
        """
        check_image(img)
        img_t = as_meta(img)
        record_source_affine(img_t)
        before = image_affine(img_t)
        size = tuple(img_t.shape[1:])
        start = [min(max(s, 0), n) for s, n in zip(self.box_start, size)]
        end = [min(max(e, 0), n) for e, n in zip(self.box_end, size)]
        if any(e <= s for s, e in zip(start, end)):
            raise ValueError(f"the box [{self.box_start}, {self.box_end}) misses the image of size {size}.")
        out = SpatialCrop(roi_start=start, roi_end=end)(img_t)
        border = []
        for s, e, n in zip(self.box_start, self.box_end, size):
            border += [max(0, -s), max(0, e - n)]
        if any(border):
            out = BorderPad(spatial_border=border, mode=self.padding_mode)(out)
        target = self.spatial_size or size
        if tuple(out.shape[1:]) != tuple(target):
            out = Resize(target, mode=self.mode, anti_aliasing=self.anti_aliasing)(out)
        landmarks, spacing = carry_landmarks(before, out, landmarks, spacing)
        landmarks = _mark_cut_off(landmarks, target, self.cut_off)
        return convert_like(out, img), landmarks, spacing


class RandFieldOfView(RandomizableTransform):
    """Random field of view: a random box (scale, aspect, shift) resampled to the output size, carrying landmarks.

    The box side is ``size / zoom`` per dim, with ``zoom = z * a`` in dim 0 and ``z / a`` in dim 1 for ``z`` drawn
    from ``zoom_range`` (e.g. ``(0.8, 1.2)``: the anatomy appears up to 20 % smaller or larger) and ``a`` from
    ``aspect_range``; its centre is the image centre shifted by a fraction of the size drawn from ``shift_range``
    per dim. Boxes that reach outside the image get a ``padding_mode`` border (an empty detector area).

    Args:
        prob: probability of applying it.
        zoom_range: ``(low, high)`` magnification (> 0); 1 keeps the scale.
        shift_range: ``(low, high)`` shift of the box centre as a fraction of the image size (same for both dims),
            or one ``(low, high)`` per dim.
        aspect_range: ``(low, high)`` anisotropic part of the zoom (1: isotropic).
        spatial_size: output size; ``None`` keeps the input size.
        mode, anti_aliasing, padding_mode, cut_off: as :class:`FieldOfView`.
    """

    backend = FieldOfView.backend

    def __init__(
        self,
        prob: float = 0.1,
        zoom_range: Sequence[float] = (0.8, 1.2),
        shift_range: Sequence[float] | Sequence[Sequence[float]] = (-0.1, 0.1),
        aspect_range: Sequence[float] = (1.0, 1.0),
        spatial_size: Sequence[int] | None = None,
        mode: str = "bilinear",
        anti_aliasing: bool = True,
        padding_mode: str = "constant",
        cut_off: str = "flag",
    ) -> None:
        RandomizableTransform.__init__(self, prob)
        self.zoom_range = self._range(zoom_range, "zoom_range", positive=True)
        self.aspect_range = self._range(aspect_range, "aspect_range", positive=True)
        shifts = np.asarray(shift_range, dtype=np.float64)
        shifts = np.broadcast_to(shifts, (SPATIAL_DIMS, 2)) if shifts.shape == (2,) else shifts
        if shifts.shape != (SPATIAL_DIMS, 2):
            raise ValueError(f"shift_range must be (low, high) or one (low, high) per dim, got {shift_range!r}.")
        self.shift_range = tuple(self._range(s, "shift_range") for s in shifts)
        self.spatial_size = spatial_size
        self.kwargs = {"mode": mode, "anti_aliasing": anti_aliasing, "padding_mode": padding_mode}
        self.cut_off = _check_cut_off(cut_off)
        self._zoom = (1.0, 1.0)
        self._shift = (0.0, 0.0)

    @staticmethod
    def _range(values, name: str, positive: bool = False) -> tuple[float, float]:
        low, high = (float(v) for v in values)
        if low > high or (positive and low <= 0):
            raise ValueError(f"{name} must be (low, high) with low <= high{' and low > 0' if positive else ''}.")
        return low, high

    def randomize(self, data=None) -> None:
        super().randomize(None)
        if not self._do_transform:
            return
        z = self.R.uniform(*self.zoom_range)
        a = self.R.uniform(*self.aspect_range)
        self._zoom = (z * a, z / a)
        self._shift = tuple(self.R.uniform(*r) for r in self.shift_range)

    def box(self, spatial_size: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """The box (start, end) that the last drawn parameters give for an image of ``spatial_size``."""
        start, end = [], []
        for n, z, s in zip(spatial_size, self._zoom, self._shift):
            side = max(1, int(round(n / z)))
            first = int(round((n - side) / 2 + s * n))
            start.append(first)
            end.append(first + side)
        return tuple(start), tuple(end)

    def __call__(self, img: NdarrayOrTensor, landmarks=None, spacing=None, randomize: bool = True):
        """As :meth:`FieldOfView.__call__`; unchanged inputs when not applied."""
        check_image(img)
        if randomize:
            self.randomize()
        if not self._do_transform:
            return img, landmarks, spacing
        start, end = self.box(img.shape[1:])
        fov = FieldOfView(start, end, spatial_size=self.spatial_size, cut_off=self.cut_off, **self.kwargs)
        return fov(img, landmarks, spacing)


class FieldOfViewd(MapTransform):
    """Dictionary-based :class:`FieldOfView`: image keys resampled; landmarks, spacing and masks follow the first.

    Args:
        keys: image keys.
        landmark_keys, spacing_key, mask_keys: companions, as :class:`~monai_ceph.transforms.ResizeWithLandmarksd`.
        box_start, box_end, spatial_size, mode, anti_aliasing, padding_mode, cut_off: as :class:`FieldOfView`.
        allow_missing_keys: don't raise if an image key is missing.
    """

    backend = FieldOfView.backend

    def __init__(
        self,
        keys: KeysCollection,
        box_start: Sequence[int],
        box_end: Sequence[int],
        landmark_keys: KeysCollection | None = "landmarks",
        spacing_key: str | None = "spacing",
        mask_keys: KeysCollection | None = "landmark_mask",
        spatial_size: Sequence[int] | None = None,
        mode: str = "bilinear",
        anti_aliasing: bool = True,
        padding_mode: str = "constant",
        cut_off: str = "flag",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.companions = _LandmarkCompanions(landmark_keys, mask_keys, spacing_key)
        self.fov = FieldOfView(box_start, box_end, spatial_size, mode, anti_aliasing, padding_mode, cut_off)

    def _apply(self, d: dict, fov) -> dict:
        first = True
        for key in self.key_iterator(d):
            if not first:
                d[key] = fov(d[key])[0]
                continue
            image = as_meta(d[key])
            record_source_affine(image)
            before = image_affine(image)
            out = fov(image)[0]
            self.companions.follow(d, before, out)
            for lm_key in self.companions.landmark_keys:
                if lm_key in d:
                    d[lm_key] = _mark_cut_off(d[lm_key], out.shape[1:], fov.cut_off)
            d[key] = convert_like(out, d[key])
            first = False
        return d

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        return self._apply(dict(data), self.fov)


class RandFieldOfViewd(RandomizableTransform, FieldOfViewd):
    """Dictionary-based :class:`RandFieldOfView`: one random box per sample for all image keys.

    Args:
        keys, landmark_keys, spacing_key, mask_keys, allow_missing_keys: as :class:`FieldOfViewd`.
        prob, zoom_range, shift_range, aspect_range, spatial_size, mode, anti_aliasing, padding_mode, cut_off: as
            :class:`RandFieldOfView`.
    """

    backend = RandFieldOfView.backend

    def __init__(
        self,
        keys: KeysCollection,
        landmark_keys: KeysCollection | None = "landmarks",
        spacing_key: str | None = "spacing",
        mask_keys: KeysCollection | None = "landmark_mask",
        prob: float = 0.1,
        zoom_range: Sequence[float] = (0.8, 1.2),
        shift_range: Sequence[float] | Sequence[Sequence[float]] = (-0.1, 0.1),
        aspect_range: Sequence[float] = (1.0, 1.0),
        spatial_size: Sequence[int] | None = None,
        mode: str = "bilinear",
        anti_aliasing: bool = True,
        padding_mode: str = "constant",
        cut_off: str = "flag",
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.companions = _LandmarkCompanions(landmark_keys, mask_keys, spacing_key)
        self.rand_fov = RandFieldOfView(
            1.0, zoom_range, shift_range, aspect_range, spatial_size, mode, anti_aliasing, padding_mode, cut_off
        )

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        super().set_random_state(seed, state)
        self.rand_fov.set_random_state(seed, state)
        return self

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        d = dict(data)
        self.randomize(None)
        first_key = self.first_key(d)
        if not self._do_transform or first_key == ():
            return d
        self.rand_fov.randomize()
        start, end = self.rand_fov.box(d[first_key].shape[1:])
        r = self.rand_fov
        fov = FieldOfView(start, end, r.spatial_size, cut_off=r.cut_off, **r.kwargs)
        return self._apply(d, fov)


PhysicalFieldD = PhysicalFieldDict = PhysicalFieldd
FieldOfViewD = FieldOfViewDict = FieldOfViewd
RandFieldOfViewD = RandFieldOfViewDict = RandFieldOfViewd
