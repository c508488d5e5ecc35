"""Pixel spacing from a DICOM header, converted from DICOM's (row, column) order to the package's (x, y)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .readers import DataFileError, SpacingError, check_spacing

__all__ = ["DICOM_SPACING_TAGS", "read_dicom_spacing"]

DICOM_SPACING_TAGS = ("PixelSpacing", "ImagerPixelSpacing", "NominalScannedPixelSpacing")
"""Tried in this order: calibrated spacing in the patient plane, then at the detector, then of a scanned film."""


def read_dicom_spacing(path: str | os.PathLike) -> np.ndarray:
    """Pixel spacing of a 2-D DICOM image in mm/pixel as ``(sx, sy)``, the order of MONAI's loaded axes.

    DICOM stores spacing as ``[row spacing, column spacing]``, i.e. ``(y, x)``: the pair is reversed here.
    The first of :data:`DICOM_SPACING_TAGS` present is used.

    Raises:
        FileNotFoundError: the file does not exist.
        DataFileError: the file is not DICOM.
        SpacingError: none of the tags is present, or its value is not two positive numbers.
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
    raise SpacingError(f"{path}: none of the tags {list(DICOM_SPACING_TAGS)} gives a pixel spacing.")
