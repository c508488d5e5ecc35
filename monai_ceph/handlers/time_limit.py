"""Ignite's ``TimeLimit`` as a handler MONAI's workflows can attach (``train_handlers`` of a bundle config)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from monai.utils import IgniteInfo, min_version, optional_import

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")
IgniteTimeLimit, _ = optional_import("ignite.handlers", IgniteInfo.OPT_IMPORT_VERSION, min_version, "TimeLimit")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")

__all__ = ["TimeLimit"]


class TimeLimit(IgniteTimeLimit):
    """
    Stops a run gracefully (``engine.terminate()``, so ``COMPLETED`` handlers and checkpoints still run) at the first
    iteration that ends more than ``limit_sec`` seconds after the handler was created. It is ignite's
    ``TimeLimit`` with the ``attach(engine)`` MONAI's workflows call on their handlers. In a bundle config:

    .. code-block:: json

        {"_target_": "monai_ceph.handlers.TimeLimit", "_disabled_": "$@time_limit is None", "limit_sec": "@time_limit"}

    Args:
        limit_sec: the budget in seconds, counted from the handler's creation.
    """

    def attach(self, engine: Engine) -> None:
        """
        Args:
            engine: Ignite Engine, it can be a trainer, validator or evaluator.
        """
        if not engine.has_event_handler(self, Events.ITERATION_COMPLETED):
            engine.add_event_handler(Events.ITERATION_COMPLETED, self)
