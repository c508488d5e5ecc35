"""The image reader of the package: chosen by file suffix, so pre-processing and every handler read the same array."""

from __future__ import annotations

import logging
import math
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

__all__ = ["DICOM_SUFFIXES", "RadiographReader", "header_size", "is_dicom"]

logger = logging.getLogger(__name__)

MAX_IMAGE_PIXELS = 36_000_000
"""The documented memory bound of :data:`monai_ceph.transforms.MAX_IMAGE_PIXELS` (6000 x 6000), which
``ValidateImaged`` checks after decoding; the same value here (the transforms import this package, so it is not
imported from there; a test keeps the two equal)."""


def header_size(filename: str | os.PathLike) -> tuple[int, int] | None:
    """The spatial size ``(x, y)`` of a 2-D image read from its header, without decoding any pixel: a DICOM's
    ``Columns``/``Rows``, else what PIL's lazy ``Image.open`` reads (PNG, JPEG, BMP, TIFF...). ``None`` when the
    header does not say (another format, a broken file: its reader reports that when it decodes)."""
    if is_dicom(filename):
        import pydicom  # imported on use, like the package's other DICOM readers

        try:
            ds = pydicom.dcmread(filename, stop_before_pixels=True, specific_tags=["Rows", "Columns"])
            return int(ds.Columns), int(ds.Rows)
        except Exception:  # noqa: BLE001 - not readable here: PydicomReader names the fault
            return None
    from PIL import Image

    try:
        with Image.open(filename) as image:  # reads the header only
            return tuple(image.size)
    except Image.DecompressionBombError:  # PIL refuses to open it (> 2 x Image.MAX_IMAGE_PIXELS): its size still
        return _plugin_size(filename)
    except Exception:  # noqa: BLE001 - not a PIL format, or broken: its reader names the fault
        return None


def _plugin_size(filename: str | os.PathLike) -> tuple[int, int] | None:
    """The size PIL's format plugins read from the header, without ``Image.open``'s decompression-bomb check (which
    raises before the size can be read): what ``Image.open`` does, minus that check."""
    from PIL import Image

    Image.init()
    with open(filename, "rb") as fp:
        prefix = fp.read(16)
        for format_id in Image.ID:
            factory, accept = Image.OPEN[format_id]
            if accept is not None and not accept(prefix):
                continue
            fp.seek(0)
            try:
                return tuple(factory(fp, os.fspath(filename)).size)
            except Exception:  # noqa: BLE001 - not this format: try the next, as Image.open does
                continue
    return None


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

    The memory bound: an image whose header (:func:`header_size`) gives more than ``max_pixels`` pixels is refused
    before any pixel is decoded, with a ``ValueError`` naming the file, its size and the limit (an 8000 x 8000 PNG
    of a few kB on disk would otherwise need 64 MB to decode and gigabytes through the pre-processing). The
    refusal is raised by :meth:`get_data`, so that ``LoadImage`` does not fall back to another reader that would
    decode the file.

    Use it as ``LoadImaged(keys="image", reader=RadiographReader())``; in a bundle config
    ``"reader": {"_target_": "monai_ceph.data.RadiographReader"}``.

    Args:
        max_pixels: largest accepted number of pixels, default :data:`MAX_IMAGE_PIXELS`; ``None`` for no bound.
        dicom_kwargs: keyword arguments of the ``PydicomReader``.
    """

    def __init__(self, max_pixels: int | None = MAX_IMAGE_PIXELS, **dicom_kwargs: Any) -> None:
        super().__init__()
        if max_pixels is not None and (int(max_pixels) != max_pixels or max_pixels < 1):
            raise ValueError(f"max_pixels must be a positive integer or None, got {max_pixels!r}.")
        self.max_pixels = None if max_pixels is None else int(max_pixels)
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

    def read(self, data: Sequence[str] | str | os.PathLike, **kwargs: Any) -> tuple[ImageReader | None, Any, str]:
        """Read ``data`` with the reader of its suffix; returns what :meth:`get_data` needs (for an image above
        ``max_pixels``, nothing is read and :meth:`get_data` raises)."""
        reader = self.reader_for(data)
        filename = os.fspath(ensure_tuple(data)[0])
        refusal = self._refusal(filename)
        if refusal is not None:
            return None, refusal, filename
        return reader, reader.read(data, **kwargs), filename

    def _refusal(self, filename: str) -> str | None:
        """Why ``filename`` is refused before decoding (its header's size is above ``max_pixels``), or ``None``."""
        size = header_size(filename) if self.max_pixels is not None else None
        if size is None or math.prod(size) <= self.max_pixels:
            return None
        return (f"{filename}: image of spatial size {size} has {math.prod(size)} pixels, more than the "
                f"{self.max_pixels} accepted (max_pixels); refused before decoding, resize it before use.")

    def get_data(self, img: tuple[ImageReader | None, Any, str]) -> tuple[np.ndarray, dict]:
        """The array and meta dict of what :meth:`read` returned (MONOCHROME1 DICOM inverted)."""
        reader, obj, filename = img
        if reader is None:
            raise ValueError(obj)
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
