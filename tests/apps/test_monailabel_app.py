"""The MONAI Label app: label format, settings, and a real server over real ISBI radiographs.

The server tests use the session's one real server (the ``server`` fixture of tests/apps/conftest.py; see
ml_server.py for how it is started): three ISBI images, a copy of ``bundles/cephres``, model input 64x80.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest

from PIL import Image

from monai_ceph.apps.monailabel.config import DEFAULT_SPACING, CephAppConfig  # imports no monailabel
from monai_ceph.data import (
    ISBI2015,
    LandmarkFileError,
    MissingLandmarkWarning,
    SpacingError,
    load_monailabel,
    monailabel_datalist,
    monailabel_label,
    parse_monailabel_label,
    read_monailabel_json,
    write_monailabel_json,
)
from monai_ceph.data.isbi import load_isbi2015

from ml_server import IMAGE_IDS, NO_MONAILABEL, SMALL, copy_bundle as _copy_bundle, write_dicom


def _infer_module():
    """The infer task module; skips (label format tests still run) without MONAI Label."""
    pytest.importorskip("monailabel", reason=NO_MONAILABEL)
    from monai_ceph.apps.monailabel import infer

    return infer


def _points(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    points = np.round(rng.uniform(10, 1900, size=(19, 2)), 2)
    points[5] = np.nan
    return points


# ---------------------------------------------------------------------------------------------- label format


def test_label_round_trip_and_forms(tmp_path):
    points = _points()
    path = write_monailabel_json(tmp_path / "001.json", points, spacing=(0.1, 0.12))
    data = json.loads(path.read_text())
    assert [e["abbreviation"] for e in data["landmarks"]] == list(ISBI2015.abbreviations)
    assert data["landmarks"][5]["x"] is None and data["landmarks"][5]["y"] is None
    with pytest.warns(MissingLandmarkWarning, match=r"\['B'\]"):
        label = read_monailabel_json(path)
    np.testing.assert_array_equal(label.points, points)  # NaN == NaN for assert_array_equal
    assert label.landmark_set.name == "isbi2015"
    np.testing.assert_allclose(label.spacing, [0.1, 0.12])

    # entries in any order, matched by abbreviation or name; extra keys (a saved prediction) are ignored
    shuffled = dict(data, landmarks=[dict(e, confidence=0.5) for e in reversed(data["landmarks"])])
    shuffled["landmarks"][0] = {"name": "Articulare", "x": 7.5, "y": 8.25}
    expected = points.copy()
    expected[18] = [7.5, 8.25]
    np.testing.assert_array_equal(parse_monailabel_label(shuffled).points, expected)
    # the datalist form: [x, y] pairs in set order, null for missing
    pairs = {"landmarks": [None if np.isnan(p).any() else list(p) for p in points]}
    np.testing.assert_array_equal(parse_monailabel_label(pairs).points, points)


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


# ------------------------------------------------------------------------------------------ settings, spacing


def test_conf_parsing(tmp_path):
    bundle = _copy_bundle(tmp_path / "cephres")
    config = CephAppConfig.from_conf({"bundle": str(bundle), "spacing": "0.1,0.12", "spatial_size": "[64, 80]"})
    assert config.name == "cephres" and config.spacing == (0.1, 0.12) and config.spacing_source == "conf"
    assert config.spatial_size == (64, 80)
    assert config.parser().get_parsed_content("ckpt_path") == f"{bundle}/models/model.pt"
    default = CephAppConfig.from_conf({"bundle": str(bundle)})
    assert default.spacing == DEFAULT_SPACING and default.spacing_source == "default"
    assert default.spatial_size == (576, 736)
    with pytest.raises(ValueError, match="no configs/train.json"):
        CephAppConfig.from_conf({"bundle": str(tmp_path)})
    with pytest.raises(SpacingError, match="--conf spacing"):
        CephAppConfig.from_conf({"bundle": str(bundle), "spacing": "-1"})
    with pytest.raises(ValueError, match="--conf spatial_size"):
        CephAppConfig.from_conf({"bundle": str(bundle), "spatial_size": "64"})


def test_source_spacing_precedence(tmp_path):
    dicom = write_dicom(tmp_path / "x.dcm", np.zeros((6, 5)), PixelSpacing=[0.2, 0.1])  # (row, column) = (y, x)
    step = _infer_module().SourceSpacingd((0.1, 0.1), "conf")
    out = step({"image": str(dicom), "spacing": [0.5, 0.5], "landmarks": [[1, 2]]})
    assert out["spacing"] == [0.1, 0.2] and out["spacing_source"] == "dicom" and "landmarks" not in out
    out = step({"image": str(tmp_path / "a.png"), "spacing": 0.15})
    assert out["spacing"] == out["source_spacing"] == [0.15, 0.15] and out["spacing_source"] == "request"
    out = step({"image": str(tmp_path / "a.png")})
    assert out["spacing"] == [0.1, 0.1] and out["spacing_source"] == "conf"
    with pytest.raises(SpacingError, match="request 'spacing'"):
        step({"image": "a.png", "spacing": 0})


def test_infer_task_on_dicom(tmp_path):
    pixels = np.zeros((100, 80))
    pixels[60:70, 10:20] = 1000
    dicom = write_dicom(tmp_path / "x.dcm", pixels, PixelSpacing=[0.2, 0.1])
    config = CephAppConfig.from_conf({"bundle": str(_copy_bundle(tmp_path / "cephres")), "spatial_size": SMALL})
    task = _infer_module().CephLandmarkInfer(config)
    _, result = task({"image": str(dicom), "device": "cpu"})
    assert result["spacing"] == [0.1, 0.2] and result["spacing_source"] == "dicom"
    assert result["image_size"] == [80, 100]
    for entry in result["landmarks"]:
        assert -0.5 <= entry["x"] <= 79.5 and -0.5 <= entry["y"] <= 99.5
        assert entry["x_mm"] == pytest.approx(entry["x"] * 0.1) and entry["y_mm"] == pytest.approx(entry["y"] * 0.2)


# ------------------------------------------------------------------------------------------------ the server
# (the `server` fixture: tests/apps/conftest.py, one server for the whole session)


def test_info(server):
    info = server.get("/info/").json()
    assert list(info["models"]) == ["cephres"] and list(info["trainers"]) == ["cephres"]
    assert info["models"]["cephres"]["labels"] == list(ISBI2015.abbreviations)
    landmarks = info["landmarks"]
    assert landmarks["landmark_set"] == "isbi2015"
    assert landmarks["abbreviations"] == list(ISBI2015.abbreviations) and landmarks["names"] == list(ISBI2015.names)
    assert landmarks["groups"] == {g: list(m) for g, m in ISBI2015.groups.items()}
    assert landmarks["spacing"] == {"default": [0.1, 0.1], "source": "conf"} and landmarks["spatial_size"] == [64, 80]
    assert info["datastore"]["total"] == len(IMAGE_IDS)


def _check_result(result: dict, width: int, height: int) -> np.ndarray:
    assert result["landmark_set"] == "isbi2015" and result["image_size"] == [width, height]
    assert result["spacing"] == [0.1, 0.1] and result["spacing_source"] == "conf"
    entries = result["landmarks"]
    assert [e["abbreviation"] for e in entries] == list(ISBI2015.abbreviations)
    assert [e["name"] for e in entries] == list(ISBI2015.names)
    points = np.array([[e["x"], e["y"]] for e in entries], dtype=float)
    assert np.isfinite(points).all()
    assert (points >= -0.5).all() and (points[:, 0] <= width - 0.5).all() and (points[:, 1] <= height - 0.5).all()
    for e in entries:
        assert e["x_mm"] == pytest.approx(e["x"] * 0.1) and e["y_mm"] == pytest.approx(e["y"] * 0.1)
        assert 0.0 <= e["confidence"] <= 1.0 and e["group"] in ISBI2015.groups
    # the prediction is itself a valid label
    np.testing.assert_array_equal(parse_monailabel_label(result).points, points)
    return points


def test_infer_datastore_image_and_upload(server):
    width, height = Image.open(server.studies / "001.jpg").size
    by_id = _check_result(server.infer("001"), width, height)
    with open(server.studies / "003.jpg", "rb") as f:
        response = server.post("/infer/cephres?output=json", files={"file": ("003.jpg", f, "image/jpeg")})
    assert response.status_code == 200, response.text
    uploaded = _check_result(response.json(), *Image.open(server.studies / "003.jpg").size)
    assert not np.array_equal(by_id, uploaded)  # a different radiograph, a different prediction


def test_infer_save_label_stores_the_prediction(server):
    response = server.post("/infer/cephres?image=003&output=json", data={"params": json.dumps({"save_label": True})})
    assert response.status_code == 200, response.text
    stored = server.get("/datastore/label", params={"label": "003", "tag": "original"})
    assert stored.status_code == 200, stored.text
    np.testing.assert_array_equal(parse_monailabel_label(stored.json()).points,
                                  parse_monailabel_label(response.json()).points)


@pytest.mark.parametrize(
    "query, status",
    [
        ("/infer/cephres?image=../../etc/passwd", 400),
        ("/infer/cephres?image=/etc/passwd", 400),
        ("/infer/cephres?image=999", 404),
        ("/infer/nope?image=001", 404),
    ],
)
def test_infer_bad_requests_are_4xx(server, query, status):
    response = server.post(query)
    assert response.status_code == status, response.text
    assert "detail" in response.json()


def test_label_save_and_read_back(server):
    truth = _points(seed=3)
    label = monailabel_label(truth, spacing=0.1)
    response = server.put_label("002", label)
    assert response.status_code == 200 and response.json()["label"] == "002", response.text
    stored = server.get("/datastore/label", params={"label": "002", "tag": "final"})
    assert stored.status_code == 200
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingLandmarkWarning)
        back = parse_monailabel_label(stored.json())
    np.testing.assert_array_equal(back.points, truth)
    assert math.isnan(back.points[5, 0])
    objects = server.get("/datastore/", params={"output": "all"}).json()["objects"]
    assert objects["002"]["labels"]["final"]["ext"] == ".json"

    # refused, and the stored label is unchanged
    bad = dict(label, landmarks=label["landmarks"] + [{"abbreviation": "S", "x": 1, "y": 1}])
    response = server.put_label("002", bad)
    assert response.status_code == 400 and "'S' already given" in response.json()["detail"]
    assert server.get("/datastore/label", params={"label": "002", "tag": "final"}).json() == stored.json()
    assert server.put_label("999", label).status_code == 404
    assert server.put_label("002", label, tag="../../escape").status_code == 400
    assert not (server.studies.parent / "escape").exists()


def test_training_round_updates_the_model(server, isbi_dir):
    before = server.infer("001")
    assert before["checkpoint"] is None and before["untrained"] is True
    records = {r.id: r for r in load_isbi2015(isbi_dir) if r.id in IMAGE_IDS[:2]}
    for image_id, record in records.items():
        assert server.put_label(image_id, monailabel_label(record.landmarks)).status_code == 200

    task = server.post("/train/cephres", json={"max_epochs": 1})
    assert task.status_code == 200, task.text
    status = server.wait_for_training()
    assert status["status"] == "DONE", "\n".join(status.get("details", [])) + server.log_tail()

    stats = server.get("/info/").json()["train_stats"]["cephres"]
    assert stats["epochs"] == 1 and stats["iterations"] >= 1 and math.isfinite(stats["train_loss"])
    assert stats["images"] == {"training": 2, "validation": 2} and stats["initialized_from"] is None
    assert math.isfinite(stats["best_val_mre_mm"]) and stats["spatial_size"] == [64, 80]
    checkpoint = server.bundle / "models" / "model.pt"
    assert checkpoint.is_file() and stats["checkpoint"] == str(checkpoint)
    datalist = json.loads(Path(stats["datalist"]).read_text())
    assert sorted(i["id"] for i in datalist["training"]) == list(IMAGE_IDS[:2])
    np.testing.assert_allclose(
        np.array(datalist["training"][0]["landmarks"], dtype=float), records["001"].landmarks, equal_nan=True
    )

    after = server.infer("001")
    assert after["checkpoint"] == str(checkpoint) and after["untrained"] is False
    moved = [(a["x"], a["y"]) != (b["x"], b["y"]) for a, b in zip(after["landmarks"], before["landmarks"])]
    assert any(moved)  # the new weights were loaded
