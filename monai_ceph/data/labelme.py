"""labelme point annotations: one JSON per image, a ``"point"`` shape per landmark.

A labelme file looks like ``{"shapes": [{"label": "S", "points": [[x, y]], "shape_type": "point", ...}, ...],
"imagePath": "001.png", ...}``. A point's ``label`` is the landmark's abbreviation or full name in the chosen
:class:`~monai_ceph.data.landmark_sets.LandmarkSet` (any case; ``"Pog`"`` reads as ``"Pog'"``). Shapes of other
types (polygons, lines) are not landmarks and are skipped. Coordinates are taken as written, ``(x, y)`` in
pixels of the image: labelme's canvas puts the centre of pixel ``i`` at ``i + 0.5``, so points clicked on pixel
centres come out half a pixel (e.g. 0.05 mm at 0.1 mm/pixel) right of and below this package's pixel-index
convention; that bias is left to the user.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from .landmark_sets import ISBI2015, LandmarkSet, get_landmark_set
from .readers import (
    LandmarkCollector,
    LandmarkFileError,
    LandmarkRecord,
    check_spacing,
    find_image,
    parse_landmark,
    read_json,
    resolve_spacing,
)

__all__ = ["read_labelme_json", "load_labelme"]


def _image_path(path: Path, data: dict) -> Path:
    named = data.get("imagePath")
    if isinstance(named, str) and named:
        candidate = path.parent / named.replace("\\", "/")
        if candidate.is_file():
            return candidate
    try:
        return find_image(path.parent, path.stem)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path}: image {named!r} not found, nor an image named {path.stem}.* beside it."
        ) from None


def read_labelme_json(
    path: str | os.PathLike, landmark_set: str | LandmarkSet = ISBI2015
) -> tuple[np.ndarray, Path]:
    """Read a labelme JSON's point shapes into landmark order.

    Args:
        path: the labelme JSON file.
        landmark_set: the set the labels belong to (default ``"isbi2015"``).

    Returns:
        ``(points, image)``: ``(N, 2)`` float array, NaN (with a :class:`MissingLandmarkWarning`) for a landmark
        without a point; and the image file (``imagePath`` relative to the JSON, else ``<json stem>.<image ext>``
        beside it).

    Raises:
        FileNotFoundError: the JSON or its image is missing.
        LandmarkFileError: not a labelme JSON, a point label not in the set, a landmark given twice, a point
            without exactly one numeric ``[x, y]``.
    """
    path = Path(path)
    data = read_json(path)
    return _points(path, data, get_landmark_set(landmark_set)), _image_path(path, data)


def _points(path: Path, data, lms: LandmarkSet) -> np.ndarray:
    shapes = data.get("shapes") if isinstance(data, dict) else None
    if not isinstance(shapes, list):
        raise LandmarkFileError(f"{path}: not a labelme file (no 'shapes' list).")
    collector = LandmarkCollector(lms, str(path))
    for n, shape in enumerate(shapes):
        if not isinstance(shape, dict) or shape.get("shape_type") != "point":
            continue
        label = shape.get("label")
        where = f"{path} shapes[{n}] label {label!r}"
        index = collector.index(label, where)
        xy = shape.get("points")
        if not isinstance(xy, list) or len(xy) != 1:
            raise LandmarkFileError(f"{where}: 'points' must be [[x, y]], got {xy!r}.")
        collector.put(index, parse_landmark(xy[0], where), where, given_by=f"by label {label!r}")
    return collector.result("point", stacklevel=4)


def load_labelme(
    dataset_dir: str | os.PathLike,
    landmark_set: str | LandmarkSet = ISBI2015,
    spacing: float | tuple[float, float] | None = None,
) -> list[LandmarkRecord]:
    """Records of a folder of labelme JSONs (not searched recursively), sorted by id (the JSON's stem).

    JSON files without a ``"shapes"`` list (e.g. a datalist written into the folder) are skipped with a warning.

    Args:
        dataset_dir: the folder of labelme JSON files.
        landmark_set: the set the labels belong to.
        spacing: mm/pixel, one value or ``(sx, sy)``, for images whose file carries none; DICOM images use
            their own header (:func:`~monai_ceph.data.dicom.read_dicom_spacing`).

    Raises:
        FileNotFoundError: the folder, or an image, is missing.
        SpacingError: a non-DICOM image and no ``spacing``; a spacing ``<= 0``.
        LandmarkFileError: see :func:`read_labelme_json`.
    """
    root = Path(dataset_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"no labelme folder {root}.")
    lms = get_landmark_set(landmark_set)
    default = None if spacing is None else check_spacing(spacing, "spacing argument")
    records = []
    for path in sorted(root.glob("*.json")):
        data = read_json(path)
        if not isinstance(data, dict) or "shapes" not in data:
            warnings.warn(f"{path}: not a labelme file (no 'shapes'); skipped.", UserWarning, stacklevel=2)
            continue
        points, image = _points(path, data, lms), _image_path(path, data)
        records.append(
            LandmarkRecord(id=path.stem, image=str(image), landmarks=points,
                           spacing=resolve_spacing(image, default=default), landmark_set=lms.name)
        )
    return records
