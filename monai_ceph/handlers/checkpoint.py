"""Find the checkpoint a run resumes from, carry the validator's best metric in it, prune the ones it replaced."""

from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path
from typing import Any

from ignite.engine import Engine, Events

__all__ = ["BestMetricState", "PruneCheckpoints", "latest_checkpoint"]


def latest_checkpoint(ckpt_dir: str | os.PathLike, prefix: str = "checkpoint") -> str | None:
    """Path of the newest complete ``<prefix>_epoch=N.pt`` (or ``_iteration=N``) that MONAI's ``CheckpointSaver``
    wrote in ``ckpt_dir``, by its number; ``None`` when there is none (a fresh run).

    A run killed while saving leaves a truncated file: files that are not an intact torch (zip) archive are
    skipped, so the run resumes from the checkpoint before.

    Bundles pass it to ``CheckpointLoader`` (disabled when ``None``), so re-running a killed training continues
    from its last completed epoch.
    """
    for _, path in _numbered_checkpoints(ckpt_dir, prefix):
        if _intact(path):
            return path
    return None


class BestMetricState:
    """The best key metric of a validator as a stateful object (``state_dict`` / ``load_state_dict``), so that
    MONAI's ``CheckpointSaver`` / ``CheckpointLoader`` carry it in a resume checkpoint.

    Restored, the validator's ``state.best_metric`` / ``best_metric_epoch`` and the tracking list of the
    ``CheckpointSaver`` that writes the best model (``save_key_metric=True``) are those of the run that was
    killed, so the first validation after a resume replaces the best model only if it beats it.

    Args:
        validator: the evaluator whose ``key_val_metric`` is tracked.
        saver: the ``CheckpointSaver`` writing the best model, or ``None`` (e.g. on ranks that do not save).
    """

    def __init__(self, validator: Engine, saver: Any = None) -> None:
        self.validator = validator
        self.saver = saver

    def state_dict(self) -> dict:
        state = self.validator.state
        saved = []
        if self.saver is not None and self.saver._key_metric_checkpoint is not None:
            saved = [(float(p), str(f)) for p, f in self.saver._key_metric_checkpoint.state_dict()["_saved"]]
        return {
            "best_metric": float(state.best_metric),
            "best_metric_epoch": int(state.best_metric_epoch),
            "saved": saved,
        }

    def load_state_dict(self, state_dict: dict) -> None:
        missing = {"best_metric", "best_metric_epoch", "saved"} - set(state_dict)
        if missing:
            raise KeyError(f"best metric state lacks {sorted(missing)}: not written by BestMetricState")
        self.validator.state.best_metric = float(state_dict["best_metric"])
        self.validator.state.best_metric_epoch = int(state_dict["best_metric_epoch"])
        if self.saver is not None and state_dict["saved"]:
            self.saver.load_state_dict({"_saved": [tuple(item) for item in state_dict["saved"]]})


class PruneCheckpoints:
    """Delete the ``<prefix>_epoch=N.pt`` (or ``_iteration=N``) files in ``ckpt_dir`` older than the newest intact
    one, each time an epoch completes: a resumed run's ``CheckpointSaver`` rotates only its own files, so the
    killed run's checkpoints would otherwise pile up. Attach after the ``CheckpointSaver``.

    Args:
        ckpt_dir: the folder the ``CheckpointSaver`` writes to.
        prefix: its ``file_prefix``.
    """

    def __init__(self, ckpt_dir: str | os.PathLike, prefix: str = "checkpoint") -> None:
        self.ckpt_dir = ckpt_dir
        self.prefix = prefix

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Engine | None = None) -> None:
        newest = latest_checkpoint(self.ckpt_dir, self.prefix)
        if newest is None:
            return
        for _, path in _numbered_checkpoints(self.ckpt_dir, self.prefix):
            if path != newest and os.path.getmtime(path) <= os.path.getmtime(newest):
                os.remove(path)


def _numbered_checkpoints(ckpt_dir: str | os.PathLike, prefix: str) -> list[tuple[int, str]]:
    """``(N, path)`` of the ``<prefix>_epoch=N.pt`` files in ``ckpt_dir``, newest number first."""
    pattern = re.compile(rf"^{re.escape(prefix)}_(?:epoch|iteration|checkpoint)=(\d+)\.pt$")
    found = []
    folder = Path(ckpt_dir)
    if folder.is_dir():
        for f in folder.iterdir():
            m = pattern.match(f.name)
            if m:
                found.append((int(m.group(1)), str(f)))
    return sorted(found, reverse=True)


def _intact(path: str) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except (zipfile.BadZipFile, OSError):
        return False
