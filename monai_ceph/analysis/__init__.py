"""Cephalometric analysis: the clinical measurements and classes read off the landmarks.

Measurements are declared as data (:data:`MEASUREMENTS`: the ISBI 2015 classification task, Steiner, Downs,
Tweed, McNamara, Bjork-Jarabak, and what the Aariz landmarks add) and evaluated by one small set of geometric
functions::

    from monai_ceph.analysis import classify, measure

    values = measure(landmarks, spacing, landmark_set="isbi2015")  # {"SNA": 81.2, "ANB": 3.9, ...}
    classes = classify(values)                                      # {"ANB": "class I", ...}
"""

from .agreement import agreement, cohen_kappa, confusion_matrix
from .array import CephalometricMeasurements
from .definitions import (
    ANALYSES,
    DERIVED_POINTS,
    ISBI2015_CLASSIFICATION,
    KINDS,
    MEASUREMENTS,
    Interval,
    Measurement,
    determinable_measurements,
    get_measurement,
)
from .dictionary import CephalometricMeasurementsd, CephalometricMeasurementsD, CephalometricMeasurementsDict
from .measure import (
    UNDETERMINED,
    GeometryWarning,
    anatomical_axes,
    classify,
    measure,
    measure_with_reasons,
    profile_facing,
)
from .overlay import render_analysis_overlay
from .report import AnalysisReport
from .writers import measurements_record, measurements_to_csv_row, measurements_to_json
from .handlers import AnalysisOverlaySaver, MeasurementWriter
