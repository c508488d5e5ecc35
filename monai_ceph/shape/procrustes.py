"""Similarity (Procrustes) alignment of 2-D point sets, with NaN for missing points.

A 2-D similarity is one complex multiplication: a point ``z = x + iy`` maps to ``a z + b`` (``|a|`` the scale,
``arg a`` the rotation, ``b`` the translation), or to ``a conj(z) + b`` when the set is mirrored. Rotations never
reflect; a mirrored set (a left-facing profile against a right-facing model) is handled only by the explicit
mirror check of :func:`similarity_fit` (``mirror=None``), which fits both and keeps the one with the smaller
residual, so a mirror is never introduced silently.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Similarity", "similarity_fit", "centroid_size"]


@dataclass(frozen=True)
class Similarity:
    """``z -> a * z + b`` (``mirror``: ``a * conj(z) + b``) on points ``(..., 2)`` read as ``x + iy``."""

    a: complex = 1.0 + 0.0j
    b: complex = 0.0j
    mirror: bool = False

    @property
    def scale(self) -> float:
        return float(abs(self.a))

    @property
    def matrix(self) -> np.ndarray:
        """The linear part as a real ``(2, 2)`` matrix (acting on column vectors ``(x, y)``)."""
        rot = np.array([[self.a.real, -self.a.imag], [self.a.imag, self.a.real]])
        return rot @ np.diag([1.0, -1.0]) if self.mirror else rot

    def __call__(self, points: np.ndarray) -> np.ndarray:
        z = _complex(points)
        return _real(self.a * (np.conj(z) if self.mirror else z) + self.b)

    def inverse(self, points: np.ndarray) -> np.ndarray:
        z = (_complex(points) - self.b) / self.a
        return _real(np.conj(z) if self.mirror else z)

    def covariance(self, cov: np.ndarray) -> np.ndarray:
        """Map ``(..., 2, 2)`` covariances through the linear part: ``L cov L^T``."""
        m = self.matrix
        return m @ cov @ m.T

    def inverse_covariance(self, cov: np.ndarray) -> np.ndarray:
        m = np.linalg.inv(self.matrix)
        return m @ cov @ m.T


def _complex(points: np.ndarray) -> np.ndarray:
    p = np.asarray(points, dtype=np.float64)
    return p[..., 0] + 1j * p[..., 1]


def _real(z: np.ndarray) -> np.ndarray:
    return np.stack([z.real, z.imag], axis=-1)


def centroid_size(points: np.ndarray) -> float:
    """Root of the summed squared distances of the present points to their centroid (mm for points in mm)."""
    p = np.asarray(points, dtype=np.float64)
    p = p[np.isfinite(p).all(-1)]
    return float(np.sqrt(((p - p.mean(0)) ** 2).sum())) if len(p) else 0.0


def _fit(source: np.ndarray, target: np.ndarray, weights: np.ndarray, mirror: bool) -> tuple[Similarity, float]:
    zs, zt = _complex(source), _complex(target)
    zs = np.conj(zs) if mirror else zs
    w = weights / weights.sum()
    ms, mt = (w * zs).sum(), (w * zt).sum()
    cs, ct = zs - ms, zt - mt
    denom = (w * np.abs(cs) ** 2).sum()
    a = (w * np.conj(cs) * ct).sum() / denom if denom > 0 else 1.0 + 0.0j
    if abs(a) == 0:  # degenerate target: keep the pose, not a collapse to one point
        a = 1.0 + 0.0j
    b = mt - a * ms
    residual = float((w * np.abs(a * zs + b - zt) ** 2).sum())
    return Similarity(complex(a), complex(b), mirror), residual


def similarity_fit(
    source: np.ndarray, target: np.ndarray, weights: np.ndarray | None = None, mirror: bool | None = False
) -> Similarity:
    """The similarity ``T`` minimising ``sum_i w_i |T(source_i) - target_i|^2`` over points present in both.

    Args:
        source: ``(K, 2)`` points, NaN rows ignored.
        target: ``(K, 2)`` points, NaN rows ignored.
        weights: ``(K,)`` non-negative weights (default 1).
        mirror: ``False`` a rotation only, ``True`` mirror ``source`` first, ``None`` the explicit mirror check:
            fit both and keep whichever fits better (needs 3 or more points: two points fit both exactly, so with
            two the set is taken as not mirrored).

    Raises:
        ValueError: fewer than two points with positive weight are present in both sets.
    """
    source = np.asarray(source, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    w = np.ones(len(source)) if weights is None else np.asarray(weights, dtype=np.float64).copy()
    ok = np.isfinite(source).all(-1) & np.isfinite(target).all(-1) & np.isfinite(w) & (w > 0)
    if ok.sum() < 2:
        raise ValueError(f"a similarity needs two or more points present in both sets, got {int(ok.sum())}.")
    fit, residual = _fit(source[ok], target[ok], w[ok], mirror=bool(mirror))
    if mirror is None and ok.sum() >= 3:
        mirrored, mirrored_residual = _fit(source[ok], target[ok], w[ok], mirror=True)
        if mirrored_residual < residual:
            return mirrored
    return fit
