"""Deprecated public names: MONAI's own :func:`monai.utils.deprecated`, measured against this package's version.

Renamed names stay importable for one release (deprecated in 0.1.0, removed in 0.3.0), warning on use with the
new name to follow.
"""

from __future__ import annotations

from monai.utils import deprecated, deprecated_arg

from monai_ceph import __version__

__all__ = ["deprecated_alias", "renamed_arg"]


def deprecated_alias(new_name: str):
    """Decorator marking a function or class as the deprecated old name of ``new_name``."""
    return deprecated(since="0.1.0", removed="0.3.0", msg_suffix=f"use {new_name} instead.", version_val=__version__)


def renamed_arg(old_name: str, new_name: str):
    """Decorator accepting the deprecated keyword ``old_name`` of a function as ``new_name`` (with a warning)."""
    return deprecated_arg(old_name, since="0.1.0", removed="0.3.0", new_name=new_name,
                          msg_suffix=f"use {new_name} instead.", version_val=__version__)
