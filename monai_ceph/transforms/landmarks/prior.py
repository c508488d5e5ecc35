"""Coarse-point priors: a first stage's landmark estimates rendered as Gaussian channels beside the image.

The idea of CephTrace's anatomy priors, on our own first stage: the local (or a second) network sees, next to the
image, one channel per landmark with a unit-peak Gaussian of ``sigma`` mm at that landmark's coarse estimate (an
all-zero channel where the estimate is missing or outside the image), so it knows where each landmark is
expected and which structure a patch is about. At inference the estimates are the global stage's points
(:class:`~monai_ceph.inferers.LandmarkRefiner` with ``prior_sigma``); in training :class:`RandJitterLandmarksd`
simulates them by moving every annotated landmark by its own random offset, so that the network learns how far
to trust the prior.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import torch

from monai.config import KeysCollection
from monai.config.type_definitions import NdarrayOrTensor
from monai.data.meta_tensor import MetaTensor
from monai.transforms.transform import MapTransform, RandomizableTransform, Transform
from monai.utils import TransformBackends, ensure_tuple
from monai.utils.type_conversion import convert_to_dst_type

from monai_ceph.transforms.landmarks.array import as_spacing
from monai_ceph.transforms.landmarks.codec import GaussianHeatmapCodec
from monai_ceph.transforms.landmarks.dictionary import describe_item
from monai_ceph.transforms.utils import SPATIAL_DIMS, check_image, offset_bound_mm

__all__ = [
    "LandmarkPrior",
    "LandmarkPriord",
    "LandmarkPriorD",
    "LandmarkPriorDict",
    "RandJitterLandmarksd",
    "RandJitterLandmarksD",
    "RandJitterLandmarksDict",
]


class LandmarkPrior(Transform):
    """Concatenate one unit-peak Gaussian channel per point to a channel-first image: ``(C + N, dim0, dim1)``.

    Args:
        sigma: the Gaussian's standard deviation in mm (> 0).

    Example::

        prior = LandmarkPrior(sigma=3.0)
        x = prior(patch, coarse_in_patch_pixels, spacing=(0.3, 0.3))   # (1 + K, 64, 64)
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, sigma: float = 3.0) -> None:
        self.codec = GaussianHeatmapCodec(sigma=sigma, sigma_unit="mm", normalize=True)

    @property
    def sigma(self) -> float:
        return self.codec.sigma

    def channels(self, points: NdarrayOrTensor, spatial_size: Sequence[int], spacing) -> torch.Tensor:
        """``(..., N, *spatial_size)`` float32 prior channels for ``(..., N, 2)`` points in pixels (NaN: zeros)."""
        pts = torch.as_tensor(points, dtype=torch.float64).detach().cpu()
        return self.codec.encode(pts, spatial_size, as_spacing(spacing).to(torch.float64))

    def __call__(self, img: NdarrayOrTensor, points: NdarrayOrTensor, spacing) -> NdarrayOrTensor:
        """
        Args:
            img: channel-first 2-D image ``(C, dim0, dim1)``.
            points: ``(N, 2)`` expected landmarks in ``img``'s pixels, NaN for unknown.
            spacing: mm/pixel ``(2,)`` of ``img``.
        """
        check_image(img)
        pts = torch.as_tensor(points)
        if pts.ndim != 2 or pts.shape[-1] != SPATIAL_DIMS:
            raise ValueError(f"prior points must have shape (N, 2), got {tuple(pts.shape)}.")
        data = torch.as_tensor(img).as_subclass(torch.Tensor)
        prior = self.channels(pts, data.shape[1:], spacing).to(data.dtype if data.is_floating_point() else torch.float32)
        out = torch.cat([data.to(prior.dtype), prior.to(data.device)])
        if isinstance(img, MetaTensor):
            return MetaTensor(out, meta=dict(img.meta))
        return convert_to_dst_type(out, img, dtype=out.dtype)[0]


class LandmarkPriord(MapTransform):
    """Dictionary-based :class:`LandmarkPrior`: the points of ``points_key`` become prior channels of each image key.

    Args:
        keys: image keys to extend.
        points_key: ``(N, 2)`` expected landmarks in the images' pixels (e.g. ``"coarse_landmarks"``).
        sigma: Gaussian SD in mm.
        spacing_key: the images' spacing (mm/pixel).
        allow_missing_keys: don't raise if an image key is missing.
    """

    backend = LandmarkPrior.backend

    def __init__(
        self,
        keys: KeysCollection = "image",
        points_key: str = "coarse_landmarks",
        sigma: float = 3.0,
        spacing_key: str = "spacing",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.prior = LandmarkPrior(sigma)
        self.points_key = points_key
        self.spacing_key = spacing_key

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        d = dict(data)
        for name in (self.points_key, self.spacing_key):
            if name not in d:
                raise KeyError(f"{describe_item(d)}: prior channels need key {name!r}, which is missing.")
        for key in self.key_iterator(d):
            d[key] = self.prior(d[key], d[self.points_key], d[self.spacing_key])
        return d


class RandJitterLandmarksd(RandomizableTransform, MapTransform):
    """Simulate a first stage's estimates: every landmark moved by its own uniform offset in ``[-jitter, jitter]``
    mm per dim, plus one offset in ``[-shared_jitter, shared_jitter]`` common to all landmarks of the item (a first
    stage's errors are correlated: the whole shape shifts), written to ``output_keys`` (the inputs are kept).
    Missing landmarks stay NaN.

    Args:
        keys: ``(N, 2)`` landmark keys in pixels.
        jitter: largest own offset of each landmark in mm, one number or one per dim (>= 0).
        shared_jitter: largest common offset in mm, one number or one per dim (>= 0).
        output_keys: where the moved points go, one per key.
        spacing_key: mm/pixel of the landmarks' image.
        allow_missing_keys: don't raise if a landmark key is missing.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        keys: KeysCollection = "landmarks",
        jitter: Sequence[float] | float = 4.0,
        output_keys: KeysCollection = "coarse_landmarks",
        spacing_key: str = "spacing",
        allow_missing_keys: bool = False,
        shared_jitter: Sequence[float] | float = 0.0,
    ) -> None:
        RandomizableTransform.__init__(self, prob=1.0)
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.jitter, self.shared_jitter = offset_bound_mm(jitter, "jitter"), offset_bound_mm(shared_jitter, "shared_jitter")
        self.output_keys = ensure_tuple(output_keys)
        if len(self.output_keys) != len(self.keys):
            raise ValueError(f"output_keys {self.output_keys} must align with keys {self.keys}.")
        self.spacing_key = spacing_key

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        d = dict(data)
        if self.spacing_key not in d:
            raise KeyError(f"{describe_item(d)}: a jitter in mm needs the spacing: key {self.spacing_key!r} is missing.")
        spacing = as_spacing(d[self.spacing_key]).to(torch.float64)
        for key, out_key in self.key_iterator(d, self.output_keys):
            points = torch.as_tensor(d[key], dtype=torch.float64).detach().cpu()
            own = self.R.uniform(-1.0, 1.0, size=tuple(points.shape)) * self.jitter
            offsets = torch.as_tensor(own + self.R.uniform(-1.0, 1.0, size=SPATIAL_DIMS) * self.shared_jitter)
            d[out_key] = convert_to_dst_type(points + offsets / spacing, d[key], dtype=getattr(d[key], "dtype", None))[0]
        return d


LandmarkPriorD = LandmarkPriorDict = LandmarkPriord
RandJitterLandmarksD = RandJitterLandmarksDict = RandJitterLandmarksd
