"""What the app checks about the files a client sends: that an image is an image, that a label's landmarks lie
inside its image, and which files in the system temporary folder are this request's upload.

MONAI Label saves every upload (``POST /infer/<model>`` with a file, ``PUT /datastore/?image=``,
``PUT /datastore/label``) as ``tempfile.NamedTemporaryFile(suffix=<the upload's suffixes>).name`` and removes it
only after a successful answer; :func:`remove_upload` is what the app calls on every refusal or failure.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from monai_ceph.data import DICOM_SUFFIXES, IMAGE_SUFFIXES, DataFileError, LandmarkFileError, LandmarkSet, is_dicom
from monai_ceph.data.image_io import MAX_IMAGE_PIXELS, header_size

__all__ = [
    "UPLOAD_MAX_AGE_S",
    "DICOM_SUFFIXES",
    "NotAnImageError",
    "ImageTooLargeError",
    "is_upload",
    "remove_upload",
    "image_size",
    "check_image_file",
    "check_landmarks_inside",
]

UPLOAD_MAX_AGE_S = 120.0
"""An upload is checked moments after MONAI Label wrote it; an older file in the temporary folder is not one."""

# tempfile's names: "tmp" + 8 characters of its alphabet (tempfile._RandomNameSequence) + the upload's suffixes
_UPLOAD_NAME = re.compile(r"^tmp[a-z0-9_]{8}(\.[A-Za-z0-9]+)*$")


class NotAnImageError(DataFileError):
    """A file given as an image has no image suffix, or does not decode as one."""


class ImageTooLargeError(DataFileError):
    """An image whose header gives more pixels than :data:`~monai_ceph.data.image_io.MAX_IMAGE_PIXELS`: refused
    before any pixel is decoded (HTTP 413)."""


def is_upload(path: str) -> bool:
    """Whether ``path`` is a file MONAI Label has just saved from an upload (see the module docstring).

    The file must lie directly in the system temporary folder, carry a ``NamedTemporaryFile`` name and be at most
    :data:`UPLOAD_MAX_AGE_S` seconds old, so any other file there is not accepted as an image id.
    """
    if not isinstance(path, str) or not os.path.isfile(path):
        return False
    real = os.path.realpath(path)
    folder, name = os.path.split(real)
    if folder != os.path.realpath(tempfile.gettempdir()) or not _UPLOAD_NAME.match(name):
        return False
    return time.time() - os.path.getmtime(real) <= UPLOAD_MAX_AGE_S


def remove_upload(path) -> None:
    """Delete ``path`` if it is an upload (:func:`is_upload`); anything else is left alone."""
    if is_upload(path):
        try:
            os.remove(path)
        except OSError:
            pass


def _suffix(path: str) -> str:
    return Path(path).suffix.lower()


def _check_suffix(path: str, where: str) -> str:
    suffix = _suffix(path)
    if suffix not in IMAGE_SUFFIXES:  # DICOM_SUFFIXES included
        shown = suffix or "no suffix"
        expected = ", ".join(IMAGE_SUFFIXES)
        raise NotAnImageError(f"{where}: not an image ({shown}; expected one of {expected}).")
    return suffix


def _dicom_size(path: str, where: str, pixels: bool) -> tuple[int, int]:
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=not pixels)
    except (pydicom.errors.InvalidDicomError, OSError, ValueError, EOFError) as e:
        raise NotAnImageError(f"{where}: not an image (not a DICOM file: {e}).") from None
    columns, rows = ds.get("Columns"), ds.get("Rows")
    if not columns or not rows:
        raise NotAnImageError(f"{where}: not an image (a DICOM file without Rows/Columns).")
    if pixels and "PixelData" not in ds:
        raise NotAnImageError(f"{where}: not an image (a DICOM file without pixel data).")
    return int(columns), int(rows)


def _raster_size(path: str, where: str, pixels: bool) -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if pixels:
                image.load()
            return int(image.width), int(image.height)
    except UnidentifiedImageError:
        kind = _suffix(path)[1:].upper()
        raise NotAnImageError(f"{where}: not an image (the content is not a {kind} image).") from None
    except Image.DecompressionBombError:  # larger than PIL opens: refused by image_size from the header's size
        size = header_size(path)
        if size is None:
            raise NotAnImageError(f"{where}: not an image (a header PIL refuses as a decompression bomb).") from None
        return size
    except (OSError, ValueError, SyntaxError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise NotAnImageError(f"{where}: not an image ({reason}).") from None


def image_size(path: str, where: str | None = None, decode: bool = False) -> tuple[int, int]:
    """``(x, y)`` size in pixels (columns, rows: the package's order) of the image file ``path``.

    Args:
        path: a JPEG/PNG/BMP/TIFF or DICOM file.
        where: names the file in errors (default: the path).
        decode: also decode the pixels (a truncated JPEG fails only then); otherwise only the header is read.

    Raises:
        NotAnImageError: the suffix is not an image suffix, or the file does not read as that kind of image.
        ImageTooLargeError: the header gives more than ``MAX_IMAGE_PIXELS`` pixels (checked before decoding).
    """
    where = where or str(path)
    _check_suffix(path, where)
    reader = _dicom_size if is_dicom(path) else _raster_size
    size = reader(path, where, False)
    if min(size) < 1:
        raise NotAnImageError(f"{where}: not an image (size {size[0]} x {size[1]}).")
    if math.prod(size) > MAX_IMAGE_PIXELS:
        raise ImageTooLargeError(
            f"{where}: image of {size[0]} x {size[1]} pixels, more than the {MAX_IMAGE_PIXELS} pixels accepted; "
            "refused before decoding, resize it before use."
        )
    if decode:
        reader(path, where, True)
    return size


def check_image_file(path: str, where: str | None = None) -> tuple[int, int]:
    """:func:`image_size` with ``decode=True``: the file is an image whose pixels decode."""
    return image_size(path, where, decode=True)


def check_landmarks_inside(landmarks, size: Sequence[int], landmark_set: LandmarkSet, where: str) -> None:
    """Refuse landmarks outside an image of ``size`` ``(x, y)`` pixels, with a :class:`LandmarkFileError`.

    A pixel-index coordinate ``c`` lies in the image when ``-0.5 <= c <= size - 0.5`` (integer = pixel centre);
    NaN (missing) passes, ``inf`` does not. The message names every landmark at fault and the image size.
    """
    landmarks = np.asarray(landmarks, dtype=np.float64).reshape(-1, 2)
    high = np.asarray(size, dtype=np.float64) - 0.5
    bad = []
    for abbreviation, (x, y) in zip(landmark_set.abbreviations, landmarks):
        if math.isnan(x) and math.isnan(y):
            continue
        if not (math.isfinite(x) and math.isfinite(y)) or not (-0.5 <= x <= high[0] and -0.5 <= y <= high[1]):
            bad.append(f"{abbreviation!r} at ({x:g}, {y:g})")
    if bad:
        raise LandmarkFileError(
            f"{where}: landmark {', '.join(bad)} outside the image of {size[0]} x {size[1]} pixels "
            f"(x in [-0.5, {high[0]:g}], y in [-0.5, {high[1]:g}])."
        )
