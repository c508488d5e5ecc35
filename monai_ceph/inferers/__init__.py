"""MONAI-style Inferers: two-stage (global -> local patches, optional Expansive Exploration), test-time
augmentation (scale/intensity variants mapped back exactly and merged) and orientation (which way the radiograph
faces: the network runs on it turned upright, the heatmaps mapped back exactly)."""

from .checkpoints import check_local_checkpoint
from .orientation import ORIENTATIONS, OrientationInferer, UnexpectedOrientationError, from_upright, upright, upright_matrix
from .tta import TestTimeAugmentationInferer, TTAInferer
from .two_stage import LandmarkRefiner, TwoStageInferer

__all__ = [
    "ORIENTATIONS",
    "LandmarkRefiner",
    "OrientationInferer",
    "TTAInferer",
    "TestTimeAugmentationInferer",
    "TwoStageInferer",
    "UnexpectedOrientationError",
    "check_local_checkpoint",
    "from_upright",
    "upright",
    "upright_matrix",
]
