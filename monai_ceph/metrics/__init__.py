from .radial_error import (
    DEFAULT_SDR_THRESHOLDS,
    SDR_TOLERANCE_MM,
    RadialErrorMetric,
    compute_radial_error,
    summarize_radial_errors,
)
