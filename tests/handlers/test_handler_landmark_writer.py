import csv
import json

import pytest
import torch
from ignite.engine import Engine

from monai.data import MetaTensor
from monai_ceph.handlers import LandmarkWriter


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_writes_json_and_csv_per_image_in_evaluator(tmp_path, make_evaluator):
    evaluator = make_evaluator(val_handlers=[LandmarkWriter(tmp_path, landmark_set=None)])
    evaluator.run()
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"00{i}.{e}" for i in range(3) for e in ("csv", "json")]

    # image 000, spacing (0.1, 0.1): prediction (40, 50), ground truth (10, 10) -> 5 mm
    record = json.loads((tmp_path / "000.json").read_text())
    assert record["id"] == "000" and record["landmark_set"] is None
    assert record["spacing"] == [0.1, 0.1]
    first = record["landmarks"][0]
    assert (first["abbreviation"], first["x"], first["y"]) == ("L1", 40.0, 50.0)
    assert first["x_mm"] == pytest.approx(4.0) and first["y_mm"] == pytest.approx(5.0)
    assert first["confidence"] == 0.5
    assert (first["gt_x"], first["gt_y"]) == (10.0, 10.0)
    assert first["gt_x_mm"] == pytest.approx(1.0)
    assert first["error_mm"] == pytest.approx(5.0)
    assert record["landmarks"][1]["error_mm"] == pytest.approx(0.0)
    assert record["mre_mm"] == pytest.approx(2.5)

    # image 001: the second landmark has no ground truth -> null, not zero
    second = json.loads((tmp_path / "001.json").read_text())["landmarks"][1]
    assert second["gt_x"] is None and second["error_mm"] is None and second["x"] == 5.0

    # image 002: the second prediction is missing -> null coordinates, no finite error
    rows = read_csv(tmp_path / "002.csv")
    assert list(rows[0]) == [
        "index", "abbreviation", "name", "x", "y", "x_mm", "y_mm", "confidence",
        "gt_x", "gt_y", "gt_x_mm", "gt_y_mm", "error_mm", "source",
    ]  # fmt: skip
    assert float(rows[0]["y"]) == 6.0 and float(rows[0]["y_mm"]) == pytest.approx(3.0)
    assert float(rows[0]["error_mm"]) == pytest.approx(3.0)
    assert rows[1]["x"] == "" and rows[1]["error_mm"] == "" and float(rows[1]["gt_x_mm"]) == pytest.approx(0.5)
    assert float(rows[1]["confidence"]) == 0.25


def test_isbi_names_no_ground_truth_and_name_from_filename(tmp_path):
    pred = torch.arange(38, dtype=torch.float32).reshape(19, 2)
    image = MetaTensor(torch.zeros(1, 4, 4), meta={"filename_or_obj": "/data/images/151.bmp"})
    item = {"image": image, "pred_landmarks": pred, "spacing": torch.tensor([0.1, 0.2])}
    engine = Engine(lambda e, b: [item])
    LandmarkWriter(tmp_path, formats="csv").attach(engine)
    engine.run([0])
    rows = read_csv(tmp_path / "151.csv")
    assert len(rows) == 19 and "gt_x" not in rows[0] and rows[0]["confidence"] == ""
    assert (rows[0]["abbreviation"], rows[0]["name"]) == ("S", "Sella")
    assert (rows[18]["abbreviation"], rows[18]["name"]) == ("Ar", "Articulare")
    assert float(rows[18]["x"]) == 36.0 and float(rows[18]["y_mm"]) == pytest.approx(37 * 0.2)
    assert {r["source"] for r in rows} == {"/data/images/151.bmp"}  # each row names the input file
    assert not (tmp_path / "151.json").exists()


@pytest.mark.parametrize(
    "item, error, match",
    [
        ({"id": "a", "spacing": [0.1, 0.1]}, KeyError, "pred_landmarks"),
        ({"id": "a", "pred_landmarks": torch.zeros(3, 2)}, KeyError, "spacing"),
        ({"pred_landmarks": torch.zeros(3, 2), "spacing": [0.1, 0.1]}, KeyError, "cannot name"),
        ({"id": "a", "pred_landmarks": torch.zeros(3, 2), "spacing": [0.1, 0.1]}, ValueError, "isbi2015 landmark set"),
        ({"id": "a", "pred_landmarks": torch.zeros(19, 3), "spacing": [0.1, 0.1]}, ValueError, "'pred_landmarks' has"),
    ],
)
def test_bad_items_raise_clear_errors(tmp_path, item, error, match):
    with pytest.raises(error, match=match):
        LandmarkWriter(tmp_path).write(item)


def test_unknown_format():
    with pytest.raises(ValueError, match="xml"):
        LandmarkWriter(formats=("json", "xml"))
