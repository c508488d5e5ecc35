"""What every dataset reader shares: the record it returns, its errors, and the checks it applies.

The format readers (:mod:`.isbi`, :mod:`.aariz`, :mod:`.labelme`, :mod:`.monailabel`, and the datalist checks of
:mod:`.sources`) keep only what is specific to their format; what they share is here: matching a named entry to a
landmark of a set (:class:`LandmarkCollector`), parsing ``[x, y] | null`` (:func:`parse_landmark`), NaN <-> ``null``
(:func:`landmarks_to_json`, :func:`landmarks_from_json`) and resolving an image's pixel spacing (:func:`resolve_spacing`:
the DICOM header, else a given value, else the default). They convert at the boundary from the file's own
convention to the package convention:

- landmarks are ``float64`` arrays ``(N, 2)`` in ``(x, y)`` pixel-index units (integer = pixel centre), in the
  order of a :class:`~monai_ceph.data.landmark_sets.LandmarkSet`; a landmark the file does not give is
  ``NaN`` (with a :class:`MissingLandmarkWarning`), never dropped and never zero;
- spacing is mm per pixel, ``(sx, sy)``, finite and positive.

Bad input raises a :class:`DataFileError` (a ``ValueError``) whose message names the file and the row, key
or label at fault; a missing file raises ``FileNotFoundError`` naming the path.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from monai_ceph.deprecation import deprecated_alias

from .landmark_sets import LandmarkSet, get_landmark_set

__all__ = [
    "DataFileError",
    "LandmarkFileError",
    "SpacingError",
    "MissingLandmarkWarning",
    "LandmarkRecord",
    "LandmarkCollector",
    "DICOM_SUFFIXES",
    "DICOM_SPACING_TAGS",
    "IMAGE_SUFFIXES",
    "match_landmark",
    "parse_coordinate",
    "parse_landmark",
    "check_spacing",
    "PLAUSIBLE_SPACING_MM",
    "is_dicom",
    "read_dicom_spacing",
    "resolve_spacing",
    "find_image",
    "read_json",
    "landmarks_to_json",
    "landmarks_from_json",
    "points_to_json",
    "points_from_json",
]

DICOM_SUFFIXES = (".dcm", ".dicom")
"""File suffixes read as DICOM (any case): their pixel spacing comes from the header."""

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", *DICOM_SUFFIXES)

DICOM_SPACING_TAGS = ("PixelSpacing", "ImagerPixelSpacing", "NominalScannedPixelSpacing")
"""Tried in this order: calibrated spacing in the patient plane, then at the detector, then of a scanned film."""

# Quote-like characters that annotation tools write for the prime in "Pog'" / "N'".
_PRIMES = str.maketrans({"`": "'", "\u2019": "'", "\u2032": "'", "\u00b4": "'"})


class DataFileError(ValueError):
    """A dataset file exists but its content cannot be used; the message names the file and the fault."""


class LandmarkFileError(DataFileError):
    """An annotation file (CSV row, text line, JSON entry) is malformed, short, duplicated or unknown."""


class SpacingError(DataFileError):
    """A pixel spacing is absent, non-numeric, non-finite, not positive or outside :data:`PLAUSIBLE_SPACING_MM`."""


PLAUSIBLE_SPACING_MM = (0.01, 5.0)
"""The closed range (mm/pixel) of a radiograph's pixel spacing that :func:`check_spacing` accepts.

0.01 mm is 2540 dpi, finer than any cephalostat detector (0.07-0.2 mm) or film scanner; 5 mm puts a 240 mm skull in
48 pixels, a thumbnail (the package's smallest test phantoms are 50 pixels tall at 4.8 mm; the demo phantoms are 1 mm).
Outside it a spacing is a unit or typing error (100 for 0.1, a dpi value, metres): taken at its word it put every
landmark at the image centre with a confident score, or made the physical-scale resize allocate tens of GB.
"""


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
            "landmarks": landmarks_to_json(self.landmarks),
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


class LandmarkCollector:
    """The landmarks of one annotation file, gathered entry by entry in the order of a landmark set.

    Each entry names its landmark (:meth:`index`); :meth:`put` stores its position once, refusing a landmark
    given twice; :meth:`result` returns the ``(N, 2)`` float64 array with NaN for a landmark no entry gave (and a
    :class:`MissingLandmarkWarning` naming them). Errors are :class:`LandmarkFileError` naming the entry.

    Args:
        landmark_set: the set the entries belong to.
        where: the file, used in the warning.
    """

    def __init__(self, landmark_set: str | LandmarkSet, where: str) -> None:
        self.landmark_set = get_landmark_set(landmark_set)
        self.where = where
        self.landmarks = np.full((len(self.landmark_set), 2), np.nan)
        self._given: dict[int, str] = {}

    def index(self, label, at: str) -> int:
        """Index of the landmark ``label`` names; ``at`` (the entry) is named in the error for an unknown one."""
        try:
            return match_landmark(self.landmark_set, label)
        except KeyError:
            lms = self.landmark_set
            raise LandmarkFileError(f"{at}: {label!r} is not a landmark of the {lms.name} set "
                                    f"{list(lms.abbreviations)}.") from None

    def put(self, index: int, position, at: str, given_by: str | None = None) -> None:
        """Store ``position`` (``(x, y)``, or ``None`` for "named but not placed") of landmark ``index``.

        Args:
            index: from :meth:`index` (or a format's own matching).
            position: two floats or ``None``.
            at: the entry, named in the error when the landmark was already given.
            given_by: how a later duplicate names this entry (default ``at``).
        """
        if index in self._given:
            raise LandmarkFileError(f"{at}: landmark {self.landmark_set.abbreviations[index]!r} already given "
                                    f"{self._given[index]}.")
        self._given[index] = given_by or f"at {at}"
        if position is not None:
            self.landmarks[index] = position

    def missing(self) -> list[str]:
        """Abbreviations of the landmarks without a position."""
        return [a for a, p in zip(self.landmark_set.abbreviations, self.landmarks) if np.isnan(p).any()]

    def result(self, what: str = "point", stacklevel: int = 3) -> np.ndarray:
        """The ``(N, 2)`` landmarks; warns ``"<where>: no <what> for [...]; they are NaN."`` when some are missing."""
        missing = self.missing()
        if missing:
            warnings.warn(f"{self.where}: no {what} for {missing}; they are NaN.", MissingLandmarkWarning,
                          stacklevel=stacklevel)
        return self.landmarks


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


def parse_landmark(value, where: str) -> tuple[float, float] | None:
    """One landmark written as ``[x, y]`` or ``null`` (also ``[null, null]``): two floats, or ``None`` if missing.

    Raises :class:`LandmarkFileError` naming ``where`` for anything else: not a pair, one coordinate ``null``,
    a coordinate that is not a finite number (see :func:`parse_coordinate`).
    """
    if value is None:
        return None
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, (Sequence, np.ndarray)) or len(value) != 2:
        raise LandmarkFileError(f"{where}: expected [x, y] or null, got {_show(value)}.")
    x, y = value
    if x is None and y is None:
        return None
    if x is None or y is None:
        raise LandmarkFileError(f"{where}: 'x' and 'y' must both be numbers or both null, got {x!r}, {y!r}.")
    return parse_coordinate(x, f"{where} x"), parse_coordinate(y, f"{where} y")


def _show(value) -> str:
    return repr(value.tolist() if isinstance(value, np.ndarray) else value)


def check_spacing(spacing, where: str, spatial_dims: int = 2, plausible=PLAUSIBLE_SPACING_MM) -> np.ndarray:
    """Spacing as a ``(spatial_dims,)`` float64 array (``(sx, sy)`` in 2D); a scalar means isotropic.

    The one spacing check of the package (readers, datalists, the physical-scale input and, for a sample's own
    spacing, :class:`monai_ceph.transforms.EnsureLandmarksd`). Raises :class:`SpacingError` naming ``where`` if a
    value is non-numeric, non-finite, ``<= 0`` or outside ``plausible``.

    Args:
        spacing: one number or ``spatial_dims`` numbers, mm/pixel.
        where: the file, entry or option it comes from, named in the error.
        spatial_dims: the number of values.
        plausible: ``(low, high)`` closed range each value must lie in (default :data:`PLAUSIBLE_SPACING_MM`, the
            range of a radiograph); ``None`` checks only finite and positive (a derived, model-space spacing).
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
    if plausible is not None:
        low, high = plausible
        if np.any(values < low) or np.any(values > high):
            shown = [float(v) for v in values]
            raise SpacingError(
                f"{where}: pixel spacing {shown} mm/pixel is outside the range of a radiograph [{low:g}, {high:g}] "
                "mm/pixel (a unit or typing error? ISBI 2015 images are 0.1 mm/pixel)."
            )
    return values


def is_dicom(path: str | os.PathLike) -> bool:
    """Whether ``path`` has one of the :data:`DICOM_SUFFIXES` (any case)."""
    return Path(path).suffix.lower() in DICOM_SUFFIXES


def read_dicom_spacing(path: str | os.PathLike, required: bool = True) -> np.ndarray | None:
    """Pixel spacing of a 2-D DICOM image in mm/pixel as ``(sx, sy)``, the order of MONAI's loaded axes.

    DICOM stores spacing as ``[row spacing, column spacing]``, i.e. ``(y, x)``: the pair is reversed here.
    The first of :data:`DICOM_SPACING_TAGS` present is used.

    Args:
        path: the DICOM file.
        required: raise when none of the tags is present; ``False`` returns ``None`` then (a tag present with a
            bad value is always an error).

    Raises:
        FileNotFoundError: the file does not exist.
        DataFileError: the file is not DICOM.
        SpacingError: none of the tags is present (when ``required``), or its value is not two positive numbers.
    """
    import pydicom  # imported on use: the package's other readers do not need it

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no DICOM file {path}.")
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except pydicom.errors.InvalidDicomError as e:
        raise DataFileError(f"{path}: not a DICOM file ({e}).") from None
    for tag in DICOM_SPACING_TAGS:
        value = ds.get(tag)
        if value is None or value == "":
            continue
        values = list(value) if not isinstance(value, (str, bytes)) else [value]
        if len(values) != 2:
            raise SpacingError(f"{path} {tag}: expected [row spacing, column spacing], got {value!r}.")
        row, column = values
        return check_spacing((column, row), f"{path} {tag}")
    if not required:
        return None
    raise SpacingError(f"{path}: none of the tags {list(DICOM_SPACING_TAGS)} gives a pixel spacing.")


def resolve_spacing(
    image: str | os.PathLike,
    given=None,
    default=None,
    where: str | os.PathLike | None = None,
    missing: str = "the image carries no pixel spacing",
) -> np.ndarray:
    """The pixel spacing ``(sx, sy)`` of ``image``: its DICOM header, else ``given``, else ``default``.

    Args:
        image: the image file; a :func:`is_dicom` file is read with :func:`read_dicom_spacing` (a DICOM without
            spacing tags takes ``given`` or ``default`` like any other file).
        given: the spacing its annotation gives (already checked), or ``None``.
        default: the spacing the caller was given for images without their own (checked here, naming ``image``).
        where: what the error names when there is no spacing (default ``image``).
        missing: the fault stated then; ``"; pass spacing= (mm/pixel)."`` is appended.

    Raises:
        SpacingError: no spacing at all (naming the image), or an invalid one.
    """
    if is_dicom(image):
        header = read_dicom_spacing(image, required=given is None and default is None)
        if header is not None:
            return header
    if given is not None:
        return check_spacing(given, str(image))
    if default is not None:
        return check_spacing(default, str(image))
    raise SpacingError(f"{image if where is None else where}: {missing}; pass spacing= (mm/pixel).")


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


def read_json(path: str | os.PathLike, error: type[DataFileError] = LandmarkFileError):
    """The JSON content of ``path`` (a UTF-8 file, BOM allowed); ``error`` naming the file when it is not JSON.

    Raises ``FileNotFoundError`` when the file does not exist.
    """
    try:
        return json.loads(Path(path).read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise error(f"{path}: not valid JSON ({e}).") from None


def landmarks_to_json(landmarks) -> list:
    """``(N, 2)`` array to JSON lists ``[[x, y], ...]``; a landmark with a NaN coordinate is written ``[null, null]``."""
    return [[None, None] if np.isnan(p).any() else [float(v) for v in p]
            for p in np.asarray(landmarks, dtype=np.float64).reshape(-1, 2)]


def landmarks_from_json(landmarks, where: str = "landmarks") -> np.ndarray:
    """JSON landmark lists (``[x, y]``, ``null`` or ``[null, null]`` for missing) to ``(N, 2)`` float64, NaN missing.

    Raises :class:`LandmarkFileError` naming ``where`` and the entry for anything else (see :func:`parse_landmark`).
    """
    if isinstance(landmarks, (str, bytes, Mapping)) or not isinstance(landmarks, (Sequence, np.ndarray)):
        raise LandmarkFileError(f"{where}: expected a list of [x, y] pairs (null for missing), got {_show(landmarks)}.")
    out = np.full((len(landmarks), 2), np.nan)
    for i, value in enumerate(landmarks):
        position = parse_landmark(value, f"{where}[{i}]")
        if position is not None:
            out[i] = position
    return out


@deprecated_alias("landmarks_to_json")
def points_to_json(points) -> list:
    """Deprecated alias of :func:`landmarks_to_json`."""
    return landmarks_to_json(points)


@deprecated_alias("landmarks_from_json")
def points_from_json(points) -> np.ndarray:
    """Deprecated alias of :func:`landmarks_from_json`."""
    return landmarks_from_json(points)
