"""Array transforms for landmarks: checking what a datalist item holds, and the heatmap codec transforms.

Landmarks are ``(N, 2)`` float arrays in the order of the image's spatial dims (``(x, y)`` for PNG/JPEG/DICOM as
MONAI loads them), in pixel-index units (integer = pixel centre); missing landmarks are NaN rows. Spacing is
mm/pixel, shape ``(2,)``, in the same order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from monai.config.type_definitions import NdarrayOrTensor
from monai.transforms.transform import Transform
from monai.utils import TransformBackends
from monai.utils.type_conversion import convert_to_dst_type

from monai_ceph.data.landmark_sets import LandmarkSet, get_landmark_set
from monai_ceph.data.readers import landmarks_from_json
from monai_ceph.deprecation import deprecated_alias
from monai_ceph.transforms.landmarks.codec import GaussianHeatmapCodec
from monai_ceph.transforms.utils import as_spacing, convert_like, landmark_visibility

__all__ = [
    "EnsureLandmarks",
    "LoadLandmarks",
    "LandmarksToHeatmap",
    "HeatmapToLandmarks",
    "as_spacing",
    "landmark_visibility",
]


def _as_landmarks(landmarks) -> torch.Tensor:
    """Datalist landmarks (list of ``[x, y]`` / null, or an (N, 2) array with NaN rows) as float64 ``(N, 2)``."""
    if isinstance(landmarks, np.ndarray) and landmarks.dtype == object:
        landmarks = landmarks.tolist()  # e.g. np.array of a list with None: parse entry by entry
    if isinstance(landmarks, (np.ndarray, torch.Tensor)):
        if isinstance(landmarks, np.ndarray):
            real = landmarks.dtype.kind in ("f", "i", "u")
        else:
            real = landmarks.dtype != torch.bool and not landmarks.is_complex()
        if not real:
            raise ValueError(f"landmarks must be real numbers, got dtype {landmarks.dtype}.")
        values = torch.as_tensor(landmarks).detach().to(torch.float64)
        if values.ndim != 2 or values.shape[-1] != 2:
            raise ValueError(f"landmarks must have shape (N, 2), got {tuple(values.shape)}.")
        partial = torch.isnan(values).any(-1) & ~torch.isnan(values).all(-1)
        if bool(partial.any()):
            first = int(partial.nonzero()[0])
            raise ValueError(f"landmark {first} has one missing coordinate; missing landmarks are NaN in both.")
        if bool(torch.isinf(values).any()):
            raise ValueError(f"landmark {int(torch.isinf(values).any(-1).nonzero()[0])} has an infinite coordinate.")
        return values
    return torch.as_tensor(landmarks_from_json(landmarks, "landmarks"), dtype=torch.float64)


class EnsureLandmarks(Transform):
    """Turn datalist landmarks into a float32 ``(N, 2)`` array with NaN rows for missing ones, and check them.

    Reads no file: it ensures that what the datalist item holds is usable. Accepts a list of ``[x, y]`` pairs with
    ``null``/``None`` for a missing landmark (the datalist format, parsed by
    :func:`monai_ceph.data.landmarks_from_json`) or an ``(N, 2)`` numpy array / tensor with NaN rows. A list gives
    a torch tensor; an array gives the input's type.

    Checks: the shape is ``(N, 2)``; every value is numeric and finite (or the whole landmark missing); ``N``
    matches ``num_landmarks`` or the size of the landmark set; and, given the image's ``spatial_size``, every
    present landmark lies inside the image (``-0.5 <= p < size - 0.5``), which catches swapped or 1-based
    coordinates. Errors are ``ValueError`` naming the landmark and the problem.

    Args:
        num_landmarks: expected number of landmarks.
        landmark_set: expected landmark set (name such as ``"isbi2015"`` or a :class:`LandmarkSet`); a set given at
            call time (the datalist item's ``"landmark_set"``) takes precedence.
        dtype: output floating dtype.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        num_landmarks: int | None = None,
        landmark_set: str | LandmarkSet | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if num_landmarks is not None and (int(num_landmarks) != num_landmarks or num_landmarks < 1):
            raise ValueError(f"num_landmarks must be a positive integer, got {num_landmarks!r}.")
        self.landmark_set = None if landmark_set is None else get_landmark_set(landmark_set)
        if num_landmarks is not None and self.landmark_set is not None and len(self.landmark_set) != num_landmarks:
            raise ValueError(
                f"num_landmarks={num_landmarks} disagrees with the {self.landmark_set.name} set "
                f"({len(self.landmark_set)} landmarks)."
            )
        self.num_landmarks = None if num_landmarks is None else int(num_landmarks)
        self.dtype = dtype

    def expected_count(self, landmark_set: str | LandmarkSet | None = None) -> int | None:
        """The number of landmarks an item must have (``None``: any)."""
        if landmark_set is not None:
            n = len(get_landmark_set(landmark_set))
            if self.num_landmarks is not None and n != self.num_landmarks:
                raise ValueError(
                    f"the item's landmark set {get_landmark_set(landmark_set).name!r} has {n} landmarks but "
                    f"{self.num_landmarks} are expected."
                )
            return n
        if self.landmark_set is not None:
            return len(self.landmark_set)
        return self.num_landmarks

    def __call__(
        self,
        landmarks,
        landmark_set: str | LandmarkSet | None = None,
        spatial_size: Sequence[int] | None = None,
    ) -> NdarrayOrTensor:
        """
        Args:
            landmarks: list of ``[x, y]`` / ``None``, or an ``(N, 2)`` array with NaN rows.
            landmark_set: the item's landmark set, checked against ``N``.
            spatial_size: the image's spatial size; when given, present landmarks must lie inside it.
        """
        values = _as_landmarks(landmarks)
        expected = self.expected_count(landmark_set)
        if expected is not None and values.shape[0] != expected:
            named = landmark_set if landmark_set is not None else self.landmark_set
            what = f"the {get_landmark_set(named).name} set" if named is not None else "num_landmarks"
            raise ValueError(f"expected {expected} landmarks ({what}), got {values.shape[0]}.")
        if spatial_size is not None:
            if len(spatial_size) != values.shape[-1]:
                raise ValueError(
                    f"the image has {len(spatial_size)} spatial dims, the landmarks have {values.shape[-1]}."
                )
            outside = torch.isfinite(values).all(-1) & ~(landmark_visibility(values, spatial_size) > 0)
            if bool(outside.any()):
                i = int(outside.nonzero()[0])
                raise ValueError(
                    f"landmark {i} at {values[i].tolist()} lies outside the image of spatial size "
                    f"{tuple(spatial_size)}; "
                    "landmarks are 0-based pixel indices in the image's (dim0, dim1) = (x, y) order."
                )
        like = landmarks if isinstance(landmarks, (np.ndarray, torch.Tensor)) else torch.empty(0)
        out, *_ = convert_to_dst_type(values, like, dtype=self.dtype)
        return out


@deprecated_alias("EnsureLandmarks")
class LoadLandmarks(EnsureLandmarks):
    """Deprecated name of :class:`EnsureLandmarks` (it reads no file)."""


class LandmarksToHeatmap(Transform):
    """Render one Gaussian heatmap channel per landmark with a :class:`GaussianHeatmapCodec`.

    Centres are sub-pixel (MONAI's ``GenerateHeatmap`` rounds them to whole pixels; this does not). A missing
    (NaN) landmark gives an all-zero channel; see :func:`landmark_visibility` for the matching mask.

    Args:
        codec: the codec shared with :class:`HeatmapToLandmarks` (default: ``GaussianHeatmapCodec()``, sigma 2 px,
            the paper's amplitude, stride 1).
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, codec: GaussianHeatmapCodec | None = None) -> None:
        self.codec = codec if codec is not None else GaussianHeatmapCodec()

    def __call__(self, landmarks: NdarrayOrTensor, spatial_size: Sequence[int], spacing=None) -> NdarrayOrTensor:
        """
        Args:
            landmarks: ``(K, 2)`` in model-input pixels.
            spatial_size: the model-input spatial size; heatmaps are ``codec.heatmap_size(spatial_size)``.
            spacing: mm/pixel ``(2,)`` at model resolution, needed when the codec's sigma is in mm.

        Returns:
            float32 ``(K, h0, h1)``, numpy for numpy input, else a torch tensor on the landmarks' device.
        """
        points = torch.as_tensor(landmarks)
        if points.ndim != 2 or points.shape[-1] != 2:
            raise ValueError(f"landmarks must have shape (K, 2), got {tuple(points.shape)}.")
        return convert_like(self.codec.encode(points, spatial_size, spacing), landmarks, keep_meta=False)


class HeatmapToLandmarks(Transform):
    """Decode heatmaps (or logits) into landmarks and per-landmark confidence with a :class:`GaussianHeatmapCodec`.

    Works on ``(K, h0, h1)`` or batched ``(B, K, h0, h1)`` input on any device; the codec's ``decode_method``
    chooses argmax, DARK (default) or local-centroid refinement.

    Args:
        codec: the codec shared with :class:`LandmarksToHeatmap`.
        logits: the input holds logits of a ``BCEWithLogits``-trained network (decoded on
            ``logsigmoid(logits) = log(sigmoid(logits))``; confidence is ``sigmoid`` of the peak logit).
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, codec: GaussianHeatmapCodec | None = None, logits: bool = False) -> None:
        self.codec = codec if codec is not None else GaussianHeatmapCodec()
        self.logits = logits

    def __call__(self, heatmap: NdarrayOrTensor, spacing=None) -> tuple[NdarrayOrTensor, NdarrayOrTensor]:
        """
        Args:
            heatmap: ``(..., K, h0, h1)`` heatmaps or logits.
            spacing: mm/pixel at model resolution, only for a codec with sigma in mm and blur/centroid decoding.

        Returns:
            ``(points, confidence)``: float32 ``(..., K, 2)`` in model-input pixels and ``(..., K)``; numpy for
            numpy input, else plain torch tensors on the input's device.
        """
        points, confidence = self.codec.decode(torch.as_tensor(heatmap), spacing=spacing, logits=self.logits)
        return convert_like(points, heatmap, keep_meta=False), convert_like(confidence, heatmap, keep_meta=False)
