"""Scanner-style intensity transforms that MONAI lacks: JPEG re-encoding and collimation borders.

Other sites' radiographs differ from ISBI 2015's in how they were stored and exposed as much as in their
anatomy. MONAI already covers the tone and texture side (use them as they are, see the bundle's
``scanner_augmentation.json``): gamma curves (:class:`~monai.transforms.RandAdjustContrastd`), random monotone
contrast curves (:class:`~monai.transforms.RandHistogramShiftd`), blur and sharpening
(:class:`~monai.transforms.RandGaussianSmoothd`, :class:`~monai.transforms.RandGaussianSharpend`) and noise
(:class:`~monai.transforms.RandGaussianNoised`). This module adds:

- :class:`JPEGCompression` / :class:`RandJPEGCompression`: encode and decode at a JPEG quality (8-bit, per
  channel, with Pillow, in the image's own intensity range), the blocking and ringing of lossy exports and PACS.
- :class:`CollimationBorder` / :class:`RandCollimationBorder`: bands along the image edges set to a constant,
  black (the empty border of a larger detector) or white (an inverted collimation edge, as in images stored with
  the shutter area inverted).

None moves pixels, so landmarks need no update; the dictionary :class:`CollimationBorderd` and
:class:`RandCollimationBorderd` can mark the landmarks that a band covers as not visible (``mask_keys``).
"""

from __future__ import annotations

import io
from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from PIL import Image

from monai.config import KeysCollection
from monai.config.type_definitions import NdarrayOrTensor
from monai.transforms.transform import MapTransform, RandomizableTransform, Transform
from monai.utils import TransformBackends, ensure_tuple
from monai.utils.type_conversion import convert_data_type, convert_to_dst_type

from monai_ceph.transforms.landmarks.array import landmark_visibility

__all__ = [
    "JPEGCompression",
    "RandJPEGCompression",
    "CollimationBorder",
    "RandCollimationBorder",
    "JPEGCompressiond",
    "JPEGCompressionD",
    "JPEGCompressionDict",
    "RandJPEGCompressiond",
    "RandJPEGCompressionD",
    "RandJPEGCompressionDict",
    "CollimationBorderd",
    "CollimationBorderD",
    "CollimationBorderDict",
    "RandCollimationBorderd",
    "RandCollimationBorderD",
    "RandCollimationBorderDict",
]


def _check_quality(quality) -> int:
    if int(quality) != quality or not 1 <= quality <= 95:
        raise ValueError(f"JPEG quality must be an integer in [1, 95], got {quality!r}.")
    return int(quality)


class JPEGCompression(Transform):
    """Re-encode an image as JPEG at ``quality`` and decode it, in the image's own intensity range.

    Each channel is mapped linearly from ``[min, max]`` (of the whole image, or ``value_range``) to 8 bits, encoded
    and decoded by Pillow (baseline JPEG, 4:4:4 since the channels are grey), and mapped back. A constant image is
    returned unchanged. Returns the input's type, dtype and device (``MetaTensor`` metadata kept).

    Args:
        quality: JPEG quality, 1 (worst) to 95.
        value_range: ``(low, high)`` the 8-bit scale spans; ``None``: the image's min and max.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, quality: int = 75, value_range: Sequence[float] | None = None) -> None:
        self.quality = _check_quality(quality)
        self.value_range = None if value_range is None else (float(value_range[0]), float(value_range[1]))

    def __call__(self, img: NdarrayOrTensor, quality: int | None = None) -> NdarrayOrTensor:
        """
        Args:
            img: channel-first image ``(C, dim0, dim1)``.
            quality: overrides the quality of this call.
        """
        quality = self.quality if quality is None else _check_quality(quality)
        arr = convert_data_type(img, np.ndarray, dtype=np.float64)[0]
        if arr.ndim != 3:
            raise ValueError(f"expected a 2-D channel-first image (C, dim0, dim1), got shape {arr.shape}.")
        low, high = self.value_range if self.value_range is not None else (float(arr.min()), float(arr.max()))
        if not high > low:
            return img
        out = np.empty_like(arr)
        for c, channel in enumerate(arr):
            levels = np.clip(np.rint((channel - low) / (high - low) * 255.0), 0, 255).astype(np.uint8)
            buffer = io.BytesIO()
            Image.fromarray(levels).save(buffer, format="JPEG", quality=quality, subsampling=0)
            decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("L"), dtype=np.float64)
            out[c] = decoded / 255.0 * (high - low) + low
        return convert_to_dst_type(out, img, dtype=getattr(img, "dtype", None))[0]


class RandJPEGCompression(RandomizableTransform):
    """:class:`JPEGCompression` with probability ``prob`` at a quality drawn uniformly from ``quality_range``.

    Args:
        prob: probability of applying it.
        quality_range: ``(low, high)`` integer qualities (inclusive), within [1, 95].
        value_range: as :class:`JPEGCompression`.
    """

    backend = JPEGCompression.backend

    def __init__(
        self, prob: float = 0.1, quality_range: Sequence[int] = (30, 90), value_range: Sequence[float] | None = None
    ) -> None:
        RandomizableTransform.__init__(self, prob)
        low, high = (_check_quality(q) for q in quality_range)
        if low > high:
            raise ValueError(f"quality_range must be (low, high) with low <= high, got {quality_range!r}.")
        self.quality_range = (low, high)
        self.jpeg = JPEGCompression(high, value_range)
        self.quality = high

    def randomize(self, data=None) -> None:
        super().randomize(None)
        if self._do_transform:
            self.quality = int(self.R.randint(self.quality_range[0], self.quality_range[1] + 1))

    def __call__(self, img: NdarrayOrTensor, randomize: bool = True) -> NdarrayOrTensor:
        if randomize:
            self.randomize()
        return self.jpeg(img, self.quality) if self._do_transform else img


class CollimationBorder(Transform):
    """Set bands along the image edges to a constant: a black border or an inverted (white) collimation edge.

    Args:
        widths: band widths in pixels ``(dim0 low, dim0 high, dim1 low, dim1 high)`` (for an image loaded as
            ``(C, x, y)``: left, right, top, bottom).
        value: the fill; ``None`` fills with the image's maximum (white, an inverted collimation edge),
            otherwise the number (0: black).
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, widths: Sequence[int], value: float | None = 0.0) -> None:
        self.widths = tuple(int(w) for w in widths)
        if len(self.widths) != 4 or min(self.widths) < 0:
            raise ValueError(f"widths must be 4 non-negative integers (dim0 low/high, dim1 low/high), got {widths!r}.")
        self.value = value

    def covered(self, spatial_size: Sequence[int]) -> torch.Tensor:
        """Boolean ``spatial_size`` mask of the pixels the bands cover."""
        mask = torch.zeros(tuple(int(s) for s in spatial_size), dtype=torch.bool)
        a0, b0, a1, b1 = self.widths
        mask[:a0] = True
        mask[mask.shape[0] - b0 :] = True
        mask[:, :a1] = True
        mask[:, mask.shape[1] - b1 :] = True
        return mask

    def covered_landmarks(self, landmarks: NdarrayOrTensor, spatial_size: Sequence[int]) -> torch.Tensor:
        """``(N,)`` bool: the landmarks that lie in a band (NaN rows: False)."""
        p = torch.as_tensor(landmarks, dtype=torch.float64).cpu()
        inside = landmark_visibility(p, spatial_size) > 0
        index = torch.where(inside[:, None], torch.round(p), torch.zeros_like(p)).long()
        return inside & self.covered(spatial_size)[index[:, 0], index[:, 1]]

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        if getattr(img, "ndim", None) != 3:
            raise ValueError(f"expected a 2-D channel-first image (C, dim0, dim1), got {tuple(img.shape)}.")
        value = float(img.max()) if self.value is None else float(self.value)
        mask = self.covered(img.shape[1:])
        out = img.clone() if isinstance(img, torch.Tensor) else np.array(img, copy=True)
        mask, *_ = convert_to_dst_type(mask, out, dtype=torch.bool if isinstance(out, torch.Tensor) else bool)
        out[:, mask] = value
        return out


class RandCollimationBorder(RandomizableTransform):
    """:class:`CollimationBorder` with random band widths, black or (with ``inverted_prob``) white.

    Each of the four edges gets a band with probability ``edge_prob``, of a width drawn uniformly up to
    ``max_fraction`` of the image size along that dim.

    Args:
        prob: probability of applying it.
        max_fraction: largest band width as a fraction of the size.
        edge_prob: probability of each edge getting a band (when applied).
        inverted_prob: probability of a white (inverted) border rather than a black one.
        value: the black fill.
    """

    backend = CollimationBorder.backend

    def __init__(
        self,
        prob: float = 0.1,
        max_fraction: float = 0.1,
        edge_prob: float = 0.5,
        inverted_prob: float = 0.5,
        value: float = 0.0,
    ) -> None:
        RandomizableTransform.__init__(self, prob)
        if not 0.0 <= max_fraction < 0.5:
            raise ValueError(f"max_fraction must be in [0, 0.5), got {max_fraction!r}.")
        self.max_fraction = float(max_fraction)
        self.edge_prob = float(edge_prob)
        self.inverted_prob = float(inverted_prob)
        self.value = value
        self._fractions = (0.0, 0.0, 0.0, 0.0)
        self._inverted = False

    def randomize(self, data=None) -> None:
        super().randomize(None)
        if not self._do_transform:
            return
        on = self.R.uniform(size=4) < self.edge_prob
        self._fractions = tuple(float(f) for f in np.where(on, self.R.uniform(0, self.max_fraction, size=4), 0.0))
        self._inverted = bool(self.R.uniform() < self.inverted_prob)

    def border(self, spatial_size: Sequence[int]) -> CollimationBorder:
        """The :class:`CollimationBorder` of the last drawn parameters for an image of ``spatial_size``."""
        sizes = (spatial_size[0], spatial_size[0], spatial_size[1], spatial_size[1])
        widths = [int(round(f * n)) for f, n in zip(self._fractions, sizes)]
        return CollimationBorder(widths, None if self._inverted else self.value)

    def __call__(self, img: NdarrayOrTensor, randomize: bool = True) -> NdarrayOrTensor:
        if randomize:
            self.randomize()
        return self.border(img.shape[1:])(img) if self._do_transform else img


class JPEGCompressiond(MapTransform):
    """Dictionary-based :class:`JPEGCompression`."""

    backend = JPEGCompression.backend

    def __init__(
        self,
        keys: KeysCollection,
        quality: int = 75,
        value_range: Sequence[float] | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.jpeg = JPEGCompression(quality, value_range)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.jpeg(d[key])
        return d


class RandJPEGCompressiond(RandomizableTransform, MapTransform):
    """Dictionary-based :class:`RandJPEGCompression`: one quality per sample for all keys."""

    backend = JPEGCompression.backend

    def __init__(
        self,
        keys: KeysCollection,
        prob: float = 0.1,
        quality_range: Sequence[int] = (30, 90),
        value_range: Sequence[float] | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.rand_jpeg = RandJPEGCompression(1.0, quality_range, value_range)

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        super().set_random_state(seed, state)
        self.rand_jpeg.set_random_state(seed, state)
        return self

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        self.randomize(None)
        if not self._do_transform:
            return d
        self.rand_jpeg.randomize()
        for key in self.key_iterator(d):
            d[key] = self.rand_jpeg(d[key], randomize=False)
        return d


class _BorderMasks:
    """Landmark keys whose visibility masks a border clears where it covers them."""

    def __init__(self, landmark_keys: KeysCollection | None, mask_keys: KeysCollection | None) -> None:
        self.landmark_keys = () if landmark_keys is None else ensure_tuple(landmark_keys)
        self.mask_keys = () if mask_keys is None else ensure_tuple(mask_keys)
        if self.mask_keys and len(self.mask_keys) != len(self.landmark_keys):
            raise ValueError(f"mask_keys must align with landmark_keys {self.landmark_keys}, got {self.mask_keys}.")

    def update(self, d: dict, border: CollimationBorder, spatial_size: Sequence[int]) -> None:
        for key, mask_key in zip(self.landmark_keys, self.mask_keys):
            if key not in d:
                continue
            mask = landmark_visibility(d[key], spatial_size) if mask_key not in d else d[mask_key]
            covered = border.covered_landmarks(d[key], spatial_size)
            keep, *_ = convert_to_dst_type((~covered).to(torch.float32), mask)
            d[mask_key] = mask * keep


class CollimationBorderd(MapTransform):
    """Dictionary-based :class:`CollimationBorder`; landmarks under a band get visibility 0 in ``mask_keys``.

    Args:
        keys: image keys.
        widths, value: as :class:`CollimationBorder`.
        landmark_keys: landmark keys ``(N, 2)`` checked against the bands (of the first image key's size).
        mask_keys: visibility keys aligned with ``landmark_keys`` (created from the landmarks when absent);
            ``None``: landmarks untouched.
        allow_missing_keys: don't raise if a key is missing.
    """

    backend = CollimationBorder.backend

    def __init__(
        self,
        keys: KeysCollection,
        widths: Sequence[int],
        value: float | None = 0.0,
        landmark_keys: KeysCollection | None = "landmarks",
        mask_keys: KeysCollection | None = "landmark_mask",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.border = CollimationBorder(widths, value)
        self.masks = _BorderMasks(landmark_keys, mask_keys)

    def _apply(self, d: dict, border: CollimationBorder) -> dict:
        size = None
        for key in self.key_iterator(d):
            size = size or tuple(d[key].shape[1:])
            d[key] = border(d[key])
        if size is not None:
            self.masks.update(d, border, size)
        return d

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        return self._apply(dict(data), self.border)


class RandCollimationBorderd(RandomizableTransform, CollimationBorderd):
    """Dictionary-based :class:`RandCollimationBorder`; one border per sample (sized by the first image key).

    Args:
        keys, landmark_keys, mask_keys, allow_missing_keys: as :class:`CollimationBorderd`.
        prob, max_fraction, edge_prob, inverted_prob, value: as :class:`RandCollimationBorder`.
    """

    backend = CollimationBorder.backend

    def __init__(
        self,
        keys: KeysCollection,
        prob: float = 0.1,
        max_fraction: float = 0.1,
        edge_prob: float = 0.5,
        inverted_prob: float = 0.5,
        value: float = 0.0,
        landmark_keys: KeysCollection | None = "landmarks",
        mask_keys: KeysCollection | None = "landmark_mask",
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.rand_border = RandCollimationBorder(1.0, max_fraction, edge_prob, inverted_prob, value)
        self.masks = _BorderMasks(landmark_keys, mask_keys)

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        super().set_random_state(seed, state)
        self.rand_border.set_random_state(seed, state)
        return self

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        self.randomize(None)
        first_key = self.first_key(d)
        if not self._do_transform or first_key == ():
            return d
        self.rand_border.randomize()
        return self._apply(d, self.rand_border.border(d[first_key].shape[1:]))


JPEGCompressionD = JPEGCompressionDict = JPEGCompressiond
RandJPEGCompressionD = RandJPEGCompressionDict = RandJPEGCompressiond
CollimationBorderD = CollimationBorderDict = CollimationBorderd
RandCollimationBorderD = RandCollimationBorderDict = RandCollimationBorderd
