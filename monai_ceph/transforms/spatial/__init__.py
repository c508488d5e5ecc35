from .array import (
    MODEL_SPATIAL_SIZE,
    LandmarksToSource,
    RandAffineWithLandmarks,
    ResizeWithLandmarks,
    image_affine,
    landmarks_to_source,
    model_to_source_affine,
    record_source_affine,
    transform_points,
    transform_spacing,
)
from .dictionary import (
    LandmarksToSourceD,
    LandmarksToSourced,
    LandmarksToSourceDict,
    RandAffineWithLandmarksD,
    RandAffineWithLandmarksd,
    RandAffineWithLandmarksDict,
    ResizeWithLandmarksD,
    ResizeWithLandmarksd,
    ResizeWithLandmarksDict,
)
from .field_of_view import *  # noqa: F401,F403  (PhysicalField(d), FieldOfView(d), RandFieldOfView(d))
from .patches import *  # noqa: F401,F403  (LandmarkPatches(d), RandLandmarkPatchd)
from .orientation import *  # noqa: F401,F403  (upright, from_upright, upright_matrix, WhileUprightd)
