import json

import numpy as np
import pytest
from PIL import Image

from monai_ceph.data import (
    ISBI2015,
    LandmarkFileError,
    MissingLandmarkWarning,
    SpacingError,
    load_labelme,
    read_labelme_json,
)


def _points(n=19, shift=0.0):
    k = np.arange(n)
    return np.stack([10.25 + 3 * k, 40.5 + 2 * k], axis=1) + shift


def _labelme(points, labels, image_path="img.png"):
    shapes = [
        {"label": lab, "points": [[float(x), float(y)]], "group_id": None, "shape_type": "point", "flags": {}}
        for lab, (x, y) in zip(labels, points)
    ]
    # a polygon is not a landmark and must be ignored, even with a landmark's label
    shapes.insert(3, {"label": "S", "points": [[0, 0], [5, 0], [5, 5]], "shape_type": "polygon"})
    return {"version": "5.4.1", "flags": {}, "shapes": shapes, "imagePath": image_path, "imageData": None,
            "imageHeight": 120, "imageWidth": 100}


# abbreviations, full names and odd case mixed, written in reverse order
LABELS = [a if k % 3 else n.upper() for k, (a, n) in enumerate(zip(ISBI2015.abbreviations, ISBI2015.names))]


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "labelme"
    root.mkdir()
    for name in ("a", "b", "c"):
        Image.new("L", (100, 120)).save(root / f"{name}.png")
        data = _labelme(_points(shift=ord(name))[::-1], LABELS[::-1], image_path=f"{name}.png")
        (root / f"{name}.json").write_text(json.dumps(data))
    return root


def _write(path, data):
    path.write_text(json.dumps(data))
    return path


def test_read_points_in_set_order(folder):
    points, image = read_labelme_json(folder / "b.json")
    np.testing.assert_array_equal(points, _points(shift=ord("b")))
    assert image == folder / "b.png"


def test_load_folder(folder):
    records = load_labelme(folder, spacing=0.12)
    assert [r.id for r in records] == ["a", "b", "c"]
    assert all(r.split is None and r.landmark_set == "isbi2015" for r in records)
    np.testing.assert_array_equal(records[2].spacing, [0.12, 0.12])
    np.testing.assert_array_equal(load_labelme(folder, spacing=(0.1, 0.2))[0].spacing, [0.1, 0.2])


def test_image_found_beside_json_when_image_path_is_stale(folder):
    data = json.loads((folder / "a.json").read_text())
    data["imagePath"] = "..\\elsewhere\\a.png"
    points, image = read_labelme_json(_write(folder / "a.json", data))
    assert image == folder / "a.png"
    (folder / "a.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"a.json: image '..\\\\elsewhere\\\\a.png' not found"):
        read_labelme_json(folder / "a.json")


def test_spacing_required_and_positive(folder):
    with pytest.raises(SpacingError, match=r"a.png: the image carries no pixel spacing; pass spacing="):
        load_labelme(folder)
    for bad in (0, -0.1, (0.1, 0.0), float("nan")):
        with pytest.raises(SpacingError, match="must be finite and > 0"):
            load_labelme(folder, spacing=bad)


def test_missing_landmark_is_nan_with_warning(tmp_path):
    Image.new("L", (100, 120)).save(tmp_path / "img.png")
    data = _labelme(_points()[:17], ISBI2015.abbreviations[:17])
    with pytest.warns(MissingLandmarkWarning, match=r"no point for \['ANS', 'Ar'\]"):
        points, _ = read_labelme_json(_write(tmp_path / "x.json", data))
    assert np.isnan(points[17:]).all()
    np.testing.assert_array_equal(points[:17], _points()[:17])


def test_other_landmark_set(tmp_path):
    Image.new("L", (100, 120)).save(tmp_path / "img.png")
    labels = ["Pronasale", "N`", "Sella"]
    data = _labelme(_points(3), labels)
    with pytest.warns(MissingLandmarkWarning):
        points, _ = read_labelme_json(_write(tmp_path / "x.json", data), landmark_set="aariz")
    assert points.shape == (29, 2)
    np.testing.assert_array_equal(points[[8, 26, 10]], _points(3))


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d["shapes"][5].update(label="Pn"), r"shapes\[5\] label 'Pn': 'Pn' is not a landmark of the isbi2015 set"),
        (lambda d: d["shapes"][5].update(label="Sella"), r"shapes\[5\] label 'Sella': landmark 'S' already given"),
        (lambda d: d["shapes"][1].update(points=[["12a", 4]]), r"shapes\[1\] label 'N' x: coordinate '12a'"),
        (lambda d: d["shapes"][1].update(points=[[1, None]]), r"shapes\[1\] label 'N': 'x' and 'y' must both be numbers or both null"),
        (lambda d: d["shapes"][1].update(points=[[1, 2], [3, 4]]), r"shapes\[1\] label 'N': 'points' must be"),
        (lambda d: d.pop("shapes"), r"x.json: not a labelme file"),
    ],
)
def test_bad_files(tmp_path, edit, message):
    Image.new("L", (100, 120)).save(tmp_path / "img.png")
    data = _labelme(_points(), ISBI2015.abbreviations)
    edit(data)
    with pytest.raises(LandmarkFileError, match=message):
        read_labelme_json(_write(tmp_path / "x.json", data))


def test_folder_skips_non_labelme_json(folder):
    (folder / "datalist.json").write_text(json.dumps({"training": []}))
    with pytest.warns(UserWarning, match="datalist.json: not a labelme file"):
        assert len(load_labelme(folder, spacing=0.1)) == 3
    (folder / "broken.json").write_text("{")
    with pytest.raises(LandmarkFileError, match="broken.json: not valid JSON"):
        load_labelme(folder, spacing=0.1)


def test_dicom_image_uses_its_own_spacing(tmp_path, write_dicom):
    write_dicom(tmp_path / "img.dcm", np.zeros((12, 10)), PixelSpacing=[0.2, 0.15])
    _write(tmp_path / "img.json", _labelme(_points(), ISBI2015.abbreviations, image_path="img.dcm"))
    (record,) = load_labelme(tmp_path, spacing=1.0)  # the header wins over the default
    np.testing.assert_allclose(record.spacing, [0.15, 0.2])
    assert record.image.endswith("img.dcm")
