"""MONAI-style Inferers: two-stage (global -> local patches, optional Expansive Exploration) and test-time
augmentation (scale/intensity variants mapped back exactly and merged)."""

from .checkpoints import check_local_checkpoint
from .tta import TestTimeAugmentationInferer, TTAInferer
from .two_stage import LandmarkRefiner, TwoStageInferer

__all__ = ["LandmarkRefiner", "TTAInferer", "TestTimeAugmentationInferer", "TwoStageInferer", "check_local_checkpoint"]
