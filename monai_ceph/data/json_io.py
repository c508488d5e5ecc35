"""The package's one JSON writer: valid JSON only (no ``NaN`` / ``Infinity`` tokens), written atomically.

Python's ``json`` writes a non-finite float as ``NaN`` or ``Infinity``, which no strict JSON reader (browsers,
``jq``, other languages) accepts. Every JSON file and string the package writes goes through :func:`dumps_json`:
a non-finite number becomes ``null`` (the package's "no value", as for a missing landmark), numpy and torch values
become plain ones, and ``allow_nan=False`` guards the result.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_write_text

__all__ = ["json_safe", "dumps_json", "dump_json"]


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float replaced by ``None``, numpy / torch values as plain Python ones, tuples
    as lists (mappings and sequences are walked; anything else is returned as it is, for ``json`` to judge)."""
    if isinstance(value, float) or isinstance(value, np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.ndarray) or type(value).__module__.startswith("torch"):
        if hasattr(value, "detach"):
            value = value.detach().cpu().numpy()
        return json_safe(np.asarray(value).tolist())
    if isinstance(value, Mapping):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def dumps_json(value: Any, indent: int | None = None, **kwargs: Any) -> str:
    """``json.dumps`` of :func:`json_safe` ``(value)`` with ``allow_nan=False``: valid JSON text, ``null`` where a
    number is NaN or infinite."""
    return json.dumps(json_safe(value), indent=indent, allow_nan=False, **kwargs)


def dump_json(value: Any, path: str | os.PathLike, indent: int | None = 2, **kwargs: Any) -> Path:
    """Write :func:`dumps_json` ``(value)`` and a final newline to ``path`` atomically (folders created, the file
    mode from the umask; see :func:`~monai_ceph.data.atomic.atomic_write_bytes`) and return the path."""
    return atomic_write_text(path, dumps_json(value, indent=indent, **kwargs) + "\n")
