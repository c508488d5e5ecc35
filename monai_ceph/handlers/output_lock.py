"""One run per output folder: the writers lock their folder for the run, so two runs never mix their files.

Every handler that writes per-image or report files into an ``output_dir`` (:class:`LandmarkWriter`,
:class:`OverlaySaver`, :class:`EvaluationReport`, :class:`BatchSummary`, and the analysis writers) calls
:func:`hold_output_folder` when attached: at the engine's ``STARTED`` the folder's lock file
(:data:`LOCK_FILENAME`, holding the run's pid and host) is taken with an exclusive ``flock``, and it is let go
after the reports written at ``COMPLETED``, or at an exception. A second process that starts writing there meanwhile
fails at once with an :class:`OutputFolderBusyError` naming the folder and the other run's pid. The writers of one
run (one process) share the lock. The kernel releases a ``flock`` when its process dies, so the lock of a run that
was killed is stale and the next run takes it over. In a distributed run one rank holds the lock for all (rank 0,
or the one that writes a report).

Where ``fcntl`` is missing (Windows) nothing is locked.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from pathlib import Path
from typing import Any

from monai.utils import IgniteInfo, min_version, optional_import

from monai_ceph.data.json_io import dumps_json

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = ["LOCK_FILENAME", "OutputFolderBusyError", "acquire_output_folder", "release_output_folder",
           "hold_output_folder"]

LOCK_FILENAME = ".monai_ceph_run.lock"
"""The lock file a run keeps in each output folder while it writes there (removed when the run ends)."""


class OutputFolderBusyError(RuntimeError):
    """Another live run is writing into the output folder."""


_held: dict[str, list] = {}  # real folder path -> [open lock file descriptor, number of holders in this process]
_guard = threading.Lock()


def _owner(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        record = json.loads(os.read(fd, 4096).decode() or "{}")
        return f"pid {record.get('pid', '?')} on {record.get('host', '?')}"
    except (OSError, ValueError):
        return "a process that has not written its pid yet"


def acquire_output_folder(folder: str | os.PathLike) -> Path | None:
    """Take the lock of ``folder`` (created when missing) for this process; return the lock file (``None`` without
    ``fcntl``). Re-entrant within a process. Raises :class:`OutputFolderBusyError` naming the folder and the other
    run's pid when another process holds it."""
    if fcntl is None:  # pragma: no cover
        return None
    Path(folder).mkdir(parents=True, exist_ok=True)
    key = os.path.realpath(folder)
    lock = Path(key) / LOCK_FILENAME
    with _guard:
        if key in _held:
            _held[key][1] += 1
            return lock
        while True:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = _owner(fd)
                os.close(fd)
                raise OutputFolderBusyError(
                    f"{folder}: another run ({owner}) is writing into this output folder (lock file {lock}); wait "
                    "for it to end or give this run another output folder."
                ) from None
            try:
                same = os.stat(lock).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:  # not a file its previous holder removed between our open and our lock
                break
            os.close(fd)
        os.ftruncate(fd, 0)  # a stale lock (its process died) is taken over: our pid replaces its
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, dumps_json({"pid": os.getpid(), "host": socket.gethostname()}).encode())
        _held[key] = [fd, 1]
    return lock


def release_output_folder(folder: str | os.PathLike) -> None:
    """Let go of this process's hold on ``folder``; the last holder removes the lock file."""
    key = os.path.realpath(folder)
    with _guard:
        entry = _held.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] > 0:
            return
        del _held[key]
        try:
            os.unlink(Path(key) / LOCK_FILENAME)
        except FileNotFoundError:
            pass
        os.close(entry[0])  # closing releases the flock


def _rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def hold_output_folder(engine: Any, folder: str | os.PathLike, rank: int = 0) -> None:
    """Hold the lock of ``folder`` while ``engine`` runs: taken at ``STARTED`` (the run fails there if another
    process writes into the folder), let go after the last ``COMPLETED`` handler (at ``TERMINATE`` when ``COMPLETED`` is skipped) or at an exception (re-raised when no other
    handler takes ``EXCEPTION_RAISED``, as Ignite does without one). The folders of one engine share one set of
    handlers; attaching a folder twice is a no-op. Only process ``rank`` (0 when not distributed) takes the lock:
    the rank that writes a report (its ``save_rank``), rank 0 for writers every rank writes with."""
    locks = next((h for h, *_ in engine._event_handlers.get(Events.STARTED, []) if isinstance(h, _EngineLocks)), None)
    if locks is None:
        locks = _EngineLocks()
        engine.add_event_handler(Events.STARTED, locks)
        engine.add_event_handler(Events.EXCEPTION_RAISED, locks.exception_raised)
    locks.folders.setdefault(os.path.realpath(folder), (folder, rank))


class _EngineLocks:
    """The output folders one engine holds while it runs."""

    def __init__(self) -> None:
        self.folders: dict[str, tuple[str | os.PathLike, int]] = {}  # real path -> (folder, the rank that locks it)
        self.held: list[str | os.PathLike] = []

    def __call__(self, engine: Any) -> None:
        # registered now, after every handler attached before the run: the reports written at COMPLETED are written
        # under the lock (a terminated run fires TERMINATE, then COMPLETED unless told to skip it)
        if not engine.has_event_handler(self.release, Events.COMPLETED):
            engine.add_event_handler(Events.COMPLETED, self.release)
            engine.add_event_handler(Events.TERMINATE, self.terminated)
        # and first on an exception: a handler before it that re-raises (MONAI's StatsHandler) would skip it
        handlers = engine._event_handlers.get(Events.EXCEPTION_RAISED, [])
        handlers.sort(key=lambda entry: entry[0] != self.exception_raised)  # stable: the others keep their order
        if self.held:
            return
        rank = _rank()  # read at the start: a distributed run may initialise after attaching
        for folder, locking_rank in self.folders.values():
            if locking_rank != rank:
                continue
            acquire_output_folder(folder)  # a busy folder raises: the ones taken before are let go then
            self.held.append(folder)

    def release(self, engine: Any = None) -> None:
        while self.held:
            release_output_folder(self.held.pop())

    def terminated(self, engine: Any) -> None:
        if getattr(engine, "should_terminate", None) == "skip_completed":
            self.release()

    def exception_raised(self, engine: Any, e: BaseException) -> None:
        self.release()
        if len(engine._event_handlers.get(Events.EXCEPTION_RAISED, [])) == 1:  # ours alone: Ignite would raise
            raise e
