"""Bad-input catalogue, data lane: the datalist command line and the data layer's entry points. Each case asserts
the exit status or exception, that the message names the file (or entry, section, option) and the fault, and that
nothing already written was lost."""

import json
import re
from pathlib import Path
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from monai_ceph.data import (
    DataFileError,
    LazyDatalist,
    atomic_write_text,
    check_section,
    datalist_landmark_set,
    load_datalist,
)
from monai_ceph.data.datalist import main

KEEP = '{"training": ["written before"]}\n'


@pytest.fixture
def output(tmp_path):
    """An existing datalist the failing runs must leave as it was."""
    path = tmp_path / "out" / "datalist.json"
    path.parent.mkdir()
    path.write_text(KEEP)
    return path


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    return code, err


def _assert_failed(code, err, *parts):
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for part in parts:
        assert part in err, (part, err)


def test_missing_dataset_folder(capsys, tmp_path, output):
    code, err = _run(capsys, tmp_path / "nowhere", output)
    _assert_failed(code, err, "nowhere")
    assert output.read_text() == KEEP


def test_bad_coordinate_names_the_csv_and_line(capsys, isbi_csv_dataset, output):
    csv = isbi_csv_dataset / "test1_senior.csv"
    lines = csv.read_text().splitlines()
    cells = lines[1].split(",")
    cells[3] = "12px"
    lines[1] = ",".join(cells)
    csv.write_text("\n".join(lines) + "\n")
    code, err = _run(capsys, isbi_csv_dataset, output)
    _assert_failed(code, err, "test1_senior.csv", "line 2", "'12px' is not a number")
    assert output.read_text() == KEEP


def test_seeded_split_with_bad_fractions(capsys, isbi_csv_dataset, output):
    code, err = _run(capsys, isbi_csv_dataset, output, "--split", "1", "-1", "0")
    _assert_failed(code, err, str(isbi_csv_dataset), "split fractions must be 3 non-negative numbers")
    assert output.read_text() == KEEP


def test_option_that_does_not_apply(capsys, tmp_path, output):
    (tmp_path / "lm").mkdir()
    code, err = _run(capsys, tmp_path / "lm", output, "--format", "labelme", "--ground-truth", "senior")
    _assert_failed(code, err, "lm", "ground_truth does not apply")


def test_labelme_image_without_spacing(capsys, tmp_path, output):
    folder = tmp_path / "lm"
    folder.mkdir()
    Image.new("L", (100, 80)).save(folder / "a.png")
    (folder / "a.json").write_text(json.dumps({"shapes": [{"label": "S", "points": [[1, 2]], "shape_type": "point"}],
                                               "imagePath": "a.png"}))
    with pytest.warns(UserWarning):
        code, err = _run(capsys, folder, output, "--format", "labelme")
    _assert_failed(code, err, "a.png", "carries no pixel spacing")
    assert output.read_text() == KEEP


def test_output_that_cannot_be_written(capsys, isbi_csv_dataset, tmp_path):
    (tmp_path / "taken").mkdir()  # a folder where the JSON should go
    code, err = _run(capsys, isbi_csv_dataset, tmp_path / "taken")
    _assert_failed(code, err, "taken", "cannot write the datalist")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".taken")]  # no temporary file left


def test_unknown_format_is_a_usage_error(capsys, tmp_path, output):
    with pytest.raises(SystemExit) as e:
        main([str(tmp_path), str(output), "--format", "dicomdir"])
    assert e.value.code == 2 and "invalid choice: 'dicomdir'" in capsys.readouterr().err


def test_the_command_prints_one_line_and_no_traceback(tmp_path, output):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    result = subprocess.run([sys.executable, "-m", "monai_ceph.data.datalist", str(tmp_path / "nowhere"), str(output)],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert [line for line in result.stderr.splitlines() if line.startswith("error: ")][0].startswith("error: ")
    assert "nowhere" in result.stderr and output.read_text() == KEEP


def test_an_interrupted_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "d.json"
    path.write_text(KEEP)

    def full_disk(*_):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError, match="No space left"):
        atomic_write_text(path, '{"training": []}')
    assert path.read_text() == KEEP and [p.name for p in tmp_path.iterdir()] == ["d.json"]


@pytest.mark.parametrize("content, match", [
    ("{not json", r"not valid JSON"),
    ("[1, 2]", r"expected an object of sections, got list"),
    ('{"training": {"image": "a.png"}}', r"\[training\]: a section must be a list of items, got dict"),
    ('{"training": ["a.png"]}', r"\[training\] entry 0: expected an object"),
])
def test_bad_datalist_files_name_the_file_and_the_fault(tmp_path, content, match):
    path = tmp_path / "mine.json"
    path.write_text(content)
    with pytest.raises(DataFileError, match=r"mine.json.*" + match):
        load_datalist(path)
    assert path.read_text() == content


def _datalist(tmp_path, validation):
    Image.new("L", (100, 80)).save(tmp_path / "a.png")
    item = {"image": "a.png", "landmarks": [[1.0, 2.0]] * 19, "spacing": [0.1, 0.1], "id": "a"}
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"training": [item], "validation": [item] if validation else []}))
    return path


def test_a_needed_empty_section_fails_naming_section_and_file(tmp_path):
    datalist = load_datalist(_datalist(tmp_path, validation=False))
    with pytest.raises(DataFileError, match=r"mine.json: datalist section 'validation' is empty.*'training': 1"):
        check_section(datalist, ["training", "validation"])
    with pytest.raises(DataFileError, match=r"mine.json: datalist section 'test2' is missing"):
        check_section(datalist, "test2")
    good = load_datalist(_datalist(tmp_path, validation=True))
    assert check_section(good, ["training", "validation"]) is good


def test_items_of_two_landmark_sets_are_refused(tmp_path):
    datalist = load_datalist(_datalist(tmp_path, validation=True))
    assert datalist_landmark_set(datalist) == "isbi2015"
    datalist["test"] = [dict(datalist["training"][0], landmark_set="aariz", id="b")]
    with pytest.raises(DataFileError, match=r"mine.json: items of different landmark sets \(isbi2015 at "
                                            r"\[training\] entry 0 \(id 'a'\), aariz at \[test\] entry 0 \(id 'b'\)"):
        datalist_landmark_set(datalist)


def test_a_lazy_datalist_writes_no_phantoms_until_used(tmp_path):
    lazy = load_datalist(phantom_dir=tmp_path / "ph", num_phantoms=3, phantom_size=(40, 50), lazy=True)
    assert isinstance(lazy, LazyDatalist) and not lazy.resolved and not (tmp_path / "ph").exists()
    assert len(lazy["training"]) + len(lazy["validation"]) + len(lazy["test"]) == 3
    assert lazy.resolved and (tmp_path / "ph" / "datalist.json").is_file()
    assert lazy.source == str(tmp_path / "ph" / "datalist.json")
    assert datalist_landmark_set(lazy) == "isbi2015" and np.isfinite(lazy["training"][0]["spacing"]).all()


def _dicom_without_spacing(path):
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    pixels = np.arange(80 * 64, dtype=np.uint16).reshape(80, 64)
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit, ds.PixelRepresentation = 15, 0
    ds.PixelData = pixels.tobytes()
    ds.is_little_endian, ds.is_implicit_VR = True, False
    ds.save_as(path, write_like_original=False)
    return path


def test_a_dicom_without_spacing_tags_takes_the_given_spacing(tmp_path):
    from monai_ceph.data import image_folder_datalist

    dicom = _dicom_without_spacing(tmp_path / "scan.dcm")
    items = image_folder_datalist(tmp_path, spacing=(0.1, 0.2))
    assert items == [{"image": str(dicom.resolve()), "spacing": [0.1, 0.2], "id": "scan"}]
    with pytest.raises(DataFileError, match=f"{dicom}: none of the tags .* gives a pixel spacing"):
        image_folder_datalist(tmp_path)


# --- pixel spacing outside what a radiograph can have (issue 24) ---

@pytest.mark.parametrize("spacing", [100.0, 0.0001, [0.1, 50.0]])
def test_an_implausible_spacing_in_a_datalist_names_the_entry_value_and_range(tmp_path, spacing):
    from monai_ceph.data import PLAUSIBLE_SPACING_MM, SpacingError

    Image.new("L", (100, 80)).save(tmp_path / "a.png")
    item = {"image": "a.png", "landmarks": [[1.0, 2.0]] * 19, "spacing": spacing, "id": "a"}
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"training": [item]}))
    before = path.read_text()
    low, high = PLAUSIBLE_SPACING_MM
    with pytest.raises(SpacingError, match=rf"mine.json \[training\] entry 0 \(id 'a'.*pixel spacing .* is outside "
                                           rf"the range of a radiograph \[{low:g}, {high:g}\]"):
        load_datalist(path)
    assert path.read_text() == before


@pytest.mark.parametrize("spacing", ["100", "0.0001"])
def test_an_implausible_spacing_option_fails_the_command(capsys, tmp_path, output, spacing):
    folder = tmp_path / "lm"
    folder.mkdir()
    Image.new("L", (100, 80)).save(folder / "a.png")
    (folder / "a.json").write_text(json.dumps({"shapes": [{"label": "S", "points": [[1, 2]], "shape_type": "point"}],
                                               "imagePath": "a.png"}))
    code, err = _run(capsys, folder, output, "--format", "labelme", "--spacing", spacing)
    _assert_failed(code, err, "spacing", "outside the range of a radiograph")
    assert output.read_text() == KEEP


@pytest.mark.parametrize("spacing", [0.01, 0.1, 1.0, 5.0])
def test_spacings_a_radiograph_or_a_phantom_has_pass(spacing):
    from monai_ceph.data import check_spacing

    np.testing.assert_array_equal(check_spacing(spacing, "x"), [spacing, spacing])


def test_a_phantom_too_small_for_a_radiograph_spacing_is_refused_before_writing(tmp_path):
    from monai_ceph.data import SpacingError, write_phantom_dataset

    with pytest.raises(SpacingError, match=r"phantoms of spatial_size \(8, 10\): pixel spacing \[24.0, 24.0\]"):
        write_phantom_dataset(tmp_path / "ph", num_images=1, spatial_size=(8, 10))
    assert not (tmp_path / "ph" / "datalist.json").exists()


# --- valid JSON only, files with the user's umask (issue 24) ---

def _strict_json(text):
    """json.loads refusing the NaN / Infinity tokens that Python writes and strict readers reject."""
    def refuse(token):
        raise ValueError(f"invalid JSON token {token}")
    return json.loads(text, parse_constant=refuse)


def test_dump_json_writes_non_finite_numbers_as_null(tmp_path):
    from monai_ceph.data import dump_json, dumps_json

    value = {"a": float("nan"), "b": [np.float32("inf"), -np.inf, 1.5], "c": np.array([np.nan, 2.0]), "d": (np.int64(3),)}
    assert _strict_json(dumps_json(value)) == {"a": None, "b": [None, None, 1.5], "c": [None, 2.0], "d": [3]}
    path = tmp_path / "out.json"
    path.write_text(KEEP)
    with pytest.raises(TypeError):  # not JSON at all: refused, the old file kept
        dump_json({"x": object()}, path)
    assert path.read_text() == KEEP
    assert _strict_json(dump_json(value, path).read_text())["b"] == [None, None, 1.5]


def test_datalists_and_labels_with_nan_are_valid_json(tmp_path):
    from monai_ceph.data import write_datalist, write_monailabel_json

    landmarks = np.full((19, 2), 1.0)
    landmarks[3] = np.nan
    label = write_monailabel_json(tmp_path / "l.json", landmarks, spacing=0.1)
    assert _strict_json(label.read_text())
    datalist = write_datalist({"training": [{"image": str(tmp_path / "a.png"), "spacing": [0.1, float("nan")]}]},
                              tmp_path / "d.json")
    assert _strict_json(datalist.read_text())["training"][0]["spacing"] == [0.1, None]


def test_no_json_is_written_outside_the_one_writer():
    """Every json.dump(s) of the package goes through monai_ceph.data.json_io (apps/ and cli.py aside)."""
    import re
    from pathlib import Path

    import monai_ceph

    root = Path(monai_ceph.__file__).parent
    found = [f"{p.relative_to(root)}:{i}" for p in sorted(root.rglob("*.py"))
             if p.name != "json_io.py" and "apps" not in p.relative_to(root).parts and p.name != "cli.py"
             or p.relative_to(root).as_posix() == "data/datalist/cli.py"
             for i, line in enumerate(p.read_text().splitlines(), 1) if re.search(r"json\.dumps?\(", line)]
    assert found == [], found


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomic_writes_take_the_users_umask(tmp_path, umask, mode):
    from monai_ceph.data import dump_json

    old = os.umask(umask)
    try:
        written = [atomic_write_text(tmp_path / "a.txt", "x"), dump_json({}, tmp_path / "sub" / "b.json")]
        (tmp_path / "a.txt").chmod(0o600)
        written.append(atomic_write_text(tmp_path / "a.txt", "y"))  # a replaced file too
    finally:
        os.umask(old)
    assert [oct(p.stat().st_mode & 0o777) for p in written] == [oct(mode)] * 3


# --- output ids unique (issue 24) ---

def test_folder_ids_never_collide(tmp_path):
    from monai_ceph.data import image_folder_datalist

    for name in ("a.png", "a.jpg", "a_png.png", "b.PNG", "B.jpg", "c.png"):
        Image.new("L", (8, 8)).save(tmp_path / name, format="PNG")
    items = image_folder_datalist(tmp_path, spacing=0.1)
    ids = {Path(i["image"]).name: i["id"] for i in items}
    assert ids == {"a.jpg": "a_jpg", "a.png": "a_png_2", "a_png.png": "a_png", "B.jpg": "B_jpg", "b.PNG": "b_png",
                   "c.png": "c"}
    assert len({i.casefold() for i in ids.values()}) == len(ids)
    assert [i["id"] for i in image_folder_datalist(tmp_path, spacing=0.1)] == [i["id"] for i in items]  # deterministic


@pytest.mark.parametrize("second, shared", [({"id": "a"}, "'a' at entries [0, 1]"),
                                            ({"id": "A"}, "'a' at entries [0, 1]"),
                                            ({"id": None, "image": "sub/a.png"}, "'a' at entries [0, 1]")])
def test_a_datalist_whose_items_share_an_id_is_refused_naming_the_ids(tmp_path, second, shared):
    (tmp_path / "sub").mkdir()
    for name in ("a.png", "sub/a.png"):
        Image.new("L", (100, 80)).save(tmp_path / name)
    first = {"image": "a.png", "landmarks": [[1.0, 2.0]] * 19, "spacing": [0.1, 0.1], "id": "a"}
    other = {k: v for k, v in {**first, **second}.items() if v is not None}
    if "id" not in second or second["id"] is None:
        first = {k: v for k, v in first.items() if k != "id"}
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"training": [first], "test": [first, other]}))
    before = path.read_text()
    with pytest.raises(DataFileError, match=rf"mine.json \[test\]: items share an id \({re.escape(shared)}\)"):
        load_datalist(path)
    assert path.read_text() == before


# --- the datalist command never writes over an input, and says when it changes a split (issue 24) ---

@pytest.mark.parametrize("target", ["test1_senior.csv", "images/001.jpg", "notes.txt"])
def test_the_command_never_writes_over_a_file_of_the_dataset(capsys, isbi_csv_dataset, target):
    (isbi_csv_dataset / "notes.txt").write_text("mine")
    path = isbi_csv_dataset / target
    before = path.read_bytes()
    code, err = _run(capsys, isbi_csv_dataset, path)
    _assert_failed(code, err, str(path), "inside the dataset folder", "not replaced")
    assert path.read_bytes() == before


def test_the_command_writes_a_new_datalist_inside_the_dataset_folder(capsys, isbi_csv_dataset):
    code, _ = _run(capsys, isbi_csv_dataset, isbi_csv_dataset / "datalist.json")
    assert code == 0 and len(json.loads((isbi_csv_dataset / "datalist.json").read_text())["training"]) == 1


def test_rescaled_split_fractions_are_reported(capsys, isbi_csv_dataset, output):
    from monai_ceph.data.datalist import SplitWarning

    with pytest.warns(SplitWarning, match=r"--split fractions \[1.0, 1.0, 2.0\] sum to 4, not 1: rescaled to "
                                          r"\[0.25, 0.25, 0.5\]"):
        code, _ = _run(capsys, isbi_csv_dataset, output, "--split", "1", "1", "2")
    assert code == 0


def test_a_split_that_leaves_a_section_empty_is_reported(capsys, isbi_csv_dataset, output):
    from monai_ceph.data.datalist import SplitWarning

    with pytest.warns(SplitWarning, match=r"of 3 images leave \['test'\] empty \(counts \{'training': 2, "
                                          r"'validation': 1, 'test': 0\}\)"):
        code, _ = _run(capsys, isbi_csv_dataset, output, "--split", "0.6", "0.3", "0.1")
    assert code == 0 and json.loads(output.read_text())["test"] == []


def test_an_exact_split_says_nothing(capsys, isbi_csv_dataset, output):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _run(capsys, isbi_csv_dataset, output, "--split", "0.34", "0.33", "0.33")[0] == 0


def test_an_extra_section_with_a_bad_entry_is_refused_not_dropped(tmp_path):
    Image.new("L", (100, 80)).save(tmp_path / "a.png")
    item = {"image": "a.png", "landmarks": [[1.0, 2.0]] * 19, "spacing": [0.1, 0.1], "id": "a"}
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"training": [item], "test2": [item, "b.png"], "notes": ["kept aside"]}))
    with pytest.raises(DataFileError, match=r"mine.json \[test2\] entry 1: expected an object"):
        load_datalist(path)
