import csv
import json
import math

import pytest

from monai_ceph.analysis import classify, measurements_to_csv_row, measurements_to_json


def test_json_record_and_csv_row(tmp_path):
    values = {"ANB": 4.25, "S-N": math.nan, "AB-MP": 66.0}
    classes = classify(values)
    path = tmp_path / "sub" / "001_measurements.json"
    record = measurements_to_json(values, classes, path, reasons={"S-N": "landmark S is missing"}, id="001")
    assert json.loads(path.read_text()) == record
    assert record["id"] == "001"
    assert record["measurements"]["ANB"] == {"value": 4.25, "unit": "deg", "norm": [2.0, 2.0], "class": "class I"}
    assert record["measurements"]["S-N"] == {
        "value": None, "unit": "mm", "norm": [71.0, 3.0], "class": "undetermined", "reason": "landmark S is missing",
    }  # fmt: skip
    assert record["measurements"]["AB-MP"]["class"] is None and record["measurements"]["AB-MP"]["norm"] is None

    row = measurements_to_csv_row(values, classes, id="001")
    assert list(row) == ["id", "ANB", "ANB_class", "S-N", "S-N_class", "AB-MP"]
    with open(tmp_path / "m.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(row))
        w.writeheader()
        w.writerow(row)
    with open(tmp_path / "m.csv", newline="") as f:
        back = next(csv.DictReader(f))
    assert back == {
        "id": "001", "ANB": "4.25", "ANB_class": "class I", "S-N": "", "S-N_class": "undetermined", "AB-MP": "66.0",
    }  # fmt: skip
    assert float(back["ANB"]) == pytest.approx(4.25)
