import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from monai_ceph.analysis import measure

TUTORIAL = Path(__file__).resolve().parents[2] / "tutorials" / "quickstart.py"


def annotation(isbi_dir: Path, image_id: str) -> np.ndarray:
    """The two annotators' average of one image, read straight from the dataset's CSV."""
    with open(isbi_dir / "average_senior_junior.csv", newline="") as f:
        row = next(r for r in csv.DictReader(f) if r["image_path"] == f"{image_id}.jpg")
    return np.array([[float(row[f"{i}_x"]), float(row[f"{i}_y"])] for i in range(1, 20)])


@pytest.mark.slow
@pytest.mark.isbi
def test_quickstart_tutorial(isbi_dir, tmp_path):
    """ISBI folder -> datalist -> one training epoch -> evaluation -> detection on a new image -> analysis, on six
    real radiographs at 64 x 80; the printed figures are those of the files it wrote."""
    out = tmp_path / "out"
    env = {**os.environ, "MONAI_CEPH_ISBI_DIR": str(isbi_dir), "OMP_NUM_THREADS": "2"}
    args = ["--train", "3", "--validation", "1", "--test", "1", "--spatial-size", "64,80", "--max-epochs", "1",
            "--batch-size", "3", "--device", "cpu", "--num-workers", "0", "--out", str(out)]
    result = subprocess.run([sys.executable, str(TUTORIAL), *args], capture_output=True, text=True, env=env,
                            timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    printed = result.stdout

    datalist = json.loads((out / "datalist.json").read_text())
    assert [len(datalist[s]) for s in ("training", "validation", "test")] == [3, 1, 1]
    assert [d["id"] for d in datalist["training"]] == ["001", "002", "003"] and datalist["test"][0]["id"] == "301"
    np.testing.assert_allclose(datalist["test"][0]["landmarks"], annotation(isbi_dir, "301"))
    assert (out / "cephres" / "models" / "model.pt").is_file()
    assert json.loads((out / "cephres" / "models" / "model.json").read_text())["spatial_size"] == [64, 80]

    summary = json.loads((out / "cephres" / "eval" / "test" / "radial_error_summary.json").read_text())
    assert summary["n_images"] == 1
    assert f"test MRE {summary['mre_mm']:.2f} mm" in printed

    # the new image: the first test image after the test section, never trained or selected on
    record = json.loads((out / "new_image.json").read_text())
    assert record["id"] == "302" and record["spacing"] == [0.1, 0.1] and len(record["landmarks"]) == 19
    detected = np.array([[p["x"], p["y"]] for p in record["landmarks"]])
    truth = annotation(isbi_dir, "302")
    mre = np.linalg.norm((detected - truth) * 0.1, axis=1).mean()
    assert float(re.search(r"mean radial error on the new image: ([0-9.]+) mm", printed).group(1)) == pytest.approx(
        mre, abs=0.006)
    assert (out / "new_image.png").stat().st_size > 10_000

    # analysis: detected and annotated measurements side by side
    sna = re.search(r"^\s+SNA\s+([-0-9.]+)\s+([-0-9.]+)\s", printed, re.MULTILINE)
    assert sna, printed
    assert float(sna.group(1)) == pytest.approx(measure(detected, [0.1, 0.1])["SNA"], abs=0.006)
    assert float(sna.group(2)) == pytest.approx(measure(truth, [0.1, 0.1])["SNA"], abs=0.006)
    assert f"quickstart done: everything is under {out}" in printed
