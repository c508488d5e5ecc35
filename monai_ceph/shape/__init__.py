"""Shape model of the landmarks and per-landmark uncertainty.

- :class:`ShapeModel`: Procrustes-aligned point distribution model (PCA) in mm: ``plausibility``, MAP ``refine``
  and interactive ``refit`` given fixed landmarks; built by ``python -m monai_ceph.shape DATALIST OUT``.
- :func:`heatmap_covariance`, :func:`covariance_to_source`, :class:`UncertaintyCalibration` and the transforms
  :class:`LandmarkUncertainty` / :class:`LandmarkUncertaintyd`: per-landmark covariance in source mm from the
  predicted heatmaps, calibrated on validation errors
  (per landmark, and by the points' peak confidence); :class:`CovarianceToSource` / :class:`CovarianceToSourced`
  for a covariance an inferer gives in model pixels (the two-stage refinement's);
- :class:`ShapeRefine` / :class:`ShapeRefined`: the bundle's shape-constrained refinement step (post-processing);
  (``monai_ceph.handlers.UncertaintyCalibrationSaver`` fits the calibration in the bundle's ``calibrating`` run).
"""

from .procrustes import Similarity, centroid_size, similarity_fit
from .model import CHI2_2_99, REFIT_NU, VARIANCE_KEPT, ShapeModel, ShapePlausibility
from .uncertainty import (
    UncertaintyCalibration,
    chi2_2_quantile,
    confidence_factor,
    covariance_radius,
    covariance_sigma,
    covariance_to_source,
    ellipse_coverage,
    heatmap_covariance,
    mahalanobis_squared,
    spearman_rho,
)
from .array import CovarianceToSource, LandmarkUncertainty, ShapeRefine
from .dictionary import (
    CovarianceToSourceD,
    CovarianceToSourced,
    CovarianceToSourceDict,
    LandmarkUncertaintyD,
    LandmarkUncertaintyd,
    LandmarkUncertaintyDict,
    ShapeRefineD,
    ShapeRefined,
    ShapeRefineDict,
)
from .build import build_shape_model, datalist_shapes
