"""Orientations of a radiograph and the exact pixel maps that turn it upright, and :class:`WhileUprightd`.

Orientation names say what happened to an upright radiograph (profile facing right, as the networks learn it) to
give the image as it is (display: rows are y, columns x): ``"as given"``, ``"mirrored"`` (flipped left-right:
``x -> W - 1 - x``), ``"rotated 90"`` / ``"rotated 180"`` / ``"rotated 270"`` (turned counter-clockwise by that many
degrees as displayed). :func:`upright` turns a tensor ``(..., x, y)`` upright, :func:`from_upright` undoes it and
:func:`upright_matrix` is the pixel map (pixel centres at integers); both are permutations of the pixel grid.
:class:`~monai_ceph.inferers.OrientationInferer` decides the orientation; :class:`WhileUprightd` runs a step that
reads anatomy from the points' directions (signed cephalometric angles) on the landmarks turned upright.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from monai.config import KeysCollection
from monai.transforms.transform import MapTransform

from monai_ceph.transforms.spatial.array import transform_points

__all__ = [
    "AS_GIVEN",
    "ORIENTATIONS",
    "WhileUprightD",
    "WhileUprightDict",
    "WhileUprightd",
    "check_orientation",
    "from_upright",
    "upright",
    "upright_matrix",
]

AS_GIVEN = "as given"
# name -> (counter-clockwise quarter turns of torch.rot90 over the (x, y) dims, then a flip of x) turning it upright
ORIENTATIONS: dict[str, tuple[int, bool]] = {
    AS_GIVEN: (0, False),
    "mirrored": (0, True),
    "rotated 90": (1, False),
    "rotated 180": (2, False),
    "rotated 270": (3, False),
}


def check_orientation(name: str) -> tuple[int, bool]:
    if name not in ORIENTATIONS:
        raise ValueError(f"unknown orientation {name!r}; expected one of {list(ORIENTATIONS)}.")
    return ORIENTATIONS[name]


def upright(x: torch.Tensor, name: str) -> torch.Tensor:
    """``x`` ``(..., dim0, dim1)`` (MONAI's (x, y)) turned upright from the orientation ``name``."""
    turns, flip = check_orientation(name)
    x = torch.rot90(x, turns, dims=(-2, -1)) if turns else x
    return torch.flip(x, dims=(-2,)) if flip else x


def from_upright(x: torch.Tensor, name: str) -> torch.Tensor:
    """The inverse of :func:`upright`: an upright ``(..., dim0, dim1)`` tensor back in the orientation ``name``."""
    turns, flip = check_orientation(name)
    x = torch.flip(x, dims=(-2,)) if flip else x
    return torch.rot90(x, -turns, dims=(-2, -1)) if turns else x


def upright_matrix(name: str, spatial_shape: Sequence[int]) -> torch.Tensor:
    """``(3, 3)`` float64 homogeneous map from a pixel of an image of ``spatial_shape`` (as given, orientation
    ``name``) to the same pixel in its upright copy (:func:`upright`); e.g. ``"mirrored"``: ``x' = W - 1 - x``."""
    shape = [int(s) for s in spatial_shape]
    if len(shape) != 2 or min(shape) < 2:
        raise ValueError(f"spatial_shape must be two sizes >= 2, got {spatial_shape!r}.")
    # the given pixel each upright pixel shows: the permutation applied to the index grids, read off at 3 pixels
    grids = torch.stack(torch.meshgrid(*[torch.arange(s, dtype=torch.float64) for s in shape], indexing="ij"))
    given = upright(grids, name)  # (2, u0, u1): given indices at each upright pixel
    to_given = torch.eye(3, dtype=torch.float64)
    to_given[:2, 2] = given[:, 0, 0]
    to_given[:2, 0] = given[:, 1, 0] - given[:, 0, 0]
    to_given[:2, 1] = given[:, 0, 1] - given[:, 0, 0]
    return torch.linalg.inv(to_given)


class WhileUprightd(MapTransform):
    """Run ``transform`` on the item with its landmark ``keys`` turned upright, then turn them back.

    The item's orientation (``orientation_key``, written by the bundle's post-processing from the
    :class:`~monai_ceph.inferers.OrientationInferer`) says how the radiograph was turned; the points (source
    pixels of the image as given, whose size is the ``spatial_shape`` in ``ref_key``'s meta) are mapped into the
    upright image's pixels and ``spacing_key`` swapped for a quarter turn while ``transform`` runs, so a step that
    reads anatomy from the points' directions (the cephalometric measurements' signed angles) sees an upright
    skull. The keys and the spacing are then restored (the points mapped back exactly); everything else
    ``transform`` wrote is kept. An item without an orientation, or ``"as given"``, goes straight through.

    ``covariance_keys`` (``(K, 2, 2)`` in source mm^2, e.g. the points' ``cov_mm``) are turned with them, so a step
    that fuses the points with their uncertainty (the shape refinement) works upright too; ``keys`` and
    ``covariance_keys`` that ``transform`` writes (``unrefined_pred_landmarks``, ...) are mapped back as well.
    """

    def __init__(
        self,
        keys: KeysCollection,
        transform: Callable[[dict], Mapping],
        orientation_key: str = "orientation",
        ref_key: str = "image",
        spacing_key: str | None = "spacing",
        covariance_keys: KeysCollection = (),
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.covariance_keys = [covariance_keys] if isinstance(covariance_keys, str) else list(covariance_keys)
        self.transform = transform
        self.orientation_key = orientation_key
        self.ref_key = ref_key
        self.spacing_key = spacing_key

    def _source_shape(self, d: Mapping) -> list[int]:
        shape = getattr(d.get(self.ref_key), "meta", {}).get("spatial_shape")
        if shape is None:
            raise ValueError(
                f"WhileUprightd: {self.ref_key!r} carries no source 'spatial_shape' in its meta, so the landmarks "
                "cannot be turned upright."
            )
        return [int(s) for s in np.asarray(shape).reshape(-1)[-2:]]

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        name = data.get(self.orientation_key)
        if name is None or name == AS_GIVEN:
            return dict(self.transform(dict(data)))
        check_orientation(name)
        d = dict(data)
        to_upright = upright_matrix(name, self._source_shape(d))
        for key in self.key_iterator(d):
            d[key] = transform_points(d[key], to_upright)
        quarter = ORIENTATIONS[name][0] % 2 == 1
        linear = to_upright[:2, :2]  # a signed permutation: mm covariances turn by it as pixels do
        for key in self.covariance_keys:
            if d.get(key) is not None:
                d[key] = _turn_covariance(d[key], linear)
        if quarter and self.spacing_key is not None and self.spacing_key in d:
            spacing = d[self.spacing_key]
            d[self.spacing_key] = spacing[..., [1, 0]] if hasattr(spacing, "shape") else list(spacing)[::-1]
        out = dict(self.transform(d))
        back = torch.linalg.inv(to_upright)
        for key in self.keys:
            if out.get(key) is not None:
                out[key] = transform_points(out[key], back)
        for key in self.covariance_keys:
            if out.get(key) is not None:
                out[key] = _turn_covariance(out[key], back[:2, :2])
        if self.spacing_key is not None and self.spacing_key in data:
            out[self.spacing_key] = data[self.spacing_key]
        return out


def _turn_covariance(cov, linear: torch.Tensor):
    """``A C A^T`` for ``(..., 2, 2)`` covariances, in the input's type (numpy or torch)."""
    c = torch.as_tensor(np.asarray(cov) if not isinstance(cov, torch.Tensor) else cov)
    a = linear.to(dtype=c.dtype, device=c.device)
    turned = a @ c @ a.T
    return turned if isinstance(cov, torch.Tensor) else turned.numpy()


WhileUprightD = WhileUprightDict = WhileUprightd
