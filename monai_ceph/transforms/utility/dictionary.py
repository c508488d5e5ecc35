"""Dictionary wrappers of :mod:`monai_ceph.transforms.utility.array`."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

from monai.config import KeysCollection
from monai.transforms.transform import MapTransform

from monai_ceph.transforms.utility.array import MAX_IMAGE_PIXELS, MIN_IMAGE_SIZE, ValidateImage

__all__ = ["ValidateImaged", "ValidateImageD", "ValidateImageDict"]


class ValidateImaged(MapTransform):
    """Dictionary-based :class:`~monai_ceph.transforms.ValidateImage`: use right after ``LoadImaged``.

    Args:
        keys: image keys, default ``"image"``.
        min_size, max_pixels, warn_blank: as :class:`~monai_ceph.transforms.ValidateImage`.
        allow_missing_keys: don't raise if a key is missing.
    """

    backend = ValidateImage.backend

    def __init__(self, keys: KeysCollection = "image", min_size: int = MIN_IMAGE_SIZE,
                 max_pixels: int | None = MAX_IMAGE_PIXELS, warn_blank: bool = True,
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.validator = ValidateImage(min_size, max_pixels, warn_blank)

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.validator(d[key])
        return d


ValidateImageD = ValidateImageDict = ValidateImaged
