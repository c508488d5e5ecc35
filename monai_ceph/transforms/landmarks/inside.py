"""Keep heatmap decoding inside the source image: the model input can be larger than the image it shows.

With the physical-scale input (:class:`~monai_ceph.transforms.PhysicalFieldd`, the bundle's default) an image
smaller than the physical field is centre-padded, so part of the model input (and of each predicted heatmap) is
padding. A peak there would put a landmark outside the radiograph it was detected in, which no label, measurement
or annotator can use. :func:`mask_outside_source` lowers every heatmap pixel whose centre maps outside the source
image to the channel's minimum, so the decoder picks the best location inside the image; the sub-pixel refinement
may still reach half a heatmap pixel past the border, as it does at the edge of an unpadded input. Where the
image fills the input (the paper's fixed-size resize, a crop) nothing changes.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import torch

from monai.config import KeysCollection
from monai.config.type_definitions import NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms.transform import MapTransform, Transform
from monai.utils import TransformBackends
from monai.utils.type_conversion import convert_to_dst_type

from monai_ceph.transforms.utils import model_to_source_affine

from .codec import GaussianHeatmapCodec

__all__ = [
    "mask_outside_source",
    "MaskOutsideSource",
    "MaskOutsideSourced",
    "MaskOutsideSourceD",
    "MaskOutsideSourceDict",
]


def _source_shape(image: MetaTensor) -> torch.Tensor | None:
    shape = image.meta.get("spatial_shape") if isinstance(image, MetaTensor) else None
    return None if shape is None else torch.as_tensor(np.asarray(shape), dtype=torch.float64).reshape(-1, 2)


def mask_outside_source(heatmaps: NdarrayOrTensor, image: MetaTensor, stride: int = 1) -> NdarrayOrTensor:
    """``heatmaps`` with every pixel whose centre lies outside the source image set to its channel's minimum.

    Args:
        heatmaps: ``(K, h0, h1)`` for one image, or ``(B, K, h0, h1)`` for a batch (heatmaps or logits).
        image: the model input (``MetaTensor`` carrying its source affine and the source ``spatial_shape``), one
            image ``(C, x, y)`` or the collated batch ``(B, C, x, y)``.
        stride: the codec's output stride (heatmap pixel ``h`` has its centre at ``(h + 0.5) * stride - 0.5``).

    Returns:
        the masked heatmaps, of the input's type; unchanged when ``image`` has no source ``spatial_shape`` in its
        meta (an image that was not loaded from a file, whose extent is the input's).
    """
    hm = torch.as_tensor(heatmaps).as_subclass(torch.Tensor)
    batched = hm.ndim == 4
    if hm.ndim not in (3, 4):
        raise ValueError(f"heatmaps must be (K, h0, h1) or (B, K, h0, h1), got {tuple(hm.shape)}.")
    sizes = _source_shape(image)
    if sizes is None:
        return heatmaps
    matrices = model_to_source_affine(image).reshape(-1, 3, 3)
    maps = hm if batched else hm[None]
    if len(matrices) != len(maps) or len(sizes) != len(maps):
        raise ValueError(f"{len(maps)} heatmaps for {len(matrices)} reference images.")
    g = [(torch.arange(n, dtype=torch.float64) + 0.5) * stride - 0.5 for n in maps.shape[-2:]]
    out = []
    for m, size, h in zip(matrices, sizes, maps):
        # the input's geometry is a scale and a shift per axis (resize, pad, crop): each axis maps on its own
        src0 = m[0, 0] * g[0] + m[0, 2]
        src1 = m[1, 1] * g[1] + m[1, 2]
        inside = ((src0 >= -0.5) & (src0 <= size[0] - 0.5))[:, None] & ((src1 >= -0.5) & (src1 <= size[1] - 0.5))[None]
        if bool(inside.all()) or not bool(inside.any()):
            out.append(h)
            continue
        floor = h.flatten(1).amin(1)[:, None, None]
        out.append(torch.where(inside.to(h.device), h, floor))
    result = torch.stack(out) if batched else out[0]
    masked, *_ = convert_to_dst_type(result, heatmaps)
    return masked


class MaskOutsideSource(Transform):
    """Array form of :func:`mask_outside_source`: ``(heatmaps, image) -> heatmaps``.

    Args:
        codec: the heatmap codec (for its stride; default the default codec).
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, codec: GaussianHeatmapCodec | None = None) -> None:
        self.codec = codec or GaussianHeatmapCodec()

    def __call__(self, heatmaps: NdarrayOrTensor, image: MetaTensor) -> NdarrayOrTensor:
        return mask_outside_source(heatmaps, image, self.codec.stride)


class MaskOutsideSourced(MapTransform):
    """Dictionary-based :class:`MaskOutsideSource`: place it in the post-processing before ``HeatmapToLandmarksd``
    (and the uncertainty step, which then sees the same map)::

        MaskOutsideSourced(keys="pred", ref_key="image", codec=codec),
        HeatmapToLandmarksd(keys="pred", codec=codec, logits=True),

    Args:
        keys: heatmap keys (``(K, h0, h1)`` per decollated item).
        ref_key: the model input image of the item.
        codec: the heatmap codec (for its stride).
        allow_missing_keys: don't raise if a key is missing.
    """

    backend = MaskOutsideSource.backend

    def __init__(
        self,
        keys: KeysCollection = "pred",
        ref_key: str = "image",
        codec: GaussianHeatmapCodec | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.ref_key = ref_key
        self.mask = MaskOutsideSource(codec)

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        d = dict(data)
        for key in self.key_iterator(d):
            if self.ref_key not in d:
                raise KeyError(f"{type(self).__name__}: key {self.ref_key!r} is not in the data (keys: {list(d)}).")
            d[key] = self.mask(d[key], d[self.ref_key])
        return d


MaskOutsideSourceD = MaskOutsideSourceDict = MaskOutsideSourced
