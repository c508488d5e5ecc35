from .detector import LandmarkDetector, default_bundle_dir
from .result import LandmarkResult
