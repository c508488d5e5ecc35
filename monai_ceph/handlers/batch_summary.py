"""The end of a batch run (evaluation, inference): how many images were done and failed, where the outputs are,
the failures in ``failed.json`` beside them, and a non-zero exit status when any failed."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from monai.utils import IgniteInfo, min_version, optional_import

from monai_ceph.data.json_io import dump_json

from .output_lock import hold_output_folder

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")

__all__ = ["BatchSummary", "FAILED_FILENAME"]

FAILED_FILENAME = "failed.json"

logger = logging.getLogger(__name__)


class BatchSummary:
    """
    Reports a batch run whose data loader skips the items it cannot load
    (:class:`monai_ceph.data.FailureTolerantDataLoader`, read from ``engine.data_loader``):

    - the epoch ends when the loader does (a batch whose items all failed is not yielded, so it can be short of
      ``len(loader)``; Ignite would otherwise restart the loader to make up the count);
    - at ``COMPLETED``: writes ``<output_dir>/failed.json`` (atomically; ``[]`` when none failed, so no earlier
      run's list is left behind), a list of ``{"id", "image", "error"}``, and logs one line
      ``"<name>: N done, M failed; outputs in <output_dir>[; failures listed in .../failed.json]"``;
    - :meth:`check`, the last step of the bundle's run list, exits with status 1 and that line when any failed
      (``SystemExit``: ``python -m monai.bundle run`` ends with the message, no traceback).

    Args:
        output_dir: the run's output folder (``failed.json`` is written there).
        name: how the summary names the run (``"evaluation"``, ``"inference"``).
    """

    def __init__(self, output_dir: str | os.PathLike, name: str = "run") -> None:
        self.output_dir = Path(output_dir)
        self.name = name
        self.done = 0
        self.failures: list[dict] = []
        self.summary: str | None = None

    @property
    def failed_file(self) -> Path:
        return self.output_dir / FAILED_FILENAME

    def attach(self, engine: Any) -> None:
        hold_output_folder(engine, self.output_dir)
        engine.add_event_handler(Events.STARTED, self.started)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.iteration_completed)
        engine.add_event_handler(Events.DATALOADER_STOP_ITERATION, self.loader_exhausted)
        engine.add_event_handler(Events.COMPLETED, self.completed)

    def started(self, engine: Any) -> None:
        self.done, self.failures, self.summary = 0, [], None

    def iteration_completed(self, engine: Any) -> None:
        output = engine.state.output
        self.done += len(output) if isinstance(output, (list, tuple)) else 1

    def loader_exhausted(self, engine: Any) -> None:
        engine.terminate_epoch()

    def completed(self, engine: Any) -> None:
        self.failures = list(getattr(getattr(engine, "data_loader", None), "failures", []))
        dump_json(self.failures, self.failed_file)
        self.summary = f"{self.name}: {self.done} done, {len(self.failures)} failed; outputs in {self.output_dir}"
        if self.failures:
            self.summary += f"; failures listed in {self.failed_file}"
        logger.info(self.summary)

    def check(self) -> None:
        """Raise ``SystemExit`` with the summary when any item failed (the run's last step)."""
        if self.failures:
            raise SystemExit(f"error: {self.summary}")
