"""Where things are found: real datasets (one setting each, an environment variable with a default), and the
package's own files, the cephres bundle it ships and the released models inside it.

One place for these paths, used by the Python API, the command line and the MONAI Label app alike, so that a source
checkout (``bundles/cephres``) and a wheel install (the data-only package ``monai_ceph/bundle``) behave the same.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ISBI_ENV", "isbi_dir", "default_bundle_dir", "pretrained_dir", "PRETRAINED_MODELS", "DEFAULT_PRETRAINED"]

ISBI_ENV = "MONAI_CEPH_ISBI_DIR"

PRETRAINED_MODELS = ("isbi2015",)
"""The released models shipped under ``<bundle>/pretrained/<name>`` (each with its ``MODEL_CARD.md``)."""

DEFAULT_PRETRAINED = "isbi2015"

_PACKAGE = Path(__file__).resolve().parents[1]
_REPO_ROOT = _PACKAGE.parent


def isbi_dir() -> Path:
    """The ISBI 2015 dataset folder: ``$MONAI_CEPH_ISBI_DIR``, else ``<repo>/../shared/data/isbi2015``.

    The path is returned whether or not it exists; callers decide whether absence is an error or a skip.
    """
    return Path(os.environ.get(ISBI_ENV, _REPO_ROOT.parent / "shared" / "data" / "isbi2015")).expanduser()


def default_bundle_dir() -> Path:
    """The cephres bundle shipped with the package (``monai_ceph/bundle`` in an installed wheel), else the
    checkout's ``bundles/cephres``."""
    packaged = _PACKAGE / "bundle"
    if (packaged / "configs").is_dir():
        return packaged
    return _REPO_ROOT / "bundles" / "cephres"


def pretrained_dir(name: str = DEFAULT_PRETRAINED, bundle_dir: str | Path | None = None) -> Path:
    """The folder of the released model ``name``: a ``models/``-like folder (``model.pt``, ``model.json``,
    ``local/``, ``shape_model.json``, calibrations) plus its ``MODEL_CARD.md``.

    Raises:
        ValueError: ``name`` is not a released model.
        FileNotFoundError: the package was installed without the released model's files (naming the folder).
    """
    if name not in PRETRAINED_MODELS:
        raise ValueError(f"pretrained model {name!r}: unknown; the released models are {list(PRETRAINED_MODELS)}.")
    path = Path(default_bundle_dir() if bundle_dir is None else bundle_dir) / "pretrained" / name
    if not (path / "model.pt").is_file():
        raise FileNotFoundError(f"{path}: the released model {name!r} is not there (no model.pt); reinstall "
                                "monai_ceph, or train a bundle and pass its folder.")
    return path
