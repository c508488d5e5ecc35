"""Small fixture datasets written into tmp_path, in the real layouts of ISBI 2015 (the DICOM writer, shared by
the whole suite, is `write_dicom` in tests/conftest.py)."""

import numpy as np
import pytest
from PIL import Image

ISBI_HEADER = "image_path," + ",".join(f"{i}_{a}" for i in range(1, 20) for a in "xy")


def _points(image_id: str, offset: float = 0.0) -> np.ndarray:
    """Distinct integer points for an id: landmark k of image n at (100 n + 10 k, 200 n + 10 k) + offset."""
    n = int(image_id)
    k = np.arange(19)
    return np.stack([100 * n + 10 * k, 200 * n + 10 * k], axis=1).astype(float) + offset


@pytest.fixture
def isbi_points():
    """``isbi_points(image_id, offset=0)``: the (19, 2) points the fixtures below write for an image."""
    return _points


@pytest.fixture
def write_isbi_csv():
    """``write_isbi_csv(path, {id: points})``: a CSV in the Kaggle layout's format."""

    def write(path, rows):
        lines = [ISBI_HEADER] + [f"{i}.jpg," + ",".join(f"{v:g}" for v in p.reshape(-1)) for i, p in rows.items()]
        path.write_text("\n".join(lines) + "\n")
        return path

    return write


@pytest.fixture
def isbi_csv_dataset(tmp_path, write_isbi_csv):
    """Kaggle layout with images 001 (train), 151 (test1), 301 (test2); senior = points, average = points + 1."""
    root = tmp_path / "isbi"
    (root / "images").mkdir(parents=True)
    for image_id in ("001", "151", "301"):
        Image.new("L", (8, 6)).save(root / "images" / f"{image_id}.jpg")
    for name, image_id in (("train", "001"), ("test1", "151"), ("test2", "301")):
        write_isbi_csv(root / f"{name}_senior.csv", {image_id: _points(image_id)})
    write_isbi_csv(root / "average_senior_junior.csv", {i: _points(i, 1.0) for i in ("301", "001", "151")})
    return root


@pytest.fixture
def isbi_original_dataset(tmp_path):
    """Challenge layout with images 001, 151, 301; senior = points, junior = points + 3; 8 trailing label lines."""
    root = tmp_path / "isbi_original"
    for folder, image_id in (("TrainingData", "001"), ("Test1Data", "151"), ("Test2Data", "301")):
        (root / "RawImage" / folder).mkdir(parents=True)
        Image.new("L", (8, 6)).save(root / "RawImage" / folder / f"{image_id}.bmp")
        for annotator, offset in (("senior", 0.0), ("junior", 3.0)):
            folder_md = root / "AnnotationsByMD" / f"400_{annotator}"
            folder_md.mkdir(parents=True, exist_ok=True)
            lines = [f"{x:g},{y:g}" for x, y in _points(image_id, offset)] + [str(c) for c in range(1, 9)]
            (folder_md / f"{image_id}.txt").write_text("\r\n".join(lines) + "\r\n")
    return root
