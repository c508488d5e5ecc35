import csv
import json

import numpy as np
import pytest
from PIL import Image

from monai_ceph.data import (
    AARIZ,
    AARIZ_TO_ISBI2015,
    LandmarkFileError,
    MissingLandmarkWarning,
    SpacingError,
    build_datalist,
    load_aariz,
    read_aariz_json,
    read_aariz_pixel_sizes,
)

# (title, symbol) as the Aariz annotation files write them, in the order of the AARIZ set
OFFICIAL = [
    ("A-point", "A"), ("Anterior Nasal Spine", "ANS"), ("B-point", "B"), ("Menton", "Me"), ("Nasion", "N"),
    ("Orbitale", "Or"), ("Pogonion", "Pog"), ("Posterior Nasal Spine", "PNS"), ("Pronasale", "Pn"),
    ("Ramus", "R"), ("Sella", "S"), ("Articulare", "Ar"), ("Condylion", "Co"), ("Gnathion", "Gn"),
    ("Gonion", "Go"), ("Porion", "Po"), ("Lower 2nd PM Cusp Tip", "LPM"), ("Lower Incisor Tip", "LIT"),
    ("Lower Molar Cusp Tip", "LMT"), ("Upper 2nd PM Cusp Tip", "UPM"), ("Upper Incisor Apex", "UIA"),
    ("Upper Incisor Tip", "UIT"), ("Upper Molar Cusp Tip", "UMT"), ("Lower Incisor Apex", "LIA"),
    ("Labrale inferius", "Li"), ("Labrale superius", "Ls"), ("Soft Tissue Nasion", "N`"),
    ("Soft Tissue Pogonion", "Pog`"), ("Subnasale", "Sn"),
]
IDS = {"train": "ckaaa0train", "valid": "ckbbb0valid", "test": "ckccc0test"}
PIXEL = {"ckaaa0train": 0.1, "ckbbb0valid": 0.127, "ckccc0test": 0.14}


def _truth(image_id):
    """Senior annotation of the fixture: landmark k at (50 + 10 k + n, 60 + 5 k + n), n = len(image_id)."""
    k = np.arange(29)
    return np.stack([50.0 + 10 * k, 60.0 + 5 * k], axis=1) + len(image_id)


def _annotation(points, order=None, key="both"):
    order = range(29) if order is None else order
    entries = []
    for k in order:
        title, symbol = OFFICIAL[k]
        entry = {"landmark_id": f"id{k}", "value": {"x": points[k, 0], "y": points[k, 1]}}
        if key in ("both", "title"):
            entry["title"] = title
        if key in ("both", "symbol"):
            entry["symbol"] = symbol
        entries.append(entry)
    return {"ceph_id": "x", "landmarks": entries}


def _write_json(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def aariz_dir(tmp_path):
    """One image per split; senior = _truth, junior = _truth + (2, -4) written in reverse order."""
    root = tmp_path / "Aariz"
    for split, image_id in IDS.items():
        images = root / split / "Cephalograms"
        images.mkdir(parents=True)
        Image.new("L", (40, 30)).save(images / f"{image_id}.png")
        base = root / split / "Annotations" / "Cephalometric Landmarks"
        _write_json(base / "Senior Orthodontists" / f"{image_id}.json", _annotation(_truth(image_id)))
        junior = _annotation(_truth(image_id) + [2, -4], order=reversed(range(29)))
        _write_json(base / "Junior Orthodontists" / f"{image_id}.json", junior)
    with open(root / "cephalogram_machine_mappings.csv", "w", newline="", encoding="utf-8-sig") as f:
        writer = csv.writer(f)
        writer.writerow(["cephalogram_id", "machine", "pixel_size", "image_format", "mode"])
        for split, image_id in IDS.items():
            writer.writerow([image_id, "Machine", PIXEL[image_id], "png", split.capitalize()])
    return root


def _senior(root, split):
    return root / split / "Annotations" / "Cephalometric Landmarks" / "Senior Orthodontists" / f"{IDS[split]}.json"


def test_ground_truth_is_mean_of_senior_and_junior(aariz_dir):
    records = load_aariz(aariz_dir)
    assert [(r.split, r.id) for r in records] == [(s, i) for s, i in IDS.items()]
    for r in records:
        assert r.landmark_set == "aariz" and r.landmarks.shape == (29, 2)
        np.testing.assert_allclose(r.landmarks, _truth(r.id) + [1, -2])  # unrounded mean
        np.testing.assert_array_equal(r.spacing, [PIXEL[r.id]] * 2)
    assert records[1].image.endswith("valid/Cephalograms/ckbbb0valid.png")
    senior, junior = load_aariz(aariz_dir, "senior"), load_aariz(aariz_dir, "junior")
    np.testing.assert_array_equal(senior[2].landmarks, _truth(IDS["test"]))
    np.testing.assert_array_equal(junior[0].landmarks, _truth(IDS["train"]) + [2, -4])
    with pytest.raises(ValueError, match="ground_truth"):
        load_aariz(aariz_dir, "expert")


def test_isbi_subset(aariz_dir):
    r = load_aariz(aariz_dir, landmark_set="isbi2015")[0]
    assert r.landmark_set == "isbi2015" and r.landmarks.shape == (19, 2)
    expected = _truth(r.id)[list(AARIZ_TO_ISBI2015)] + [1, -2]
    np.testing.assert_allclose(r.landmarks, expected)
    # Sella is ISBI landmark 0 and Aariz landmark 10
    np.testing.assert_allclose(r.landmarks[0], _truth(r.id)[10] + [1, -2])


@pytest.mark.parametrize("key", ["title", "symbol"])
def test_matched_by_title_or_symbol_alone(tmp_path, key):
    points = _truth("abc")
    path = _write_json(tmp_path / "a.json", _annotation(points, order=[28, 3, *range(3), *range(4, 28)], key=key))
    np.testing.assert_array_equal(read_aariz_json(path), points)


def test_json_errors(tmp_path):
    points = _truth("abc")
    data = _annotation(points)
    data["landmarks"][5]["symbol"] = "Xx"
    data["landmarks"][5]["title"] = "Nowhere"
    with pytest.raises(LandmarkFileError, match=r"bad.json landmarks\[5\]: unknown landmark \(symbol 'Xx'"):
        read_aariz_json(_write_json(tmp_path / "bad.json", data))
    data = _annotation(points)
    data["landmarks"][5]["symbol"] = "N"
    with pytest.raises(LandmarkFileError, match=r"symbol 'N' and title 'Orbitale' name different landmarks"):
        read_aariz_json(_write_json(tmp_path / "bad.json", data))
    data = _annotation(points)
    data["landmarks"].append(dict(data["landmarks"][4]))
    with pytest.raises(LandmarkFileError, match=r"landmarks\[29\]: landmark 'N' already given at landmarks\[4\]"):
        read_aariz_json(_write_json(tmp_path / "bad.json", data))
    data = _annotation(points)
    data["landmarks"][2]["value"]["y"] = "12px"
    with pytest.raises(LandmarkFileError, match=r"landmarks\[2\] y: coordinate '12px' is not a number"):
        read_aariz_json(_write_json(tmp_path / "bad.json", data))
    data["landmarks"][2]["value"] = {"x": 1}
    with pytest.raises(LandmarkFileError, match=r"landmarks\[2\]: 'value' must be"):
        read_aariz_json(_write_json(tmp_path / "bad.json", data))
    with pytest.raises(LandmarkFileError, match="expected an object with a 'landmarks' list"):
        read_aariz_json(_write_json(tmp_path / "bad.json", [1, 2]))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(LandmarkFileError, match="bad.json: not valid JSON"):
        read_aariz_json(tmp_path / "bad.json")


def test_missing_landmarks_are_nan_and_average_uses_who_placed_it(aariz_dir):
    path = _senior(aariz_dir, "train")
    data = json.loads(path.read_text())
    data["landmarks"][1]["value"] = None  # ANS
    del data["landmarks"][0]  # A-point
    path.write_text(json.dumps(data))
    with pytest.warns(MissingLandmarkWarning, match=r"no position for \['A', 'ANS'\]"):
        senior = read_aariz_json(path)
    assert np.isnan(senior[:2]).all() and np.isfinite(senior[2:]).all()
    with pytest.warns(MissingLandmarkWarning):
        average = load_aariz(aariz_dir)[0]
    truth = _truth(IDS["train"])
    np.testing.assert_allclose(average.landmarks[:2], truth[:2] + [2, -4])  # junior's only
    np.testing.assert_allclose(average.landmarks[2:], truth[2:] + [1, -2])


def test_pixel_size_csv(aariz_dir):
    csv_path = aariz_dir / "cephalogram_machine_mappings.csv"
    assert read_aariz_pixel_sizes(csv_path) == PIXEL
    text = csv_path.read_text(encoding="utf-8-sig")
    csv_path.write_text(text.replace("ckbbb0valid,Machine,0.127", "ckbbb0valid,Machine,0"))
    with pytest.raises(SpacingError, match=r"line 3 pixel_size: pixel spacing '0' must be finite and > 0"):
        load_aariz(aariz_dir)
    csv_path.write_text(text.replace("ckbbb0valid,Machine,0.127", "ckbbb0valid,Machine,abc"))
    with pytest.raises(SpacingError, match="line 3 pixel_size: pixel spacing 'abc' is not numeric"):
        read_aariz_pixel_sizes(csv_path)
    csv_path.write_text(text + "ckaaa0train,Machine,0.1,png,Train\n")
    with pytest.raises(LandmarkFileError, match="line 5: cephalogram_id 'ckaaa0train' appears twice"):
        read_aariz_pixel_sizes(csv_path)
    csv_path.write_text(text.replace("ckccc0test", "other"))
    with pytest.raises(LandmarkFileError, match="no pixel_size for cephalogram_id 'ckccc0test'"):
        load_aariz(aariz_dir)
    csv_path.write_text("cephalogram_id,machine\nx,y\n")
    with pytest.raises(LandmarkFileError, match="needs columns 'cephalogram_id' and 'pixel_size'"):
        read_aariz_pixel_sizes(csv_path)


def test_missing_files(aariz_dir):
    (aariz_dir / "test" / "Cephalograms" / f"{IDS['test']}.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"no image ckccc0test\..*test/Cephalograms"):
        load_aariz(aariz_dir)
    _senior(aariz_dir, "valid").unlink()
    with pytest.raises(FileNotFoundError, match="Senior Orthodontists/ckbbb0valid.json"):
        load_aariz(aariz_dir)
    with pytest.raises(FileNotFoundError, match="no train/valid/test folder"):
        load_aariz(aariz_dir / "train")


def test_capitalised_split_folders_and_datalist(aariz_dir):
    (aariz_dir / "valid").rename(aariz_dir / "Valid")
    datalist = build_datalist(aariz_dir, fmt="aariz")
    assert [len(datalist[k]) for k in ("training", "validation", "test")] == [1, 1, 1]
    item = datalist["validation"][0]
    assert item["id"] == IDS["valid"] and item["spacing"] == [0.127, 0.127] and item["landmark_set"] == "aariz"
    assert item["landmarks"][0] == [float(v) for v in _truth(IDS["valid"])[0] + [1, -2]]
    assert datalist["landmark_names"] == list(AARIZ.abbreviations) and datalist["ground_truth"] == "average"
