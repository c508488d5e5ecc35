from .landmark_sets import (
    AARIZ,
    AARIZ_TO_ISBI2015,
    ISBI2015,
    LANDMARK_SETS,
    LandmarkSet,
    get_landmark_set,
    map_landmarks,
)
from .locations import ISBI_ENV, isbi_dir
