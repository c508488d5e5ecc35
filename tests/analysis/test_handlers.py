"""MeasurementWriter and AnalysisOverlaySaver on output items as the bundle's post-processing leaves them."""

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from monai.data import MetaTensor
from monai_ceph.analysis import AnalysisOverlaySaver, CephalometricMeasurementsd, MeasurementWriter, measure


@pytest.fixture
def item(layout, tmp_path):
    source = tmp_path / "ceph_7.png"
    Image.fromarray(np.full((260, 220), 90, np.uint8)).save(source)  # rows = y, columns = x
    image = MetaTensor(torch.zeros(1, 8, 8), meta={"filename_or_obj": str(source)})
    landmarks = layout(Go=(np.nan, np.nan))  # a missing landmark: the measures that need it are null, with why
    data = {"image": image, "pred_landmarks": torch.as_tensor(landmarks), "spacing": torch.tensor([0.1, 0.1])}
    return CephalometricMeasurementsd(reasons_keys="measurement_reasons")(data), landmarks


def test_measurement_writer_json_and_csv(item, tmp_path):
    data, landmarks = item
    paths = MeasurementWriter(output_dir=tmp_path / "out").handle(data)
    assert [p.rsplit(".", 1)[1] for p in paths] == ["json", "csv"]
    record = json.loads((tmp_path / "out" / "ceph_7.json").read_text())
    assert record["id"] == "ceph_7" and record["source"].endswith("ceph_7.png") and record["landmark_set"] == "isbi2015"
    expected = measure(landmarks, (0.1, 0.1))
    assert record["measurements"]["ANB"]["value"] == pytest.approx(expected["ANB"])
    assert record["measurements"]["ANB"]["value"] == pytest.approx(
        record["measurements"]["SNA"]["value"] - record["measurements"]["SNB"]["value"]
    )
    assert record["measurements"]["ANB"]["class"] == data["classes"]["ANB"]
    gonial = record["measurements"]["FHI"]  # S-Go / N-Me needs Go
    assert gonial["value"] is None and "Go" in gonial["reason"]
    with open(tmp_path / "out" / "ceph_7.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert row["id"] == "ceph_7" and float(row["SNA"]) == pytest.approx(expected["SNA"]) and row["FHI"] == ""


def test_measurement_writer_needs_the_measurements(item, tmp_path):
    data, _ = item
    del data["measurements"]
    with pytest.raises(KeyError, match="CephalometricMeasurementsd"):
        MeasurementWriter(output_dir=tmp_path).handle(data)


def test_analysis_overlay_saver_reads_the_source(item, tmp_path):
    data, _ = item
    path = AnalysisOverlaySaver(output_dir=tmp_path / "tracings", scale=0.5).handle(data)
    with Image.open(path) as tracing:
        assert tracing.format == "PNG" and tracing.size[0] == pytest.approx(600, abs=2)  # 6 inches at 100 dpi
    assert not list((tmp_path / "tracings").glob("*.tmp*"))  # written atomically, nothing left behind
