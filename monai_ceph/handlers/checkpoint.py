"""Find the checkpoint a run resumes from."""

from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path

__all__ = ["latest_checkpoint"]


def latest_checkpoint(ckpt_dir: str | os.PathLike, prefix: str = "checkpoint") -> str | None:
    """Path of the newest complete ``<prefix>_epoch=N.pt`` (or ``_iteration=N``) that MONAI's ``CheckpointSaver``
    wrote in ``ckpt_dir``, by its number; ``None`` when there is none (a fresh run).

    A run killed while saving leaves a truncated file: files that are not an intact torch (zip) archive are
    skipped, so the run resumes from the checkpoint before.

    Bundles pass it to ``CheckpointLoader`` (disabled when ``None``), so re-running a killed training continues
    from its last completed epoch.
    """
    pattern = re.compile(rf"^{re.escape(prefix)}_(?:epoch|iteration|checkpoint)=(\d+)\.pt$")
    found = []
    folder = Path(ckpt_dir)
    if folder.is_dir():
        for f in folder.iterdir():
            m = pattern.match(f.name)
            if m:
                found.append((int(m.group(1)), str(f)))
    for _, path in sorted(found, reverse=True):
        if _intact(path):
            return path
    return None


def _intact(path: str) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except (zipfile.BadZipFile, OSError):
        return False
