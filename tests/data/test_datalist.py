import json
import os
import subprocess
import sys

import numpy as np
import pytest
from monai.data import load_decathlon_datalist

from monai_ceph.data import (
    DATALIST_KEYS,
    LandmarkRecord,
    build_datalist,
    landmarks_from_json,
    split_records,
    write_datalist,
)
from monai_ceph.data.datalist import main


def _records(n):
    return [LandmarkRecord(f"{i:03d}", f"/x/{i:03d}.png", np.zeros((2, 2)), np.ones(2), "isbi2015") for i in range(n)]


@pytest.mark.parametrize(
    "n, fractions, counts",
    [(64, (0.8, 0.1, 0.1), [51, 7, 6]), (10, (0.8, 0.1, 0.1), [8, 1, 1]), (3, (0.8, 0.1, 0.1), [3, 0, 0]),
     (7, (7, 3, 0), [5, 2, 0]), (5, (1, 1, 1), [2, 2, 1]), (0, (0.8, 0.1, 0.1), [0, 0, 0])],
)
def test_split_counts_add_up(n, fractions, counts):
    parts = split_records(_records(n), fractions, seed=0)
    assert [len(parts[k]) for k in DATALIST_KEYS] == counts
    assert sorted(r.id for p in parts.values() for r in p) == [f"{i:03d}" for i in range(n)]


def test_split_is_seeded_and_order_free():
    records = _records(40)
    a = split_records(records, seed=3)
    b = split_records(records[::-1], seed=3)
    c = split_records(records, seed=4)
    ids = {s: {k: [r.id for r in p[k]] for k in DATALIST_KEYS} for s, p in (("a", a), ("b", b), ("c", c))}
    assert ids["a"] == ids["b"]
    assert ids["a"] != ids["c"]
    assert all(v == sorted(v) for v in ids["a"].values())


@pytest.mark.parametrize("fractions", [(0.5, 0.5), (-0.1, 0.6, 0.5), (0, 0, 0), (float("nan"), 0.5, 0.5)])
def test_bad_fractions(fractions):
    with pytest.raises(ValueError, match="split fractions must be 3 non-negative numbers"):
        split_records(_records(4), fractions)


def test_duplicate_ids_refused():
    with pytest.raises(ValueError, match=r"records share ids \{'000': \['/x/000.png', '/x/000.png'\]\}: each needs its own"):
        split_records(_records(3) + _records(1))


def test_isbi_fixture_datalist(isbi_csv_dataset, isbi_points):
    datalist = build_datalist(isbi_csv_dataset)
    assert [[i["id"] for i in datalist[k]] for k in DATALIST_KEYS] == [["001"], ["151"], ["301"]]
    item = datalist["validation"][0]
    assert set(item) == {"image", "landmarks", "spacing", "id", "landmark_set"}
    assert item["image"] == os.path.abspath(isbi_csv_dataset / "images" / "151.jpg")
    assert item["landmarks"] == isbi_points("151").tolist()
    assert item["spacing"] == [0.1, 0.1] and item["landmark_set"] == "isbi2015"
    assert datalist["split"] == "standard" and datalist["ground_truth"] == "senior"
    assert datalist["landmark_names"][0] == "S" and len(datalist["landmark_names"]) == 19
    average = build_datalist(isbi_csv_dataset, ground_truth="average")
    assert average["training"][0]["landmarks"] == isbi_points("001", 1.0).tolist()
    seeded = build_datalist(isbi_csv_dataset, split=(1, 1, 1), seed=0)
    assert sorted(len(seeded[k]) for k in DATALIST_KEYS) == [1, 1, 1]
    assert seeded["split"] == {"fractions": [1.0, 1.0, 1.0], "seed": 0}


def test_original_layout_datalist(isbi_original_dataset, isbi_points):
    datalist = build_datalist(isbi_original_dataset, fmt="isbi2015_original", ground_truth="average")
    assert [len(datalist[k]) for k in DATALIST_KEYS] == [1, 1, 1]
    assert datalist["test"][0]["landmarks"] == isbi_points("301", 1.5).tolist()


def test_missing_landmarks_written_as_null_and_read_back(tmp_path):
    points = np.array([[1.5, 2.0], [np.nan, np.nan], [3.0, 4.25]])
    record = LandmarkRecord("a", str(tmp_path / "a.png"), points, np.array([0.1, 0.1]), "isbi2015")
    assert record.to_item()["landmarks"] == [[1.5, 2.0], [None, None], [3.0, 4.25]]
    datalist = {"training": [record.to_item()], "validation": [], "test": []}
    path = write_datalist(datalist, tmp_path / "out" / "dl.json")
    assert "null" in path.read_text()
    loaded = json.loads(path.read_text())["training"][0]["landmarks"]
    np.testing.assert_array_equal(landmarks_from_json(loaded), points)


def test_relative_paths_resolve_with_monai(isbi_csv_dataset, tmp_path):
    path = write_datalist(build_datalist(isbi_csv_dataset), tmp_path / "lists" / "isbi.json", relative=True)
    raw = json.loads(path.read_text())
    assert raw["training"][0]["image"] == "../isbi/images/001.jpg"
    items = load_decathlon_datalist(str(path), data_list_key="validation")
    assert items[0]["image"] == os.path.abspath(isbi_csv_dataset / "images" / "151.jpg")
    assert items[0]["id"] == "151" and items[0]["spacing"] == [0.1, 0.1]


def test_argument_errors(isbi_csv_dataset, tmp_path):
    with pytest.raises(ValueError, match="unknown dataset format 'csv'"):
        build_datalist(isbi_csv_dataset, fmt="csv")
    with pytest.raises(ValueError, match="spacing applies to labelme only"):
        build_datalist(isbi_csv_dataset, spacing=0.1)
    with pytest.raises(ValueError, match="isbi2015 set only"):
        build_datalist(isbi_csv_dataset, landmark_set="aariz")
    with pytest.raises(ValueError, match="ground_truth does not apply"):
        build_datalist(tmp_path, fmt="labelme", ground_truth="senior")
    with pytest.raises(FileNotFoundError, match="no annotated images"):
        build_datalist(tmp_path, fmt="labelme", spacing=0.1)


def test_image_outside_standard_split(isbi_csv_dataset, write_isbi_csv, isbi_points):
    (isbi_csv_dataset / "images" / "401.jpg").write_bytes(b"")
    write_isbi_csv(isbi_csv_dataset / "test2_senior.csv", {"301": isbi_points("301"), "401": isbi_points("401")})
    with pytest.raises(ValueError, match="image '401' .* is outside the standard split"):
        build_datalist(isbi_csv_dataset)
    assert sum(len(v) for k, v in build_datalist(isbi_csv_dataset, split=(2, 1, 1)).items() if k in DATALIST_KEYS) == 4


def test_cli_help():
    result = subprocess.run([sys.executable, "-m", "monai_ceph.data.datalist", "--help"], capture_output=True,
                            text=True, check=True)
    assert "--ground-truth" in result.stdout and "validation = Test1 (151-300)" in " ".join(result.stdout.split())
    assert "found in sys.modules" not in result.stderr


def test_cli_writes_file(isbi_csv_dataset, tmp_path, capsys):
    """The command's code path in-process (test_cli_help runs the module itself once: importing torch is slow)."""
    out = tmp_path / "dl.json"
    assert main([str(isbi_csv_dataset), str(out), "--ground-truth", "average", "--relative"]) == 0
    assert f"wrote {out}: training 1, validation 1, test 1" in capsys.readouterr().out
    datalist = json.loads(out.read_text())
    assert datalist["training"][0]["image"] == "isbi/images/001.jpg"
    assert datalist["training"][0]["landmarks"][0] == [101.0, 201.0]
    assert main([str(isbi_csv_dataset), str(out), "--split", "0", "0", "1", "--seed", "5"]) == 0
    assert [len(v) for v in map(json.loads(out.read_text()).get, DATALIST_KEYS)] == [0, 0, 3]


def test_cli_error_exit(tmp_path, capsys):
    assert main([str(tmp_path / "none"), str(tmp_path / "dl.json")]) == 2
    assert "error:" in capsys.readouterr().err and not (tmp_path / "dl.json").exists()
    assert main([str(tmp_path), str(tmp_path / "dl.json"), "--format", "labelme"]) == 2
    assert "error: no annotated images found" in capsys.readouterr().err


@pytest.mark.isbi
def test_real_isbi_datalist(isbi_dir, tmp_path):
    datalist = build_datalist(isbi_dir)
    assert [len(datalist[k]) for k in DATALIST_KEYS] == [150, 150, 100]
    first = datalist["training"][0]
    assert first["id"] == "001" and first["landmarks"][0] == [835.0, 996.0] and first["spacing"] == [0.1, 0.1]
    assert [i["id"] for i in datalist["validation"]] == [f"{i:03d}" for i in range(151, 301)]
    assert [i["id"] for i in datalist["test"]] == [f"{i:03d}" for i in range(301, 401)]
    assert all(len(i["landmarks"]) == 19 and None not in sum(i["landmarks"], []) for k in DATALIST_KEYS
               for i in datalist[k])
    average = build_datalist(isbi_dir, ground_truth="average")
    assert average["training"][0]["landmarks"][0] == [832.0, 994.0]


def test_symlinked_dataset_keeps_its_path(isbi_csv_dataset, tmp_path):
    link = tmp_path / "link"
    link.symlink_to(isbi_csv_dataset, target_is_directory=True)
    assert build_datalist(link)["test"][0]["image"] == os.path.join(str(link), "images", "301.jpg")
