"""The MONAI Label app: settings, the spacing step, the infer task, and a real server over real ISBI radiographs
(the label format itself: tests/data/test_monailabel_labels.py).

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

from monai_ceph.analysis import (
    ISBI2015_CLASSIFICATION,
    classify,
    determinable_measurements,
    get_measurement,
    measure_with_reasons,
)
from monai_ceph.apps.monailabel.config import DEFAULT_SPACING, CephAppConfig  # imports no monailabel
from monai_ceph.data import ISBI2015, MissingLandmarkWarning, SpacingError, monailabel_label, parse_monailabel_label
from monai_ceph.data.isbi import load_isbi2015
from monai_ceph.data.locations import pretrained_dir

from ml_server import IMAGE_IDS, NO_MONAILABEL, SMALL, copy_bundle as _copy_bundle


def _infer_module():
    """The infer task module; skips (label format tests still run) without MONAI Label."""
    pytest.importorskip("monailabel", reason=NO_MONAILABEL)
    from monai_ceph.apps.monailabel import infer

    return infer


# ------------------------------------------------------------------------------------------ settings, spacing


def test_conf_parsing(tmp_path):
    bundle = _copy_bundle(tmp_path / "cephres")
    config = CephAppConfig.from_conf({"bundle": str(bundle), "spacing": "0.1,0.12", "spatial_size": "[64, 80]",
                                      "pretrained": "none"})
    assert config.name == "cephres" and config.spacing == (0.1, 0.12) and config.spacing_source == "conf"
    assert config.spatial_size == (64, 80)
    assert config.parser().get_parsed_content("ckpt_path") == f"{bundle}/models/model.pt"
    default = CephAppConfig.from_conf({"bundle": str(bundle), "pretrained": "none"})
    assert default.spacing == DEFAULT_SPACING and default.spacing_source == "default"
    assert default.spatial_size == (576, 736)
    # a bundle without a trained model of its own infers with the released model, at the size it was trained at
    released = CephAppConfig.from_conf({"bundle": str(bundle)})
    assert released.models_dir == pretrained_dir()
    trained = json.loads((pretrained_dir() / "model.json").read_text())
    assert released.spatial_size == tuple(trained["spatial_size"])
    assert released.parser().get_parsed_content("ckpt_path") == f"{pretrained_dir()}/model.pt"
    with pytest.raises(ValueError, match=r"--conf spatial_size .*trained at .*model.json"):
        CephAppConfig.from_conf({"bundle": str(bundle), "spatial_size": "[64, 80]"})
    with pytest.raises(ValueError, match="no configs/train.json"):
        CephAppConfig.from_conf({"bundle": str(tmp_path)})
    with pytest.raises(SpacingError, match="--conf spacing"):
        CephAppConfig.from_conf({"bundle": str(bundle), "spacing": "-1"})
    with pytest.raises(ValueError, match="--conf spatial_size"):
        CephAppConfig.from_conf({"bundle": str(bundle), "spatial_size": "64"})


def test_spacing_from_source_precedence(tmp_path, write_dicom):
    dicom = write_dicom(tmp_path / "x.dcm", np.zeros((6, 5)), PixelSpacing=[0.2, 0.1])  # (row, column) = (y, x)
    infer = _infer_module()
    step = infer.SpacingFromSource((0.1, 0.1), "conf")
    out = step({"image": str(dicom), "spacing": [0.5, 0.5], "landmarks": [[1, 2]]})
    assert out["spacing"] == [0.1, 0.2] and out["spacing_source"] == "dicom" and "landmarks" not in out
    out = step({"image": str(tmp_path / "a.png"), "spacing": 0.15})
    assert out["spacing"] == out["source_spacing"] == [0.15, 0.15] and out["spacing_source"] == "request"
    out = step({"image": str(tmp_path / "a.png")})
    assert out["spacing"] == [0.1, 0.1] and out["spacing_source"] == "conf"
    with pytest.raises(SpacingError, match="request 'spacing'"):
        step({"image": "a.png", "spacing": 0})
    # other keys: the request's spacing under "pixdim", the image path under "path"
    out = infer.SpacingFromSource((0.1, 0.1), image_key="path", spacing_key="pixdim")({"path": "a.png", "pixdim": 0.3})
    assert out["pixdim"] == out["source_spacing"] == [0.3, 0.3] and out["spacing_source"] == "request"

    with pytest.warns(FutureWarning, match="use SpacingFromSource instead"):
        old = infer.SourceSpacingd((0.1, 0.1), "conf")
    assert isinstance(old, infer.SpacingFromSource) and old({"image": str(dicom)})["spacing"] == [0.1, 0.2]


def test_infer_task_on_dicom(tmp_path, write_dicom):
    pixels = np.zeros((100, 80))
    pixels[60:70, 10:20] = 1000
    dicom = write_dicom(tmp_path / "x.dcm", pixels, PixelSpacing=[0.2, 0.1])
    config = CephAppConfig.from_conf({"bundle": str(_copy_bundle(tmp_path / "cephres")), "spatial_size": SMALL,
                                      "pretrained": "none"})
    task = _infer_module().CephLandmarkInfer(config)
    _, result = task({"image": str(dicom), "device": "cpu"})
    assert result["spacing"] == [0.1, 0.2] and result["spacing_source"] == "dicom"
    assert result["image_size"] == [80, 100]
    for entry in result["landmarks"]:
        assert -0.5 <= entry["x"] <= 79.5 and -0.5 <= entry["y"] <= 99.5
        assert entry["x_mm"] == pytest.approx(entry["x"] * 0.1) and entry["y_mm"] == pytest.approx(entry["y"] * 0.2)
    _check_measurements(result)


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
    np.testing.assert_array_equal(parse_monailabel_label(result).landmarks, points)
    _check_measurements(result)
    return points


def _check_measurements(result: dict) -> None:
    """The ``measurements`` block: every measurement the isbi2015 set determines, as ``measure``/``classify`` give
    them for the result's own landmarks and spacing, NaN as null with a reason."""
    block = result["measurements"]
    assert list(block) == list(determinable_measurements("isbi2015"))
    assert set(ISBI2015_CLASSIFICATION) <= set(block)
    landmarks = np.array([[np.nan if e["x"] is None else e["x"], np.nan if e["y"] is None else e["y"]]
                          for e in result["landmarks"]])
    values, reasons = measure_with_reasons(landmarks, result["spacing"], "isbi2015", list(block))
    classes = classify(values)
    for name, entry in block.items():
        m = get_measurement(name)
        assert entry["unit"] == m.unit and entry["norm"] == (None if m.norm is None else list(m.norm)), name
        if math.isnan(values[name]):
            assert entry["value"] is None and entry["reason"] == reasons[name], name
        else:
            # the bundle's step measures the float32 landmarks of the post-processing
            assert entry["value"] == pytest.approx(values[name], rel=1e-6, abs=1e-6) and "reason" not in entry, name
        assert entry["class"] == classes.get(name), name
    for name in ISBI2015_CLASSIFICATION:  # the challenge's eight measures are all classified
        assert isinstance(block[name]["class"], str) and block[name]["class"], name
    if block["ANB"]["value"] is not None:
        assert block["ANB"]["value"] == pytest.approx(block["SNA"]["value"] - block["SNB"]["value"], abs=1e-6)


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
    np.testing.assert_array_equal(parse_monailabel_label(stored.json()).landmarks,
                                  parse_monailabel_label(response.json()).landmarks)


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
    # distinct landmarks inside the 1935 x 2400 radiograph, B (index 5) missing
    truth = np.stack([np.linspace(10.25, 1900.5, 19), np.linspace(2300.75, 20.5, 19)], axis=1)
    truth[5] = np.nan
    label = monailabel_label(truth, spacing=0.1)
    response = server.put_label("002", label)
    assert response.status_code == 200 and response.json()["label"] == "002", response.text
    stored = server.get("/datastore/label", params={"label": "002", "tag": "final"})
    assert stored.status_code == 200
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingLandmarkWarning)
        back = parse_monailabel_label(stored.json())
    np.testing.assert_array_equal(back.landmarks, truth)
    assert math.isnan(back.landmarks[5, 0])
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
