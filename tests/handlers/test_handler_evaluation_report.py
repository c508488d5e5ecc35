import csv
import json

import numpy as np
import pytest
import torch
from ignite.engine import Engine
from PIL import Image

from monai_ceph.handlers import EvaluationReport, RadialError


def test_report_files_and_values(tmp_path, make_evaluator, example):
    report = EvaluationReport(tmp_path, landmark_set=None)  # reads the key metric's details
    evaluator = make_evaluator(val_handlers=[report], key_val_metric={"val_mre": RadialError(landmark_set=None)})
    evaluator.run()

    summary = json.loads((tmp_path / "radial_error_summary.json").read_text())
    assert summary == report.summary
    assert (summary["n_images"], summary["n_landmarks"], summary["n_valid"], summary["n_missed"]) == (3, 2, 5, 1)
    assert summary["mre_mm"] == pytest.approx(example.mre) and summary["sd_mm"] == pytest.approx(example.sd)
    assert summary["thresholds_mm"] == [2.0, 2.5, 3.0, 4.0]
    assert summary["sdr_percent"] == pytest.approx({str(t): v for t, v in example.sdr.items()})
    first, second = summary["per_landmark"]
    assert first["abbreviation"] == "L1" and first["mre_mm"] == pytest.approx(3.0)
    assert first["sd_mm"] == pytest.approx(np.std([5.0, 1.0, 3.0]))
    assert first["sdr_percent"]["3.0"] == pytest.approx(200 / 3)  # 1 and 3 mm of 5, 1, 3
    # landmark 2: 0 mm on image 000, not annotated on 001, missed on 002
    assert second["mre_mm"] == 0.0 and second["n_valid"] == 2 and second["n_missed"] == 1
    assert second["sdr_percent"]["2.0"] == pytest.approx(50.0)

    with open(tmp_path / "radial_error_per_landmark.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == [
        "index", "abbreviation", "name", "mre_mm", "sd_mm",
        "sdr_2.0mm", "sdr_2.5mm", "sdr_3.0mm", "sdr_4.0mm", "n_valid", "n_missed",
    ]  # fmt: skip
    assert [r["abbreviation"] for r in rows] == ["L1", "L2"]
    assert float(rows[0]["mre_mm"]) == pytest.approx(3.0) and float(rows[0]["sdr_4.0mm"]) == pytest.approx(200 / 3)
    assert (rows[1]["n_valid"], rows[1]["n_missed"], float(rows[1]["sdr_2.0mm"])) == ("2", "1", 50.0)

    png = tmp_path / "radial_error_per_landmark.png"
    assert png.stat().st_size > 5000
    image = np.asarray(Image.open(png).convert("L"))
    assert image.shape[0] >= 300 and image.shape[1] >= 500
    assert image.std() > 10  # a drawn chart, not a blank canvas


def test_isbi_landmark_names_and_nan_statistics(tmp_path):
    gt = torch.zeros(19, 2, dtype=torch.float64)
    gt[18] = float("nan")  # Articulare never annotated: its statistics are null, not 0
    pred = gt.clone()
    pred[0] = torch.tensor([30.0, 40.0])  # Sella 5 mm off at 0.1 mm/px
    item = {"pred_landmarks": pred, "landmarks": gt, "spacing": torch.tensor([0.1, 0.1])}
    engine = Engine(lambda e, b: [item])
    RadialError(thresholds=(2.0, 3.0)).attach(engine, "mre")  # the report's thresholds need not be the metric's
    EvaluationReport(tmp_path, thresholds=(2.0,), metric_name="mre", plot=False).attach(engine)
    engine.run([0])

    summary = json.loads((tmp_path / "radial_error_summary.json").read_text())
    assert summary["landmark_set"] == "isbi2015" and summary["n_valid"] == 18
    assert summary["mre_mm"] == pytest.approx(5.0 / 18)
    assert summary["sdr_percent"] == {"2.0": pytest.approx(100 * 17 / 18)}
    sella, articulare = summary["per_landmark"][0], summary["per_landmark"][18]
    assert (sella["abbreviation"], sella["name"], sella["mre_mm"]) == ("S", "Sella", pytest.approx(5.0))
    assert articulare["abbreviation"] == "Ar" and articulare["mre_mm"] is None and articulare["n_valid"] == 0
    with open(tmp_path / "radial_error_per_landmark.csv", newline="") as f:
        assert list(csv.DictReader(f))[18]["mre_mm"] == ""
    assert not (tmp_path / "radial_error_per_landmark.png").exists()


def test_reruns_reset_and_only_save_rank_writes(tmp_path, example):
    outputs = [example.add_predictions(d) for d in example.items()]
    engine = Engine(lambda e, batch: [outputs[i] for i in batch])
    RadialError(landmark_set=None).attach(engine, "mre")
    report = EvaluationReport(tmp_path / "rank1", landmark_set=None, metric_name="mre", save_rank=1)
    report.attach(engine)
    for _ in range(2):
        engine.run([[0, 1], [2]])
        assert report.summary["n_images"] == 3 and report.summary["mre_mm"] == pytest.approx(example.mre)
    assert not (tmp_path / "rank1").exists()  # this process is rank 0


def test_report_needs_the_metric_details(tmp_path, example):
    outputs = [example.add_predictions(d) for d in example.items()]
    engine = Engine(lambda e, batch: [outputs[i] for i in batch])
    RadialError(landmark_set=None, save_details=False).attach(engine, "mre")
    EvaluationReport(tmp_path, landmark_set=None, metric_name="mre").attach(engine)
    with pytest.raises(RuntimeError, match=r"metric 'mre' in engine.state.metric_details.*save_details=True"):
        engine.run([[0, 1], [2]])
    assert not tmp_path.joinpath("radial_error_summary.json").exists()
