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
from .scanner import *  # noqa: F401,F403  (JPEGCompression(d), CollimationBorder(d) and Rand variants)
from .scanner import __all__ as _scanner_all

__all__ = [
    "CLAHE", "CLAHED", "CLAHEDict", "CLAHEd", "NLMDenoise", "NLMDenoiseD", "NLMDenoiseDict", "NLMDenoised",
    "ToGreyscale", "ToGreyscaleD", "ToGreyscaleDict", "ToGreyscaled",
]
__all__ += _scanner_all
