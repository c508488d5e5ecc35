"""The image reader of the package: chosen by file suffix, so pre-processing and every handler read the same array."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from monai.data import ImageReader, PydicomReader
from monai.transforms.io.array import SUPPORTED_READERS, get_default_reader_registration_order
from monai.utils import ensure_tuple
from monai.utils.module import OptionalImportError

from monai_ceph.data.readers import DICOM_SUFFIXES, is_dicom

__all__ = ["DICOM_SUFFIXES", "RadiographReader", "is_dicom"]

logger = logging.getLogger(__name__)



def _default_readers() -> list[ImageReader]:
    """MONAI's default readers, last tried first, without the DICOM ones (DICOM goes to ``PydicomReader``)."""
    readers = []
    for name in get_default_reader_registration_order():
        if "dicom" in name:
            continue
        try:
            readers.append(SUPPORTED_READERS[name]())
        except OptionalImportError:  # the reader's library is not installed
            continue
    return readers[::-1]


class RadiographReader(ImageReader):
    """
    Reads a 2-D radiograph with the reader its suffix calls for: MONAI's ``PydicomReader`` for DICOM
    (:data:`DICOM_SUFFIXES`, loaded as ``(x, y)`` like the other formats), else the reader MONAI's ``LoadImage``
    would choose (PIL for PNG/JPEG/BMP, ITK, ...). No reader is tried and discarded, so nothing falls through.

    DICOM photometric interpretation ``MONOCHROME1`` (low values bright) is inverted to ``MONOCHROME2``
    (``min + max - value``) with a warning naming the file, so the network always sees bone bright.

    Use it as ``LoadImaged(keys="image", reader=RadiographReader())``; in a bundle config
    ``"reader": {"_target_": "monai_ceph.data.RadiographReader"}``.

    Args:
        dicom_kwargs: keyword arguments of the ``PydicomReader``.
    """

    def __init__(self, **dicom_kwargs: Any) -> None:
        super().__init__()
        self.dicom_reader = PydicomReader(**dicom_kwargs)
        self._readers: list[ImageReader] | None = None  # created on the first non-DICOM file

    def reader_for(self, filename: Sequence[str] | str | os.PathLike) -> ImageReader:
        """The reader of ``filename`` (the first of a sequence decides)."""
        first = os.fspath(ensure_tuple(filename)[0])
        if is_dicom(first):
            return self.dicom_reader
        if self._readers is None:
            self._readers = _default_readers()
        for reader in self._readers:
            if reader.verify_suffix(first):
                return reader
        raise ValueError(f"{first}: no image reader for suffix {os.path.splitext(first)[1]!r}.")

    def verify_suffix(self, filename: Sequence[str] | str | os.PathLike) -> bool:
        """Whether a reader exists for ``filename``."""
        try:
            self.reader_for(filename)
        except ValueError:
            return False
        return True

    def read(self, data: Sequence[str] | str | os.PathLike, **kwargs: Any) -> tuple[ImageReader, Any, str]:
        """Read ``data`` with the reader of its suffix; returns what :meth:`get_data` needs."""
        reader = self.reader_for(data)
        return reader, reader.read(data, **kwargs), os.fspath(ensure_tuple(data)[0])

    def get_data(self, img: tuple[ImageReader, Any, str]) -> tuple[np.ndarray, dict]:
        """The array and meta dict of what :meth:`read` returned (MONOCHROME1 DICOM inverted)."""
        reader, obj, filename = img
        if reader is not self.dicom_reader:
            return reader.get_data(obj)
        with warnings.catch_warnings():
            # projection radiographs have no patient orientation/position: the pixel-index affine is the right one,
            # and the spacing comes from the header's spacing tags (monai_ceph.data.read_dicom_spacing)
            warnings.filterwarnings("ignore", message="PydicomReader: ImageOrientationPatient")
            array, meta = reader.get_data(obj)
        if _is_monochrome1(obj):
            logger.warning(f"{filename}: DICOM PhotometricInterpretation MONOCHROME1, inverted to MONOCHROME2.")
            array = array.max() + array.min() - array
            meta["PhotometricInterpretation"] = "MONOCHROME2"
        return array, meta


def _is_monochrome1(datasets: Any) -> bool:
    """Whether a pydicom dataset (or the first of a list: a series) is MONOCHROME1."""
    while isinstance(datasets, (list, tuple)) and datasets:
        datasets = datasets[0]
    value = getattr(datasets, "PhotometricInterpretation", "")
    return str(value).strip().upper() == "MONOCHROME1"
