from .array import CLAHE, NLMDenoise, ToGreyscale
from .dictionary import (
    CLAHED,
    CLAHEDict,
    CLAHEd,
    NLMDenoiseD,
    NLMDenoiseDict,
    NLMDenoised,
    ToGreyscaleD,
    ToGreyscaleDict,
    ToGreyscaled,
)

__all__ = [
    "CLAHE", "CLAHED", "CLAHEDict", "CLAHEd", "NLMDenoise", "NLMDenoiseD", "NLMDenoiseDict", "NLMDenoised",
    "ToGreyscale", "ToGreyscaleD", "ToGreyscaleDict", "ToGreyscaled",
]
