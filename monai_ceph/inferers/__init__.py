from .tta import TestTimeAugmentationInferer, TTAInferer
