"""Per-landmark uncertainty from predicted heatmaps, and its calibration on validation errors.

- :func:`heatmap_covariance`: local second moments of each heatmap around its decoded peak, a ``(K, 2, 2)``
  covariance in heatmap pixels;
- :func:`covariance_to_source`: through the same affine the points go through, ``A cov A^T``, then into mm;
- :class:`UncertaintyCalibration`: one scale per landmark so that the covariances match observed errors, and
  optionally a power of the point's heatmap confidence (:func:`confidence_factor`): a low peak is a likely miss.

A covariance ``S`` (mm^2) gives ``sigma_mm = sqrt(trace(S) / 2)``, the SD per axis of the isotropic Gaussian with
the same mean squared radial error (``E|e|^2 = trace(S) = 2 sigma^2``); the ``q`` ellipse is
``e^T S^-1 e <= -2 ln(1 - q)`` (the chi^2 quantile with 2 degrees of freedom).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

from monai.utils.type_conversion import convert_to_dst_type

from monai_ceph.data.landmark_sets import get_landmark_set

from .utils import read_json, write_json

__all__ = [
    "heatmap_covariance",
    "covariance_radius",
    "covariance_to_source",
    "covariance_sigma",
    "mahalanobis_squared",
    "chi2_2_quantile",
    "ellipse_coverage",
    "spearman_rho",
    "confidence_factor",
    "UncertaintyCalibration",
]

CALIBRATION_FORMAT = "monai_ceph.uncertainty_calibration/1"
PLAUSIBLE_CALIBRATION_SCALES = (1e-3, 1e3)
"""The range a loaded calibration's scales must lie in: a calibrated sigma a thousand times smaller or larger than
the heatmap's own is a damaged or foreign file (the released ISBI model's scales are 1.7-2.3 for the global stage,
21-25 for the local stage's sharper heatmaps)."""
CONFIDENCE_FLOOR = 1e-3  # 1 - confidence is clipped here: a saturated peak does not give a zero covariance
CONFIDENCE_POWERS = np.round(np.arange(0.0, 2.0001, 0.05), 2)  # the grid UncertaintyCalibration.fit searches


def chi2_2_quantile(q: float) -> float:
    """Quantile of chi^2 with 2 degrees of freedom: ``-2 ln(1 - q)`` (5.99 for 95 %)."""
    if not 0 < q < 1:
        raise ValueError(f"a quantile must lie in (0, 1), got {q!r}.")
    return -2.0 * math.log1p(-q)


def heatmap_covariance(heatmaps, peaks, radius: int = 8, logits: bool = False, background: bool = True):
    """Covariance of each heatmap's mass around its peak, in heatmap pixels.

    In a ``(2 radius + 1)^2`` window centred on the pixel nearest the peak, the heatmap (``sigmoid`` of it for
    logits) less its background (the mean over the window's border ring, ``background=True``), clipped at zero,
    weighs the outer products of the offsets from the sub-pixel peak:
    ``cov = sum w d d^T / sum w``. Pixels outside the map weigh nothing. A channel with no mass gives NaN.

    Args:
        heatmaps: ``(..., K, h0, h1)`` numpy or torch.
        peaks: ``(..., K, 2)`` decoded peaks in heatmap pixels.
        radius: window half-width in heatmap pixels (about 4 sigma of the rendered target).
        logits: the heatmaps are ``BCEWithLogits`` logits.
        background: subtract the border-ring mean.

    Returns:
        ``(..., K, 2, 2)`` of the heatmaps' type (float32 torch; float64 numpy).
    """
    hm = torch.as_tensor(heatmaps).as_subclass(torch.Tensor)
    if hm.ndim < 3:
        raise ValueError(f"heatmaps must have shape (..., K, dim0, dim1), got {tuple(hm.shape)}.")
    pk = torch.as_tensor(peaks, device=hm.device).as_subclass(torch.Tensor).to(torch.float64)
    if tuple(pk.shape) != tuple(hm.shape[:-2]) + (2,):
        raise ValueError(f"peaks must have shape {tuple(hm.shape[:-2]) + (2,)}, got {tuple(pk.shape)}.")
    if isinstance(radius, bool) or int(radius) != radius or radius < 1:
        raise ValueError(f"radius must be an integer >= 1, got {radius!r}.")
    lead, (n0, n1) = hm.shape[:-2], hm.shape[-2:]
    flat = hm.reshape(-1, n0 * n1)
    pk = pk.reshape(-1, 2)
    finite = torch.isfinite(pk).all(-1)
    centre = torch.round(torch.where(finite[:, None], pk, torch.zeros_like(pk))).long()
    d = torch.arange(-radius, radius + 1, device=hm.device)
    d0, d1 = (g.reshape(-1) for g in torch.meshgrid(d, d, indexing="ij"))
    j0, j1 = centre[:, :1] + d0, centre[:, 1:] + d1
    inside = (j0 >= 0) & (j0 < n0) & (j1 >= 0) & (j1 < n1)
    values = torch.gather(flat, 1, j0.clamp(0, n0 - 1) * n1 + j1.clamp(0, n1 - 1)).to(torch.float64)
    values = torch.sigmoid(values) if logits else values
    if background:
        ring = ((d0.abs() == radius) | (d1.abs() == radius))[None] & inside
        bg = (values * ring).sum(-1, keepdim=True) / ring.sum(-1, keepdim=True).clamp_min(1)
        values = values - bg
    w = values.clamp_min(0.0) * inside
    o0, o1 = j0 - pk[:, :1], j1 - pk[:, 1:]
    total = w.sum(-1)
    c00, c11, c01 = ((w * a * b).sum(-1) / total for a, b in ((o0, o0), (o1, o1), (o0, o1)))
    cov = torch.stack([torch.stack([c00, c01], -1), torch.stack([c01, c11], -1)], -2)
    cov = torch.where(((total > 0) & finite)[:, None, None], cov, torch.full_like(cov, math.nan))
    cov = cov.reshape(*lead, 2, 2)
    out, *_ = convert_to_dst_type(cov, heatmaps, dtype=torch.float32 if isinstance(heatmaps, torch.Tensor) else np.float64)
    return out


def covariance_radius(codec) -> int:
    """The default :func:`heatmap_covariance` window half-width for a codec: ``ceil(4 sigma / stride)`` heatmap
    pixels (about the support of the rendered target); a codec with sigma in mm needs an explicit radius."""
    if codec.sigma_unit != "pixel":
        raise ValueError("a codec with sigma in mm needs an explicit radius (heatmap pixels).")
    return max(1, math.ceil(4 * codec.sigma / codec.stride))


def covariance_to_source(cov, matrix, spacing=None):
    """Map ``(..., 2, 2)`` covariances through the linear part ``A`` of a 2-D affine (``3x3`` homogeneous or
    ``2x2``; e.g. :func:`~monai_ceph.transforms.model_to_source_affine`): ``A cov A^T``, then into mm with
    ``spacing`` ``(2,)`` (mm/pixel of the target grid): ``diag(s) A cov A^T diag(s)``. Returns the input's type."""
    c = torch.as_tensor(cov).as_subclass(torch.Tensor).detach().cpu().to(torch.float64)
    a = torch.as_tensor(matrix, dtype=torch.float64).cpu()[:2, :2]
    if spacing is not None:
        s = torch.as_tensor(spacing, dtype=torch.float64).cpu().reshape(2)
        a = s[:, None] * a
    out = a @ c @ a.T
    result, *_ = convert_to_dst_type(out, cov, dtype=getattr(cov, "dtype", torch.float64))
    return result


def covariance_sigma(cov):
    """``sqrt(trace / 2)`` of ``(..., 2, 2)`` covariances: the per-axis SD, ``(...)``, of the input's type."""
    c = torch.as_tensor(cov)
    out = torch.sqrt(torch.clamp(torch.diagonal(c, dim1=-2, dim2=-1).sum(-1) / 2, min=0))
    result, *_ = convert_to_dst_type(out, cov, dtype=getattr(cov, "dtype", torch.float64))
    return result


def mahalanobis_squared(errors, cov) -> np.ndarray:
    """``e^T S^-1 e`` for errors ``(..., 2)`` and covariances ``(..., 2, 2)`` (NaN where either is not finite)."""
    e = np.asarray(torch.as_tensor(errors).cpu(), dtype=np.float64)
    s = np.asarray(torch.as_tensor(cov).cpu(), dtype=np.float64)
    ok = np.isfinite(e).all(-1) & np.isfinite(s).all((-1, -2)) & (np.linalg.det(np.nan_to_num(s)) > 0)
    safe = np.where(ok[..., None, None], s, np.eye(2))
    m = (e * np.linalg.solve(safe, np.nan_to_num(e)[..., None])[..., 0]).sum(-1)
    return np.where(ok, m, np.nan)


def ellipse_coverage(errors, cov, q: float = 0.95) -> float:
    """Share of finite errors inside their predicted ``q`` ellipse."""
    m = mahalanobis_squared(errors, cov)
    m = m[np.isfinite(m)]
    return float((m <= chi2_2_quantile(q)).mean()) if m.size else math.nan


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks ``1..n`` of ``x``, ties given their mean rank."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(1, len(x) + 1)
    values, inverse = np.unique(x, return_inverse=True)
    sums = np.bincount(inverse, weights=ranks, minlength=len(values))
    return (sums / np.bincount(inverse, minlength=len(values)))[inverse]


def spearman_rho(a, b) -> float:
    """Spearman rank correlation of two equally shaped arrays over the entries finite in both (ties: mean
    ranks); NaN with fewer than 3 such entries or when either side is constant."""
    x = np.asarray(torch.as_tensor(a).cpu(), dtype=np.float64).reshape(-1)
    y = np.asarray(torch.as_tensor(b).cpu(), dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"spearman_rho needs two arrays of one size, got {x.size} and {y.size} entries.")
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3:
        return math.nan
    rx, ry = _ranks(x[ok]) - (ok.sum() + 1) / 2, _ranks(y[ok]) - (ok.sum() + 1) / 2
    denominator = math.sqrt(float((rx**2).sum() * (ry**2).sum()))
    return float((rx * ry).sum() / denominator) if denominator > 0 else math.nan


def confidence_factor(confidence, power: float) -> np.ndarray:
    """``max(1 - confidence, 1e-3) ** power``: how much a point's SD grows as its heatmap peak ``confidence``
    (the decoded peak probability, ``(..., K)``) falls. NaN where the confidence is not finite."""
    c = np.asarray(torch.as_tensor(confidence).cpu(), dtype=np.float64)
    return np.clip(1.0 - c, CONFIDENCE_FLOOR, 1.0) ** float(power)


class UncertaintyCalibration:
    """One scale factor per landmark for predicted covariances, fitted on validation errors, and optionally a
    power of each point's heatmap confidence.

    ``calibrated = scale_k^2 * f^2 * cov`` with ``f = confidence_factor(confidence, confidence_power)`` (1 when the
    power is 0), so ``sigma_mm`` scales by ``scale_k * f``. The shape of a heatmap's peak says little about how far
    off it is, its height says more: on ISBI the local stage's peak confidence ranks the errors (Spearman 0.44 on
    Test1) where the heatmap's second moments do not (0.13). :meth:`fit` chooses the power by maximum likelihood
    (0: no confidence term), then the scales:

    - ``method="mle"``: per landmark the maximum-likelihood scale of ``e ~ N(0, scale^2 f^2 S)``,
      ``scale^2 = mean(e^T S^-1 e / f^2) / 2`` (the calibrated sigma matches the observed RMS error in Mahalanobis
      units), shrunk towards the scale of all landmarks pooled with the weight of ``shrinkage`` points: a
      validation set of 20 images gives each landmark 20 errors, too few for a scale of its own;
    - ``method="quantile"``: those scales, times one common factor so that a share ``q`` of all validation errors
      lie inside their ``q`` ellipse.

    Args:
        scales: ``(K,)`` positive factors.
        landmark_set: name of the landmark set (``None``: unnamed).
        method, coverage: how the scales were fitted (recorded in the JSON).
        confidence_power: the power ``p`` of ``max(1 - confidence, 1e-3)`` (0: the confidence is not used).
    """

    def __init__(self, scales, landmark_set: str | None = None, method: str = "mle", coverage: float = 0.95,
                 confidence_power: float = 0.0) -> None:  # fmt: skip
        self.scales = np.asarray(scales, dtype=np.float64).reshape(-1)
        if not (np.isfinite(self.scales).all() and (self.scales > 0).all()):
            raise ValueError(f"calibration scales must be positive and finite, got {self.scales.tolist()}.")
        self.landmark_set = None if landmark_set is None else get_landmark_set(landmark_set).name
        if self.landmark_set is not None and len(get_landmark_set(self.landmark_set)) != len(self.scales):
            raise ValueError(f"{len(self.scales)} scales for the {len(get_landmark_set(self.landmark_set))} "
                             f"landmarks of the {self.landmark_set} set.")
        if method not in ("mle", "quantile"):
            raise ValueError(f"method must be 'mle' or 'quantile', got {method!r}.")
        self.method = method
        self.coverage = float(coverage)
        if not 0 < self.coverage < 1:
            raise ValueError(f"coverage must be in (0, 1), got {coverage!r}.")
        self.confidence_power = float(confidence_power)
        if not (math.isfinite(self.confidence_power) and self.confidence_power >= 0):
            raise ValueError(f"confidence_power must be finite and >= 0, got {confidence_power!r}.")

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(landmark_set={self.landmark_set!r}, method={self.method!r}, "
                f"confidence_power={self.confidence_power:g}, scales={self.scales.round(3).tolist()})")

    @property
    def uses_confidence(self) -> bool:
        """Whether :meth:`__call__` needs each point's confidence."""
        return self.confidence_power != 0

    @classmethod
    def fit(cls, errors, cov, method: str = "mle", coverage: float = 0.95, landmark_set: str | None = None,
            confidence=None, shrinkage: float = 40.0):  # fmt: skip
        """Fit on ``errors`` ``(N, K, 2)`` (prediction - truth, mm) and predicted ``cov`` ``(N, K, 2, 2)`` (mm^2),
        and with ``confidence`` ``(N, K)`` (the points' peak confidence) also the confidence power: the one of
        ``0, 0.05, ..., 2`` of the highest Gaussian likelihood, each landmark at its own maximum-likelihood scale.
        ``shrinkage``: the weight, in points, of the pooled scale in each landmark's (0: each landmark alone;
        ``inf``: one scale for all).

        Entries with a non-finite error, covariance or confidence are ignored; each landmark needs two or more.
        """
        if not shrinkage >= 0:
            raise ValueError(f"shrinkage must be >= 0 (a number of points, or inf), got {shrinkage!r}.")
        m = mahalanobis_squared(errors, cov)
        if m.ndim != 2:
            raise ValueError(f"errors must be (N, K, 2) and cov (N, K, 2, 2), got Mahalanobis values {m.shape}.")
        if method not in ("mle", "quantile"):
            raise ValueError(f"method must be 'mle' or 'quantile', got {method!r}.")
        power, log_u = 0.0, np.zeros_like(m)
        if confidence is not None:
            c = np.asarray(torch.as_tensor(confidence).cpu(), dtype=np.float64)
            if c.shape != m.shape:
                raise ValueError(f"confidence must be (N, K) = {m.shape}, got {c.shape}.")
            log_u = np.log(confidence_factor(c, 1.0))
            m = np.where(np.isfinite(log_u), m, np.nan)
        counts = np.isfinite(m).sum(0)
        if (counts < 2).any():
            raise ValueError(f"landmark(s) {np.flatnonzero(counts < 2).tolist()} have fewer than 2 validation errors "
                             "with a finite covariance.")
        if confidence is not None:
            ok = np.isfinite(m)

            def log_likelihood(p: float) -> float:  # up to a constant, at each landmark's MLE scale
                s2 = np.nanmean(m * np.exp(-2 * p * log_u), axis=0) / 2
                return float(-(counts * np.log(np.maximum(s2, 1e-300))).sum() - 2 * p * log_u[ok].sum())

            power = float(max(CONFIDENCE_POWERS, key=log_likelihood))
        m = m * np.exp(-2 * power * log_u)
        own, pooled = np.nanmean(m, axis=0) / 2, np.nanmean(m) / 2
        weight = 1.0 if math.isinf(shrinkage) else shrinkage / (counts + shrinkage)
        squared = np.maximum((1 - weight) * own + weight * pooled, 1e-12)
        if method == "quantile":
            squared = squared * np.nanquantile(m / squared, coverage) / chi2_2_quantile(coverage)
        return cls(np.sqrt(np.maximum(squared, 1e-12)), landmark_set, method, coverage, power)

    def __call__(self, cov, confidence=None):
        """Calibrated ``(..., K, 2, 2)`` covariances, of the input's type; ``confidence`` ``(..., K)`` is needed
        when the calibration has a confidence power (:attr:`uses_confidence`)."""
        c = torch.as_tensor(cov)
        if c.shape[-3:] != (len(self.scales), 2, 2):
            raise ValueError(f"covariances must be (..., {len(self.scales)}, 2, 2), got {tuple(c.shape)}.")
        dtype = c.dtype if c.is_floating_point() else torch.float64
        s2 = torch.as_tensor(self.scales**2, dtype=dtype, device=c.device)
        if self.uses_confidence:
            if confidence is None:
                raise ValueError(f"this uncertainty calibration scales each covariance by the point's confidence "
                                 f"(power {self.confidence_power:g}); pass the confidence too.")
            f = confidence_factor(confidence, 2 * self.confidence_power)
            if f.shape != tuple(c.shape[:-2]):
                raise ValueError(f"confidence must be {tuple(c.shape[:-2])} for covariances {tuple(c.shape)}, "
                                 f"got {f.shape}.")
            s2 = s2 * torch.as_tensor(f, dtype=dtype, device=c.device)
        out = c * s2[..., None, None]
        result, *_ = convert_to_dst_type(out, cov)
        return result

    def save(self, path: str | os.PathLike) -> Path:
        """Write as JSON (next to the model, e.g. ``models/uncertainty_calibration.json``)."""
        return write_json(path, CALIBRATION_FORMAT, {
            "landmark_set": self.landmark_set,
            "method": self.method,
            "coverage": self.coverage,
            "confidence_power": self.confidence_power,
            "scales": self.scales.tolist(),
        })

    @classmethod
    def load(cls, path: str | os.PathLike) -> UncertaintyCalibration:
        """Read a file written by :meth:`save`; a wrong or damaged file is a ``ValueError`` naming it."""
        path = Path(path)
        content = read_json(path, CALIBRATION_FORMAT, "an uncertainty calibration")
        try:
            calibration = cls(content["scales"], content.get("landmark_set"), content.get("method", "mle"),
                              content.get("coverage", 0.95), content.get("confidence_power", 0.0))
        except (KeyError, ValueError, TypeError) as e:
            raise ValueError(f"{path}: bad calibration entry: {e}") from e
        low, high = PLAUSIBLE_CALIBRATION_SCALES
        absurd = [(i, s) for i, s in enumerate(calibration.scales.tolist()) if not low <= s <= high]
        if absurd:
            raise ValueError(f"{path}: calibration scales outside [{low:g}, {high:g}] (landmark index, scale): {absurd}.")
        return calibration
