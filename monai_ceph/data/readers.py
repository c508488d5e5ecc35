"""What every dataset reader shares: the record it returns, its errors, and the checks it applies.

The format readers (:mod:`.isbi`, :mod:`.aariz`, :mod:`.labelme`, :mod:`.dicom`) convert at the boundary from
the file's own convention to the package convention:

- landmarks are ``float64`` arrays ``(N, 2)`` in ``(x, y)`` pixel-index units (integer = pixel centre), in the
  order of a :class:`~monai_ceph.data.landmark_sets.LandmarkSet`; a landmark the file does not give is
  ``NaN`` (with a :class:`MissingLandmarkWarning`), never dropped and never zero;
- spacing is mm per pixel, ``(sx, sy)``, finite and positive.

Bad input raises a :class:`DataFileError` (a ``ValueError``) whose message names the file and the row, key
or label at fault; a missing file raises ``FileNotFoundError`` naming the path.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .landmark_sets import LandmarkSet, get_landmark_set

__all__ = [
    "DataFileError",
    "LandmarkFileError",
    "SpacingError",
    "MissingLandmarkWarning",
    "LandmarkRecord",
    "IMAGE_SUFFIXES",
    "match_landmark",
    "parse_coordinate",
    "check_spacing",
    "find_image",
    "points_to_json",
    "points_from_json",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dcm")

# Quote-like characters that annotation tools write for the prime in "Pog'" / "N'".
_PRIMES = str.maketrans({"`": "'", "\u2019": "'", "\u2032": "'", "\u00b4": "'"})


class DataFileError(ValueError):
    """A dataset file exists but its content cannot be used; the message names the file and the fault."""


class LandmarkFileError(DataFileError):
    """An annotation file (CSV row, text line, JSON entry) is malformed, short, duplicated or unknown."""


class SpacingError(DataFileError):
    """A pixel spacing is absent, non-numeric, non-finite or not positive."""


class MissingLandmarkWarning(UserWarning):
    """A file that may omit landmarks did omit some; they are returned as NaN."""


@dataclass(frozen=True)
class LandmarkRecord:
    """One annotated image, in the package convention.

    Args:
        id: identifier of the image within its dataset, e.g. ``"001"``.
        image: path of the image file.
        landmarks: ``(N, 2)`` float array, ``(x, y)`` pixels, NaN where missing.
        spacing: ``(2,)`` float array, mm per pixel in ``(x, y)`` order.
        landmark_set: name of the :class:`LandmarkSet` the rows of ``landmarks`` follow.
        split: the dataset's own split name (``"train"``, ``"test1"``, ``"valid"``...), ``None`` if it has none.
    """

    id: str
    image: str
    landmarks: np.ndarray
    spacing: np.ndarray
    landmark_set: str
    split: str | None = None

    def to_item(self) -> dict:
        """The MONAI datalist item ``{"image", "landmarks", "spacing", "id", "landmark_set"}`` of this record.

        The image path is absolute (not resolved: a symlinked dataset folder keeps its name);
        :func:`~monai_ceph.data.datalist.write_datalist` can write it relative to the JSON instead.
        """
        return {
            "image": Path(os.path.abspath(self.image)).as_posix(),
            "landmarks": points_to_json(self.landmarks),
            "spacing": [float(s) for s in self.spacing],
            "id": self.id,
            "landmark_set": self.landmark_set,
        }


def match_landmark(landmark_set: str | LandmarkSet, label: str) -> int:
    """Index of ``label`` (abbreviation or full name, any case) in ``landmark_set``.

    Backticks and typographic primes are read as ``'`` (``"Pog`"`` is ``"Pog'"``).
    Raises ``KeyError`` when the set has no such landmark.
    """
    return get_landmark_set(landmark_set).index(str(label).translate(_PRIMES))


def parse_coordinate(value, where: str) -> float:
    """``float(value)``, refusing text, empty cells and non-finite values with a :class:`LandmarkFileError`.

    Args:
        value: the raw cell or JSON value.
        where: the file and position, used in the message (``"train.csv row 3 column '1_x'"``).
    """
    if isinstance(value, bool):
        raise LandmarkFileError(f"{where}: coordinate {value!r} is not a number.")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise LandmarkFileError(f"{where}: coordinate {value!r} is not a number.") from None
    if not math.isfinite(number):
        raise LandmarkFileError(f"{where}: coordinate {value!r} is not finite.")
    return number


def check_spacing(spacing, where: str, spatial_dims: int = 2) -> np.ndarray:
    """Spacing as a ``(spatial_dims,)`` float64 array (``(sx, sy)`` in 2D); a scalar means isotropic.

    The one spacing check of the package (readers, datalists and :func:`monai_ceph.transforms.as_spacing`).
    Raises :class:`SpacingError` naming ``where`` if a value is non-numeric, non-finite or ``<= 0``.
    """
    try:
        values = np.asarray(spacing, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise SpacingError(f"{where}: pixel spacing {spacing!r} is not numeric.") from None
    if values.size == 1:
        values = np.repeat(values, spatial_dims)
    if values.size != spatial_dims:
        raise SpacingError(
            f"{where}: pixel spacing {spacing!r} must be one value or {spatial_dims} values (one per spatial dim)."
        )
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise SpacingError(f"{where}: pixel spacing {spacing!r} must be finite and > 0 mm/pixel.")
    return values


def find_image(folder: str | os.PathLike, stem: str, suffixes: Sequence[str] = IMAGE_SUFFIXES) -> Path:
    """The file ``folder/stem.<suffix>`` for the first suffix that exists (suffix case ignored).

    Raises ``FileNotFoundError`` naming the folder and the stem when there is none.
    """
    folder = Path(folder)
    for suffix in suffixes:
        for candidate in (folder / f"{stem}{suffix.lower()}", folder / f"{stem}{suffix.upper()}"):
            if candidate.is_file():
                return candidate
    raise FileNotFoundError(f"no image {stem}.{{{','.join(s.lstrip('.') for s in suffixes)}}} in {folder}.")


def points_to_json(points) -> list:
    """``(N, 2)`` array to JSON lists; a NaN coordinate is written as ``null``."""
    return [[None if math.isnan(v) else float(v) for v in p] for p in np.asarray(points, dtype=np.float64)]


def points_from_json(points) -> np.ndarray:
    """JSON landmark lists (``null`` for missing) to a ``(N, 2)`` float array with NaN for missing."""
    arr = np.array([[np.nan, np.nan] if p is None else p for p in points], dtype=np.float64)
    if arr.size == 0:
        return arr.reshape(0, 2)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"landmarks must be a list of [x, y] pairs, got shape {arr.shape}.")
    return arr
