"""Atomic file writes: the content goes to a temporary file beside the target, then replaces it in one rename,
so a full disk or a killed process leaves the old file (or none), never a truncated one. The file gets the mode an
ordinary ``open(path, "w")`` gives (``0o666`` less the umask), not the temporary file's private ``0o600``."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write_text", "atomic_write_bytes", "umask_mode"]


def umask_mode(mode: int = 0o666) -> int:
    """``mode`` less the process's umask: the mode ``open()`` would give a new file."""
    return mode & ~_umask()


def _umask() -> int:
    try:  # Linux: read it without changing it (os.umask would set it process-wide for a moment)
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: the only way to read it, set back at once
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` (parent folders created) atomically and return the path.

    The file's mode is :func:`umask_mode` (as ``open()`` makes it; the temporary file's ``0o600`` does not survive
    the rename). Raises ``OSError`` naming ``path`` when it cannot be written; the temporary file is removed and an
    existing ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, umask_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """:func:`atomic_write_bytes` of ``text`` encoded with ``encoding``."""
    return atomic_write_bytes(path, text.encode(encoding))
