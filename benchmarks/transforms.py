"""The transforms benchmark of the issue in one command: CLAHE + NLM on a real 736x576 ISBI image (ours vs
scikit-image), then the heatmap codec's speed and round-trip error.

    python benchmarks/transforms.py

Each part is also runnable on its own: ``benchmarks/intensity.py`` and ``benchmarks/codec.py``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import codec  # noqa: E402
import intensity  # noqa: E402

if __name__ == "__main__":
    intensity.main()
    print()
    codec.main()
