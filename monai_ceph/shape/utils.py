"""Small JSON files of the shape package: a ``"format"`` tag, checked on reading."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from monai_ceph.data.json_io import dump_json

__all__ = ["write_json", "read_json"]


def write_json(path: str | os.PathLike, fmt: str, content: Mapping) -> Path:
    """Write ``{"format": fmt, **content}`` to ``path`` (parent folders created; atomically, valid JSON: see
    :func:`monai_ceph.data.dump_json`)."""
    return dump_json({"format": fmt, **content}, path, indent=1)


def read_json(path: str | os.PathLike, fmt: str, what: str) -> dict:
    """The dict in ``path``; ``ValueError`` naming the file when it is unreadable or not of format ``fmt``
    (``what``: e.g. ``"a shape model"``)."""
    path = Path(path)
    try:
        content = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a readable JSON file: {e}") from e
    if not isinstance(content, dict) or content.get("format") != fmt:
        raise ValueError(f"{path}: not {what} file (expected format {fmt!r}).")
    return content
