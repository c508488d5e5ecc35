from .array import EnsureLandmarks, HeatmapToLandmarks, LandmarksToHeatmap, LoadLandmarks, as_spacing, landmark_visibility
from .codec import GaussianHeatmapCodec
from .dictionary import (
    EnsureLandmarksD,
    EnsureLandmarksd,
    EnsureLandmarksDict,
    HeatmapToLandmarksD,
    HeatmapToLandmarksd,
    HeatmapToLandmarksDict,
    LandmarksToHeatmapD,
    LandmarksToHeatmapd,
    LandmarksToHeatmapDict,
    LoadLandmarksD,
    LoadLandmarksd,
    LoadLandmarksDict,
    describe_item,
)
from .inside import MaskOutsideSource, MaskOutsideSourceD, MaskOutsideSourced, MaskOutsideSourceDict, mask_outside_source
from .prior import (
    LandmarkPrior,
    LandmarkPriorD,
    LandmarkPriord,
    LandmarkPriorDict,
    RandJitterLandmarksD,
    RandJitterLandmarksd,
    RandJitterLandmarksDict,
)
