"""Radial error of landmark predictions in millimetres, and its summary (MRE, SD, SDR@t, per landmark).

Conventions (see DESIGN.md, "Coordinates"):

- landmarks are ``(B, N, D)`` arrays in source-image pixel-index units, in the order of the spatial dims;
  a missing landmark is NaN;
- spacing is mm per pixel in the same order: a scalar, one ``(D,)`` vector shared by the batch, or ``(B, D)``
  (one vector per sample); anisotropic spacing is allowed.

Missing values, the rule used everywhere in this module:

- ground truth NaN: the landmark is not annotated; its error is NaN and it is left out of every statistic
  (it is *not* counted as an error of zero);
- ground truth present but prediction NaN: the model failed to produce the landmark; its error is ``+inf``.
  It counts as a miss for the SDR (never within any threshold, still in the denominator), and it is left out
  of the MRE and SD (a mean over ``inf`` is meaningless); the number of such points is reported as
  ``"n_missed"`` so that it is never silent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from monai.config import NdarrayOrTensor
from monai.metrics import CumulativeIterationMetric
from monai.utils import MetricReduction, convert_to_tensor, look_up_option

__all__ = [
    "RadialErrorMetric",
    "compute_radial_error",
    "summarize_radial_errors",
    "DEFAULT_SDR_THRESHOLDS",
    "SDR_TOLERANCE_MM",
]

DEFAULT_SDR_THRESHOLDS: tuple[float, ...] = (2.0, 2.5, 3.0, 4.0)
"""Success detection rate thresholds in mm used by the ISBI 2015 challenge."""

SDR_TOLERANCE_MM: float = 1e-5
"""Rounding allowance of the SDR test ``error <= threshold + SDR_TOLERANCE_MM``: integer pixel offsets at 0.1 mm/px
often give errors of exactly 2.0 mm, which floating point computes as 2.0000000298 (0.1 in float32); 10 nm is far
below any annotation precision."""

_SUPPORTED_REDUCTIONS = (MetricReduction.MEAN, MetricReduction.MEAN_BATCH, MetricReduction.MEAN_CHANNEL)


def _as_tensor(x: Any) -> torch.Tensor:
    """Tensor from a tensor, array, number or (nested) list of them, e.g. a decollated list of ``(N, 2)`` items."""
    if isinstance(x, (list, tuple)):
        if len(x) == 0:
            raise ValueError("expected a non-empty sequence.")
        items = [_as_tensor(i) for i in x]
        return torch.stack([i.to(items[0].device) for i in items])
    if isinstance(x, (int, float)):  # python numbers are double precision: keep them so (e.g. 0.1 mm/px)
        return torch.tensor(float(x), dtype=torch.float64)
    return convert_to_tensor(x, track_meta=False)


def _float_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype to compute in: floating inputs keep theirs, integer pixel coordinates go to float64."""
    return x.dtype if x.is_floating_point() else torch.float64


def compute_radial_error(y_pred: NdarrayOrTensor, y: NdarrayOrTensor, spacing: Any = 1.0) -> NdarrayOrTensor:
    """Per-landmark radial error in mm: ``sqrt(sum_d ((y_pred - y)[..., d] * spacing[d]) ** 2)``.

    Args:
        y_pred: predicted landmarks ``(B, N, D)`` in source pixels.
        y: ground-truth landmarks ``(B, N, D)`` in source pixels, NaN where not annotated.
        spacing: mm per pixel: a scalar, a ``(D,)`` vector shared by the batch, or ``(B, D)`` per sample.

    Returns:
        ``(B, N)`` errors in mm, same type as ``y_pred``: NaN where the ground truth is missing, ``+inf`` where the
        ground truth is present but the prediction is NaN (see the module docstring).

    Raises:
        ValueError: when the shapes disagree or the spacing is not finite and positive.
    """
    p, g = _as_tensor(y_pred), _as_tensor(y)
    if p.ndim != 3 or p.shape != g.shape:
        raise ValueError(
            "y_pred and y must both be (B, N, D) landmarks of the same shape, "
            f"got {tuple(p.shape)} and {tuple(g.shape)}."
        )
    dtype = torch.promote_types(_float_dtype(p), _float_dtype(g))
    p, g = p.to(dtype), g.to(device=p.device, dtype=dtype)
    b, _, d = p.shape
    s = _as_tensor(spacing).to(device=p.device, dtype=dtype)
    if s.ndim == 0:
        s = s.expand(b, d)
    elif s.ndim == 1 and s.shape[0] == d:
        s = s.expand(b, d)
    elif s.shape != (b, d):
        raise ValueError(
            f"spacing must be a scalar, ({d},) or (batch={b}, {d}) in mm per pixel, got shape {tuple(s.shape)}."
        )
    if not torch.all(torch.isfinite(s) & (s > 0)):
        raise ValueError(f"spacing must be finite and positive (mm per pixel), got {s.tolist()}.")

    err = torch.linalg.vector_norm((p - g) * s[:, None, :], dim=-1)
    gt_missing = torch.isnan(g).any(dim=-1)
    pred_missing = torch.isnan(p).any(dim=-1) & ~gt_missing
    err = torch.where(pred_missing, torch.full_like(err, float("inf")), err)
    err = torch.where(gt_missing, torch.full_like(err, float("nan")), err)
    return err.cpu().numpy() if isinstance(y_pred, np.ndarray) else err


def summarize_radial_errors(
    errors: NdarrayOrTensor,
    thresholds: Sequence[float] = DEFAULT_SDR_THRESHOLDS,
    reduction: MetricReduction | str = MetricReduction.MEAN,
) -> dict[str, torch.Tensor]:
    """Summary statistics of ``(B, N)`` radial errors as produced by :py:func:`compute_radial_error`.

    Args:
        errors: ``(B, N)`` errors in mm; NaN = not annotated (excluded), ``inf`` = missed prediction.
        thresholds: SDR thresholds in mm; a point is a success when ``error <= threshold`` (as in ISBI 2015), up to
            the rounding allowance :py:data:`SDR_TOLERANCE_MM`.
        reduction: what the statistics are computed over:

            - ``"mean"``: every valid (image, landmark) point pooled, each with the same weight; scalars;
            - ``"mean_batch"``: over the images, for each landmark; shape ``(N,)``;
            - ``"mean_channel"``: over the landmarks, for each image; shape ``(B,)``.

    Returns:
        a dict of tensors (shape ``S`` is ``()``, ``(N,)`` or ``(B,)`` by ``reduction``):

        - ``"mre"`` ``S``: mean radial error in mm over the finite errors (NaN when there is none);
        - ``"sd"`` ``S``: population standard deviation (ddof=0) of the same errors, mm;
        - ``"sdr"`` ``(T, *S)``: success detection rate in percent at each threshold, over all valid points
          (missed predictions count as failures);
        - ``"thresholds"`` ``(T,)``: the thresholds in mm;
        - ``"n_valid"`` ``S``: number of points with ground truth;
        - ``"n_missed"`` ``S``: number of valid points whose prediction is missing (error ``inf``).
    """
    err = _as_tensor(errors)
    if err.ndim != 2:
        raise ValueError(f"errors must be (B, N) radial errors, got shape {tuple(err.shape)}.")
    err = err.to(_float_dtype(err))
    reduction = look_up_option(reduction, MetricReduction)
    if reduction not in _SUPPORTED_REDUCTIONS:
        raise ValueError(f"unsupported reduction {reduction!r} for radial errors; use one of {_SUPPORTED_REDUCTIONS}.")
    dim = {MetricReduction.MEAN: (0, 1), MetricReduction.MEAN_BATCH: 0, MetricReduction.MEAN_CHANNEL: 1}[reduction]

    valid = ~torch.isnan(err)
    finite = torch.isfinite(err)
    e0 = torch.where(finite, err, torch.zeros_like(err))
    n_finite = finite.sum(dim=dim)
    nan = torch.tensor(float("nan"), dtype=err.dtype, device=err.device)
    mre = torch.where(n_finite > 0, e0.sum(dim=dim) / n_finite.clamp(min=1), nan)
    centred = torch.where(finite, err - (mre if reduction == MetricReduction.MEAN else mre.unsqueeze(dim)), 0.0)
    sd = torch.where(n_finite > 0, torch.sqrt((centred**2).sum(dim=dim) / n_finite.clamp(min=1)), nan)

    n_valid = valid.sum(dim=dim)
    t = torch.as_tensor([float(v) for v in thresholds], dtype=err.dtype, device=err.device)
    hits = [(valid & (err <= v + SDR_TOLERANCE_MM)).sum(dim=dim) for v in t]
    hits = torch.stack(hits) if hits else torch.zeros((0, *mre.shape), dtype=torch.long, device=err.device)
    sdr = torch.where(n_valid > 0, 100.0 * hits.to(err.dtype) / n_valid.clamp(min=1), nan)
    return {
        "mre": mre,
        "sd": sd,
        "sdr": sdr,
        "thresholds": t,
        "n_valid": n_valid,
        "n_missed": (valid & ~finite).sum(dim=dim),
    }


class RadialErrorMetric(CumulativeIterationMetric):
    """Radial error of landmarks in mm on the source image: MRE, SD and SDR at thresholds, overall or per landmark.

    Each call computes the ``(B, N)`` errors of a batch (see :py:func:`compute_radial_error`) and buffers them;
    :py:meth:`aggregate` summarises every buffered (and, in distributed runs, all-gathered) error with
    :py:func:`summarize_radial_errors`. Missing ground truth (NaN) is excluded; a missing prediction for an
    annotated landmark counts as a miss for the SDR and is left out of the MRE/SD (reported as ``"n_missed"``).

    Example:

    .. code-block:: python

        metric = RadialErrorMetric(thresholds=(2.0, 2.5, 3.0, 4.0))
        for batch in loader:
            pred = predict_landmarks_in_source_pixels(batch)  # (B, N, 2)
            metric(pred, batch["landmarks"], spacing=batch["spacing"])  # spacing (B, 2) mm/px
        summary = metric.aggregate()  # {"mre": ..., "sd": ..., "sdr": (4,), ...}
        per_landmark = metric.aggregate("mean_batch")  # the same keys, one value per landmark
        metric.reset()

    Args:
        thresholds: SDR thresholds in mm; success is ``error <= threshold`` (ISBI 2015 convention).
        reduction: default reduction of :py:meth:`aggregate`: ``"mean"`` (all points pooled), ``"mean_batch"``
            (per landmark) or ``"mean_channel"`` (per image).
    """

    def __init__(
        self,
        thresholds: Sequence[float] = DEFAULT_SDR_THRESHOLDS,
        reduction: MetricReduction | str = MetricReduction.MEAN,
    ) -> None:
        super().__init__()
        self.thresholds = tuple(float(t) for t in thresholds)
        if any(not np.isfinite(t) or t < 0 for t in self.thresholds):
            raise ValueError(f"SDR thresholds must be finite and non-negative mm, got {self.thresholds}.")
        self.reduction = look_up_option(reduction, MetricReduction)
        if self.reduction not in _SUPPORTED_REDUCTIONS:
            raise ValueError(f"unsupported reduction {reduction!r}; use one of {_SUPPORTED_REDUCTIONS}.")

    def __call__(self, y_pred: Any, y: Any = None, spacing: Any = None, **kwargs: Any):  # type: ignore[override]
        """Compute and buffer the ``(B, N)`` errors of one batch.

        Args:
            y_pred: predicted landmarks in source pixels: a ``(B, N, D)`` tensor/array or a list of ``(N, D)`` items
                (a decollated batch).
            y: ground-truth landmarks, same forms, NaN where not annotated.
            spacing: mm per pixel: a scalar, ``(D,)`` shared, ``(B, D)``, or a list of ``B`` ``(D,)`` items.
                Required: errors are always reported in mm.
        """
        if y is None:
            raise ValueError("RadialErrorMetric needs the ground-truth landmarks `y`.")
        if spacing is None:
            raise ValueError("RadialErrorMetric needs `spacing` (mm per pixel) to report errors in mm.")
        y_pred_t = _as_tensor(y_pred)
        return super().__call__(y_pred=y_pred_t, y=_as_tensor(y).to(y_pred_t.device), spacing=spacing, **kwargs)

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor | None = None, **kwargs: Any) -> torch.Tensor:
        return compute_radial_error(y_pred, y, spacing=kwargs["spacing"])  # type: ignore[arg-type,return-value]

    def aggregate(self, reduction: MetricReduction | str | None = None) -> dict[str, torch.Tensor]:
        """Summary of all buffered errors, see :py:func:`summarize_radial_errors` for the keys.

        Args:
            reduction: overrides the ``reduction`` given at construction.
        """
        data = self.get_buffer()
        if not isinstance(data, torch.Tensor):
            raise ValueError(f"RadialErrorMetric has no buffered errors to aggregate (got {type(data).__name__}).")
        return summarize_radial_errors(data, self.thresholds, reduction or self.reduction)
