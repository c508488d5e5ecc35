"""The ``monai-ceph`` command line: detect (table, per-image files, detections.csv/json), analyse, datalist, bundle,
``--help`` of each, and ``error: ...`` with exit status 2."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from monai_ceph.analysis import measure
from monai_ceph.cli import main


@pytest.fixture(scope="module")
def images(phantoms):
    with open(phantoms) as f:
        return [str(phantoms.parent / d["image"]) for d in json.load(f)["test"]]


def test_detect_writes_outputs(trained_bundle, images, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["detect", *images, "--bundle", str(trained_bundle), "--spacing", "3", "--out", str(out),
                 "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    ids = [Path(i).stem for i in images]
    assert ids[0] in printed and "x mm" in printed and f"wrote {out / 'detections.csv'}" in printed
    with open(out / "detections.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["id"] for r in rows] == ids
    per_image = json.loads((out / "landmarks" / f"{ids[0]}.json").read_text())
    assert float(rows[0]["S_x"]) == pytest.approx(per_image["landmarks"][0]["x"], abs=1e-4)
    for sub in ("overlays", "analysis_overlays", "measurements"):
        assert (out / sub / f"{ids[1]}.png").is_file() or (out / sub / f"{ids[1]}.json").is_file()
    records = json.loads((out / "detections.json").read_text())
    assert records[1]["id"] == ids[1] and len(records[1]["landmarks"]) == 19


def test_analyse(trained_bundle, images, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["detect", images[0], "--bundle", str(trained_bundle), "--spacing", "3", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["analyse", str(out / "landmarks" / f"{Path(images[0]).stem}.json"), "--out", str(tmp_path / "m.json")]) == 0
    assert "ANB" in capsys.readouterr().out
    rec = json.loads((out / "landmarks" / f"{Path(images[0]).stem}.json").read_text())
    points = np.array([[p["x"], p["y"]] for p in rec["landmarks"]])
    written = json.loads((tmp_path / "m.json").read_text())["measurements"]
    assert written["SNA"]["value"] == pytest.approx(measure(points, rec["spacing"])["SNA"])


def test_bundle_writes_a_ready_folder(tmp_path, capsys):
    target = tmp_path / "mybundle"
    assert main(["bundle", str(target)]) == 0
    assert "python -m monai.bundle run training" in capsys.readouterr().out
    for name in ("configs/train.json", "configs/inference.json", "configs/metadata.json", "docs/README.md", "LICENSE"):
        assert (target / name).is_file(), name
    assert main(["bundle", str(target)]) == 2
    assert capsys.readouterr().err.startswith(f"error: {target / 'configs'}: already exists; pass --force")
    assert main(["bundle", str(target), "--force"]) == 0


def test_datalist(isbi_dir, tmp_path, capsys):
    out = tmp_path / "datalist.json"
    assert main(["datalist", str(isbi_dir), str(out)]) == 0
    datalist = json.loads(out.read_text())
    assert len(datalist["training"]) == 150 and len(datalist["validation"]) == 150
    assert datalist["training"][0]["spacing"] == [0.1, 0.1]


@pytest.mark.parametrize("command, words", [
    ([], ["detect", "analyse", "datalist", "bundle"]),
    (["detect"], ["mm/pixel", "column, row", "default: the released model", "--pretrained", "DICOM files use their own"]),
    (["analyse"], ["degrees, mm, ratios", "LANDMARKS.json"]),
    (["bundle"], ["configs/ with metadata.json", "--force"]),
    (["datalist"], ["--ground-truth", "--split"]),
])
def test_help(command, words, capsys):
    with pytest.raises(SystemExit) as e:
        main([*command, "--help"])
    assert e.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for word in words:
        assert word in text


def test_errors(trained_bundle, images, tmp_path, capsys):
    assert main(["detect", images[0], "--bundle", str(trained_bundle)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "pass --spacing MM" in err and len(err.strip().splitlines()) == 1
    assert main(["detect", str(tmp_path / "none.png"), "--bundle", str(trained_bundle)]) == 2
    assert "none.png: no such image file or folder" in capsys.readouterr().err
    assert main(["detect", images[0], "--bundle", str(tmp_path), "--spacing", "3"]) == 2
    assert "not a bundle folder" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text('{"id": "x"}')
    assert main(["analyse", str(bad)]) == 2
    assert capsys.readouterr().err.startswith(f"error: {bad}: entry 0 has no \"landmarks\" list")
