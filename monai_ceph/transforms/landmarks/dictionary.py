"""Dictionary wrappers of :mod:`monai_ceph.transforms.landmarks.array`.

Sample keys (package conventions): ``"image"``, ``"landmarks"`` ``(N, 2)`` (the ground truth), ``"spacing"``
``(2,)``, ``"id"``, ``"landmark_set"``, ``"landmark_mask"`` ``(N,)``, ``"heatmap"`` (target heatmaps, the default of
:class:`LandmarksToHeatmapd`; the bundle names them ``"label"``, MONAI's training key), ``"pred"`` (network output),
``"pred_landmarks"`` ``(N, 2)``, ``"pred_confidence"`` ``(N,)``. A MONAI Label *label* is a file of landmarks
(:mod:`monai_ceph.data.monailabel`), never a heatmap.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence

import torch

from monai.config import KeysCollection
from monai.data.meta_tensor import MetaTensor
from monai.data.utils import to_affine_nd
from monai.transforms.transform import MapTransform
from monai.transforms.utils import scale_affine
from monai.utils import ensure_tuple

from monai_ceph.data.landmark_sets import LandmarkSet
from monai_ceph.data.readers import PLAUSIBLE_SPACING_MM
from monai_ceph.deprecation import deprecated_alias
from monai_ceph.transforms.landmarks.array import EnsureLandmarks, HeatmapToLandmarks, LandmarksToHeatmap
from monai_ceph.transforms.landmarks.codec import GaussianHeatmapCodec
from monai_ceph.transforms.utils import as_spacing, landmark_visibility, record_source_affine

__all__ = [
    "EnsureLandmarksd",
    "EnsureLandmarksD",
    "EnsureLandmarksDict",
    "LoadLandmarksd",
    "LoadLandmarksD",
    "LoadLandmarksDict",
    "LandmarksToHeatmapd",
    "LandmarksToHeatmapD",
    "LandmarksToHeatmapDict",
    "HeatmapToLandmarksd",
    "HeatmapToLandmarksD",
    "HeatmapToLandmarksDict",
    "describe_item",
]


def describe_item(d: Mapping, id_key: str | None = "id", image_key: str | None = "image") -> str:
    """``"item id='001' (image /data/001.jpg)"``: how errors name a datalist item."""
    parts = []
    if id_key is not None and d.get(id_key) is not None:
        parts.append(f"id={d[id_key]!r}")
    image = d.get(image_key) if image_key is not None else None
    path = image if isinstance(image, str) else getattr(image, "meta", {}).get("filename_or_obj")
    if path:
        parts.append(f"image {path}")
    return "item " + (", ".join(parts) if parts else "(no id or image path)")


def _aligned(keys: tuple, others: KeysCollection | None, name: str) -> tuple:
    """``others`` as a tuple aligned with ``keys`` (``None`` entries mean "do not write")."""
    if others is None:
        return (None,) * len(keys)
    others = ensure_tuple(others)
    if len(others) != len(keys):
        raise ValueError(f"{name} must have one entry per key ({len(keys)}), got {len(others)}.")
    return others


class EnsureLandmarksd(MapTransform):
    """Dictionary-based :class:`~monai_ceph.transforms.EnsureLandmarks`, plus spacing and visibility.

    For each landmark key: parse and validate (shape ``(N, 2)``, numeric, count against ``num_landmarks`` or the
    item's ``landmark_set``, inside the loaded image when ``check_bounds``), giving a float32 ``(N, 2)`` with NaN
    rows for missing points, and write the visibility ``(N,)`` (1 = present) to the aligned ``mask_keys``.
    Also converts ``spacing_key`` to a float32 tensor ``(2,)`` (rejecting values <= 0) and records the loaded
    image's affine as its source affine (``meta["original_affine"]``), the anchor of
    :class:`~monai_ceph.transforms.LandmarksToSourced`. Errors are ``ValueError`` naming the item (id, image path),
    the key and the problem.

    Use after ``LoadImaged`` (the image gives the bounds); it reads no file.

    Args:
        keys: landmark keys, default ``"landmarks"``.
        num_landmarks: expected count (or ``None``).
        landmark_set: expected landmark set (name or :class:`LandmarkSet`).
        landmark_set_key: item key naming the item's set (used when present).
        spacing_key: item key with ``[sx, sy]`` mm/pixel; ``None`` to skip. A missing entry is an error.
        mask_keys: where each key's visibility goes (``None``: not written).
        ref_key: the loaded image's key (bounds check, source affine); skipped if absent.
        id_key: item key with the id used in error messages.
        check_bounds: require present points to lie inside the image.
        allow_missing_keys: don't raise if a landmark key is missing (e.g. inference items).
    """

    backend = EnsureLandmarks.backend

    def __init__(
        self,
        keys: KeysCollection = "landmarks",
        num_landmarks: int | None = None,
        landmark_set: str | LandmarkSet | None = None,
        landmark_set_key: str | None = "landmark_set",
        spacing_key: str | None = "spacing",
        mask_keys: KeysCollection | None = "landmark_mask",
        ref_key: str | None = "image",
        id_key: str | None = "id",
        check_bounds: bool = True,
        dtype: torch.dtype = torch.float32,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.ensurer = EnsureLandmarks(num_landmarks=num_landmarks, landmark_set=landmark_set, dtype=dtype)
        self.landmark_set_key = landmark_set_key
        self.spacing_key = spacing_key
        self.mask_keys = _aligned(self.keys, mask_keys, "mask_keys")
        self.ref_key = ref_key
        self.id_key = id_key
        self.check_bounds = check_bounds

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        d = dict(data)
        item = describe_item(d, self.id_key, self.ref_key)
        image = d.get(self.ref_key) if self.ref_key is not None else None
        image_size = tuple(image.shape[1:]) if hasattr(image, "shape") and len(image.shape) >= 2 else None
        spatial_size = image_size if self.check_bounds else None
        landmark_set = d.get(self.landmark_set_key) if self.landmark_set_key is not None else None
        for key, mask_key in self.key_iterator(d, self.mask_keys):
            try:
                d[key] = self.ensurer(d[key], landmark_set=landmark_set, spatial_size=spatial_size)
            except (ValueError, KeyError) as e:
                raise ValueError(f"{item}: {key!r}: {e}") from e
            if mask_key is not None:
                # present = finite (and inside the image when it is known)
                d[mask_key] = landmark_visibility(d[key], image_size or (math.inf, math.inf))
        if self.spacing_key is not None:
            if self.spacing_key not in d:
                raise ValueError(
                    f"{item}: no {self.spacing_key!r} entry; give the pixel spacing [sx, sy] in mm/pixel "
                    "(or spacing_key=None)."
                )
            try:
                d[self.spacing_key] = as_spacing(d[self.spacing_key], plausible=PLAUSIBLE_SPACING_MM)
            except ValueError as e:
                raise ValueError(f"{item}: {self.spacing_key!r}: {e}") from e
        record_source_affine(image)
        return d


class LandmarksToHeatmapd(MapTransform):
    """Dictionary-based :class:`~monai_ceph.transforms.LandmarksToHeatmap`: targets from landmarks.

    The heatmap size follows the reference image (or ``spatial_size``) and the codec's stride. With a
    ``MetaTensor`` reference image the heatmap is a ``MetaTensor`` with the image's metadata (its affine scaled
    for the stride). The visibility ``(N,)`` (finite and inside the image) goes to ``mask_keys``.

    Args:
        keys: landmark keys, default ``"landmarks"``.
        heatmap_keys: output keys, aligned with ``keys``; default ``"heatmap"``.
        codec: the :class:`GaussianHeatmapCodec` shared with :class:`HeatmapToLandmarksd`.
        ref_key: image key giving the spatial size and metadata.
        spatial_size: explicit model-input size (overrides ``ref_key``'s).
        spacing_key: spacing (mm/pixel) key, read when the codec's sigma is in mm.
        mask_keys: visibility outputs aligned with ``keys`` (``None``: not written).
        allow_missing_keys: don't raise if a key is missing.
    """

    backend = LandmarksToHeatmap.backend

    def __init__(
        self,
        keys: KeysCollection = "landmarks",
        heatmap_keys: KeysCollection = "heatmap",
        codec: GaussianHeatmapCodec | None = None,
        ref_key: str | None = "image",
        spatial_size: Sequence[int] | None = None,
        spacing_key: str | None = "spacing",
        mask_keys: KeysCollection | None = "landmark_mask",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.encoder = LandmarksToHeatmap(codec)
        self.heatmap_keys = _aligned(self.keys, heatmap_keys, "heatmap_keys")
        self.mask_keys = _aligned(self.keys, mask_keys, "mask_keys")
        self.ref_key = ref_key
        self.spatial_size = None if spatial_size is None else tuple(int(s) for s in spatial_size)
        self.spacing_key = spacing_key

    @property
    def codec(self) -> GaussianHeatmapCodec:
        return self.encoder.codec

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        d = dict(data)
        image = d.get(self.ref_key) if self.ref_key is not None else None
        size = self.spatial_size or (tuple(image.shape[1:]) if image is not None else None)
        if size is None:
            raise ValueError(f"no spatial size: give spatial_size or a ref_key present in the data ({self.ref_key!r}).")
        spacing = None
        if self.codec.sigma_unit == "mm":
            if self.spacing_key is None or self.spacing_key not in d:
                raise ValueError(f"the codec's sigma is in mm but the data has no spacing key {self.spacing_key!r}.")
            spacing = d[self.spacing_key]
        for key, heatmap_key, mask_key in self.key_iterator(d, self.heatmap_keys, self.mask_keys):
            heatmap = self.encoder(d[key], size, spacing)
            if isinstance(image, MetaTensor) and isinstance(heatmap, torch.Tensor):
                heatmap = MetaTensor(heatmap, meta=dict(image.meta))
                if self.codec.stride != 1:
                    stride = torch.as_tensor(scale_affine(size, self.codec.heatmap_size(size)), dtype=torch.float64)
                    heatmap.affine = image.affine @ to_affine_nd(image.affine.shape[-1] - 1, stride)
            d[heatmap_key] = heatmap
            if mask_key is not None:
                d[mask_key] = landmark_visibility(d[key], size)
        return d


class HeatmapToLandmarksd(MapTransform):
    """Dictionary-based :class:`~monai_ceph.transforms.HeatmapToLandmarks`: landmarks from predicted heatmaps.

    Args:
        keys: heatmap (or logits) keys, default ``"pred"``; ``(K, h0, h1)`` per item or ``(B, K, h0, h1)``.
        landmark_keys: outputs ``(K, 2)`` in model-input pixels, aligned with ``keys``; default ``"pred_landmarks"``.
        confidence_keys: outputs ``(K,)``, aligned with ``keys``; default ``"pred_confidence"`` (``None``: not
            written).
        codec: the :class:`GaussianHeatmapCodec` shared with :class:`LandmarksToHeatmapd`.
        logits: the inputs are ``BCEWithLogits`` logits (see :class:`GaussianHeatmapCodec`).
        spacing_key: spacing key, read only for a codec with sigma in mm that needs it for decoding.
        allow_missing_keys: don't raise if a key is missing.
    """

    backend = HeatmapToLandmarks.backend

    def __init__(
        self,
        keys: KeysCollection = "pred",
        landmark_keys: KeysCollection = "pred_landmarks",
        confidence_keys: KeysCollection | None = "pred_confidence",
        codec: GaussianHeatmapCodec | None = None,
        logits: bool = False,
        spacing_key: str | None = "spacing",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.decoder = HeatmapToLandmarks(codec, logits=logits)
        self.landmark_keys = _aligned(self.keys, landmark_keys, "landmark_keys")
        self.confidence_keys = _aligned(self.keys, confidence_keys, "confidence_keys")
        self.spacing_key = spacing_key

    @property
    def codec(self) -> GaussianHeatmapCodec:
        return self.decoder.codec

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        d = dict(data)
        codec = self.codec
        needs_spacing = codec.sigma_unit == "mm" and (codec.blur or codec.decode_method == "centroid")
        spacing = d.get(self.spacing_key) if needs_spacing and self.spacing_key is not None else None
        for key, landmark_key, confidence_key in self.key_iterator(d, self.landmark_keys, self.confidence_keys):
            points, confidence = self.decoder(d[key], spacing)
            d[landmark_key] = points
            if confidence_key is not None:
                d[confidence_key] = confidence
        return d


@deprecated_alias("EnsureLandmarksd")
class LoadLandmarksd(EnsureLandmarksd):
    """Deprecated name of :class:`EnsureLandmarksd` (it reads no file)."""


EnsureLandmarksD = EnsureLandmarksDict = EnsureLandmarksd
LoadLandmarksD = LoadLandmarksDict = LoadLandmarksd
LandmarksToHeatmapD = LandmarksToHeatmapDict = LandmarksToHeatmapd
HeatmapToLandmarksD = HeatmapToLandmarksDict = HeatmapToLandmarksd
