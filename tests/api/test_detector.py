"""``LandmarkDetector``: the bundle's own inference run from Python on files, arrays, DICOM and batches, the
result's conversions, and its one-line errors."""

import json
import math
import shutil

import numpy as np
import pytest
import torch
from monai.bundle import ConfigWorkflow
from monai.transforms import LoadImage

from monai_ceph import LandmarkDetector, LandmarkResult
from monai_ceph.analysis import classify, measure
from monai_ceph.data import RadiographReader, SpacingError


@pytest.fixture(scope="module")
def det(trained_bundle):
    return LandmarkDetector.from_bundle(trained_bundle, device="cpu")


@pytest.fixture(scope="module")
def test_items(phantoms):
    with open(phantoms) as f:
        items = json.load(f)["test"]
    return [{**d, "image": str(phantoms.parent / d["image"])} for d in items]


def source_array(path):
    return np.asarray(LoadImage(reader=RadiographReader(), image_only=True, ensure_channel_first=True)(path))[0]


def test_matches_the_bundles_own_inference_run(det, trained_bundle, test_items, tmp_path):
    """The API's landmarks are those `monai.bundle run inferring` writes for the same image."""
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(test_items[0]["image"], folder)
    configs = trained_bundle / "configs"
    wf = ConfigWorkflow(
        config_file=[str(configs / "train.json"), str(configs / "inference.json")], workflow_type="infer",
        bundle_root=str(trained_bundle), input_dir=str(folder), input_spacing=test_items[0]["spacing"],
        spatial_size=[64, 64], num_workers=0, save_overlays=False, output_dir=str(tmp_path / "eval"),
    )
    wf.initialize()
    wf.run()
    wf.finalize()
    written = json.loads((tmp_path / "eval" / "inference" / "landmarks" / f"{test_items[0]['id']}.json").read_text())
    result = det(test_items[0]["image"], spacing=test_items[0]["spacing"])
    assert isinstance(result, LandmarkResult) and result.id == test_items[0]["id"]
    expected = np.array([[row["x"], row["y"]] for row in written["landmarks"]])
    np.testing.assert_allclose(result.landmarks, expected, atol=1e-4)
    np.testing.assert_allclose(result.confidence, [row["confidence"] for row in written["landmarks"]], atol=1e-5)


@pytest.mark.parametrize("kind", ["numpy", "torch", "channel_first"])
def test_array_input_equals_file_input(det, test_items, kind):
    path, spacing = test_items[0]["image"], test_items[0]["spacing"]
    image = source_array(path)
    array = {"numpy": image, "torch": torch.as_tensor(image), "channel_first": image[None]}[kind]
    from_file, from_array = det(path, spacing=spacing), det(array, spacing=spacing)
    np.testing.assert_allclose(from_array.landmarks, from_file.landmarks, atol=1e-4)
    assert from_array.source is None and from_array.id == "array_0"
    np.testing.assert_array_equal(from_array.image, image)


def test_batch_equals_single_calls(det, test_items):
    paths = [d["image"] for d in test_items]
    spacing = test_items[0]["spacing"]
    batch = det(paths, spacing=spacing)
    assert [r.id for r in batch] == [d["id"] for d in test_items]
    for r, path in zip(batch, paths):
        np.testing.assert_allclose(r.landmarks, det(path, spacing=spacing).landmarks, atol=1e-4)
    assert not np.allclose(batch[0].landmarks, batch[1].landmarks)  # two different images, two answers


def test_dicom_takes_its_own_spacing(det, test_items, tmp_path, write_dicom):
    image = source_array(test_items[0]["image"])
    dcm = write_dicom(str(tmp_path / "scan.dcm"), (image.T * 257).astype(np.uint16), PixelSpacing=[0.25, 0.5])
    result = det(dcm)
    np.testing.assert_allclose(result.spacing, [0.5, 0.25])  # PixelSpacing is (row, column) = (y, x)
    np.testing.assert_allclose(result.landmarks_mm, result.landmarks * [0.5, 0.25])
    assert result.source == dcm and result.landmarks.shape == (19, 2)


def test_result_conversions(det, test_items):
    r = det(test_items[0]["image"], spacing=test_items[0]["spacing"])
    s = np.asarray(test_items[0]["spacing"])
    record = json.loads(json.dumps(r.to_dict()))  # JSON-able
    assert record["landmark_set"] == "isbi2015" and record["landmarks"][0]["abbreviation"] == "S"
    assert record["landmarks"][3]["x_mm"] == pytest.approx(r.landmarks[3, 0] * s[0])
    expected = measure(r.landmarks, s, "isbi2015")
    assert r.measurements.keys() == expected.keys()
    for name, value in expected.items():
        assert (math.isnan(value) and math.isnan(r.measurements[name])) or r.measurements[name] == pytest.approx(value)
    assert r.classes == classify(expected)
    row = r.to_csv_row()
    assert row["id"] == r.id and row["Go_y"] == pytest.approx(r.landmarks[9, 1]) and row["ANB"] == pytest.approx(
        expected["ANB"]
    )
    assert row["ANB_class"] == r.classes["ANB"]


def test_plot(det, test_items):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    ax = det(test_items[0]["image"], spacing=test_items[0]["spacing"]).plot()
    offsets = ax.collections[0].get_offsets()
    assert len(offsets) == 19 and len(ax.texts) == 19 and ax.texts[0].get_text() == "S"
    matplotlib.pyplot.close(ax.figure)


def test_plot_without_matplotlib(det, test_items, monkeypatch):
    import sys

    r = det(test_items[0]["image"], spacing=test_items[0]["spacing"])
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        r.plot()


def test_bad_inputs(det, test_items, tmp_path, trained_bundle):
    with pytest.raises(SpacingError, match=r"phantom_\d+\.png: .*pass spacing="):
        det(test_items[0]["image"])
    with pytest.raises(ValueError, match="input 0 is an array: pass spacing="):
        det(np.zeros((64, 80)))
    with pytest.raises(FileNotFoundError, match="nope.png: no such image file"):
        det(str(tmp_path / "nope.png"), spacing=0.1)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"broken\.png: cannot read this image .*pass a DICOM, PNG"):
        det(str(broken), spacing=0.1)
    untrained = tmp_path / "untrained"
    shutil.copytree(trained_bundle / "configs", untrained / "configs")
    assert LandmarkDetector.from_bundle(untrained).model["kind"] == "released"  # no model of its own
    with pytest.raises(FileNotFoundError, match=r"models/model\.pt: no trained model; train the bundle first"):
        LandmarkDetector.from_bundle(untrained, models_dir=untrained / "models")
    with pytest.raises(FileNotFoundError, match="not a bundle folder"):
        LandmarkDetector.from_bundle(tmp_path)


def test_model_settings_are_checked(trained_bundle):
    with pytest.raises(ValueError, match=r"model\.json: the model was trained with spatial_size \[64, 64\]"):
        LandmarkDetector.from_bundle(trained_bundle, device="cpu", spatial_size=[96, 96])


@pytest.mark.isbi
def test_real_isbi_image(det, isbi_dir):
    path = str(sorted((isbi_dir / "images").iterdir())[0])
    r = det(path, spacing=0.1)
    assert r.landmarks.shape == (19, 2) and np.isfinite(r.landmarks).all()
    size = source_array(path).shape  # (x, y) = (1935, 2400)
    assert size == (1935, 2400)
    # decoding stays inside the image, not in the padding of the 200 x 250 mm physical field; sub-pixel decoding
    # may reach about a pixel of the 64 x 64 model (250 mm / 64 = 39 source pixels) past the border
    margin = np.array([2000.0, 2500.0]) / 64
    assert ((r.landmarks >= -margin) & (r.landmarks <= np.array(size) + margin)).all()
    assert np.ptp(r.landmarks, axis=0).min() > 200  # spread over the skull, not collapsed onto one point
    np.testing.assert_allclose(r.to_dict()["spacing"], [0.1, 0.1])
    np.testing.assert_allclose(r.landmarks_mm, r.landmarks * 0.1)
