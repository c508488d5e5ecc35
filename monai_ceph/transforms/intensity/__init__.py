from .array import CLAHE, NLMDenoise
from .dictionary import CLAHED, CLAHEDict, CLAHEd, NLMDenoiseD, NLMDenoiseDict, NLMDenoised

__all__ = ["CLAHE", "CLAHED", "CLAHEDict", "CLAHEd", "NLMDenoise", "NLMDenoiseD", "NLMDenoiseDict", "NLMDenoised"]
