"""MONAI-style Inferers: two-stage (global -> local patches, optional Expansive Exploration)."""

from .checkpoints import check_local_checkpoint
from .two_stage import LandmarkRefiner, TwoStageInferer

__all__ = ["LandmarkRefiner", "TwoStageInferer", "check_local_checkpoint"]
