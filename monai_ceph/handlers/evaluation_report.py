from __future__ import annotations

import csv
import io
import logging
import math
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from monai.utils import IgniteInfo, min_version, optional_import

from monai_ceph.data import LandmarkSet
from monai_ceph.data.atomic import atomic_write_bytes, atomic_write_text
from monai_ceph.data.json_io import dump_json
from monai_ceph.metrics.radial_error import DEFAULT_SDR_THRESHOLDS, summarize_radial_errors

from .output_lock import hold_output_folder
from .uncertainty import UncertaintyRecords, uncertainty_summary
from .utils import decollated_items, engine_output, landmark_labels

idist, _ = optional_import("ignite", IgniteInfo.OPT_IMPORT_VERSION, min_version, "distributed")
Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")
Figure, _ = optional_import("matplotlib.figure", name="Figure")
FigureCanvasAgg, _ = optional_import("matplotlib.backends.backend_agg", name="FigureCanvasAgg")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")

__all__ = ["EvaluationReport"]


def _number(v: Any) -> float | int | None:
    """JSON-friendly scalar: None for NaN."""
    v = v.item() if hasattr(v, "item") else v
    return None if isinstance(v, float) and math.isnan(v) else v


class EvaluationReport:
    """
    Event handler writing the radial-error report of an evaluation run when the engine COMPLETES:

    - ``<output_dir>/<filename>_summary.json``: ``n_images``, ``n_landmarks``, ``n_valid`` (annotated points),
      ``n_missed`` (annotated points without prediction), ``mre_mm``, ``sd_mm``, ``sdr_percent``
      (``{"2.0": ...}``), the ``thresholds_mm`` and a ``per_landmark`` list of the same statistics;
    - ``<output_dir>/<filename>_per_landmark.csv``: one row per landmark, columns
      ``index, abbreviation, name, mre_mm, sd_mm, sdr_<t>mm..., n_valid, n_missed``;
    - ``<output_dir>/<filename>_per_landmark.png``: bar chart of the per-landmark MRE with SD error bars.

    When the output items carry a predicted covariance (``cov_key``, source mm^2, from
    :class:`~monai_ceph.shape.LandmarkUncertaintyd`) and ground truth, the summary also has an ``"uncertainty"``
    block (:func:`~monai_ceph.handlers.uncertainty_summary` of every rank's images): whether the covariances were
    ``calibrated``, the Spearman ``spearman_rho`` of ``sigma_mm`` against the radial error, the
    ``ellipse_coverage_percent`` (errors inside their ``coverage`` ellipse) and per landmark the same with the mean
    ``sigma_mm``; the CSV gets the columns ``sigma_mm, spearman_rho, ellipse_coverage_percent``.

    Like MONAI's ``MetricsSaver``, the handler reads the per-image errors that a metric stored in
    ``engine.state.metric_details`` (the ``(images, landmarks)`` errors of
    :py:class:`monai_ceph.handlers.RadialError` with ``save_details=True``, gathered from every rank), by default
    those of the engine's key metric, so the errors are computed once. Only ``save_rank`` writes the files. The
    last summary is kept in ``self.summary``. Statistics are :py:func:`monai_ceph.metrics.summarize_radial_errors`'s:
    NaN ground truth is excluded, missed predictions are SDR failures and are left out of MRE/SD; NaN statistics
    (e.g. a landmark never annotated) are written as ``null`` / empty cells.

    Args:
        output_dir: folder for the report; created when missing.
        thresholds: SDR thresholds in mm (success: ``error <= threshold``).
        landmark_set: names the landmarks; None gives ``L1..LN``.
        metric_name: the ``engine.state.metric_details`` entry to report; None: the engine's key metric
            (``engine.state.key_metric_name``, set by MONAI's evaluators).
        filename: prefix of the three file names.
        plot: whether to write the PNG chart.
        save_rank: the rank that writes the files.
        cov_key: the items' predicted covariance (None: no uncertainty block).
        coverage: the ellipse level of ``ellipse_coverage_percent``.
        pred_key, label_key, spacing_key, calibrated_key: keys of the output items for the uncertainty block
            (as :class:`~monai_ceph.handlers.UncertaintyRecords`).
        name: identifier of logging.logger to use, defaulting to ``engine.logger``.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike = "./",
        thresholds: Sequence[float] = DEFAULT_SDR_THRESHOLDS,
        landmark_set: str | LandmarkSet | None = "isbi2015",
        metric_name: str | None = None,
        filename: str = "radial_error",
        plot: bool = True,
        save_rank: int = 0,
        cov_key: str | None = "cov_mm",
        coverage: float = 0.95,
        pred_key: str = "pred_landmarks",
        label_key: str = "landmarks",
        spacing_key: str = "spacing",
        calibrated_key: str | None = "uncertainty_calibrated",
        name: str | None = None,
    ) -> None:
        self.output_dir = output_dir
        self.thresholds = tuple(float(t) for t in thresholds)
        self.landmark_set = landmark_set
        self.metric_name = metric_name
        self.filename = filename
        self.plot = plot
        self.save_rank = save_rank
        self.coverage = coverage
        self.records = None if cov_key is None else UncertaintyRecords(pred_key, label_key, spacing_key, cov_key,
                                                                       calibrated_key)
        self.summary: dict[str, Any] | None = None
        self.logger = logging.getLogger(name)
        self._name = name

    def attach(self, engine: Engine) -> None:
        """
        Args:
            engine: Ignite Engine, it can be a trainer, validator or evaluator.
        """
        if self._name is None:
            self.logger = engine.logger
        hold_output_folder(engine, self.output_dir, rank=self.save_rank)
        if not engine.has_event_handler(self, Events.COMPLETED):
            engine.add_event_handler(Events.COMPLETED, self)
        if self.records is not None and not engine.has_event_handler(self.record, Events.ITERATION_COMPLETED):
            engine.add_event_handler(Events.STARTED, self.records.reset)
            engine.add_event_handler(Events.ITERATION_COMPLETED, self.record)

    def record(self, engine: Engine) -> None:
        """Keep the predicted covariances and errors of the iteration's items (those that have both)."""
        for item in decollated_items(engine_output(engine)):
            self.records.add(item)  # type: ignore[union-attr]

    def __call__(self, engine: Engine) -> None:
        """Build the report from the metric details of ``engine`` and write it (``save_rank`` only).

        Args:
            engine: Ignite Engine, it can be a trainer, validator or evaluator.
        """
        summary = self.compute_summary(self.metric_details(engine))
        gathered = None if self.records is None else self.records.gathered()  # every rank takes part
        if gathered is not None:
            calibrated = self.records.calibrated  # type: ignore[union-attr]
            block = uncertainty_summary(*gathered[:2], self.coverage, self.landmark_set)
            summary["uncertainty"] = {"calibrated": next(iter(calibrated)) if len(calibrated) == 1 else None, **block}
        if idist.get_rank() == self.save_rank:
            self.write(summary)

    def metric_details(self, engine: Engine) -> Any:
        """The ``(images, landmarks)`` errors in mm that the metric ``metric_name`` left in ``engine.state``."""
        name = self.metric_name if self.metric_name is not None else getattr(engine.state, "key_metric_name", None)
        details = getattr(engine.state, "metric_details", None) or {}
        if name not in details:
            raise RuntimeError(
                f"EvaluationReport needs the per-image errors of metric {name!r} in engine.state.metric_details "
                f"(found {sorted(details)}): attach monai_ceph.handlers.RadialError with save_details=True "
                "(the key metric, or name it with metric_name)."
            )
        return details[name]

    def compute_summary(self, errors: Any) -> dict[str, Any]:
        """The report content of ``(images, landmarks)`` errors as a JSON-friendly dict (see the class docstring)."""
        pooled = summarize_radial_errors(errors, self.thresholds, "mean")
        per = summarize_radial_errors(errors, self.thresholds, "mean_batch")
        n_images, n_landmarks = errors.shape
        abbreviations, names = landmark_labels(self.landmark_set, n_landmarks)
        keys = [str(t) for t in self.thresholds]

        def stats(s: dict, i: int | None = None) -> dict[str, Any]:
            at = (lambda v: v) if i is None else (lambda v: v[..., i])
            return {
                "mre_mm": _number(at(s["mre"])),
                "sd_mm": _number(at(s["sd"])),
                "sdr_percent": {k: _number(v) for k, v in zip(keys, at(s["sdr"]))},
                "n_valid": _number(at(s["n_valid"])),
                "n_missed": _number(at(s["n_missed"])),
            }

        per_landmark = [
            {"index": i, "abbreviation": a, "name": n, **stats(per, i)}
            for i, (a, n) in enumerate(zip(abbreviations, names))
        ]
        lset = getattr(self.landmark_set, "name", self.landmark_set)
        self.summary = {
            "landmark_set": lset,
            "n_images": n_images,
            "n_landmarks": n_landmarks,
            "thresholds_mm": list(self.thresholds),
            **stats(pooled),
            "per_landmark": per_landmark,
        }
        return self.summary

    def write(self, summary: dict[str, Any]) -> list[str]:
        """Write the JSON, CSV and (optionally) PNG files of ``summary``; returns their paths."""
        base = os.path.join(self.output_dir, self.filename)
        paths = [f"{base}_summary.json", f"{base}_per_landmark.csv"]
        dump_json(summary, paths[0])

        sdr_columns = [f"sdr_{k}mm" for k in summary["sdr_percent"]]
        columns = ["index", "abbreviation", "name", "mre_mm", "sd_mm", *sdr_columns, "n_valid", "n_missed"]
        uncertainty = summary.get("uncertainty")
        extra = ("sigma_mm", "spearman_rho", "ellipse_coverage_percent") if uncertainty else ()
        table = io.StringIO(newline="")
        writer = csv.writer(table)
        writer.writerow([*columns, *extra])
        for i, r in enumerate(summary["per_landmark"]):
            row = [r["index"], r["abbreviation"], r["name"], r["mre_mm"], r["sd_mm"]]
            row += [*r["sdr_percent"].values(), r["n_valid"], r["n_missed"]]
            row += [uncertainty["per_landmark"][i][k] for k in extra] if uncertainty else []
            writer.writerow(["" if v is None else v for v in row])
        atomic_write_text(paths[1], table.getvalue())

        if self.plot:
            paths.append(f"{base}_per_landmark.png")
            self._plot(summary, paths[-1])

        sdr = ", ".join(f"SDR@{k}mm {v:.2f}%" for k, v in summary["sdr_percent"].items() if v is not None)
        mre, sd = (float("nan") if v is None else v for v in (summary["mre_mm"], summary["sd_mm"]))
        self.logger.info(
            f"radial error over {summary['n_images']} images: MRE {mre:.3f} ± {sd:.3f} mm, {sdr}; "
            f"{summary['n_missed']} missed; report in {self.output_dir}."
        )
        if uncertainty:
            rho, inside = (float("nan") if v is None else v
                           for v in (uncertainty["spearman_rho"], uncertainty["ellipse_coverage_percent"]))
            state = {True: "calibrated", False: "uncalibrated"}.get(uncertainty["calibrated"], "")
            self.logger.info(f"{state} uncertainty over {uncertainty['n_points']} points: Spearman rho(sigma, error) "
                             f"{rho:.3f}, {inside:.1f} % of the errors inside the {100 * self.coverage:g} % ellipse.")
        return paths

    @staticmethod
    def _plot(summary: dict[str, Any], path: str) -> None:
        rows = summary["per_landmark"]
        nan = float("nan")
        mre = [nan if r["mre_mm"] is None else r["mre_mm"] for r in rows]
        sd = [0.0 if r["sd_mm"] is None else r["sd_mm"] for r in rows]
        fig = Figure(figsize=(max(6.0, 0.45 * len(rows)), 4.0), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        lower = [min(m, s) if m == m else 0.0 for m, s in zip(mre, sd)]  # errors are >= 0: clip the bar at 0
        ax.bar(range(len(rows)), mre, yerr=[lower, sd], capsize=3, color="tab:blue", ecolor="0.3")
        if summary["mre_mm"] is not None:
            ax.axhline(summary["mre_mm"], color="tab:red", linestyle="--", label=f"MRE {summary['mre_mm']:.2f} mm")
            ax.legend(loc="upper right")
        ax.set_xticks(range(len(rows)), [r["abbreviation"] for r in rows], rotation=45)
        ax.set_xlabel("landmark")
        ax.set_ylabel("radial error (mm), mean ± SD")
        ax.set_title(f"Radial error per landmark ({summary['n_images']} images)")
        fig.tight_layout()
        png = io.BytesIO()
        fig.savefig(png, format="png")
        atomic_write_bytes(path, png.getvalue())
