"""Agreement of two sets of measurements (e.g. a model's and the ground truth's, or two annotators'):
per measurement, the mean absolute error of the values and the accuracy, Cohen's kappa and confusion matrix of
the classes both imply."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .definitions import get_measurement

__all__ = ["cohen_kappa", "confusion_matrix", "agreement"]


def confusion_matrix(pred: Sequence[str], gt: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    """``(len(labels), len(labels))`` counts, rows = ground-truth class, columns = predicted class."""
    if len(pred) != len(gt):
        raise ValueError(f"got {len(pred)} predicted and {len(gt)} ground-truth classes.")
    index = {label: i for i, label in enumerate(labels)}
    unknown = (set(pred) | set(gt)) - set(index)
    if unknown:
        raise ValueError(f"classes {sorted(unknown)} are not among the labels {list(labels)}.")
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for p, g in zip(pred, gt):
        matrix[index[g], index[p]] += 1
    return matrix


def cohen_kappa(matrix: np.ndarray) -> float:
    """Cohen's kappa of a confusion matrix: (p_o - p_e) / (1 - p_e); NaN when undefined (no pairs, or both
    raters put every case in one and the same class, p_e = 1)."""
    m = np.asarray(matrix, dtype=np.float64)
    n = m.sum()
    if n == 0:
        return math.nan
    p_o = np.trace(m) / n
    p_e = float(np.dot(m.sum(0), m.sum(1))) / n**2
    return math.nan if p_e >= 1.0 else float((p_o - p_e) / (1.0 - p_e))


def _none(v: float) -> float | None:
    return None if math.isnan(v) else v


def agreement(
    pred_measurements_list: Sequence[Mapping[str, float]],
    gt_measurements_list: Sequence[Mapping[str, float]],
    names: Sequence[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Per measurement: ``n`` (images where both values are finite), ``mae`` (mean absolute difference, in the
    measurement's ``unit``), ``accuracy`` (% of those images whose classes agree), ``kappa`` (Cohen's), and
    ``confusion`` (``{"labels": [...], "matrix": rows = ground truth, columns = prediction}``). The classes are
    those :meth:`Measurement.classify` gives each value. NaN statistics (no finite pair, kappa undefined) are None.

    Args:
        pred_measurements_list, gt_measurements_list: one ``{name: value}`` per image (as
            :func:`~monai_ceph.analysis.measure` returns them), in the same image order.
        names: the measurements to report; default: those of the first prediction.

    Raises:
        ValueError: the two lists differ in length.
    """
    if len(pred_measurements_list) != len(gt_measurements_list):
        raise ValueError(
            f"got {len(pred_measurements_list)} predicted and {len(gt_measurements_list)} ground-truth "
            "measurement sets."
        )
    if names is None:
        names = list(pred_measurements_list[0]) if pred_measurements_list else []
    report: dict[str, dict[str, Any]] = {}
    for name in names:
        m = get_measurement(name)
        pairs = [
            (float(p.get(name, math.nan)), float(g.get(name, math.nan)))
            for p, g in zip(pred_measurements_list, gt_measurements_list)
        ]
        pairs = [(p, g) for p, g in pairs if math.isfinite(p) and math.isfinite(g)]
        entry: dict[str, Any] = {
            "unit": m.unit,
            "n": len(pairs),
            "mae": _none(float(np.mean([abs(p - g) for p, g in pairs])) if pairs else math.nan),
        }
        labels = m.labels
        if labels:
            classes = [(m.classify(p), m.classify(g)) for p, g in pairs]
            classes = [(p, g) for p, g in classes if p is not None and g is not None]
            matrix = confusion_matrix([p for p, _ in classes], [g for _, g in classes], labels)
            n = int(matrix.sum())
            entry["accuracy"] = _none(100.0 * np.trace(matrix) / n if n else math.nan)
            entry["kappa"] = _none(cohen_kappa(matrix))
            entry["confusion"] = {"labels": list(labels), "matrix": matrix.tolist()}
        report[name] = entry
    return report
