from .array import MAX_IMAGE_PIXELS, MIN_IMAGE_SIZE, BlankImageWarning, ValidateImage, image_name
from .dictionary import ValidateImageD, ValidateImaged, ValidateImageDict
