"""Dictionary-based wrappers of the intensity transforms in :mod:`monai_ceph.transforms.intensity.array`."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

from monai.config import KeysCollection
from monai.config.type_definitions import NdarrayOrTensor
from monai.transforms.transform import MapTransform, Transform

from .array import CLAHE, NLMDenoise, ToGreyscale

__all__ = [
    "CLAHEd", "CLAHED", "CLAHEDict", "NLMDenoised", "NLMDenoiseD", "NLMDenoiseDict", "ToGreyscaled", "ToGreyscaleD",
    "ToGreyscaleDict",
]


def _apply(transform: Transform, data: NdarrayOrTensor, key: Hashable) -> NdarrayOrTensor:
    """``transform(data)``; a ``ValueError`` about the data also names the key."""
    try:
        return transform(data)
    except ValueError as e:
        raise ValueError(f"key {key!r}: {e}") from e


class CLAHEd(MapTransform):
    """
    Dictionary-based wrapper of :py:class:`monai_ceph.transforms.CLAHE`.

    Args:
        keys: keys of the corresponding items to be transformed.
            See also: :py:class:`monai.transforms.compose.MapTransform`
        kernel_size: contextual region size (int or one per spatial dim); ``None``: 1/8 of each dimension.
        clip_limit: clipping limit as a fraction of a region's pixels (> 0), default 0.01.
        nbins: number of histogram bins, default 256.
        allow_missing_keys: don't raise exception if key is missing.
    """

    backend = CLAHE.backend

    def __init__(
        self,
        keys: KeysCollection,
        kernel_size: Sequence[int] | int | None = None,
        clip_limit: float = 0.01,
        nbins: int = 256,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.clahe = CLAHE(kernel_size=kernel_size, clip_limit=clip_limit, nbins=nbins)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = _apply(self.clahe, d[key], key)
        return d


class NLMDenoised(MapTransform):
    """
    Dictionary-based wrapper of :py:class:`monai_ceph.transforms.NLMDenoise`.

    Args:
        keys: keys of the corresponding items to be transformed.
            See also: :py:class:`monai.transforms.compose.MapTransform`
        patch_size: side of the compared patches, default 5.
        patch_distance: radius of the search window, default 3.
        h: cut-off distance in grey levels, default 0.02.
        sigma: standard deviation of the noise (0: unused).
        allow_missing_keys: don't raise exception if key is missing.
    """

    backend = NLMDenoise.backend

    def __init__(
        self,
        keys: KeysCollection,
        patch_size: int = 5,
        patch_distance: int = 3,
        h: float = 0.02,
        sigma: float = 0.0,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.denoiser = NLMDenoise(patch_size=patch_size, patch_distance=patch_distance, h=h, sigma=sigma)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = _apply(self.denoiser, d[key], key)
        return d


class ToGreyscaled(MapTransform):
    """Dictionary-based wrapper of :py:class:`monai_ceph.transforms.ToGreyscale`."""

    backend = ToGreyscale.backend

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.converter = ToGreyscale()

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = _apply(self.converter, d[key], key)
        return d


CLAHED = CLAHEDict = CLAHEd
NLMDenoiseD = NLMDenoiseDict = NLMDenoised
ToGreyscaleD = ToGreyscaleDict = ToGreyscaled
