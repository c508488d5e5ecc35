import os
import re
import subprocess
import sys
from pathlib import Path

TUTORIALS = Path(__file__).resolve().parents[2] / "tutorials"


def test_transforms_tutorial_runs_and_round_trips(isbi_dir, tmp_path):
    out = tmp_path / "overlay.png"
    env = {**os.environ, "MONAI_CEPH_ISBI_DIR": str(isbi_dir), "OMP_NUM_THREADS": "2"}
    result = subprocess.run(
        [sys.executable, str(TUTORIALS / "transforms_in_your_pipeline.py"), "--image-id", "152", "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "image (1, 576, 736), heatmaps (19, 576, 736)" in result.stdout
    max_px = float(re.search(r"max ([0-9.]+) px", result.stdout).group(1))
    assert max_px <= 1e-3
    assert out.stat().st_size > 10_000
