import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from monai_ceph.data import (
    DataFileError,
    LandmarkFileError,
    SpacingError,
    check_datalist,
    check_section,
    detect_format,
    image_folder_datalist,
    load_datalist,
)


def _item(tmp_path, **overrides):
    image = tmp_path / "001.png"
    if not image.exists():
        Image.new("L", (8, 6)).save(image)
    item = {"image": str(image), "landmarks": [[1.0, 2.0]] * 18 + [None], "spacing": [0.1, 0.1], "id": "001"}
    item.update(overrides)
    return item


def test_detect_format_from_the_layout(tmp_path, isbi_csv_dataset, isbi_original_dataset):
    assert detect_format(isbi_csv_dataset) == "isbi2015"
    assert detect_format(isbi_original_dataset) == "isbi2015_original"
    (tmp_path / "aariz" / "valid" / "Cephalograms").mkdir(parents=True)
    assert detect_format(tmp_path / "aariz") == "aariz"
    (tmp_path / "labelme").mkdir()
    (tmp_path / "labelme" / "a.json").write_text("{}")
    assert detect_format(tmp_path / "labelme") == "labelme"
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataFileError, match="empty: not a known dataset layout"):
        detect_format(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="nowhere does not exist"):
        detect_format(tmp_path / "nowhere")


def test_check_datalist_passes_good_items_and_names_the_bad_one(tmp_path):
    good = _item(tmp_path)
    assert check_datalist([good], "d.json [training]") == [good]
    cases = [
        (_item(tmp_path, image=str(tmp_path / "gone.png")), FileNotFoundError, "image file not found"),
        ({k: v for k, v in good.items() if k != "spacing"}, DataFileError, "missing key 'spacing'"),
        (_item(tmp_path, landmarks=[[1.0, 2.0]] * 18), LandmarkFileError, "18 landmarks, expected 19"),
        (_item(tmp_path, landmarks=[[1.0, "x"]] + [None] * 18), LandmarkFileError, r"landmarks\[0\] y: coordinate 'x'"),
        (_item(tmp_path, spacing=[0.1, 0]), SpacingError, "must be finite and > 0"),
        (_item(tmp_path, landmark_set="aariz"), LandmarkFileError, "expected 29"),
    ]
    for bad, error, match in cases:
        with pytest.raises(error, match=r"d.json \[training\] entry 1 \(id '001'.*" + match):
            check_datalist([good, bad], "d.json [training]")


def test_a_dicom_entry_takes_its_header_spacing_when_the_datalist_gives_none(tmp_path, write_dicom):
    tagged = write_dicom(tmp_path / "tagged.dcm", np.zeros((6, 8)), PixelSpacing=[0.2, 0.1])
    tagless = write_dicom(tmp_path / "tagless.dcm", np.zeros((6, 8)))
    entry = {k: v for k, v in _item(tmp_path).items() if k != "spacing"}
    assert check_datalist([{**entry, "image": str(tagged)}])[0]["spacing"] == [0.1, 0.2]  # (sx, sy)
    assert check_datalist([{**entry, "image": str(tagged), "spacing": [0.3, 0.3]}])[0]["spacing"] == [0.3, 0.3]
    with pytest.raises(DataFileError, match=r"d.json \[test\] entry 0 \(id '001', image '.*tagless.dcm'\): missing "
                                            r"key 'spacing', and the DICOM header gives none \(.*none of the tags"):
        check_datalist([{**entry, "image": str(tagless)}], "d.json [test]")
    with pytest.raises(DataFileError, match=r"entry 0 .*001.png'\): missing key 'spacing' \(only a DICOM image"):
        check_datalist([entry], "d.json [test]")


def test_check_section_names_the_missing_or_empty_section():
    check_section({"training": [{}]}, "training")
    for datalist, state in (({"training": [{}], "validation": []}, "empty"), ({"training": [{}]}, "missing")):
        with pytest.raises(DataFileError, match=rf"^datalist: datalist section 'validation' is {state}.*'training': 1"):
            check_section(datalist, "validation")
        with pytest.raises(DataFileError, match=r"^d.json: datalist section 'validation'"):
            check_section(datalist, ["training", "validation"], where="d.json")


def test_load_datalist_resolves_relative_paths_and_keeps_extra_sections(tmp_path):
    item = _item(tmp_path)
    item["image"] = "001.png"
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"name": "x", "training": [item], "validation": [], "test2": [item]}))
    sections = load_datalist(path)
    assert sorted(sections) == ["test", "test2", "training", "validation"]
    assert sections["training"][0]["image"] == str(tmp_path / "001.png") and sections["validation"] == []
    with pytest.raises(FileNotFoundError, match="none.json does not exist"):
        load_datalist(tmp_path / "none.json")


def test_load_datalist_from_a_dataset_folder(isbi_csv_dataset, isbi_points):
    sections = load_datalist(dataset_dir=isbi_csv_dataset)
    assert [len(sections[k]) for k in ("training", "validation", "test")] == [1, 1, 1]
    np.testing.assert_array_equal(sections["test"][0]["landmarks"], isbi_points("301").tolist())


def test_phantoms_are_written_once_when_nothing_is_given(tmp_path):
    sections = load_datalist(phantom_dir=tmp_path / "ph", num_phantoms=4, phantom_size=(40, 50))
    assert sum(len(v) for v in sections.values()) == 4
    written = (tmp_path / "ph" / "datalist.json").stat().st_mtime_ns
    assert load_datalist(phantom_dir=tmp_path / "ph", num_phantoms=4) == sections
    assert (tmp_path / "ph" / "datalist.json").stat().st_mtime_ns == written


def test_image_folder_items_take_dicom_spacing_and_need_it_otherwise(tmp_path, write_dicom):
    Image.new("L", (8, 6)).save(tmp_path / "b.png")
    write_dicom(tmp_path / "a.dcm", np.zeros((6, 8)), PixelSpacing=[0.2, 0.1])
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(SpacingError, match=r"b.png: the image has no pixel spacing of its own; pass spacing="):
        image_folder_datalist(tmp_path)
    items = image_folder_datalist(tmp_path, spacing=0.3)
    assert [(i["id"], i["spacing"]) for i in items] == [("a", [0.1, 0.2]), ("b", [0.3, 0.3])]
    assert image_folder_datalist(tmp_path / "b.png", spacing=[0.3, 0.4])[0]["spacing"] == [0.3, 0.4]
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no images"):
        image_folder_datalist(tmp_path / "empty")


def test_an_unreadable_dicom_header_fails_that_item_only(tmp_path, write_dicom):
    """The item of a DICOM whose header cannot be read carries the reason; the tolerant loader reports it as
    skipped without loading it, and loads the others."""
    from monai.data import Dataset

    from monai_ceph.data import FailureTolerantDataLoader
    from monai_ceph.data.tolerant import FAILURE_KEY

    write_dicom(tmp_path / "a.dcm", np.ones((6, 8)), PixelSpacing=[0.2, 0.1])
    (tmp_path / "b.dcm").write_text("not a DICOM file")
    write_dicom(tmp_path / "c.dcm", np.ones((6, 8)), PixelSpacing=[0.1, -0.1])
    items = image_folder_datalist(tmp_path)  # no spacing needed: the bad ones fail alone
    assert [(i["id"], i["spacing"]) for i in items] == [("a", [0.1, 0.2]), ("b", None), ("c", None)]
    assert items[1][FAILURE_KEY].startswith("not a DICOM file (File is missing DICOM File Meta Information")
    assert items[2][FAILURE_KEY] == (f"{tmp_path / 'c.dcm'} PixelSpacing: pixel spacing ('-0.1', '0.1') must be "
                                     "finite and > 0 mm/pixel.")  # fmt: skip
    loaded = []
    loader = FailureTolerantDataLoader(Dataset(items, transform=lambda d: loaded.append(d["id"]) or d), batch_size=3)
    assert [b["id"] for b in loader] == [["a"]] and loaded == ["a"]
    assert loader.failures == [{"id": i["id"], "image": i["image"], "error": i[FAILURE_KEY]} for i in items[1:]]


def test_image_folder_ids_are_unique_per_file(tmp_path, write_dicom):
    Image.new("L", (8, 6)).save(tmp_path / "001.jpg")
    Image.new("L", (8, 6)).save(tmp_path / "002.png")
    write_dicom(tmp_path / "001.dcm", np.zeros((6, 8)), PixelSpacing=[0.2, 0.1])
    items = image_folder_datalist(tmp_path, spacing=0.1)
    assert [(i["id"], Path(i["image"]).name) for i in items] == [
        ("001_dcm", "001.dcm"), ("001_jpg", "001.jpg"), ("002", "002.png")
    ]  # fmt: skip
