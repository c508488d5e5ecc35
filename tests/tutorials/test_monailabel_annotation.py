import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

TUTORIAL = Path(__file__).resolve().parents[2] / "tutorials" / "monailabel_annotation.py"


def test_monailabel_annotation_tutorial(isbi_dir, tmp_path):
    pytest.importorskip("monailabel", reason="MONAI Label is not installed (see monai_ceph/apps/monailabel/INSTALL.md)")
    env = {**os.environ, "MONAI_CEPH_ISBI_DIR": str(isbi_dir), "OMP_NUM_THREADS": "2", "TMPDIR": str(tmp_path)}
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, str(TUTORIAL), "--images", "2", "--out", str(out)],
                            capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert re.search(r"browser client: http://127\.0\.0\.1:\d+/client/", result.stdout)
    moved = re.search(r"at \(([-0-9.]+), ([-0-9.]+)\) px\n", result.stdout)
    stored = re.search(r"stored at \(([-0-9.]+), ([-0-9.]+)\) px", result.stdout)
    assert moved and stored, result.stdout
    assert abs(float(stored.group(1)) - float(moved.group(1)) - 30) < 0.11
    assert abs(float(stored.group(2)) - float(moved.group(2)) - 20) < 0.11
    assert "training round: DONE" in result.stdout
    assert re.search(r"validation MRE after the round: [0-9.]+ mm", result.stdout)
    assert (out / "cephres" / "models" / "model.pt").is_file()
    assert len(list((out / "studies" / "labels" / "final").glob("*.json"))) == 1
