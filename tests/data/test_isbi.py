import csv

import numpy as np
import pytest
from PIL import Image

from monai_ceph.data import (
    ISBI2015_SPLITS,
    LandmarkFileError,
    load_isbi2015,
    load_isbi2015_original,
    read_isbi_csv,
    read_isbi_txt,
)


# ---- Kaggle layout (images/ + CSVs), fixture files -------------------------------------------------------------


def test_read_csv_values(isbi_csv_dataset, isbi_points):
    rows = read_isbi_csv(isbi_csv_dataset / "average_senior_junior.csv")
    assert list(rows) == ["301", "001", "151"]
    np.testing.assert_array_equal(rows["151"], isbi_points("151", 1.0))
    assert rows["151"].shape == (19, 2) and rows["151"].dtype == np.float64


def test_load_senior_and_average(isbi_csv_dataset, isbi_points):
    senior = load_isbi2015(isbi_csv_dataset)
    assert [r.id for r in senior] == ["001", "151", "301"]
    assert [r.split for r in senior] == ["train", "test1", "test2"]
    np.testing.assert_array_equal(senior[1].landmarks, isbi_points("151"))
    np.testing.assert_array_equal(senior[0].spacing, [0.1, 0.1])
    assert senior[2].image == str(isbi_csv_dataset / "images" / "301.jpg")
    assert {r.landmark_set for r in senior} == {"isbi2015"}
    average = load_isbi2015(isbi_csv_dataset, ground_truth="Average")
    np.testing.assert_array_equal(average[2].landmarks, isbi_points("301", 1.0))


def test_ground_truth_choices(isbi_csv_dataset):
    with pytest.raises(ValueError, match="ground_truth must be one of"):
        load_isbi2015(isbi_csv_dataset, ground_truth="junior")


def _rewrite(path, line_no, new_line):
    lines = path.read_text().splitlines()
    lines[line_no - 1] = new_line
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    "line, message",
    [
        ("001.jpg,1,2,3", r"train_senior.csv line 2: 4 columns, expected 39"),
        ("001.jpg," + ",".join(["5"] * 37) + ",abc", r"train_senior.csv line 2 column '19_y': coordinate 'abc'"),
        ("001.jpg," + ",".join(["5"] * 37) + ",", r"line 2 column '19_y': coordinate ''"),
        ("001.jpg," + ",".join(["5"] * 37) + ",nan", r"line 2 column '19_y': coordinate 'nan' is not finite"),
        ("," + ",".join(["5"] * 38), r"line 2: empty image_path"),
    ],
)
def test_bad_csv_rows(isbi_csv_dataset, line, message):
    path = isbi_csv_dataset / "train_senior.csv"
    _rewrite(path, 2, line)
    with pytest.raises(LandmarkFileError, match=message):
        load_isbi2015(isbi_csv_dataset)


def test_bad_header_and_duplicates(isbi_csv_dataset):
    path = isbi_csv_dataset / "test1_senior.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines + [lines[1]]) + "\n")
    with pytest.raises(LandmarkFileError, match=r"test1_senior.csv line 3: image '151.jpg' appears twice"):
        read_isbi_csv(path)
    _rewrite(path, 1, "image,1_x")
    with pytest.raises(LandmarkFileError, match="test1_senior.csv: header must be"):
        read_isbi_csv(path)
    path.write_text("")
    with pytest.raises(LandmarkFileError, match="header must be"):
        read_isbi_csv(path)


def test_image_in_two_csvs(isbi_csv_dataset, write_isbi_csv, isbi_points):
    write_isbi_csv(isbi_csv_dataset / "test2_senior.csv", {"151": isbi_points("151")})
    with pytest.raises(LandmarkFileError, match="'151' also appears in another CSV"):
        load_isbi2015(isbi_csv_dataset)


def test_missing_files(isbi_csv_dataset):
    (isbi_csv_dataset / "images" / "151.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"no image 151\..* in .*images"):
        load_isbi2015(isbi_csv_dataset)
    (isbi_csv_dataset / "average_senior_junior.csv").unlink()
    with pytest.raises(FileNotFoundError, match="average_senior_junior.csv"):
        load_isbi2015(isbi_csv_dataset, ground_truth="average")


# ---- original challenge layout (RawImage/ + AnnotationsByMD/) ------------------------------------------------------


def test_original_layout(isbi_original_dataset, isbi_points):
    senior = load_isbi2015_original(isbi_original_dataset)
    assert [(r.id, r.split) for r in senior] == [("001", "train"), ("151", "test1"), ("301", "test2")]
    np.testing.assert_array_equal(senior[0].landmarks, isbi_points("001"))
    assert senior[1].image.endswith("RawImage/Test1Data/151.bmp")
    junior = load_isbi2015_original(isbi_original_dataset, ground_truth="junior")
    np.testing.assert_array_equal(junior[2].landmarks, isbi_points("301", 3.0))
    average = load_isbi2015_original(isbi_original_dataset, ground_truth="average")
    np.testing.assert_array_equal(average[1].landmarks, isbi_points("151", 1.5))  # exact mean, not rounded


def test_original_layout_without_annotations_folder(isbi_original_dataset):
    (isbi_original_dataset / "AnnotationsByMD" / "400_senior").rename(isbi_original_dataset / "400_senior")
    assert len(load_isbi2015_original(isbi_original_dataset)) == 3
    with pytest.raises(FileNotFoundError, match="400_junior"):
        (isbi_original_dataset / "AnnotationsByMD" / "400_junior").rename(isbi_original_dataset / "elsewhere")
        load_isbi2015_original(isbi_original_dataset, ground_truth="average")


def test_original_layout_errors(isbi_original_dataset):
    txt = isbi_original_dataset / "AnnotationsByMD" / "400_senior" / "151.txt"
    lines = txt.read_text().splitlines()
    txt.write_text("\n".join(lines[:18]))
    with pytest.raises(LandmarkFileError, match=r"151.txt: 18 lines, expected at least 19"):
        read_isbi_txt(txt)
    txt.write_text("\n".join(lines[:4] + ["12,x"] + lines[5:]))
    with pytest.raises(LandmarkFileError, match=r"151.txt line 5: coordinate 'x' is not a number"):
        load_isbi2015_original(isbi_original_dataset)
    txt.write_text("\n".join(lines[:4] + ["12"] + lines[5:]))
    with pytest.raises(LandmarkFileError, match=r"151.txt line 5: expected 'x,y'"):
        read_isbi_txt(txt)
    txt.unlink()
    with pytest.raises(FileNotFoundError, match="151.txt"):
        load_isbi2015_original(isbi_original_dataset)


# ---- the real ISBI 2015 data -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_senior(isbi_dir):
    return load_isbi2015(isbi_dir)


@pytest.mark.isbi
def test_real_isbi_records(isbi_dir, real_senior):
    assert len(real_senior) == 400
    assert [r.id for r in real_senior] == [f"{i:03d}" for i in range(1, 401)]
    for r in real_senior:
        assert r.landmarks.shape == (19, 2) and np.all(np.isfinite(r.landmarks))
        assert np.all(r.landmarks >= 0) and np.all(r.landmarks < [1935, 2400])
    # image 001's first point equals the CSV cell, read here with the csv module
    with open(isbi_dir / "train_senior.csv", newline="") as f:
        row = next(r for r in csv.DictReader(f) if r["image_path"] == "001.jpg")
    np.testing.assert_array_equal(real_senior[0].landmarks[0], [float(row["1_x"]), float(row["1_y"])])
    np.testing.assert_array_equal(real_senior[0].landmarks[0], [835, 996])
    # the split by id range agrees with the files the challenge ships
    for name, ids in ISBI2015_SPLITS.items():
        with open(isbi_dir / f"{name}_senior.csv", newline="") as f:
            assert sorted(int(r["image_path"][:3]) for r in csv.DictReader(f)) == list(ids)
        assert sum(r.split == name for r in real_senior) == len(ids)


@pytest.mark.isbi
def test_real_isbi_senior_vs_average(isbi_dir, real_senior):
    """The dataset README: senior vs average mean radial error 1.17 / 1.18 / 0.75 mm (train / test1 / test2)."""
    average = load_isbi2015(isbi_dir, ground_truth="average")
    assert [r.id for r in average] == [r.id for r in real_senior]
    np.testing.assert_array_equal(average[0].landmarks[0], [832, 994])
    for name, expected in (("train", 1.17), ("test1", 1.18), ("test2", 0.75)):
        errors = [
            np.linalg.norm((s.landmarks - a.landmarks) * s.spacing, axis=1).mean()
            for s, a in zip(real_senior, average)
            if s.split == name
        ]
        assert np.mean(errors) == pytest.approx(expected, abs=0.006)


@pytest.mark.isbi
def test_real_isbi_image_loads_x_first(isbi_dir):
    from monai.transforms import LoadImage

    path = isbi_dir / "images" / "001.jpg"
    image = LoadImage(image_only=True, ensure_channel_first=True)(str(path))
    assert tuple(image.shape[-2:]) == (1935, 2400)
    # dim0 is x (column), dim1 is y (row): the value at [c, x, y] is the pixel at column x, row y
    with Image.open(path) as pil:
        for x, y in ((835, 996), (10, 2300), (1900, 40)):
            assert float(image[0, x, y]) == pil.getpixel((x, y))[0]
