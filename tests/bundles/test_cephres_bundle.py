"""The cephres bundle run the way MONAI runs bundles: ``ConfigWorkflow`` (initialize, check_properties, run,
finalize) for training, evaluation and inference on phantoms and on a few real ISBI 2015 images at 64 x 64, MONAI's
bundle checks (``verify_metadata`` against the shipped schema, ``verify_net_in_out``, ``ckpt_export``), bad datalist
entries, a two-process ``torchrun`` on CPU with gloo, and resuming a killed training.

Training runs once per module (phantoms, and ISBI when the data is present) with ``bundle_root`` in a temporary
folder; evaluation, inference and export reuse its checkpoints.
"""

import csv
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from monai.bundle import ConfigParser, ConfigWorkflow, ckpt_export, verify_metadata, verify_net_in_out
from monai_ceph.analysis import ISBI2015_CLASSIFICATION, measure
from monai_ceph.data import build_datalist, get_landmark_set, write_datalist
from monai_ceph.transforms import MODEL_SPATIAL_SIZE

ISBI = get_landmark_set("isbi2015")
ISBI_SOURCE_SIZE = (1935, 2400)  # (W, H) = (dim0, dim1)
SMALL = {"spatial_size": [64, 64], "batch_size": 2, "num_workers": 0}
CHECKPOINT = re.compile(r"^checkpoint_epoch=(\d+)\.pt$")


@pytest.fixture(scope="module")
def configs(bundles_dir):
    return bundles_dir / "cephres" / "configs"


def config_files(configs, *overlays):
    return [str(configs / "train.json")] + [str(configs / f"{name}.json") for name in overlays]


def workflow(configs, overlays, workflow_type, **override):
    """A ``ConfigWorkflow`` of train.json plus ``overlays``, initialised, its required properties checked."""
    wf = ConfigWorkflow(config_file=config_files(configs, *overlays), workflow_type=workflow_type, **override)
    wf.initialize()
    missing = wf.check_properties()
    assert missing == [], f"missing or wrongly referenced bundle properties: {missing}"
    return wf


def run_workflow(configs, overlays, workflow_type, **override):
    wf = workflow(configs, overlays, workflow_type, **override)
    wf.run()
    wf.finalize()
    return wf


def checkpoints(ckpt_dir):
    """Epoch numbers of the ``checkpoint_epoch=N.pt`` files in ``ckpt_dir``, sorted."""
    if not ckpt_dir.is_dir():
        return []
    return sorted(int(m.group(1)) for f in ckpt_dir.iterdir() if (m := CHECKPOINT.match(f.name)))


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def section(datalist_file, key):
    with open(datalist_file) as f:
        return {item["id"]: item for item in json.load(f)[key]}


def exception_text(exc):
    """The messages of an exception and of everything it was raised from (MONAI wraps config errors)."""
    texts = []
    while exc is not None:
        texts.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    return "\n".join(texts)


def check_landmark_report(eval_dir, items, spatial_size=None):
    """Check the per-image landmark files written under ``eval_dir/landmarks`` against datalist ``items`` (id ->
    item) and return {id: (19, 2) predicted source pixels}: every point finite and inside the source image when
    ``spatial_size`` (W, H) is given, mm = px * spacing, ground truth (if any) back on its source pixels."""
    predictions = {}
    assert sorted(p.stem for p in (eval_dir / "landmarks").glob("*.json")) == sorted(items)
    for image_id, item in items.items():
        report = json.loads((eval_dir / "landmarks" / f"{image_id}.json").read_text())
        rows = read_csv(eval_dir / "landmarks" / f"{image_id}.csv")
        assert report["id"] == image_id and report["landmark_set"] == "isbi2015"
        np.testing.assert_allclose(report["spacing"], item["spacing"], rtol=1e-6)
        assert [p["abbreviation"] for p in report["landmarks"]] == list(ISBI.abbreviations)
        assert [r["abbreviation"] for r in rows] == list(ISBI.abbreviations)
        points = np.array([[p["x"], p["y"]] for p in report["landmarks"]])
        assert np.isfinite(points).all()
        np.testing.assert_allclose([[float(r["x"]), float(r["y"])] for r in rows], points, rtol=1e-6)
        np.testing.assert_allclose(
            [[p["x_mm"], p["y_mm"]] for p in report["landmarks"]], points * item["spacing"], rtol=1e-6
        )
        if spatial_size is not None:
            assert (points >= -0.5).all() and (points <= np.array(spatial_size) - 0.5).all(), points
        if "landmarks" in item:
            # the ground truth went through resize -> model size -> back to source: exact to 1e-3 px
            gt = np.array([[p["gt_x"], p["gt_y"]] for p in report["landmarks"]])
            np.testing.assert_allclose(gt, item["landmarks"], atol=1e-3)
            error = np.hypot(*((points - gt) * item["spacing"]).T)
            np.testing.assert_allclose([p["error_mm"] for p in report["landmarks"]], error, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose([float(r["error_mm"]) for r in rows], error, rtol=1e-5, atol=1e-6)
        predictions[image_id] = points
    return predictions


def check_evaluation_report(eval_dir, items):
    """Check the report of an evaluate run on datalist ``items``: summary, per-landmark CSV and chart, per-image
    files, overlays; return the per-image predictions."""
    predictions = check_landmark_report(eval_dir, items)
    errors = np.array(
        [[float(r["error_mm"]) for r in read_csv(eval_dir / "landmarks" / f"{i}.csv")] for i in sorted(items)]
    )  # (images, landmarks)
    summary = json.loads((eval_dir / "radial_error_summary.json").read_text())
    assert summary["n_images"] == len(items) and summary["n_landmarks"] == len(ISBI)
    assert math.isfinite(summary["mre_mm"]) and summary["mre_mm"] > 0
    assert summary["mre_mm"] == pytest.approx(errors.mean(), rel=1e-5)
    for t, sdr in summary["sdr_percent"].items():
        assert sdr == pytest.approx(100 * (errors <= float(t)).mean(), abs=1e-4)
    per_landmark = read_csv(eval_dir / "radial_error_per_landmark.csv")
    assert [r["abbreviation"] for r in per_landmark] == list(ISBI.abbreviations)
    np.testing.assert_allclose([float(r["mre_mm"]) for r in per_landmark], errors.mean(axis=0), rtol=1e-5)
    with Image.open(eval_dir / "radial_error_per_landmark.png") as chart:
        assert chart.format == "PNG" and min(chart.size) > 100
    for image_id in items:
        with Image.open(eval_dir / "overlays" / f"{image_id}.png") as overlay:
            assert overlay.format == "PNG" and min(overlay.size) > 0
        with Image.open(eval_dir / "analysis_overlays" / f"{image_id}.png") as tracing:
            assert tracing.format == "PNG" and min(tracing.size) > 100
    check_measurements(eval_dir, items)
    analysis = json.loads((eval_dir / "analysis_summary.json").read_text())
    assert set(ISBI2015_CLASSIFICATION) <= set(analysis["measurements"])
    return predictions


def check_measurements(results_dir, items):
    """The per-image measurements beside the landmarks equal ``measure`` of the written landmarks and spacing."""
    for image_id in items:
        landmarks = json.loads((results_dir / "landmarks" / f"{image_id}.json").read_text())
        points = np.array([[np.nan if r["x"] is None else r["x"], np.nan if r["y"] is None else r["y"]]
                           for r in landmarks["landmarks"]])
        expected = measure(points, landmarks["spacing"])
        written = json.loads((results_dir / "measurements" / f"{image_id}.json").read_text())
        assert written["id"] == image_id and written["landmark_set"] == "isbi2015"
        for name in ISBI2015_CLASSIFICATION:
            value = written["measurements"][name]["value"]
            assert value == pytest.approx(expected[name], rel=1e-5, abs=1e-3), name
        assert (results_dir / "measurements" / f"{image_id}.csv").is_file()


# --------------------------------------------------------------------------------------------------------------
# metadata and network checks


def test_verify_metadata(configs, bundles_dir, tmp_path):
    schema = bundles_dir / "schema" / "meta_schema.json"
    verify_metadata(meta_file=str(configs / "metadata.json"), filepath=str(schema))
    # the schema is really applied: metadata without network_data_format is refused
    meta = json.loads((configs / "metadata.json").read_text())
    del meta["network_data_format"]
    (tmp_path / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="network_data_format"):
        verify_metadata(meta_file=str(tmp_path / "metadata.json"), filepath=str(schema))


def test_metadata_describes_the_network_and_its_input(configs):
    meta = json.loads((configs / "metadata.json").read_text())
    train = json.loads((configs / "train.json").read_text())
    image, pred = meta["network_data_format"]["inputs"]["image"], meta["network_data_format"]["outputs"]["pred"]
    assert image["spatial_shape"] == pred["spatial_shape"] == list(MODEL_SPATIAL_SIZE)  # the trained input size
    assert image["num_channels"] == train["network_def"]["in_channels"] == 1
    parser = ConfigParser(train)
    parser["landmark_set"] = "isbi2015"  # what datalist_landmark_set finds in ISBI (or phantom) data
    assert pred["num_channels"] == parser.get_parsed_content("num_landmarks") == len(ISBI)
    assert list(pred["channel_def"].values()) == list(ISBI.abbreviations)
    # every package the bundle's configs import or instantiate, with the reader of DICOM inputs
    assert {"monai_ceph", "pytorch-ignite", "scikit-image", "itk", "pydicom", "pillow", "tqdm"} <= set(
        meta["required_packages_version"]
    )


@pytest.mark.parametrize("n", [1, 8])
def test_verify_net_in_out(configs, tmp_path, n):
    """MONAI's check of the network against the metadata, at sizes ``8 * n`` (the full 576x736 input takes about a
    minute on a loaded CPU): the network accepts any size divisible by 8 and keeps it."""
    meta = json.loads((configs / "metadata.json").read_text())
    for tensor in (*meta["network_data_format"]["inputs"].values(), *meta["network_data_format"]["outputs"].values()):
        tensor["spatial_shape"] = ["8*n", "8*n"]
    (tmp_path / "metadata.json").write_text(json.dumps(meta))
    verify_net_in_out(
        net_id="network_def",
        meta_file=str(tmp_path / "metadata.json"),
        config_file=str(configs / "train.json"),
        device="cpu",
        n=n,
    )


# --------------------------------------------------------------------------------------------------------------
# phantoms: train once, then evaluate, infer and export from its checkpoint


@pytest.fixture(scope="module")
def phantom_run(configs, phantom_datalist, tmp_path_factory):
    root = tmp_path_factory.mktemp("cephres_phantom")
    override = {"bundle_root": str(root), "datalist_file": str(phantom_datalist), **SMALL}
    wf = run_workflow(configs, [], "train", max_epochs=1, **override)
    return SimpleNamespace(root=root, override=override, workflow=wf)


def test_train_phantoms(phantom_run):
    trainer, evaluator = phantom_run.workflow.trainer, phantom_run.workflow.evaluator
    assert trainer.state.epoch == 1 and trainer.state.iteration == 1  # 2 training images, batch 2
    assert math.isfinite(evaluator.state.metrics["val_mre"])
    assert evaluator.state.best_metric == evaluator.state.metrics["val_mre"]
    models = phantom_run.root / "models"
    assert checkpoints(models) == [1]
    # the resume checkpoint holds the trainer state; the best model is the network after its only epoch
    state = torch.load(models / "checkpoint_epoch=1.pt", map_location="cpu", weights_only=False)
    assert {"model", "optimizer", "lr_scheduler", "trainer"} <= set(state)
    assert state["trainer"]["iteration"] == 1 and state["trainer"]["epoch_length"] == 1  # ignite: epoch 1 done
    best = torch.load(models / "model.pt", map_location="cpu", weights_only=True)
    network = phantom_run.workflow.network_def.state_dict()
    assert best.keys() == network.keys()
    for key, value in network.items():
        torch.testing.assert_close(best[key], value.cpu(), msg=key)
    assert any((phantom_run.root / "eval").glob("events.out.tfevents.*"))  # TensorBoard log


def test_evaluate_phantoms(phantom_run, configs, phantom_datalist):
    run_workflow(configs, ["evaluate"], "eval", **phantom_run.override)
    items = section(phantom_datalist, "test")
    assert len(items) == 2
    check_evaluation_report(phantom_run.root / "eval" / "test", items)


def test_inference_matches_evaluate_phantoms(phantom_run, configs, phantom_datalist):
    """Inference without --input_dir runs on the test section: same predictions as the evaluate run."""
    run_workflow(configs, ["evaluate"], "eval", eval_section="test", save_overlays=False, **phantom_run.override)
    items = section(phantom_datalist, "test")
    evaluated = check_landmark_report(phantom_run.root / "eval" / "test", items)
    run_workflow(configs, ["inference"], "infer", **phantom_run.override)
    inferred_items = {k: {"spacing": v["spacing"]} for k, v in items.items()}
    inferred = check_landmark_report(phantom_run.root / "eval" / "inference", inferred_items, (64, 80))
    for image_id in items:
        np.testing.assert_allclose(inferred[image_id], evaluated[image_id], atol=1e-4)
        assert (phantom_run.root / "eval" / "inference" / "overlays" / f"{image_id}.png").is_file()


def test_ckpt_export(phantom_run, configs, tmp_path):
    ckpt = phantom_run.root / "models" / "model.pt"
    ckpt_export(
        net_id="network_def",
        filepath=str(tmp_path / "model.ts"),
        ckpt_file=str(ckpt),
        meta_file=str(configs / "metadata.json"),
        config_file=str(configs / "train.json"),
        input_shape=[1, 1, 64, 64],
    )
    exported = torch.jit.load(str(tmp_path / "model.ts"), map_location="cpu").eval()
    network = phantom_run.workflow.network_def.eval()
    x = torch.rand(1, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(exported(x), network(x), rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------------------------------------------
# bad input stops before training, naming the entry


@pytest.mark.parametrize("problem", ["missing image", "wrong landmark count"])
def test_bad_datalist_entry(problem, configs, phantom_datalist, tmp_path):
    datalist = json.loads(phantom_datalist.read_text())
    if problem == "missing image":
        entry = datalist["training"][1]
        entry["image"] = "images/no_such_image.png"
    else:
        entry = datalist["validation"][0]
        entry["landmarks"] = entry["landmarks"][:-1]
    entry["id"] = "bad_entry_42"
    bad = phantom_datalist.parent / f"bad_{problem.replace(' ', '_')}.json"  # next to the images (relative paths)
    bad.write_text(json.dumps(datalist))
    wf = ConfigWorkflow(
        config_file=config_files(configs),
        workflow_type="train",
        bundle_root=str(tmp_path),
        datalist_file=str(bad),
        max_epochs=1,
        **SMALL,
    )
    wf.initialize()
    with pytest.raises(Exception) as raised:
        wf.run()
    text = exception_text(raised.value)
    assert "bad_entry_42" in text, text
    assert ("image file not found" if problem == "missing image" else "18 landmarks") in text, text
    assert not (tmp_path / "models").exists() and not (tmp_path / "cache").exists()  # stopped before training


# --------------------------------------------------------------------------------------------------------------
# real ISBI 2015 images at 64 x 64: 2 training, 1 validation, 1 test


@pytest.fixture(scope="module")
def isbi_run(isbi_dir, configs, tmp_path_factory):
    root = tmp_path_factory.mktemp("cephres_isbi")
    full = build_datalist(isbi_dir)
    sizes = {"training": 2, "validation": 1, "test": 1}
    datalist = {**full, **{key: full[key][:n] for key, n in sizes.items()}}
    datalist_file = write_datalist(datalist, root / "datalist.json")
    override = {"bundle_root": str(root), "datalist_file": str(datalist_file), **SMALL}
    wf = run_workflow(configs, [], "train", max_epochs=1, **override)
    return SimpleNamespace(root=root, override=override, datalist_file=datalist_file, workflow=wf)


@pytest.mark.isbi
def test_train_evaluate_isbi(isbi_run, configs):
    assert checkpoints(isbi_run.root / "models") == [1]
    assert math.isfinite(isbi_run.workflow.evaluator.state.metrics["val_mre"])
    run_workflow(configs, ["evaluate"], "eval", **isbi_run.override)
    items = section(isbi_run.datalist_file, "test")
    assert list(items) == ["301"]
    predictions = check_evaluation_report(isbi_run.root / "eval" / "test", items)
    assert (predictions["301"] >= -0.5).all() and (predictions["301"] <= np.array(ISBI_SOURCE_SIZE) - 0.5).all()


@pytest.mark.isbi
def test_inference_isbi_folder(isbi_run, isbi_dir, configs, tmp_path):
    images = tmp_path / "radiographs"
    images.mkdir()
    for image_id in ("301", "302"):
        shutil.copy(isbi_dir / "images" / f"{image_id}.jpg", images)
    run_workflow(configs, ["inference"], "infer", input_dir=str(images), pixel_spacing=0.1, **isbi_run.override)
    out = isbi_run.root / "eval" / "inference"
    items = {image_id: {"spacing": [0.1, 0.1]} for image_id in ("301", "302")}
    predictions = check_landmark_report(out, items, ISBI_SOURCE_SIZE)
    assert not np.allclose(predictions["301"], predictions["302"])  # two images, two answers
    for image_id in items:
        report = json.loads((out / "landmarks" / f"{image_id}.json").read_text())
        assert report["source"] == str((images / f"{image_id}.jpg").resolve())
        assert "gt_x" not in report["landmarks"][0]
        assert all(0.0 <= p["confidence"] <= 1.0 for p in report["landmarks"])
        assert (out / "overlays" / f"{image_id}.png").is_file()


# --------------------------------------------------------------------------------------------------------------
# command line: torchrun DDP on CPU, and resume after a kill


def bundle_command(configs, overlays, *args):
    files = "[" + ",".join(f"'{f}'" for f in config_files(configs, *overlays)) + "]"
    return ["-m", "monai.bundle", "run", "training", "--config_file", files, *map(str, args)]


def small_args(root, datalist_file, max_epochs):
    return [
        "--bundle_root", root, "--datalist_file", datalist_file, "--spatial_size", "[64,64]",
        "--batch_size", "2", "--num_workers", "0", "--max_epochs", max_epochs,
    ]  # fmt: skip


def subprocess_env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@pytest.mark.slow
def test_torchrun_two_processes_gloo(configs, phantom_datalist, tmp_path):
    root = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    command += bundle_command(configs, ["multi_gpu_train"], *small_args(root, phantom_datalist, 1))
    done = subprocess.run(command, cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-5000:]
    assert checkpoints(root / "models") == [1]  # rank 0 saves, once
    assert (root / "models" / "model.pt").is_file()
    # two ranks, one training image each: one iteration of the epoch, logged by rank 0 only
    assert log.count("Epoch: 1/1, Iter: 1/1") == 1, log[-5000:]
    state = torch.load(root / "models" / "checkpoint_epoch=1.pt", map_location="cpu", weights_only=False)
    assert state["trainer"]["iteration"] == 1 and state["trainer"]["epoch_length"] == 1
    # the validation MRE is gathered over both ranks: it equals a one-process evaluation of the two images
    ddp_mre = float(re.search(r"Key metric: val_mre best value: ([0-9.eE+-]+) at epoch: 1", log).group(1))
    run_workflow(configs, ["evaluate"], "eval", eval_section="validation", save_overlays=False, bundle_root=str(root),
                 datalist_file=str(phantom_datalist), **SMALL)  # fmt: skip
    summary = json.loads((root / "eval" / "validation" / "radial_error_summary.json").read_text())
    assert summary["n_images"] == 2
    assert summary["mre_mm"] == pytest.approx(ddp_mre, rel=1e-4)


@pytest.mark.slow
def test_resume_after_kill(configs, phantom_datalist, tmp_path):
    root, models = tmp_path / "run", tmp_path / "run" / "models"
    first_log = tmp_path / "first.log"
    command = [sys.executable, *bundle_command(configs, [], *small_args(root, phantom_datalist, 2))]
    with open(first_log, "w") as log:
        first = subprocess.Popen(command, cwd=tmp_path, env=subprocess_env(), stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        # the epoch-1 checkpoint is complete once its save is logged (the file appears before it is written)
        while "Saved checkpoint at epoch: 1" not in first_log.read_text():
            assert first.poll() is None, first_log.read_text()[-5000:]
            assert time.monotonic() < deadline, "no epoch-1 checkpoint in time"
            time.sleep(0.01)
        first.send_signal(signal.SIGKILL)
    finally:
        first.kill()
        first.wait()
    killed_at = max(checkpoints(models))  # 1, unless epoch 2 beat the kill
    assert killed_at in (1, 2)
    assert first.returncode == -signal.SIGKILL
    best_model_at_kill = (models / "model.pt").read_bytes()
    first_mre = validation_mre(first_log.read_text())

    second = subprocess.run(
        [sys.executable, *bundle_command(configs, [], *small_args(root, phantom_datalist, 3))],
        cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    log = second.stdout + second.stderr
    assert second.returncode == 0, log[-5000:]
    assert f"Restored all variables from {models / f'checkpoint_epoch={killed_at}.pt'}" in log, log[-5000:]
    for epoch in range(1, 4):  # one iteration per epoch; completed epochs are not redone
        assert log.count(f"Epoch: {epoch}/3, Iter: 1/1") == (epoch > killed_at), (epoch, log[-5000:])
    # the resumed run rotates its own checkpoints (n_saved=1) and prunes the killed run's
    assert checkpoints(models) == [3]
    state = torch.load(models / "checkpoint_epoch=3.pt", map_location="cpu", weights_only=False)
    assert state["trainer"]["iteration"] == 3 and state["trainer"]["epoch_length"] == 1  # 3 epochs, none lost
    assert state["trainer"]["max_epochs"] == 3
    # the best metric survived the resume: the best over both runs' validations, and model.pt is its model
    mre = {e: v for e, v in first_mre.items() if e <= killed_at} | validation_mre(log)
    assert sorted(mre) == [1, 2, 3], (mre, log[-5000:])
    best_epoch = min(mre, key=mre.get)
    best = re.findall(r"Key metric: val_mre best value: ([0-9.eE+-]+) at epoch: (\d+)", log)[-1]
    assert int(best[1]) == best_epoch and float(best[0]) == pytest.approx(mre[best_epoch], abs=1e-4), (best, mre)
    assert state["validator"]["best_metric_epoch"] == best_epoch
    assert state["validator"]["best_metric"] == pytest.approx(mre[best_epoch], abs=1e-4)
    assert ((models / "model.pt").read_bytes() == best_model_at_kill) == (best_epoch <= killed_at)


def validation_mre(log):
    """{epoch: val_mre} of the validations StatsHandler logged."""
    return {int(e): float(v) for e, v in re.findall(r"Epoch\[(\d+)\] Metrics -- .*?\bval_mre: ([0-9.eE+-]+)", log)}


@pytest.mark.parametrize("time_limit", [None, 120])
def test_time_limit_handler_is_declared_and_off_by_default(configs, time_limit):
    from monai.bundle import ConfigParser

    from monai_ceph.handlers import TimeLimit

    parser = ConfigParser()
    parser.read_config(str(configs / "train.json"))
    parser["time_limit"] = time_limit
    handlers = parser.get_parsed_content("train#handlers", instantiate=True)
    limits = [h for h in handlers if isinstance(h, TimeLimit)]
    assert [h.limit_sec for h in limits] == ([] if time_limit is None else [time_limit])


def _write_dicom_like(png, path, spacing, monochrome1=False):
    """The PNG's pixels as a DICOM written by ITK (spacing in the header); MONOCHROME1 stores the negative."""
    import itk
    import pydicom

    with Image.open(png) as source:
        pixels = np.asarray(source, dtype=np.uint16)  # (rows, cols) = (y, x); the phantoms are 16-bit
    if monochrome1:
        pixels = pixels.max() + pixels.min() - pixels
    image = itk.image_from_array(np.ascontiguousarray(pixels))
    image.SetSpacing([float(s) for s in spacing])  # ITK's (x, y)
    itk.imwrite(image, str(path))
    if monochrome1:
        ds = pydicom.dcmread(path)
        ds.PhotometricInterpretation = "MONOCHROME1"
        ds.save_as(path)
    return path


def test_inference_dicom_folder_monochrome1_and_2(phantom_run, configs, phantom_datalist, tmp_path):
    """A DICOM folder goes through inferring: DICOM read by PydicomReader in pre-processing and in the overlays,
    spacing from the header, MONOCHROME1 inverted: the same landmarks as the PNG sources' evaluation."""
    run_workflow(configs, ["evaluate"], "eval", eval_section="test", save_overlays=False, **phantom_run.override)
    items = section(phantom_datalist, "test")
    evaluated = check_landmark_report(phantom_run.root / "eval" / "test", items)
    folder = tmp_path / "dicom"
    folder.mkdir()
    for image_id, item in items.items():
        png = phantom_datalist.parent / item["image"]  # datalist paths are relative to the datalist
        _write_dicom_like(png, folder / f"{image_id}_m2.dcm", item["spacing"])
        _write_dicom_like(png, folder / f"{image_id}_m1.dcm", item["spacing"], monochrome1=True)
    root = tmp_path / "bundle"
    shutil.copytree(phantom_run.root / "models", root / "models")
    run_workflow(configs, ["inference"], "infer", **{**phantom_run.override, "bundle_root": str(root)},
                 input_dir=str(folder))  # fmt: skip
    out = root / "eval" / "inference"
    inferred = {f"{i}_{m}": {"spacing": items[i]["spacing"]} for i in items for m in ("m1", "m2")}
    predictions = check_landmark_report(out, inferred, (64, 80))
    for name, points in predictions.items():
        np.testing.assert_allclose(points, evaluated[name[:-3]], atol=1e-3)
        with Image.open(out / "overlays" / f"{name}.png") as overlay:
            assert overlay.size == (32, 40)  # the (x, y) source re-read as DICOM, at scale 0.5
