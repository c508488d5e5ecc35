"""Pixel spacing from a DICOM header: kept importable from here; the reader lives in :mod:`.readers`, beside the
other helpers every format shares (:func:`~monai_ceph.data.readers.resolve_spacing`)."""

from .readers import DICOM_SPACING_TAGS, DICOM_SUFFIXES, read_dicom_spacing

__all__ = ["DICOM_SPACING_TAGS", "DICOM_SUFFIXES", "read_dicom_spacing"]
