"""The MONAI Label landmark label format (monai_ceph/data/monailabel.py): round trip, the accepted forms, the errors
naming the entry, and a datastore folder read as a datalist. No server: the app's server tests are in tests/apps."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from monai_ceph.data import (
    ISBI2015,
    LandmarkFileError,
    MissingLandmarkWarning,
    SpacingError,
    load_monailabel,
    monailabel_datalist,
    parse_monailabel_label,
    read_monailabel_json,
    write_monailabel_json,
)


def _landmarks(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    landmarks = np.round(rng.uniform(10, 1900, size=(19, 2)), 2)
    landmarks[5] = np.nan
    return landmarks


def test_label_round_trip_and_forms(tmp_path):
    landmarks = _landmarks()
    path = write_monailabel_json(tmp_path / "001.json", landmarks, spacing=(0.1, 0.12))
    data = json.loads(path.read_text())
    assert [e["abbreviation"] for e in data["landmarks"]] == list(ISBI2015.abbreviations)
    assert data["landmarks"][5]["x"] is None and data["landmarks"][5]["y"] is None
    with pytest.warns(MissingLandmarkWarning, match=r"\['B'\]"):
        label = read_monailabel_json(path)
    np.testing.assert_array_equal(label.landmarks, landmarks)  # NaN == NaN for assert_array_equal
    assert label.landmark_set.name == "isbi2015"
    np.testing.assert_allclose(label.spacing, [0.1, 0.12])

    # entries in any order, matched by abbreviation or name; extra keys (a saved prediction) are ignored
    shuffled = dict(data, landmarks=[dict(e, confidence=0.5) for e in reversed(data["landmarks"])])
    shuffled["landmarks"][0] = {"name": "Articulare", "x": 7.5, "y": 8.25}
    expected = landmarks.copy()
    expected[18] = [7.5, 8.25]
    np.testing.assert_array_equal(parse_monailabel_label(shuffled).landmarks, expected)
    # the datalist form: [x, y] pairs in set order, null for missing
    pairs = {"landmarks": [None if np.isnan(p).any() else list(p) for p in landmarks]}
    np.testing.assert_array_equal(parse_monailabel_label(pairs).landmarks, landmarks)


@pytest.mark.parametrize(
    "landmarks, match",
    [
        ([{"abbreviation": "Q", "x": 1, "y": 2}], r"landmarks\[0\]: 'Q' is not a landmark of the isbi2015"),
        ([{"abbreviation": "S", "x": 1, "y": 2}, {"name": "sella", "x": 3, "y": 4}], r"'S' already given"),
        ([{"abbreviation": "S", "x": 1, "y": None}], "'x' and 'y' must both be numbers or both null"),
        ([{"abbreviation": "S", "x": "a", "y": 2}], "not a number"),
        ([[1, 2]] * 18, "18 \\[x, y\\] pairs, expected 19"),
    ],
)
def test_label_errors_name_the_entry(landmarks, match):
    with pytest.raises(LandmarkFileError, match=match):
        parse_monailabel_label({"landmarks": landmarks}, where="001.json")


def test_label_set_mismatch_and_file_errors(tmp_path):
    with pytest.raises(LandmarkFileError, match="'aariz' set, expected the isbi2015 set"):
        parse_monailabel_label({"landmark_set": "aariz", "landmarks": []}, "isbi2015")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(LandmarkFileError, match="bad.json: not valid JSON"):
        read_monailabel_json(bad)
    with pytest.raises(FileNotFoundError, match="no label file"):
        read_monailabel_json(tmp_path / "none.json")


def test_datastore_folder_to_datalist(tmp_path):
    for i, image_id in enumerate(("001", "002", "003")):
        Image.new("L", (40, 30)).save(tmp_path / f"{image_id}.png")
        spacing = (0.2, 0.2) if image_id == "002" else None  # 002's label carries its own spacing
        label = tmp_path / "labels" / "final" / f"{image_id}.json"
        write_monailabel_json(label, np.full((19, 2), i + 1.0), spacing=spacing)
    with pytest.raises(SpacingError, match="001.png carries no pixel spacing"):
        load_monailabel(tmp_path)
    records = load_monailabel(tmp_path, spacing=0.1)
    assert [r.id for r in records] == ["001", "002", "003"]
    assert [list(r.spacing) for r in records] == [[0.1, 0.1], [0.2, 0.2], [0.1, 0.1]]
    assert records[1].image == str(tmp_path / "002.png") and records[1].landmarks[0, 0] == 2.0

    same = monailabel_datalist(records)  # few labels: validate on the training images
    assert [i["id"] for i in same["training"]] == [i["id"] for i in same["validation"]] == ["001", "002", "003"]
    assert same["test"] == [] and same["training"][0]["landmarks"][0] == [1.0, 1.0]
    held_out = monailabel_datalist(tmp_path, val_fraction=0.34, spacing=0.1)
    assert len(held_out["training"]) == 2 and len(held_out["validation"]) == 1
    assert {i["id"] for i in held_out["training"] + held_out["validation"]} == {"001", "002", "003"}
    with pytest.raises(ValueError, match="no labelled images"):
        monailabel_datalist([])


def test_points_is_a_deprecated_alias_of_landmarks():
    label = parse_monailabel_label({"landmarks": [[1.0, 2.0]] * 19})
    with pytest.warns(FutureWarning, match="use MonaiLabelLandmarks.landmarks instead"):
        points = label.points
    np.testing.assert_array_equal(points, label.landmarks)
    np.testing.assert_array_equal(label.landmarks, np.tile([[1.0, 2.0]], (19, 1)))
