"""Checks of a loaded image before any processing: a file that cannot give meaningful landmarks is refused (or,
for a blank image, warned about) with a message naming the file, instead of giving plausible-looking landmarks.

The limits (documented defaults, override per call site):

- :data:`MIN_IMAGE_SIZE` = 64 pixels a side: below that a cephalogram carries no anatomy at the model's scale
  (the demo phantoms are 193 x 240, ISBI images 1935 x 2400);
- :data:`MAX_IMAGE_PIXELS` = 36 000 000 pixels (6000 x 6000): the memory bound. The image is refused right after
  decoding, before any float conversion, resampling or filtering multiplies its size (an 8000 x 8000 PNG needed
  6 GB through the pre-processing); the decode itself costs ``pixels x channels x bytes`` (192 MB for an 8-bit
  RGB 8000 x 8000). Resize such files before use.
- non-finite pixels (NaN, inf), e.g. from a float TIFF or a broken DICOM rescale, are refused;
- a blank (constant) image is accepted with a :class:`BlankImageWarning`.
"""

from __future__ import annotations

import math
import warnings

import torch

from monai.config.type_definitions import NdarrayOrTensor
from monai.data.meta_tensor import MetaTensor
from monai.transforms.transform import Transform
from monai.utils import TransformBackends
from monai.utils.type_conversion import convert_to_tensor

__all__ = ["MIN_IMAGE_SIZE", "MAX_IMAGE_PIXELS", "BlankImageWarning", "ValidateImage", "image_name"]

MIN_IMAGE_SIZE = 64
MAX_IMAGE_PIXELS = 36_000_000


class BlankImageWarning(UserWarning):
    """An image has the same value in every pixel: any landmarks predicted on it are meaningless."""


def image_name(img) -> str:
    """The file an image was loaded from (``meta["filename_or_obj"]`` of a ``MetaTensor``), else ``"image"``."""
    name = img.meta.get("filename_or_obj") if isinstance(img, MetaTensor) else None
    return str(name) if name else "image"


class ValidateImage(Transform):
    """Refuse a loaded channel-first image ``(C, dim0, dim1, ...)`` that is too small, too large or not finite, and
    warn on a blank one; return it unchanged otherwise. Errors are ``ValueError`` naming the file and the fault.

    Args:
        min_size: smallest accepted size of every spatial dim, in pixels (default :data:`MIN_IMAGE_SIZE`).
        max_pixels: largest accepted number of pixels (product of the spatial dims), default
            :data:`MAX_IMAGE_PIXELS`; ``None`` for no bound.
        warn_blank: warn (:class:`BlankImageWarning`) when every pixel has the same value.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, min_size: int = MIN_IMAGE_SIZE, max_pixels: int | None = MAX_IMAGE_PIXELS,
                 warn_blank: bool = True) -> None:
        if int(min_size) != min_size or min_size < 1:
            raise ValueError(f"min_size must be a positive integer, got {min_size!r}.")
        if max_pixels is not None and (int(max_pixels) != max_pixels or max_pixels < 1):
            raise ValueError(f"max_pixels must be a positive integer or None, got {max_pixels!r}.")
        self.min_size = int(min_size)
        self.max_pixels = None if max_pixels is None else int(max_pixels)
        self.warn_blank = warn_blank

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        name = image_name(img)
        shape = tuple(img.shape)
        if len(shape) < 3 or 0 in shape:
            raise ValueError(f"{name}: expected a non-empty channel-first image (C, dim0, dim1, ...), got shape {shape}.")
        spatial = shape[1:]
        if min(spatial) < self.min_size:
            raise ValueError(f"{name}: image of spatial size {spatial} is smaller than {self.min_size} pixels a side; "
                             "too small to show a cephalogram.")
        if self.max_pixels is not None and math.prod(spatial) > self.max_pixels:
            raise ValueError(f"{name}: image of spatial size {spatial} has {math.prod(spatial)} pixels, more than the "
                             f"{self.max_pixels} accepted (max_pixels); resize it before use.")
        data = convert_to_tensor(img, track_meta=False)
        if data.is_floating_point() or data.is_complex():
            bad = int((~torch.isfinite(data)).sum())
            if bad:
                raise ValueError(f"{name}: {bad} pixel value(s) are not finite (NaN or infinity).")
        if self.warn_blank and bool((data == data.reshape(-1)[0]).all()):
            warnings.warn(f"{name}: the image is blank (every pixel is {data.reshape(-1)[0].item()!r}); "
                          "landmarks predicted on it are meaningless.", BlankImageWarning, stacklevel=2)
        return img
