from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from monai.handlers import IgniteMetricHandler, from_engine
from monai.utils import IgniteInfo, min_version, optional_import

from monai_ceph.data import LandmarkSet
from monai_ceph.metrics.radial_error import DEFAULT_SDR_THRESHOLDS, RadialErrorMetric

from .utils import engine_output, landmark_labels

Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")

reinit__is_reduced, _ = optional_import(
    "ignite.metrics.metric", IgniteInfo.OPT_IMPORT_VERSION, min_version, "reinit__is_reduced", as_type="decorator"
)

__all__ = ["RadialError"]


class RadialError(IgniteMetricHandler):
    """
    Mean radial error (MRE, mm on the source image) of predicted landmarks, with the SD and the success detection
    rates recorded beside it. Lower is better: set ``metric_cmp_fn`` of the evaluator accordingly.

    ``engine.state.metrics[name]`` is the MRE; the same ``engine.state.metrics`` also receives
    ``"<prefix>SD_mm"``, ``"<prefix>SDR_<t>mm"`` for each threshold (e.g. ``"SDR_2.0mm"``, percent),
    ``"<prefix>n_missed"`` and, with ``per_landmark``, ``"<prefix>MRE_<abbreviation>"`` for each landmark,
    so that ``StatsHandler`` and ``TensorBoardStatsHandler`` show them. With ``save_details``,
    ``engine.state.metric_details[name]`` holds the ``(images, landmarks)`` errors (all ranks gathered; NaN: not
    annotated, inf: missed), which ``MetricsSaver(metric_details="*")`` writes per image (give it
    ``batch_transform=lambda batch: [item["image"].meta for item in batch]`` to name the rows).

    ``output_transform`` receives ``engine.state.output`` with each decollated item completed by the keys of the
    matching ``engine.state.batch`` item that it lacks (MONAI's evaluators keep dataset keys such as ``"landmarks"``
    and ``"spacing"`` in the batch; output values win). In a bundle config, where the postprocessing adds
    ``"pred_landmarks"`` mapped back to source pixels:

    .. code-block:: json

        "key_metric": {"val_mre": {"_target_": "monai_ceph.handlers.RadialError"}},
        "metric_cmp_fn": "$lambda current, best: current < best"

    Args:
        thresholds: SDR thresholds in mm; success is ``error <= threshold``.
        output_transform: extracts ``(y_pred, y, spacing)`` from ``engine.state.output``; the default reads the keys
            ``"pred_landmarks"``, ``"landmarks"`` and ``"spacing"`` of the decollated output (completed by the batch).
        save_details: whether to store the per-image, per-landmark errors in ``engine.state.metric_details``.
        per_landmark: whether to also record the MRE of each landmark under its abbreviation.
        landmark_set: the set giving the abbreviations for ``per_landmark``; None gives ``L1..LN``.
        prefix: prepended to the extra metric names, to keep two of these handlers on one engine apart.

    See also:
        :py:class:`monai_ceph.metrics.RadialErrorMetric` for how missing landmarks are counted.
    """

    def __init__(
        self,
        thresholds: Sequence[float] = DEFAULT_SDR_THRESHOLDS,
        output_transform: Callable = from_engine(["pred_landmarks", "landmarks", "spacing"]),
        save_details: bool = True,
        per_landmark: bool = False,
        landmark_set: str | LandmarkSet | None = "isbi2015",
        prefix: str = "",
    ) -> None:
        metric_fn = RadialErrorMetric(thresholds=thresholds)
        super().__init__(metric_fn=metric_fn, output_transform=output_transform, save_details=save_details)
        self.output_transform = output_transform
        self.per_landmark = per_landmark
        self.landmark_set = landmark_set
        self.prefix = prefix
        self.extra_metrics: dict[str, float] = {}

    @torch.no_grad()
    def iteration_completed(self, engine: Engine) -> None:
        """Update from ``engine.state.output`` completed by the batch keys it lacks (see the class docstring).

        The ``(y_pred, y, spacing)`` triple goes to :meth:`update` as one item (never unrolled into pairs).
        """
        self.update(self.output_transform(engine_output(engine)))

    @reinit__is_reduced
    def update(self, output: Sequence[Any]) -> None:
        """
        Args:
            output: ``(y_pred, y, spacing)``: ``(B, N, 2)`` tensors or lists of ``(N, 2)`` items, and the spacing as
                ``(B, 2)`` or a list of ``(2,)`` items.
        """
        if not isinstance(output, Sequence) or len(output) != 3:
            raise ValueError(
                "RadialError expects output_transform to give (pred_landmarks, landmarks, spacing), "
                f"got {type(output).__name__} of length {len(output) if isinstance(output, Sequence) else '?'}."
            )
        y_pred, y, spacing = output
        self.metric_fn(y_pred, y, spacing=spacing)

    def compute(self) -> float:
        """The MRE in mm; the SD, SDRs and counts go to ``self.extra_metrics`` (see :meth:`completed`)."""
        summary = super().compute()  # the metric's pooled summary dict; also saves the details
        extra = {"SD_mm": summary["sd"].item(), "n_missed": int(summary["n_missed"].item())}
        extra.update({f"SDR_{t}mm": v.item() for t, v in zip(self.metric_fn.thresholds, summary["sdr"])})
        if self.per_landmark:
            per_landmark = self.metric_fn.aggregate("mean_batch")["mre"]
            abbreviations, _ = landmark_labels(self.landmark_set, len(per_landmark))
            extra.update({f"MRE_{a}": v.item() for a, v in zip(abbreviations, per_landmark)})
        self.extra_metrics = {f"{self.prefix}{k}": v for k, v in extra.items()}
        return float(summary["mre"])

    def completed(self, engine: Engine, name: str) -> None:
        """Record the MRE under ``name`` and the statistics beside it in ``engine.state.metrics``."""
        super().completed(engine, name)
        engine.state.metrics.update(self.extra_metrics)
