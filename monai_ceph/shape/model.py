"""Point distribution model of landmark shapes: plausibility, MAP refinement and re-fit given fixed landmarks.

The model is a Gaussian over similarity-aligned shapes (generalised Procrustes analysis, then PCA): a shape
``x`` (``K`` points flattened to ``2K`` as ``x0, y0, x1, y1, ...``) in the model frame is ``N(mean, C)`` with

    ``C = P^T diag(variances) P + residual_variance * I + pose_variance * T T^T``

(probabilistic PCA: the retained modes plus isotropic noise, so ``C`` is full rank and any subset of points can be
conditioned on the others). ``T`` is the orthonormal basis of the 4 directions a small similarity moves the mean
(two translations, scale, rotation): with a large ``pose_variance`` the conditioning treats any residual pose
error as unknown instead of as shape, so a point predicted from a subset of the others, placed by a pose fitted on
that subset, gets the right covariance (without it the alignment constraints of the training shapes would make
the prediction look far more certain than it is). Everything here is in mm: the training shapes are in mm, the model frame keeps their
mean size, so a variance is in mm^2 and an evidence SD given in image mm is mapped into the frame by the pose's
scale.

Pose: a shape given in image mm is placed in the model frame by the similarity that aligns its points to the
mean (rotation, scale, translation; a mirrored profile by the explicit mirror check of
:func:`~monai_ceph.shape.procrustes.similarity_fit`, decided from all its present points). When some points are
unknown, the pose is re-estimated on the completed shape (the known points and the current estimate of the
others), as the training shapes were aligned, a few times until it settles. The pose's own uncertainty is not
propagated into the returned covariances.

Robust re-fit (:meth:`ShapeModel.refit`, and :meth:`ShapeModel.posterior` with ``nu``): Student-t weights on the
evidence (a network's errors are heavy-tailed) and on the fixed points' shape residuals (an annotator's point may
follow another convention than the training shapes), by iteratively reweighted least squares; the pose and the
first estimate come from the fixed points when two or more are fixed, and the pose is then re-estimated with the
weights.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from monai_ceph.data.landmark_sets import get_landmark_set

from .procrustes import Similarity, centroid_size, similarity_fit
from .utils import read_json, write_json

__all__ = ["ShapeModel", "ShapePlausibility", "CHI2_2_99", "REFIT_NU", "VARIANCE_KEPT"]

FORMAT = "monai_ceph.shape_model/1"
CHI2_2_99 = -2.0 * math.log(0.01)  # 99 % quantile of chi^2 with 2 degrees of freedom (9.21)
# degrees of freedom of the re-fit's Student-t weights, chosen on the ISBI validation section and Test1 (of 0.5, 1,
# 2 and 4, on two models: bundles/cephres/docs/shape_uncertainty.md)
REFIT_NU = 1.0
# share of the training shapes' variance kept in the modes, chosen as REFIT_NU (of 0.98, 0.99, 0.995 and 0.999):
# bundles/cephres/docs/shape_uncertainty.md
VARIANCE_KEPT = 0.995
MIRROR_FROM_FIXED = 4  # the robust fit takes a mirrored profile from this many fixed points (3 fit either way)
ROBUST_ITERATIONS = 20  # at most this many reweightings
ROBUST_TOLERANCE = 1e-3  # the weights have settled when none changes by more than this


@dataclass(frozen=True)
class ShapePlausibility:
    """Plausibility of one shape under a :class:`ShapeModel`.

    Attributes:
        distance: Mahalanobis distance of the aligned shape (its present points) from the mean.
        dof: degrees of freedom of ``distance ** 2`` (``2 n - 4`` for ``n`` present points).
        landmark_distance: ``(K,)`` Mahalanobis distance of each point from where the other points put it
            (``distance ** 2`` ~ chi^2 with 2 dof for a plausible shape; NaN for missing points).
        expected: ``(K, 2)`` where the other points put each point, in the input's mm.
        mirrored: the shape was aligned mirrored (a left-facing profile).
    """

    distance: float
    dof: int
    landmark_distance: np.ndarray
    expected: np.ndarray
    mirrored: bool

    def outliers(self, threshold: float = math.sqrt(CHI2_2_99)) -> np.ndarray:
        """``(K,)`` bool: points farther than ``threshold`` (default: the chi^2 99 % radius) from the others' say."""
        return np.nan_to_num(self.landmark_distance, nan=0.0) > threshold


def _as_numpy(x, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be numeric, got {type(x).__name__}: {e}") from None


def _like(result: np.ndarray, ref):
    """``result`` as the type of ``ref`` (torch tensor on its device and float dtype, else numpy float64)."""
    if isinstance(ref, torch.Tensor):
        dtype = ref.dtype if ref.is_floating_point() else torch.float32
        return torch.as_tensor(result, dtype=dtype, device=ref.device)
    return result


def _blocks(indices) -> np.ndarray:
    """Landmark indices -> flattened coordinate indices (``2i, 2i + 1``)."""
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    return np.stack([2 * idx, 2 * idx + 1], axis=-1).reshape(-1)


def _block_diag(cov: np.ndarray) -> np.ndarray:
    """``(n, 2, 2)`` -> ``(2n, 2n)`` block diagonal."""
    n = len(cov)
    out = np.zeros((2 * n, 2 * n))
    for i in range(n):
        out[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = cov[i]
    return out


def _loo(residual: np.ndarray, precision: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Leave-one-point-out prediction from a joint Gaussian: per point, the Mahalanobis distance of its
    observation from its conditional given the other points, and the offset ``observed - predicted``.

    With ``Q`` the precision of the observed points and ``u = (Q r)_i`` (2-block ``i``), the conditional of point
    ``i`` given the rest has covariance ``Q_ii^-1`` and ``observed - predicted = Q_ii^-1 u``, so
    ``d_i^2 = u^T Q_ii^-1 u``.
    """
    offset, _ = _loo_conditionals(residual, precision)
    u = (precision @ residual).reshape(-1, 2)
    distance = np.sqrt(np.maximum((u * offset).sum(-1), 0.0))
    return distance, offset


def _loo_conditionals(residual: np.ndarray, precision: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_loo`'s per-point offsets ``observed - predicted`` ``(n, 2)`` and conditional covariances
    ``Q_ii^-1`` ``(n, 2, 2)``."""
    n = len(residual) // 2
    u = (precision @ residual).reshape(n, 2)
    qii = np.stack([precision[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] for i in range(n)])
    return np.linalg.solve(qii, u[..., None])[..., 0], np.linalg.inv(qii)


def _check_nu(nu) -> float | None:
    if nu is None:
        return None
    if isinstance(nu, bool) or not isinstance(nu, (int, float, np.floating, np.integer)) or not (
        math.isfinite(nu) and nu > 0
    ):
        raise ValueError(f"nu (the robust weights' degrees of freedom) must be a positive number or None, got {nu!r}.")
    return float(nu)


class _RobustWeights:
    """The Student-t weights of :meth:`ShapeModel.refit`: ``w`` divides each evidence covariance (updated from the
    estimate, iteratively reweighted least squares), ``v`` each fixed point's shape residual variance (fixed)."""

    def __init__(self, evidence: np.ndarray, nu: float, fixed_weights: np.ndarray) -> None:
        self.nu, self.evidence = nu, evidence
        self.w = np.ones(len(evidence))
        self.v = fixed_weights

    def covariance(self, cov: np.ndarray) -> np.ndarray:
        return cov / self.w[:, None, None]

    def residual(self, variance: float) -> np.ndarray:
        return variance * (1.0 / self.v - 1.0)

    def update(self, y: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> bool:
        """New evidence weights from the evidence ``y`` ``(K, 2)``, its covariances ``cov`` and the estimate
        ``mean`` (all in the model frame); ``True`` when they have settled."""
        nu, e = self.nu, self.evidence
        w = np.ones_like(self.w)
        if e.any():
            r = y[e] - mean[e]
            w[e] = (nu + 2.0) / (nu + np.einsum("ki,ki->k", r, np.linalg.solve(cov[e], r[..., None])[..., 0]))
        settled = np.abs(w - self.w).max() < ROBUST_TOLERANCE
        self.w = w
        return settled


class ShapeModel:
    """Procrustes-aligned point distribution model (PCA) of ``K`` 2-D landmarks in mm.

    Build with :meth:`fit`, keep with :meth:`save` / :meth:`load` (JSON). Use:

    - :meth:`plausibility`: how likely a shape is, as a whole and point by point;
    - :meth:`refit`: re-estimate the other points given the ones an annotator fixed (they never move), fused with
      the others' evidence;
    - :meth:`refine`: MAP estimate of every point from per-point Gaussian evidence and the shape prior, dropping
      (and flagging) evidence that the other points contradict;
    - :meth:`posterior`: the general conditioning behind both (Gaussian, or robust with ``nu``), with covariances.

    Args:
        mean: ``(K, 2)`` mean shape in the model frame (mm).
        components: ``(M, 2K)`` orthonormal modes.
        variances: ``(M,)`` mode variances (mm^2).
        residual_variance: isotropic variance (mm^2) of what the modes leave out.
        landmark_set: name of the landmark set the shapes came from (``None``: unnamed).
        num_shapes: how many training shapes built it.
        pose_variance: variance (mm^2) given to the 4 similarity directions at the mean (see the module doc).
    """

    def __init__(
        self,
        mean,
        components,
        variances,
        residual_variance: float,
        landmark_set: str | None = None,
        num_shapes: int = 0,
        pose_variance: float = 1e4,
    ) -> None:
        self.mean = _as_numpy(mean, "mean")
        if self.mean.ndim != 2 or self.mean.shape[1] != 2 or not np.isfinite(self.mean).all():
            raise ValueError(f"mean must be a finite (K, 2) array, got shape {self.mean.shape}.")
        k2 = self.mean.size
        self.components = _as_numpy(components, "components")
        if self.components.size == 0:  # no modes (also as JSON's [])
            self.components = self.components.reshape(0, k2)
        if self.components.ndim != 2 or self.components.shape[1] != k2:
            raise ValueError(f"components must have shape (M, 2K = {k2}), got {self.components.shape}.")
        if not np.isfinite(self.components).all():
            raise ValueError("components must be finite, got NaN or infinite values.")
        self.variances = _as_numpy(variances, "variances").reshape(-1)
        if len(self.variances) != len(self.components) or not (self.variances >= 0).all():
            raise ValueError(
                f"{len(self.components)} components need as many finite, non-negative variances, got "
                f"{self.variances.tolist()}."
            )
        if not np.isfinite(self.variances).all():
            raise ValueError(f"variances must be finite, got {self.variances.tolist()}.")
        if not (math.isfinite(residual_variance) and residual_variance > 0):
            raise ValueError(f"residual_variance must be positive, got {residual_variance!r}.")
        self.residual_variance = float(residual_variance)
        self.landmark_set = None if landmark_set is None else get_landmark_set(landmark_set).name
        if self.landmark_set is not None and len(get_landmark_set(self.landmark_set)) != self.num_landmarks:
            raise ValueError(
                f"the {self.landmark_set} landmark set has {len(get_landmark_set(self.landmark_set))} landmarks, "
                f"the shape model {self.num_landmarks}."
            )
        self.num_shapes = int(num_shapes)
        if not (math.isfinite(pose_variance) and pose_variance >= 0):
            raise ValueError(f"pose_variance must be >= 0, got {pose_variance!r}.")
        self.pose_variance = float(pose_variance)
        centred = self.mean - self.mean.mean(0)
        tangent = np.stack([np.tile([1.0, 0.0], len(centred)), np.tile([0.0, 1.0], len(centred)), centred.reshape(-1),
                            (centred[:, ::-1] * [-1.0, 1.0]).reshape(-1)], axis=1)
        q = np.linalg.qr(tangent)[0]
        self.covariance = (
            (self.components.T * self.variances) @ self.components
            + self.residual_variance * np.eye(k2)
            + self.pose_variance * q @ q.T
        )

    @property
    def num_landmarks(self) -> int:
        return len(self.mean)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(landmark_set={self.landmark_set!r}, num_landmarks={self.num_landmarks}, "
            f"modes={len(self.variances)}, num_shapes={self.num_shapes})"
        )

    # -- building -------------------------------------------------------------------------------------------------

    @classmethod
    def fit(
        cls,
        shapes,
        landmark_set: str | None = None,
        variance_kept: float = VARIANCE_KEPT,
        max_modes: int | None = None,
        min_residual_sd: float = 1.0,
        max_iterations: int = 100,
        tolerance: float = 1e-7,
    ) -> ShapeModel:
        """Build the model from training shapes.

        Args:
            shapes: ``(N, K, 2)`` landmarks in mm (``mm = source pixels * spacing``), NaN for missing points.
            landmark_set: name of their landmark set (checked against ``K``).
            variance_kept: share of the aligned shapes' variance the retained modes explain (default
                :data:`VARIANCE_KEPT`).
            max_modes: at most this many modes.
            min_residual_sd: floor (mm) of the residual SD, so that no direction is trusted beyond it (about the
                annotators' own scatter; on ISBI 2015 1 mm makes the per-point residuals of unseen Test1 shapes
                follow chi^2(2): mean d^2 1.8, 1.1 % beyond the 99 % radius).
            max_iterations, tolerance: generalised Procrustes stopping rule (mean change relative to its size).

        Raises:
            ValueError: wrong shape, fewer than ``2 K`` shapes with three or more points, or a landmark that is
                missing in every shape.
        """
        x = _as_numpy(shapes, "shapes")
        if x.ndim != 3 or x.shape[2] != 2 or x.shape[1] < 3:
            raise ValueError(f"shapes must be (N, K, 2) with K >= 3 landmarks, got shape {x.shape}.")
        n, k = x.shape[:2]
        x = np.where(np.isfinite(x).all(-1, keepdims=True), x, np.nan)
        usable = np.isfinite(x[..., 0]).sum(-1) >= 3
        if usable.sum() < 2 * k:
            raise ValueError(
                f"a shape model of {k} landmarks needs at least 2*K = {2 * k} training shapes with 3 or more points "
                f"each; got {int(usable.sum())} (of {n} given)."
            )
        x = x[usable]
        never = np.flatnonzero(~np.isfinite(x[..., 0]).any(0))
        if len(never):
            raise ValueError(f"landmark(s) {never.tolist()} are missing in every training shape.")
        mu, cov = _aligned_gaussian(x, max_iterations, tolerance)
        values, vectors = np.linalg.eigh(cov)
        values, vectors = np.clip(values[::-1], 0.0, None), vectors[:, ::-1]
        kept = np.cumsum(values) / values.sum()
        modes = int(np.searchsorted(kept, variance_kept - 1e-12) + 1)
        modes = min(modes, max_modes or modes, 2 * k - 1)
        residual = max(float(values[modes:].mean()), min_residual_sd**2)
        return cls(mu.reshape(k, 2), vectors[:, :modes].T, values[:modes], residual, landmark_set, len(x))

    # -- persistence ----------------------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> Path:
        """Write the model as a small JSON file (no pickle)."""
        return write_json(path, FORMAT, {
            "landmark_set": self.landmark_set,
            "num_landmarks": self.num_landmarks,
            "num_shapes": self.num_shapes,
            "mean": self.mean.tolist(),
            "components": self.components.tolist(),
            "variances": self.variances.tolist(),
            "residual_variance": self.residual_variance,
            "pose_variance": self.pose_variance,
        })

    @classmethod
    def load(cls, path: str | os.PathLike) -> ShapeModel:
        """Read a model written by :meth:`save`; a wrong or damaged file is a ``ValueError`` naming it."""
        path = Path(path)
        content = read_json(path, FORMAT, "a shape model")
        try:
            model = cls(
                content["mean"],
                content["components"],
                content["variances"],
                content["residual_variance"],
                content.get("landmark_set"),
                content.get("num_shapes", 0),
                content.get("pose_variance", 1e4),
            )
        except (KeyError, ValueError, TypeError) as e:
            raise ValueError(f"{path}: bad shape model entry: {e}") from e
        if model.num_landmarks != content.get("num_landmarks"):
            raise ValueError(f"{path}: num_landmarks {content.get('num_landmarks')} but a mean of {model.num_landmarks}.")
        if not (model.variances > 0).all():  # fit keeps only modes that carry variance: a zero one is damage
            raise ValueError(f"{path}: mode variances must be > 0, got {model.variances.tolist()}.")
        gram = model.components @ model.components.T
        if not np.allclose(gram, np.eye(len(gram)), atol=1e-6):
            raise ValueError(f"{path}: the components are not orthonormal (largest error "
                             f"{float(np.abs(gram - np.eye(len(gram))).max()):.3g}).")
        return model

    def check_landmark_set(self, name) -> None:
        """Raise ``ValueError`` naming both sets unless ``name`` is the set this model was built from."""
        other = get_landmark_set(name)
        if self.landmark_set is None:
            if len(other) != self.num_landmarks:
                raise ValueError(
                    f"the shape model has {self.num_landmarks} landmarks, the {other.name} set {len(other)}."
                )
        elif other.name != self.landmark_set:
            raise ValueError(
                f"the shape model was built from the {self.landmark_set!r} landmark set, not {other.name!r}: build one "
                f"from {other.name!r} training shapes (python -m monai_ceph.shape)."
            )

    # -- inputs ---------------------------------------------------------------------------------------------------

    def _points(self, landmarks, name: str = "landmarks") -> np.ndarray:
        p = _as_numpy(landmarks, name)
        if p.shape != (self.num_landmarks, 2):
            raise ValueError(f"{name} must have shape ({self.num_landmarks}, 2) (mm), got {p.shape}.")
        return np.where(np.isfinite(p).all(-1, keepdims=True), p, np.nan)

    def _indices(self, fixed, landmarks: np.ndarray) -> np.ndarray:
        """``fixed`` (indices or landmark names) as sorted unique indices; each must be a present point."""
        if fixed is None:
            return np.zeros(0, dtype=np.int64)
        if isinstance(fixed, torch.Tensor):
            fixed = fixed.tolist()
        entries = [fixed] if isinstance(fixed, (int, str, np.integer)) else list(fixed)
        out = []
        for entry in entries:
            if isinstance(entry, str):
                if self.landmark_set is None:
                    raise ValueError(f"fixed landmark {entry!r}: this shape model has no landmark set to name points.")
                try:
                    out.append(get_landmark_set(self.landmark_set).index(entry))
                except KeyError as e:
                    raise ValueError(f"fixed landmark {entry!r}: {e.args[0]}") from None
                continue
            if isinstance(entry, bool) or not isinstance(entry, (int, np.integer)):
                raise ValueError(f"fixed entry {entry!r} is not a landmark index or name.")
            if not 0 <= int(entry) < self.num_landmarks:
                raise ValueError(f"fixed landmark index {int(entry)} is out of range 0..{self.num_landmarks - 1}.")
            out.append(int(entry))
        idx = np.unique(np.asarray(out, dtype=np.int64))
        bad = [int(i) for i in idx if not np.isfinite(landmarks[i]).all()]
        if bad:
            raise ValueError(f"fixed landmark(s) {self._names(bad)} have no (finite) position.")
        return idx

    def _names(self, indices) -> str:
        if self.landmark_set is None:
            return ", ".join(str(int(i)) for i in indices)
        abbreviations = get_landmark_set(self.landmark_set).abbreviations
        return ", ".join(f"{int(i)} ({abbreviations[int(i)]})" for i in indices)

    def _evidence_covariance(self, cov_or_sigma, name: str) -> np.ndarray:
        """``(K,)`` SDs or ``(K, 2, 2)`` covariances (mm) -> ``(K, 2, 2)``; non-finite = no evidence (inf)."""
        k = self.num_landmarks
        if cov_or_sigma is None:
            return np.full((k, 2, 2), np.inf)
        c = _as_numpy(cov_or_sigma, name)
        if c.shape == (k,):
            sd = c
            if (np.isfinite(sd) & (sd <= 0)).any():
                raise ValueError(f"{name}: entries {self._names(np.flatnonzero(np.isfinite(sd) & (sd <= 0)))} are not "
                                 "positive SDs (use NaN or inf for no evidence).")
            c = np.zeros((k, 2, 2))
            c[:, 0, 0] = c[:, 1, 1] = sd**2
            c[~np.isfinite(sd)] = np.inf
        elif c.shape != (k, 2, 2):
            raise ValueError(f"{name} must be SDs of shape ({k},) or covariances ({k}, 2, 2) in mm, got {c.shape}.")
        bad = np.isfinite(c).all((-1, -2)) & ((c[:, 0, 0] <= 0) | (np.linalg.det(np.where(np.isfinite(c), c, 0)) <= 0))
        if bad.any():
            raise ValueError(f"{name}: entries {self._names(np.flatnonzero(bad))} are not positive definite.")
        c = c.copy()
        c[~np.isfinite(c).all((-1, -2))] = np.inf
        return c

    # -- pose -----------------------------------------------------------------------------------------------------

    def _pose(self, points: np.ndarray, pose: np.ndarray, weights: np.ndarray, mirror: bool | None) -> Similarity:
        w = np.zeros(self.num_landmarks)
        w[pose] = weights[pose]
        return similarity_fit(points, self.mean, w, mirror=mirror)

    def _mirror(self, points: np.ndarray) -> bool:
        present = np.isfinite(points).all(-1)
        if present.sum() < 3:
            return False
        return similarity_fit(points, self.mean, mirror=None).mirror

    # -- scores ---------------------------------------------------------------------------------------------------

    def plausibility(self, landmarks) -> ShapePlausibility:
        """Score a shape ``(K, 2)`` in mm (NaN missing; 3 or more points present).

        The shape is aligned to the mean with all its present points; ``distance`` is the Mahalanobis distance
        of the aligned points, and ``landmark_distance[i]`` that of point ``i`` from its conditional given the
        other present points (the point's residual; the model's pose term lets the others' pose absorb the
        point's pull on the alignment).
        """
        p = self._points(landmarks)
        present = np.flatnonzero(np.isfinite(p).all(-1))
        if len(present) < 3:
            raise ValueError(f"plausibility needs 3 or more present landmarks, got {len(present)}.")
        pose = similarity_fit(p, self.mean, mirror=None)
        o = _blocks(present)
        mu = self.mean.reshape(-1)[o]
        residual = pose(p).reshape(-1)[o] - mu
        precision = np.linalg.inv(self.covariance[np.ix_(o, o)])
        distance = float(np.sqrt(max(residual @ precision @ residual, 0.0)))
        loo, offset = _loo(residual, precision)
        landmark_distance = np.full(self.num_landmarks, np.nan)
        landmark_distance[present] = loo
        expected = np.full((self.num_landmarks, 2), np.nan)
        expected[present] = pose.inverse(pose(p[present]) - offset)
        return ShapePlausibility(distance, 2 * len(present) - 4, landmark_distance, expected, pose.mirror)

    # -- conditioning ---------------------------------------------------------------------------------------------

    def posterior(self, landmarks, fixed=None, cov_or_sigma=None, align: bool = True, iterations: int = 5,
                  nu: float | None = None):
        """The shape given fixed points and per-point evidence: mean ``(K, 2)`` and covariance ``(K, 2, 2)``, both
        in the input's mm (the covariance of a fixed point is zero).

        With ``nu=None`` the evidence is Gaussian and the result is the closed-form conditional of the Gaussian
        shape model. With ``nu`` (:data:`REFIT_NU` for the interactive re-fit) the fit is robust: Student-t
        weights with ``nu`` degrees of freedom, by iteratively reweighted least squares (see :meth:`refit`).

        Args:
            landmarks: ``(K, 2)`` mm, NaN missing: the fixed points' positions and the others' evidence.
            fixed: indices or names of points that are known exactly (they do not move).
            cov_or_sigma: evidence SDs ``(K,)`` or covariances ``(K, 2, 2)`` in mm for the other points (NaN/inf:
                no evidence, the point comes from the shape alone); ``None``: no evidence.
            align: place the shape in the model frame by a similarity (``False``: ``landmarks`` already are in
                the model frame).
            iterations: pose re-estimations on the completed shape (the robust fit re-estimates the pose with its
                weights, up to :data:`ROBUST_ITERATIONS` times).
            nu: degrees of freedom of the robust weights (``> 0``); ``None``: Gaussian.

        Raises:
            ValueError: bad shapes, unknown or out-of-range fixed entries, a fixed point without a position, a
                ``nu`` that is not positive, or fewer than two fixed-or-evidence points to place the shape.
        """
        p = self._points(landmarks)
        fixed_idx = self._indices(fixed, p)
        cov = self._evidence_covariance(cov_or_sigma, "cov_or_sigma")
        return self._posterior(p, fixed_idx, cov, align, iterations, _check_nu(nu))

    def _posterior(self, p, fixed_idx, cov, align: bool, iterations: int, nu: float | None = None):
        k = self.num_landmarks
        is_fixed = np.zeros(k, dtype=bool)
        is_fixed[fixed_idx] = True
        evidence = ~is_fixed & np.isfinite(p).all(-1) & np.isfinite(cov).all((-1, -2))
        observed = np.flatnonzero(is_fixed | evidence)
        if align and len(observed) < 2:
            raise ValueError("two or more fixed or evidence landmarks are needed to place the shape.")
        if nu is not None:
            return self._robust_posterior(p, fixed_idx, is_fixed, evidence, cov, align, iterations, nu)
        pose = Similarity()
        if align:
            # first pose: the fixed points where they define one, else every observed point, weighted by 1 / var
            var = np.where(evidence, np.trace(np.where(np.isfinite(cov), cov, 0), axis1=1, axis2=2) / 2, np.inf)
            weights = np.where(is_fixed, 1.0 / self.residual_variance, 1.0 / (var + self.residual_variance))
            first = fixed_idx if len(fixed_idx) >= 2 else observed
            pose = self._pose(p, first, weights, self._mirror(p))
        mean, post = self._condition(p, observed, is_fixed, cov, pose)
        known = is_fixed | evidence
        for _ in range(iterations if align and len(observed) < k else 0):
            completed = np.where(known[:, None], p, pose.inverse(mean))
            pose = similarity_fit(completed, self.mean, mirror=pose.mirror)
            mean, post = self._condition(p, observed, is_fixed, cov, pose)
        return self._in_image(p, fixed_idx, mean, post, pose)

    def _robust_posterior(self, p, fixed_idx, is_fixed, evidence, cov, align: bool, iterations: int, nu: float):
        """:meth:`_posterior` with the Student-t weights of :meth:`refit`, by iteratively reweighted least squares.

        With two or more fixed points the first pose and the first estimate come from the fixed points alone, so
        that the first weights measure the evidence against what the annotator fixed (a least-squares pose of all
        points would follow evidence that is far off). Then, each round: the evidence weights from the estimate;
        the pose from the completed shape, each point weighted by its certainty (a fixed point ``1 / r``, evidence
        ``1 / (var / w + r)``, a point without evidence ``1 / (posterior var + r)``); the estimate; until the
        weights settle.
        """
        k = self.num_landmarks
        observed = np.flatnonzero(is_fixed | evidence)
        r = self.residual_variance
        var = np.where(evidence, np.trace(np.where(evidence[:, None, None], cov, 0.0), axis1=1, axis2=2) / 2, 0.0)
        start = fixed_idx if len(fixed_idx) >= 2 else observed
        pose, fixed_pose = Similarity(), Similarity()
        if align:
            given = np.full_like(p, np.nan)
            given[fixed_idx] = p[fixed_idx]
            mirror = self._mirror(given if len(fixed_idx) >= MIRROR_FROM_FIXED else p)
            weights = 1.0 / (np.where(is_fixed, 0.0, var * self._pose(p, start, np.ones(k), mirror).scale ** 2) + r)
            pose = self._pose(p, start, weights, mirror)
            if len(fixed_idx) >= 2:
                fixed_pose = self._pose(p, fixed_idx, np.ones(k), mirror)
        robust = _RobustWeights(evidence, nu, self._fixed_weights(fixed_pose(p), fixed_idx, nu))
        mean, post = self._condition(p, start, is_fixed, cov, pose, robust.residual(r))
        for step in range(max(iterations, ROBUST_ITERATIONS)):
            settled = robust.update(pose(p), mean, pose.covariance(np.where(evidence[:, None, None], cov, 0.0)))
            if align:
                completed = np.where((is_fixed | evidence)[:, None], p, pose.inverse(mean))
                spread = np.where(evidence, var * pose.scale**2 / robust.w, np.trace(post, axis1=1, axis2=2) / 2)
                pose = similarity_fit(completed, self.mean, 1.0 / (np.where(is_fixed, 0.0, spread) + r),
                                      mirror=pose.mirror)
            mean, post = self._condition(p, observed, is_fixed, robust.covariance(cov), pose, robust.residual(r))
            if settled and step + 1 >= iterations:
                break
        return self._in_image(p, fixed_idx, mean, post, pose)

    @staticmethod
    def _in_image(p, fixed_idx, mean, post, pose: Similarity):
        """Model-frame estimate back into the image; the fixed points exactly as given, with zero covariance."""
        out = pose.inverse(mean)
        out[fixed_idx] = p[fixed_idx]
        out_cov = pose.inverse_covariance(post)
        out_cov[fixed_idx] = 0.0
        return out, out_cov

    def _fixed_weights(self, y, fixed_idx, nu: float) -> np.ndarray:
        """``(K,)`` Student-t weights ``v`` of the fixed points' shape residuals (1 elsewhere, and with fewer than
        three fixed points), from the fixed points ``y[fixed_idx]`` alone (model frame, in their own pose), so that
        evidence can never outvote an annotator.

        ``v_i = min(1, (nu + 2) / (nu + d_i^2))`` with ``d_i`` the Mahalanobis distance of fixed point ``i`` from
        where the other fixed points put it, their residual variances ``r / v``; reweighted until the weights
        settle (so that one implausible point does not make its neighbours look implausible too).
        """
        v = np.ones(self.num_landmarks)
        n = len(fixed_idx)
        if n < 3:
            return v
        o = _blocks(fixed_idx)
        residual = y.reshape(-1)[o] - self.mean.reshape(-1)[o]
        base = self.covariance[np.ix_(o, o)]
        weights = np.ones(n)
        for _ in range(ROBUST_ITERATIONS):
            extra = self.residual_variance * (1.0 / weights - 1.0)
            precision = np.linalg.inv(base + np.diag(np.repeat(extra, 2)))
            # point i given the others, its own added residual left out of the conditional covariance
            offset, spread = _loo_conditionals(residual, precision)
            spread = spread - extra[:, None, None] * np.eye(2)
            d2 = (offset * np.linalg.solve(spread, offset[..., None])[..., 0]).sum(-1)
            new = np.minimum(1.0, (nu + 2.0) / (nu + d2))
            settled = np.abs(new - weights).max() < ROBUST_TOLERANCE
            weights = new
            if settled:
                break
        v[fixed_idx] = weights
        return v

    def _condition(self, p, observed, is_fixed, cov, pose: Similarity, residual=None):
        """Gaussian conditioning in the model frame: ``mean + C_:o (C_oo + D)^-1 (y_o - mean_o)``.

        ``residual`` ``(K,)``: variance (mm^2) added to each point's isotropic residual (the robust weights of the
        fixed points). Returns the mean ``(K, 2)`` and the covariances ``(K, 2, 2)``.
        """
        mu = self.mean.reshape(-1)
        c = self.covariance
        if residual is not None and residual.any():
            c = c + np.diag(np.repeat(residual, 2))
        o = _blocks(observed)
        noise = pose.covariance(np.where(is_fixed[observed, None, None], 0.0, cov[observed]))
        precision = np.linalg.inv(c[np.ix_(o, o)] + _block_diag(noise))
        gain = c[:, o] @ precision  # C_:o (C_oo + D)^-1
        y = pose(p).reshape(-1)
        mean = mu + gain @ (y[o] - mu[o])
        post = c - gain @ c[o, :]
        k = self.num_landmarks
        blocks = np.stack([post[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] for i in range(k)])
        return mean.reshape(k, 2), blocks

    def refit(self, landmarks, fixed, sigma=None, nu: float | None = REFIT_NU):
        """Re-estimate the landmarks that are not fixed, from the shape conditioned on the fixed ones and fused
        with the others' evidence; the fixed points never move.

        The fit is robust (``nu``, default :data:`REFIT_NU`): a network's errors are heavy-tailed, and a fixed
        point may sit where this shape model does not expect it (another annotation convention), so two kinds
        of Student-t weight with ``nu`` degrees of freedom are found by iteratively reweighted least squares:

        - each evidence point's covariance is divided by ``w = (nu + 2) / (nu + d^2)``, with ``d`` the Mahalanobis
          distance of its evidence from the current estimate: evidence that agrees with the shape and the fixed
          points counts more than its Gaussian weight, evidence that contradicts them less;
        - each fixed point's shape residual variance ``r`` becomes ``r / v`` with ``v = min(1, (nu + 2) / (nu +
          d^2))``, ``d`` its leave-one-out distance from where the other points put it: a fixed point that the
          shape model finds unlikely moves the others less (it still never moves itself).

        ``nu=None`` is the Gaussian conditional (:meth:`posterior`'s closed form).

        Args:
            landmarks: ``(K, 2)`` in mm, NaN for missing (numpy or torch; the result has its type).
            fixed: indices (or names) of the landmarks that must not move.
            sigma: ``(K,)`` SD in mm of the other points' evidence (NaN or inf: none, the point comes from the
                shape alone), or their ``(K, 2, 2)`` covariances in mm^2; ``None``: no evidence for any of them.
            nu: the robust weights' degrees of freedom; ``None``: Gaussian.

        Returns:
            ``(K, 2)`` landmarks in mm. The pose comes from the fixed and evidence points together, re-estimated on
            the completed shape.
        """
        p = self._points(landmarks)
        mean, _ = self._posterior(p, self._indices(fixed, p), self._evidence_covariance(sigma, "sigma"), True, 5,
                                  _check_nu(nu))
        return _like(mean, landmarks)

    def refine(self, landmarks, cov_or_sigma, threshold: float = math.sqrt(CHI2_2_99), max_outliers: int | None = None):
        """MAP estimate of every landmark from its Gaussian evidence and the shape prior.

        Each point's evidence (position and covariance) is fused with the shape model. Evidence that the other
        points contradict (its leave-one-out Mahalanobis distance above ``threshold``) is dropped, worst first,
        one at a time, so that the point comes from where the others say it must be; those points are flagged.
        Weak evidence (a large covariance) is pulled towards the shape without being dropped.

        Args:
            landmarks: ``(K, 2)`` evidence positions in mm, NaN missing.
            cov_or_sigma: ``(K,)`` SDs or ``(K, 2, 2)`` covariances in mm (non-finite: no evidence).
            threshold: outlier radius in Mahalanobis units (default: the chi^2 99 % radius, 3.03).
            max_outliers: at most this many dropped (default ``K // 3``).

        Returns:
            ``(refined, flags)``: ``(K, 2)`` in mm (the input's type) and ``(K,)`` bool.
        """
        p = self._points(landmarks)
        cov = self._evidence_covariance(cov_or_sigma, "cov_or_sigma")
        k = self.num_landmarks
        flags = np.zeros(k, dtype=bool)
        limit = k // 3 if max_outliers is None else int(max_outliers)
        while True:
            active = np.isfinite(p).all(-1) & np.isfinite(cov).all((-1, -2)) & ~flags
            if active.sum() < 3:
                raise ValueError(f"refine needs 3 or more landmarks with evidence, got {int(active.sum())}.")
            mean, _ = self._posterior(p, np.zeros(0, dtype=np.int64), cov, True, 5)
            if flags.sum() >= limit or active.sum() <= 3:
                break
            distance = self._evidence_distance(p, cov, active, mean)
            worst = int(np.argmax(distance))
            if distance[worst] <= threshold:
                break
            flags[worst] = True
            cov[worst] = np.inf
        return _like(mean, landmarks), flags

    def _evidence_distance(self, p, cov, active, mean) -> np.ndarray:
        """Leave-one-out Mahalanobis distance of each active point's evidence given the others' (``(K,)``, 0 for
        inactive points), in the pose of the completed estimate ``mean``."""
        completed = np.where(active[:, None], p, mean)
        pose = similarity_fit(completed, self.mean, mirror=self._mirror(p))
        idx = np.flatnonzero(active)
        o = _blocks(idx)
        noise = _block_diag(pose.covariance(cov[idx]))
        residual = pose(p).reshape(-1)[o] - self.mean.reshape(-1)[o]
        distance, _ = _loo(residual, np.linalg.inv(self.covariance[np.ix_(o, o)] + noise))
        out = np.zeros(self.num_landmarks)
        out[idx] = distance
        return out


def _aligned_gaussian(x: np.ndarray, max_iterations: int, tolerance: float, rounds: int = 3):
    """Mean and covariance ``(2K,), (2K, 2K)`` of the Procrustes-aligned shapes ``x`` ``(N, K, 2)`` (NaN missing).

    A shape aligned on only some of its points would let the similarity absorb part of its deviation (fewer
    points, same 4 degrees of freedom), shrinking the variances; so shapes with missing points are completed with
    their conditional mean under the current Gaussian, re-aligned with all points, and the Gaussian re-fitted on
    the present points, a few ``rounds``.
    """
    n, k = x.shape[:2]
    missing = ~np.isfinite(x).all(-1)
    aligned, _, poses = _procrustes(x, max_iterations, tolerance)
    mu, cov, filled = _gaussian_with_missing(aligned.reshape(n, 2 * k))
    for _ in range(rounds if missing.any() else 0):
        completed = np.stack([pose.inverse(f) for pose, f in zip(poses, filled.reshape(n, k, 2))])
        aligned, _, poses = _procrustes(np.where(missing[..., None], completed, x), max_iterations, tolerance)
        aligned[missing] = np.nan
        mu, cov, filled = _gaussian_with_missing(aligned.reshape(n, 2 * k))
    return mu, cov


def _procrustes(x: np.ndarray, max_iterations: int, tolerance: float):
    """Generalised Procrustes analysis with missing points: shapes aligned to a mean of the shapes' mean size.

    Returns the aligned shapes ``(N, K, 2)``, the mean ``(K, 2)`` and each shape's pose (image -> model frame).
    """
    size = float(np.mean([centroid_size(s) for s in x]))
    start = int(np.argmax(np.isfinite(x[..., 0]).sum(-1)))
    mean = _normalise(x[start], size)
    mirror = np.array([similarity_fit(s, mean, mirror=None).mirror for s in x])
    for _ in range(max_iterations):
        poses = [similarity_fit(s, mean, mirror=m) for s, m in zip(x, mirror)]
        aligned = np.stack([pose(s) for pose, s in zip(poses, x)])
        new = np.nanmean(aligned, axis=0)
        new = _normalise(similarity_fit(new, mean)(new), size)
        change = float(np.sqrt(((new - mean) ** 2).sum())) / size
        mean = new
        if change < tolerance:
            break
    return aligned, mean, poses


def _normalise(shape: np.ndarray, size: float) -> np.ndarray:
    """Centred on its present points' centroid and scaled to centroid size ``size`` (missing points stay NaN)."""
    centred = shape - np.nanmean(shape, axis=0)
    return centred * (size / centroid_size(centred))


def _gaussian_with_missing(y: np.ndarray, iterations: int = 50, tolerance: float = 1e-9):
    """Mean and (maximum-likelihood) covariance of rows ``y`` ``(N, D)`` with NaN entries, by EM; and the rows with
    their missing entries replaced by the conditional mean."""
    missing = np.isnan(y)
    mu = np.nanmean(y, axis=0)
    filled = np.where(missing, mu, y)
    cov = np.cov(filled, rowvar=False, bias=True)
    if not missing.any():
        return mu, cov, filled
    ridge = 1e-9 * np.trace(cov) / len(cov)
    for _ in range(iterations):
        correction = np.zeros_like(cov)
        for i in np.flatnonzero(missing.any(1)):
            m, o = missing[i], ~missing[i]
            gain = np.linalg.solve(cov[np.ix_(o, o)] + ridge * np.eye(o.sum()), cov[np.ix_(o, m)]).T
            filled[i, m] = mu[m] + gain @ (y[i, o] - mu[o])
            correction[np.ix_(m, m)] += cov[np.ix_(m, m)] - gain @ cov[np.ix_(o, m)]
        new_mu = filled.mean(0)
        centred = filled - new_mu
        new_cov = (centred.T @ centred + correction) / len(y)
        done = np.abs(new_cov - cov).max() < tolerance * np.trace(cov)
        mu, cov = new_mu, new_cov
        if done:
            break
    return mu, cov, filled
