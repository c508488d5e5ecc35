"""Build a :class:`~monai_ceph.shape.ShapeModel` from a datalist (also ``python -m monai_ceph.shape``)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

from monai_ceph.data import get_landmark_set, load_datalist, landmarks_from_json

from .model import ShapeModel

__all__ = ["datalist_shapes", "build_shape_model"]


def datalist_shapes(items: Sequence[Mapping], where: str = "datalist") -> tuple[np.ndarray, str]:
    """``(N, K, 2)`` landmarks in mm (source pixels * spacing, NaN missing) of datalist items, and their set.

    Raises ``ValueError`` naming the entry whose landmark set differs from the first item's.
    """
    if not items:
        raise ValueError(f"{where}: no items to build a shape model from.")
    name = get_landmark_set(items[0].get("landmark_set", "isbi2015")).name
    shapes = []
    for i, item in enumerate(items):
        other = get_landmark_set(item.get("landmark_set", "isbi2015")).name
        if other != name:
            raise ValueError(f"{where} entry {i} (id {item.get('id', '?')!r}): landmark set {other!r}, but the "
                             f"first entry's is {name!r}; a shape model needs one set.")
        spacing = np.asarray(item["spacing"], dtype=np.float64).reshape(-1)
        shapes.append(landmarks_from_json(item["landmarks"]) * spacing)
    return np.stack(shapes), name


def build_shape_model(datalist: str | os.PathLike, section: str = "training", **fit_kwargs) -> ShapeModel:
    """Fit a :class:`ShapeModel` on a section of a datalist JSON (checked by :func:`monai_ceph.data.load_datalist`)."""
    sections = load_datalist(datalist=datalist)
    if not sections.get(section):
        raise ValueError(f"{datalist}: section {section!r} is missing or empty "
                         f"(sections: { {k: len(v) for k, v in sections.items()} }).")
    shapes, name = datalist_shapes(sections[section], f"{datalist} [{section}]")
    return ShapeModel.fit(shapes, landmark_set=name, **fit_kwargs)
