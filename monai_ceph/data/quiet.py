"""Start-up noise of MONAI that says nothing to this package's users, kept out of the console at its source.

MONAI's ``LoadImage`` builds every reader it knows, ``NvImgCodecPydicomReader`` included, which on a machine
without nvImageCodec logs ``nvImageCodec is not available; skipping pydicom decoder plugin registration.`` and
warns ``NvImgCodecPydicomReader: nvImageCodec decoder plugin did not register successfully`` on every command.
This package reads DICOM with ``PydicomReader`` (:class:`~monai_ceph.data.RadiographReader`), so both say nothing:
exactly these two messages are dropped; everything else MONAI logs or warns is kept.
"""

from __future__ import annotations

import logging
import warnings

__all__ = ["quiet_startup_noise"]

_NVIMGCODEC_LOG = "nvImageCodec is not available; skipping pydicom decoder plugin registration"
_NVIMGCODEC_WARNING = "NvImgCodecPydicomReader: nvImageCodec decoder plugin did not register successfully"


class _DropMessage(logging.Filter):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.text)


def quiet_startup_noise() -> None:
    """Drop the two nvImageCodec messages (idempotent; called when :mod:`monai_ceph.data` is imported)."""
    logger = logging.getLogger("monai.data.nvimgcodec_pydicom_plugin")
    if not any(isinstance(f, _DropMessage) for f in logger.filters):
        logger.addFilter(_DropMessage(_NVIMGCODEC_LOG))
    warnings.filterwarnings("ignore", message=_NVIMGCODEC_WARNING, category=UserWarning)
