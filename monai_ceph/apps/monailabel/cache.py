"""A small in-memory LRU cache of the app's per-image results, and files loaded again when they change; both safe to
use from MONAI Label's infer threads."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

__all__ = ["LRUCache", "FileWatch", "file_stamp"]


def file_stamp(path) -> tuple[str, int, int] | None:
    """``(real path, mtime_ns, size)`` of a file, ``None`` when there is none: a key part that changes when the
    file is replaced."""
    if not path:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return os.path.realpath(path), st.st_mtime_ns, st.st_size


class LRUCache:
    """At most ``size`` entries; :meth:`get` makes an entry the most recent, :meth:`put` evicts the oldest."""

    def __init__(self, size: int = 8) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"cache size must be a whole number >= 1, got {size!r}.")
        self.size = size
        self._entries: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable, default: Any = None) -> Any:
        with self._lock:
            if key not in self._entries:
                return default
            self._entries.move_to_end(key)
            return self._entries[key]

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)


class FileWatch:
    """``load(path)`` of a file, loaded again whenever the file changes (:func:`file_stamp`); ``load(None)`` while
    the file does not exist. Calling it returns ``(value, stamp)``.

    ``initial``: the value for the file as it is now, when already loaded (``None``: load on the first call).
    """

    def __init__(self, path, load, initial: Any = None) -> None:
        self.path, self.load = path, load
        self._loaded: tuple[Any, Any] | None = None if initial is None else (initial, file_stamp(path))
        self._lock = threading.Lock()

    def __call__(self) -> tuple[Any, tuple[str, int, int] | None]:
        stamp = file_stamp(self.path)
        with self._lock:
            if self._loaded is None or self._loaded[1] != stamp:
                self._loaded = (self.load(self.path if stamp is not None else None), stamp)
            return self._loaded
