"""The shape/uncertainty steps of the cephres bundle through ``ConfigWorkflow`` on phantoms at 32 x 32: the
``calibrating`` run (shape.json) writes a loadable shape model and calibration, inference writes ``sigma_mm`` and
the covariance (uncalibrated, then calibrated by exactly the saved scales), and shape_refine.json moves a displaced
point back and flags it. The network keeps random weights (saved as the checkpoint): no training is needed."""

import csv
import json
import traceback
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from monai.bundle import ConfigParser, ConfigWorkflow
from monai_ceph.data import get_landmark_set, write_phantom_dataset
from monai_ceph.shape import ShapeModel, UncertaintyCalibration, confidence_factor

CONFIGS = Path(__file__).resolve().parents[2] / "bundles" / "cephres" / "configs"
ISBI = get_landmark_set("isbi2015")
MOVED, SHIFT_PX = 5, 10.0  # landmark moved in the refinement test: 10 source px = 30 mm at the phantoms' 3 mm/px
SD_MM = 2.0  # the evidence SD given to every point there


def run(overlays, run_id=None, workflow_type=None, **override):
    files = [str(CONFIGS / "train.json")] + [str(CONFIGS / f"{name}.json") for name in overlays]
    wf = ConfigWorkflow(config_file=files, run_id=run_id or "run", workflow_type=workflow_type, **override)
    wf.initialize()
    wf.run()
    wf.finalize()
    return wf


def read_json(path):
    return json.loads(Path(path).read_text())


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """40 training phantoms (a shape model needs 2 K = 38), 2 validation, 2 test; a random-weight checkpoint."""
    root = tmp_path_factory.mktemp("shape_bundle")
    datalist = write_phantom_dataset(root / "phantoms", num_images=44, spatial_size=(64, 80),
                                     fractions=(0.9, 0.05, 0.05))
    override = {"bundle_root": str(root / "bundle"), "datalist_file": str(datalist), "spatial_size": [32, 32],
                "batch_size": 2, "num_workers": 0}
    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "train.json"))
    parser.update(override)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        network = parser.get_parsed_content("network_def")
    models = root / "bundle" / "models"
    models.mkdir(parents=True)
    torch.save(network.state_dict(), models / "model.pt")
    return SimpleNamespace(root=root / "bundle", models=models, override=override, datalist=read_json(datalist))


def inference_records(bundle, *overlays, **override):
    run(["inference", *overlays], workflow_type="infer", save_overlays=False, **{**bundle.override, **override})
    folder = bundle.root / "eval" / "inference" / "landmarks"
    return {p.stem: (read_json(p), list(csv.DictReader(open(p.with_suffix(".csv"))))) for p in folder.glob("*.json")}


def sigma_of(record):
    return np.array([r["sigma_mm"] for r in record["landmarks"]])


def test_calibrating_then_inference_with_sigma(bundle):
    before = inference_records(bundle)  # no calibration file yet: uncalibrated, and said so
    assert sorted(before) == sorted(item["id"] for item in bundle.datalist["test"])
    spacing = {item["id"]: np.asarray(item["spacing"]) for item in bundle.datalist["test"]}
    for image_id, (record, rows) in before.items():
        assert record["uncertainty"]["calibrated"] is False
        cov_mm, cov_px = (np.array([[[r[f"cov_xx_{u}"], r[f"cov_xy_{u}"]], [r[f"cov_xy_{u}"], r[f"cov_yy_{u}"]]]
                                    for r in record["landmarks"]]) for u in ("mm", "px"))
        assert np.isfinite(cov_mm).all() and (np.linalg.det(cov_mm) > 0).all()
        np.testing.assert_allclose(sigma_of(record), np.sqrt(np.trace(cov_mm, axis1=1, axis2=2) / 2), rtol=1e-5)
        np.testing.assert_allclose(cov_px, cov_mm / np.outer(spacing[image_id], spacing[image_id]), rtol=1e-5)
        np.testing.assert_allclose([float(r["sigma_mm"]) for r in rows], sigma_of(record), rtol=1e-6)

    wf = run(["shape"], run_id="calibrating", **bundle.override)
    model = ShapeModel.load(bundle.models / "shape_model.json")
    assert model.landmark_set == "isbi2015" and model.num_landmarks == 19 and model.num_shapes == 40
    calibration = UncertaintyCalibration.load(bundle.models / "uncertainty_calibration.json")
    assert calibration.landmark_set == "isbi2015" and calibration.method == "quantile" and len(calibration.scales) == 19
    saver = wf.parser.get_parsed_content("calibration_saver")
    np.testing.assert_allclose(saver.calibration.scales, calibration.scales)
    assert not (bundle.root / "models" / "checkpoint_epoch=1.pt").exists()  # no training, no best-model saver

    after = inference_records(bundle, shape_refine=False)  # the calibration alone (the shape model refines by default)
    for image_id, (record, _) in after.items():
        assert record["uncertainty"]["calibrated"] is True
        confidence = [float(r["confidence"]) for r in record["landmarks"]]  # the calibration's power of 1 - peak
        factor = calibration.scales * confidence_factor(confidence, calibration.confidence_power)
        np.testing.assert_allclose(sigma_of(record), sigma_of(before[image_id][0]) * factor, rtol=1e-4)
        points = [[r["x"], r["y"]] for r in record["landmarks"]]
        np.testing.assert_allclose(points, [[r["x"], r["y"]] for r in before[image_id][0]["landmarks"]], atol=1e-5)
        assert record["pipeline"] == ["global stage", "calibrated uncertainty"]
    for record, _ in inference_records(bundle).values():  # by default: the shape model refines, and says so
        assert record["pipeline"] == ["global stage", "shape refinement", "calibrated uncertainty"]
        assert "shape" in record


def test_evaluation_report_has_rho_and_coverage(bundle):
    run(["evaluate"], workflow_type="eval", save_overlays=False, **bundle.override)
    summary = read_json(bundle.root / "eval" / "test" / "radial_error_summary.json")
    block = summary["uncertainty"]
    assert block["n_points"] == 2 * 19 and block["coverage"] == 0.95
    assert -1 <= block["spearman_rho"] <= 1 and 0 <= block["ellipse_coverage_percent"] <= 100
    assert [r["abbreviation"] for r in block["per_landmark"]] == list(ISBI.abbreviations)


def oracle_override(bundle):
    """Post-processing whose 'network' points are the ground truth with landmark MOVED displaced, each with an
    SD of SD_MM: the refinement must flag it and bring it back."""
    shift = [[0.0, 0.0]] * 19
    shift[MOVED] = [SHIFT_PX, 0.0]
    return {
        "oracle": [
            {"_target_": "DeleteItemsd", "keys": "pred_landmarks"},
            {"_target_": "CopyItemsd", "keys": "landmarks", "names": "pred_landmarks"},
            {"_target_": "Lambdad", "keys": "pred_landmarks", "func": f"$lambda p: p + torch.tensor({shift})"},
            {"_target_": "Lambdad", "keys": "cov_mm", "func": f"$lambda c: {SD_MM**2} * torch.eye(2).expand(19, 2, 2)"},
        ],
        "validate#postprocessing#transforms": "$(@validate#orientation_outputs if @orientation else []) + "
        "[@validate#inside, @validate#decode, @validate#uncertainty, @validate#to_source] + "
        "@oracle + @validate#shape_refinement + [@measurements]",
    }


def test_shape_refine_option_moves_a_displaced_point_back(bundle):
    if not (bundle.models / "shape_model.json").exists():
        run(["shape"], run_id="calibrating", **bundle.override)
    run(["evaluate", "shape_refine"], workflow_type="eval", save_overlays=False, **bundle.override,
        **oracle_override(bundle))
    truth = {item["id"]: np.asarray(item["landmarks"]) for item in bundle.datalist["test"]}
    for image_id, gt in truth.items():
        record = read_json(bundle.root / "eval" / "test" / "landmarks" / f"{image_id}.json")
        rows = record["landmarks"]
        refined = np.array([[r["x"], r["y"]] for r in rows])
        unrefined = np.array([[r["unrefined_x"], r["unrefined_y"]] for r in rows])
        np.testing.assert_allclose(unrefined[MOVED], gt[MOVED] + [SHIFT_PX, 0.0], atol=1e-3)
        assert [r["flagged"] for r in rows] == [i == MOVED for i in range(19)]
        assert record["shape"]["flagged"] == [ISBI.abbreviations[MOVED]]
        assert rows[MOVED]["shape_distance"] > 3.03 and record["shape"]["plausibility"] > 0
        # 30 mm off, back to within 6 mm (the 40-phantom shape model's own scatter is about 3 mm); the other
        # points stay within 4 mm of their exact evidence
        errors = np.array([r["error_mm"] for r in rows])
        np.testing.assert_allclose(errors, np.hypot(*((refined - gt) * 3.0).T), rtol=1e-4, atol=1e-4)
        assert errors[MOVED] < 6.0
        others = np.delete(np.arange(19), MOVED)
        assert errors[others].max() < 4.0
        # the flagged point's uncertainty now comes from the shape alone; the others' fused one is below SD_MM
        assert max(rows[i]["sigma_mm"] for i in others) < SD_MM < rows[MOVED]["sigma_mm"]
        measured = read_json(bundle.root / "eval" / "test" / "measurements" / f"{image_id}.json")
        assert measured["id"] == image_id  # measurements were computed (from the refined points)


def test_shape_refine_refuses_another_landmark_set(bundle, tmp_path):
    aariz = get_landmark_set("aariz")
    model = ShapeModel(np.random.default_rng(0).normal(size=(len(aariz), 2)) * 30, np.zeros((0, 2 * len(aariz))),
                       [], 1.0, landmark_set="aariz")
    path = model.save(tmp_path / "aariz_shape.json")
    with pytest.raises(Exception) as info:
        run(["inference", "shape_refine"], workflow_type="infer", save_overlays=False, shape_model_file=str(path),
            **bundle.override)
    text = "".join(traceback.format_exception(info.value))  # with the errors it was raised from
    assert "'aariz'" in text and "'isbi2015'" in text and str(path) in text
