from .array import HeatmapToLandmarks, LandmarksToHeatmap, LoadLandmarks, as_spacing, landmark_visibility
from .codec import GaussianHeatmapCodec
from .dictionary import (
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
