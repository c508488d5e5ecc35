"""Every output says which model made it, and a phantom-demo model's results carry its warning everywhere: the API
result, the CLI table, the JSON files, the overlays and the MONAI Label result."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from monai_ceph.apps import LandmarkDetector
from monai_ceph.cli import main
from monai_ceph.handlers import PHANTOM_WARNING, model_provenance
from monai_ceph.handlers.overlay_saver import WARNING_COLOR


def _as_demo(trained_bundle, dst):
    """A copy of the trained test bundle whose model.json says it is the phantom demo (as the main job writes)."""
    shutil.copytree(trained_bundle, dst)
    settings_file = dst / "models" / "model.json"
    settings = json.loads(settings_file.read_text())
    settings["model"] = {"kind": "phantom demo"}
    settings_file.write_text(json.dumps(settings))
    return dst


def _image(phantoms):
    item = json.loads(phantoms.read_text())["test"][0]
    return str(phantoms.parent / item["image"]), item["spacing"]  # image paths are relative to the datalist


def _has_warning_colour(png) -> bool:
    pixels = np.asarray(Image.open(png).convert("RGB")).reshape(-1, 3)
    return bool((pixels == np.asarray(WARNING_COLOR)).all(-1).any())


def test_training_records_the_model_kind(trained_bundle):
    assert json.loads((trained_bundle / "models" / "model.json").read_text())["model"] == {"kind": "trained"}
    assert model_provenance(trained_bundle / "models" / "model.json") == {"kind": "trained"}
    assert model_provenance(trained_bundle / "models" / "missing.json") == {"kind": "unknown"}


def test_older_model_json_of_the_demo_size_is_a_demo(tmp_path):
    old = tmp_path / "model.json"
    old.write_text(json.dumps({"spatial_size": [96, 120], "landmark_set": "isbi2015"}))
    assert model_provenance(old) == {"kind": "phantom demo"}
    old.write_text(json.dumps({"spatial_size": [576, 736], "landmark_set": "isbi2015"}))
    assert model_provenance(old) == {"kind": "trained"}


def test_a_trained_model_has_no_demo_warning(trained_bundle, phantoms, tmp_path, capsys):
    image, spacing = _image(phantoms)
    result = LandmarkDetector.from_bundle(trained_bundle)(image, spacing=spacing)
    assert result.model == {"kind": "trained"} and PHANTOM_WARNING not in result.warnings
    out = tmp_path / "out"
    assert main(["detect", image, "--bundle", str(trained_bundle), "--spacing", str(spacing[0]), "--out", str(out)]) == 0
    assert "model trained by the user" in capsys.readouterr().out
    stem = result.id
    assert json.loads((out / "landmarks" / f"{stem}.json").read_text())["model"] == {"kind": "trained"}
    assert (out / "overlays" / f"{stem}.png").is_file()


def test_phantom_demo_warning_in_every_output(trained_bundle, phantoms, tmp_path, capsys):
    demo = _as_demo(trained_bundle, tmp_path / "demo")
    image, spacing = _image(phantoms)

    result = LandmarkDetector.from_bundle(demo)(image, spacing=spacing)
    assert result.model == {"kind": "phantom demo"} and PHANTOM_WARNING in result.warnings
    assert PHANTOM_WARNING in result.to_dict()["warnings"]
    assert PHANTOM_WARNING in result.to_csv_row()["warnings"]

    out = tmp_path / "out"
    assert main(["detect", image, "--bundle", str(demo), "--spacing", str(spacing[0]), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("phantom demo model;") and f"WARNING: {PHANTOM_WARNING}" in printed
    assert PHANTOM_WARNING in json.loads((out / "detections.json").read_text())[0]["warnings"]
    stem = result.id
    per_image = json.loads((out / "landmarks" / f"{stem}.json").read_text())
    assert per_image["model"] == {"kind": "phantom demo"} and PHANTOM_WARNING in per_image["warnings"]
    assert (out / "overlays" / f"{stem}.png").is_file()


@pytest.mark.parametrize("kind, warned", [("phantom demo", True), ("trained", False), ("released", False)])
def test_overlay_names_the_model_and_shows_the_warning(tmp_path, kind, warned):
    from monai_ceph.handlers import OverlaySaver

    item = {"image": np.zeros((1, 400, 300), dtype=np.float32), "id": "x", "pred_landmarks": np.full((19, 2), 200.0)}
    saver = OverlaySaver(tmp_path, source_image_key="image", label_key=None, model={"kind": kind})
    assert _has_warning_colour(saver.save(item)) == warned


def test_phantom_demo_warning_in_the_monailabel_result(trained_bundle, phantoms, tmp_path):
    pytest.importorskip("monailabel", reason="MONAI Label is not installed")
    from monai_ceph.apps.monailabel.config import CephAppConfig
    from monai_ceph.apps.monailabel.infer import CephLandmarkInfer

    demo = _as_demo(trained_bundle, tmp_path / "demo")
    image, spacing = _image(phantoms)
    task = CephLandmarkInfer(CephAppConfig.from_conf({"bundle": str(demo), "spacing": str(spacing[0])}))
    _, result = task({"image": image, "device": "cpu"})
    assert result["model"] == {"kind": "phantom demo"} and result["model_description"] == "phantom demo model"
    assert PHANTOM_WARNING in result["warnings"]
