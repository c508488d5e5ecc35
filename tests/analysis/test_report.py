import csv
import json

import numpy as np
import pytest
import torch
from ignite.engine import Engine

from monai_ceph.analysis import AnalysisReport, agreement, determinable_measurements, measure
from monai_ceph.data import ISBI2015


def test_report_files_and_values(tmp_path, layout):
    gts = [layout(), layout(A=(145, 150)), layout(Go=(70, 170))]
    preds = [g.copy() for g in gts]
    preds[1][ISBI2015.index("B")] += (4.0, 0.0)  # B 4 px forward on image 1
    items = [
        {"pred_landmarks": torch.as_tensor(p), "landmarks": torch.as_tensor(g), "spacing": torch.tensor([0.1, 0.1])}
        for p, g in zip(preds, gts)
    ]
    items.append({"pred_landmarks": torch.as_tensor(gts[0]), "landmarks": None, "spacing": torch.tensor([0.1, 0.1])})
    engine = Engine(lambda e, i: [items[i]])
    report = AnalysisReport(tmp_path)
    report.attach(engine)
    engine.run(range(len(items)))

    summary = json.loads((tmp_path / "analysis_summary.json").read_text())
    assert summary == json.loads(json.dumps(report.summary))
    assert summary["n_images"] == 3 and summary["landmark_set"] == "isbi2015"
    assert list(summary["measurements"]) == list(determinable_measurements("isbi2015"))
    names = list(summary["measurements"])
    expected = agreement([measure(p, 0.1) for p in preds], [measure(g, 0.1) for g in gts], names)
    assert summary["measurements"]["SNB"]["mae"] == pytest.approx(expected["SNB"]["mae"])
    assert summary["measurements"]["SNB"]["mae"] > 0.1 and summary["measurements"]["SNA"]["mae"] == 0.0
    assert summary["measurements"]["SNA"]["accuracy"] == 100.0
    assert summary["measurements"]["ANB"]["confusion"] == expected["ANB"]["confusion"]
    assert np.sum(summary["measurements"]["ANB"]["confusion"]["matrix"]) == 3

    with open(tmp_path / "analysis_per_measure.csv", newline="") as f:
        rows = {r["measurement"]: r for r in csv.DictReader(f)}
    assert list(next(iter(rows.values()))) == ["measurement", "unit", "n", "mae", "accuracy", "kappa"]
    assert rows["SNA"]["accuracy"] == "100.0" and rows["AB-MP"]["accuracy"] == "" and rows["S-N"]["unit"] == "mm"

    engine.run(range(2))  # a second run starts afresh
    assert report.summary["n_images"] == 2


def test_report_names_and_errors(layout):
    assert AnalysisReport(names=["ANB"]).names == ["ANB"]
    assert "IMPA" in AnalysisReport(landmark_set="aariz").names and "IMPA" not in AnalysisReport().names
    with pytest.raises(KeyError, match="unknown measurement"):
        AnalysisReport(names=["SNX"])
