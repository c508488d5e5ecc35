from .intensity import *  # noqa: F401,F403  (CLAHE, CLAHEd, NLMDenoise, NLMDenoised)
from .landmarks import (
    EnsureLandmarks,
    EnsureLandmarksD,
    EnsureLandmarksd,
    EnsureLandmarksDict,
    GaussianHeatmapCodec,
    HeatmapToLandmarks,
    HeatmapToLandmarksD,
    HeatmapToLandmarksd,
    HeatmapToLandmarksDict,
    LandmarksToHeatmap,
    LandmarksToHeatmapD,
    LandmarksToHeatmapd,
    LandmarksToHeatmapDict,
    LoadLandmarks,
    LoadLandmarksD,
    LoadLandmarksd,
    LoadLandmarksDict,
    describe_item,
)
from .spatial import (
    LandmarksToSource,
    LandmarksToSourceD,
    LandmarksToSourced,
    LandmarksToSourceDict,
    RandAffineWithLandmarks,
    RandAffineWithLandmarksD,
    RandAffineWithLandmarksd,
    RandAffineWithLandmarksDict,
    ResizeWithLandmarks,
    ResizeWithLandmarksD,
    ResizeWithLandmarksd,
    ResizeWithLandmarksDict,
)
from .utility import (
    MAX_IMAGE_PIXELS,
    MIN_IMAGE_SIZE,
    BlankImageWarning,
    ValidateImage,
    ValidateImageD,
    ValidateImaged,
    ValidateImageDict,
)
from .utils import (
    MODEL_SPATIAL_SIZE,
    as_spacing,
    carry_landmarks,
    image_affine,
    landmark_visibility,
    landmarks_to_source,
    model_to_source_affine,
    record_source_affine,
    transform_points,
    transform_spacing,
)
from .spatial.field_of_view import *  # noqa: F401,F403,E402
from .spatial.patches import *  # noqa: F401,F403,E402
from .landmarks.inside import *  # noqa: F401,F403,E402
from .landmarks.prior import *  # noqa: F401,F403,E402
