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
    """Released model on a new image -> analysis -> fine-tuning on two images of a "clinic" (one epoch per stage) ->
    released vs fine-tuned on a third; the printed figures are those of the files it wrote."""
    out = tmp_path / "out"
    env = {**os.environ, "MONAI_CEPH_ISBI_DIR": str(isbi_dir), "OMP_NUM_THREADS": "2"}
    args = ["--finetune", "2", "--heldout", "1", "--max-epochs", "1", "--device", "cpu", "--num-workers", "0",
            "--out", str(out)]
    result = subprocess.run([sys.executable, str(TUTORIAL), *args], capture_output=True, text=True, env=env,
                            timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    printed = result.stdout

    # the new image: the first Test1 image, which the released model never saw
    record = json.loads((out / "new_image.json").read_text())
    assert record["id"] == "151" and record["spacing"] == [0.1, 0.1] and len(record["landmarks"]) == 19
    assert record["model"]["kind"] == "released"
    assert record["pipeline"] == ["global stage", "local stage", "shape refinement", "calibrated uncertainty"]
    detected = np.array([[p["x"], p["y"]] for p in record["landmarks"]])
    truth = annotation(isbi_dir, "151")
    mre = np.linalg.norm((detected - truth) * 0.1, axis=1).mean()
    assert float(re.search(r"mean radial error on the new image: ([0-9.]+) mm", printed).group(1)) == pytest.approx(
        mre, abs=0.006)
    assert (out / "new_image.png").stat().st_size > 10_000

    # analysis: detected and annotated measurements side by side
    sna = re.search(r"^\s+SNA\s+([-0-9.]+)\s+([-0-9.]+)\s", printed, re.MULTILINE)
    assert sna, printed
    assert float(sna.group(1)) == pytest.approx(measure(detected, [0.1, 0.1])["SNA"], abs=0.006)
    assert float(sna.group(2)) == pytest.approx(measure(truth, [0.1, 0.1])["SNA"], abs=0.006)

    # fine-tuning: both stages trained from the released model into the bundle, on the clinic's two images
    clinic = json.loads((out / "clinic.json").read_text())
    assert [d["id"] for d in clinic["training"]] == ["301", "302"]
    models = out / "cephres" / "models"
    for stage in ("", "local"):
        assert (models / stage / "model.pt").is_file()
        assert json.loads((models / stage / "model.json").read_text())["model"] == {"kind": "trained"}
    released = json.loads((Path(__file__).resolve().parents[2] / "bundles" / "cephres" / "pretrained" / "isbi2015"
                           / "model.json").read_text())
    assert json.loads((models / "model.json").read_text())["spatial_size"] == released["spatial_size"]
    gain = re.search(r"released model MRE ([0-9.]+) mm -> fine-tuned MRE ([0-9.]+) mm", printed)
    assert gain, printed
    assert f"quickstart done: everything is under {out}" in printed
