"""Where real datasets are found: one setting each, an environment variable with a default."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ISBI_ENV", "isbi_dir"]

ISBI_ENV = "MONAI_CEPH_ISBI_DIR"
_REPO_ROOT = Path(__file__).resolve().parents[2]


def isbi_dir() -> Path:
    """The ISBI 2015 dataset folder: ``$MONAI_CEPH_ISBI_DIR``, else ``<repo>/../shared/data/isbi2015``.

    The path is returned whether or not it exists; callers decide whether absence is an error or a skip.
    """
    return Path(os.environ.get(ISBI_ENV, _REPO_ROOT.parent / "shared" / "data" / "isbi2015")).expanduser()
