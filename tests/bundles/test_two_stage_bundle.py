"""The two-stage overlays run the way MONAI runs bundles (``ConfigWorkflow``): the global stage (train.json), the
local stage (train.json + local_train.json) side by side in one bundle, then two-stage evaluation and inference, on
phantoms (where the refined error must beat the coarse one) and on 4 real ISBI 2015 images at a tiny size.

Phantoms: 12 images of 128 x 160 px (1.5 mm/px), split 6 / 2 / 4; the global stage sees them at 32 x 40 (6 mm/px),
the local stage at 1.5 mm/px on patches of 48 mm (32 px). Both are small MONAI UNets so that a few epochs on 2 CPU
cores give a global stage that mostly lands in the patch and a local stage that refines it.
"""

import csv
import hashlib
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from monai.bundle import ConfigWorkflow
from monai_ceph.data import build_datalist, get_landmark_set, write_datalist, write_phantom_dataset
from monai_ceph.networks.nets import monai_unet

ISBI = get_landmark_set("isbi2015")
SMALL_UNET = {
    "_target_": "monai_ceph.networks.nets.monai_unet",
    "spatial_dims": 2,
    "in_channels": 1,
    "out_channels": "@num_landmarks",
    "channels": [16, 32, 64],
    "strides": [2, 2],
}
PHANTOM = {
    "spatial_size": [32, 40],
    "batch_size": 4,
    "num_workers": 0,
    "learning_rate": 2e-3,
    "network_def": SMALL_UNET,
}
PHANTOM_LOCAL = {
    "local#spacing": 1.5,
    "local#patch_size": 48.0,  # 32 px of 1.5 mm
    "local#jitter": 16.0,  # the coarse errors of this small global stage reach that far
    "train#augmentation#0#prob": 0.0,  # no random affine on the patches: faster
    "local#num_samples": 16,
    "local#network_def#channels": [16, 32, 64],
    "local#network_def#strides": [2, 2],
}
GLOBAL_EPOCHS, LOCAL_EPOCHS = 20, 20
LOCAL_TRAIN = ["local_train"]
TWO_STAGE_EVALUATE = ["local_train", "evaluate", "two_stage_evaluate"]
TWO_STAGE_INFERENCE = ["local_train", "inference", "two_stage_inference"]


@pytest.fixture(scope="module")
def configs(bundles_dir):
    return bundles_dir / "cephres" / "configs"


def run_workflow(configs, overlays, workflow_type, **override):
    """``ConfigWorkflow`` of train.json plus ``overlays``: initialise, check the properties, run, finalise."""
    files = [str(configs / "train.json")] + [str(configs / f"{name}.json") for name in overlays]
    wf = ConfigWorkflow(config_file=files, workflow_type=workflow_type, **override)
    wf.initialize()
    assert wf.check_properties() == []
    wf.run()
    wf.finalize()
    return wf


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def landmark_files(folder, ids):
    """{id: (19, 2) source pixels} from the per-image JSON files of a LandmarkWriter folder."""
    assert sorted(p.stem for p in folder.glob("*.json")) == sorted(ids)
    out = {}
    for i in ids:
        report = json.loads((folder / f"{i}.json").read_text())
        assert [p["abbreviation"] for p in report["landmarks"]] == list(ISBI.abbreviations)
        out[i] = np.array([[p["x"], p["y"]] for p in report["landmarks"]], dtype=np.float64)
    return out


def train_both(configs, root, datalist_file, base, local, global_epochs, local_epochs):
    override = {"bundle_root": str(root), "datalist_file": str(datalist_file), **base}
    run_workflow(configs, [], "train", max_epochs=global_epochs, val_interval=global_epochs, **override)
    global_digest = digest(root / "models" / "model.pt")
    wf = run_workflow(
        configs, LOCAL_TRAIN, "train", max_epochs=local_epochs, val_interval=local_epochs, **override, **local
    )
    return SimpleNamespace(root=root, override={**override, **local}, global_digest=global_digest, local=wf)


@pytest.fixture(scope="module")
def phantom_run(configs, tmp_path_factory):
    root = tmp_path_factory.mktemp("two_stage_phantom")
    datalist_file = write_phantom_dataset(
        root / "data", num_images=12, spatial_size=(128, 160), fractions=(0.5, 0.17, 0.33)
    )
    run = train_both(configs, root, datalist_file, PHANTOM, PHANTOM_LOCAL, GLOBAL_EPOCHS, LOCAL_EPOCHS)
    run.datalist_file = datalist_file
    return run


@pytest.mark.slow
def test_local_stage_lives_beside_the_global_one(phantom_run):
    models = phantom_run.root / "models"
    assert digest(models / "model.pt") == phantom_run.global_digest  # the global model is untouched
    assert (models / "local" / f"checkpoint_epoch={LOCAL_EPOCHS}.pt").is_file()
    local = torch.load(models / "local" / "model.pt", map_location="cpu", weights_only=True)
    network = phantom_run.local.trainer.network.state_dict()
    assert local.keys() == network.keys()
    for key, value in network.items():
        torch.testing.assert_close(local[key], value.cpu(), msg=key)
    # the trainer saw patches: 6 images x 16 patches of 32 x 32 px per epoch, batch 4 images
    assert phantom_run.local.trainer.state.iteration == LOCAL_EPOCHS * 2
    assert tuple(phantom_run.local.trainer.state.output[0]["image"].shape) == (1, 32, 32)
    assert math.isfinite(phantom_run.local.evaluator.state.metrics["val_mre"])
    assert any((phantom_run.root / "eval" / "local").glob("events.out.tfevents.*"))
    # the local stage's own settings travel with it, beside the global one's
    settings = json.loads((models / "local" / "model.json").read_text())
    assert settings["local"] == {"patch_size": 48.0, "spacing": 1.5, "prior_sigma": None}
    assert "local" not in json.loads((models / "model.json").read_text())


@pytest.mark.slow
def test_local_stage_of_other_patch_settings_is_refused(phantom_run, configs):
    with pytest.raises(Exception) as err:
        run_workflow(configs, TWO_STAGE_EVALUATE, "eval", **{**phantom_run.override, "local#patch_size": 24.0})
    text, exc = [], err.value
    while exc is not None:
        text.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    text = "\n".join(text)
    assert str(phantom_run.root / "models" / "local" / "model.json") in text and "'patch_size': 48.0" in text


@pytest.mark.slow
@pytest.mark.parametrize("exploration", [False, True])
def test_two_stage_evaluation_refines_the_coarse_points(phantom_run, configs, exploration):
    output_dir = phantom_run.root / f"eval_exploration_{exploration}"
    override = {**phantom_run.override, "local#exploration": exploration, "output_dir": str(output_dir)}
    wf = run_workflow(configs, TWO_STAGE_EVALUATE, "eval", **override)
    metrics = wf.evaluator.state.metrics
    out = output_dir / "test"
    refined = json.loads((out / "radial_error_summary.json").read_text())
    coarse = json.loads((out / "coarse_radial_error_summary.json").read_text())
    assert refined["n_images"] == coarse["n_images"] == 4
    assert metrics["val_mre"] == pytest.approx(refined["mre_mm"], rel=1e-5)
    assert metrics["coarse_mre"] == pytest.approx(coarse["mre_mm"], rel=1e-5)
    assert "coarse_SDR_2.0mm" in metrics and "coarse_MRE_S" in metrics
    if not exploration:  # the bar; exploration of this tiny local model is reported, not required to win
        assert refined["mre_mm"] < coarse["mre_mm"], (refined["mre_mm"], coarse["mre_mm"])
    for name in ("radial_error_per_landmark.csv", "coarse_radial_error_per_landmark.csv"):
        assert [r["abbreviation"] for r in read_csv(out / name)] == list(ISBI.abbreviations)
    with open(phantom_run.datalist_file) as f:
        test_items = {item["id"]: item for item in json.load(f)["test"]}
    for folder in ("landmarks", "coarse_landmarks"):
        points = landmark_files(out / folder, test_items)
        for i, item in test_items.items():
            error = np.hypot(*((points[i] - np.array(item["landmarks"])) * item["spacing"]).T)
            rows = read_csv(out / folder / f"{i}.csv")
            np.testing.assert_allclose([float(r["error_mm"]) for r in rows], error, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_two_stage_inference_writes_refined_and_coarse_points(phantom_run, configs):
    run_workflow(configs, TWO_STAGE_INFERENCE, "infer", **phantom_run.override)
    with open(phantom_run.datalist_file) as f:
        ids = [item["id"] for item in json.load(f)["test"]]
    out = phantom_run.root / "eval" / "inference"
    refined, coarse = landmark_files(out / "landmarks", ids), landmark_files(out / "coarse_landmarks", ids)
    for i in ids:
        assert np.isfinite(refined[i]).all() and not np.allclose(refined[i], coarse[i])
    assert sorted(p.stem for p in (out / "overlays").glob("*.png")) == sorted(ids)


@pytest.mark.slow
def test_two_stage_uncertainty_is_written_and_calibrated(phantom_run, configs):
    """Every refined point gets sigma_mm and its covariance from the local heatmap; the calibrating run of
    shape.json on the two-stage overlays fits the two-stage calibration beside the local model (the global one's
    is untouched), and evaluation then reports calibrated sigmas scaled by it, and shape refinement applies."""
    from monai_ceph.shape import ShapeModel, UncertaintyCalibration, confidence_factor, datalist_shapes

    models = phantom_run.root / "models"
    with open(phantom_run.datalist_file) as f:
        training = json.load(f)["training"]
    for item in training:  # the datalist's paths are relative to its folder
        item["image"] = str(phantom_run.datalist_file.parent / item["image"])
    shapes, name = datalist_shapes(training)  # 6 phantoms: jittered copies make the 2*K shapes a model needs
    jitter = np.random.default_rng(0).normal(0.0, 1.5, (8, *shapes.shape))
    shape_model = ShapeModel.fit((shapes[None] + jitter).reshape(-1, *shapes.shape[1:]), name)
    shape_model.save(models / "shape_model.json")
    output_dir = phantom_run.root / "eval_uncertainty"
    # the raw and calibrated sigmas first: shape refinement (on by default with a shape model) off
    override = {**phantom_run.override, "output_dir": str(output_dir), "save_overlays": False, "shape_refine": False}

    def sigmas(folder):
        records = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
        assert len(records) == 4
        return records, np.array([[p["sigma_mm"] for p in r["landmarks"]] for r in records], dtype=np.float64)

    run_workflow(configs, TWO_STAGE_EVALUATE, "eval", **override)
    records, raw = sigmas(output_dir / "test" / "landmarks")
    assert np.isfinite(raw).all() and (raw > 0).all() and (raw < 20).all()  # mm, 1.5 mm local pixels
    assert all(r["uncertainty"]["calibrated"] is False for r in records)
    block = json.loads((output_dir / "test" / "radial_error_summary.json").read_text())["uncertainty"]
    assert block["n_points"] == 4 * len(ISBI) and block["calibrated"] is False

    wf = ConfigWorkflow(
        config_file=[str(configs / f"{n}.json") for n in ["train", *TWO_STAGE_EVALUATE, "shape"]],
        run_id="calibrating", fit_shape_model="$None", **override,
    )
    wf.initialize()
    wf.run()
    wf.finalize()
    calibration = UncertaintyCalibration.load(models / "local" / "two_stage_uncertainty_calibration.json")
    assert calibration.landmark_set == "isbi2015" and len(calibration.scales) == len(ISBI)
    assert not (models / "uncertainty_calibration.json").exists()  # the global stage's is its own run's

    run_workflow(configs, TWO_STAGE_EVALUATE, "eval", **override)
    records, calibrated = sigmas(output_dir / "test" / "landmarks")
    assert all(r["uncertainty"]["calibrated"] is True for r in records)
    confidence = np.array([[float(p["confidence"]) for p in r["landmarks"]] for r in records])  # the peak's power
    factor = calibration.scales * confidence_factor(confidence, calibration.confidence_power)
    np.testing.assert_allclose(calibrated, raw * factor, rtol=1e-4)

    run_workflow(configs, [*TWO_STAGE_EVALUATE, "shape_refine"], "eval", **override)
    records, _ = sigmas(output_dir / "test" / "landmarks")
    assert all("shape" in r and "flagged" in r["shape"] for r in records)
    # the same by default, with train.json + evaluate.json alone: the best pipeline the models folder holds
    run_workflow(configs, ["evaluate"], "eval", **{**override, "shape_refine": "$os.path.isfile(@shape_model_file)"})
    default, _ = sigmas(output_dir / "test" / "landmarks")
    assert [r["landmarks"] for r in default] == [r["landmarks"] for r in records]
    assert default[0]["pipeline"] == ["global stage", "local stage", "shape refinement", "calibrated uncertainty"]


@pytest.mark.slow
def test_local_checkpoint_of_another_landmark_set_is_refused(phantom_run, configs, tmp_path):
    other = tmp_path / "local_29.pt"
    torch.save(monai_unet(2, 1, 29, channels=(16, 32, 64), strides=(2, 2)).state_dict(), other)
    with pytest.raises(Exception) as err:
        run_workflow(configs, TWO_STAGE_EVALUATE, "eval", **phantom_run.override, **{"local#ckpt_path": str(other)})
    text = []
    exc = err.value
    while exc is not None:
        text.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    text = "\n".join(text)
    assert str(other) in text and str(phantom_run.root / "models" / "model.pt") in text and "19 landmarks" in text


@pytest.mark.slow
def test_prior_conditioned_local_stage(phantom_run, configs):
    """local_prior.json: the local network sees one Gaussian channel per landmark at the (simulated, then the
    global stage's) coarse points; trained in its own models folder beside the plain local stage, it refines the
    coarse points of the phantom test images."""
    root = phantom_run.root
    override = phantom_run.override
    wf = run_workflow(configs, [*LOCAL_TRAIN, "local_prior"], "train", max_epochs=LOCAL_EPOCHS,
                      val_interval=LOCAL_EPOCHS, **override)
    assert tuple(wf.trainer.state.output[0]["image"].shape) == (1 + len(ISBI), 32, 32)  # patch + 19 priors
    item = wf.trainer.data_loader.dataset[0][0]  # a training patch with its (augmented) simulated coarse points
    image = item["image"]
    coarse = torch.as_tensor(item["coarse_landmarks"])
    inside = torch.isfinite(coarse).all(-1)
    for k in torch.nonzero(inside).flatten()[:3].tolist():  # a channel peaks at its (augmented) coarse point
        peak = torch.stack(torch.unravel_index(image[1 + k].argmax(), image.shape[1:])).double()
        assert torch.linalg.norm(peak - coarse[k].double().cpu()) <= 1.0
    assert all(float(image[1 + k].abs().max()) < 0.5 for k in torch.nonzero(~inside).flatten().tolist())
    output_dir = root / "eval_prior"
    wf = run_workflow(configs, [*LOCAL_TRAIN, "local_prior", *TWO_STAGE_EVALUATE[1:]], "eval",
                      **override, output_dir=str(output_dir))
    assert wf.evaluator.inferer.refiner.prior.sigma == 3.0
    refined = json.loads((output_dir / "test" / "radial_error_summary.json").read_text())
    coarse = json.loads((output_dir / "test" / "coarse_radial_error_summary.json").read_text())
    assert refined["mre_mm"] < coarse["mre_mm"], (refined["mre_mm"], coarse["mre_mm"])
    assert (root / "models" / "local_prior" / "model.pt").is_file() and (root / "models" / "local" / "model.pt").is_file()
    assert json.loads((root / "models" / "local_prior" / "model.json").read_text())["local"]["prior_sigma"] == 3.0
    prior_model = str(root / "models" / "local_prior" / "model.pt")
    with pytest.raises(Exception) as err:  # the plain two-stage overlays refuse it, naming the overlay it needs
        run_workflow(configs, TWO_STAGE_EVALUATE, "eval", **override, **{"local#ckpt_path": prior_model})
    text, exc = [], err.value
    while exc is not None:
        text.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    assert prior_model in "\n".join(text) and "local_prior.json" in "\n".join(text)


# --------------------------------------------------------------------------------------------------------------
# 4 real ISBI 2015 images at a tiny size: 2 training, 1 validation, 1 test


@pytest.fixture(scope="module")
def isbi_run(isbi_dir, configs, tmp_path_factory):
    root = tmp_path_factory.mktemp("two_stage_isbi")
    full = build_datalist(isbi_dir)
    sizes = {"training": 2, "validation": 1, "test": 1}
    datalist_file = write_datalist({**full, **{k: full[k][:n] for k, n in sizes.items()}}, root / "datalist.json")
    base = {"spatial_size": [64, 64], "batch_size": 2, "num_workers": 0, "network_def": SMALL_UNET}
    local = {"local#spacing": 1.0, "local#patch_size": 32.0, "local#num_samples": 4}  # 194 x 240 local images
    run = train_both(configs, root, datalist_file, base, local, 1, 1)
    run.datalist_file = datalist_file
    return run


@pytest.mark.isbi
@pytest.mark.slow
def test_two_stage_isbi(isbi_run, configs):
    wf = run_workflow(configs, TWO_STAGE_EVALUATE, "eval", **isbi_run.override)
    metrics = wf.evaluator.state.metrics
    assert math.isfinite(metrics["val_mre"]) and math.isfinite(metrics["coarse_mre"])
    with open(isbi_run.datalist_file) as f:
        (item,) = json.load(f)["test"]
    out = isbi_run.root / "eval" / "test"
    for folder in ("landmarks", "coarse_landmarks"):
        points = landmark_files(out / folder, [item["id"]])[item["id"]]
        assert np.isfinite(points).all()
        if folder == "coarse_landmarks":  # decoded from the global heatmap: inside the image; a refined point of
            # this 1-epoch local model may lie in the padding of a border patch
            assert (points >= -0.5).all() and (points <= np.array([1935, 2400]) - 0.5).all()
    run_workflow(configs, TWO_STAGE_INFERENCE, "infer", **isbi_run.override)
    inferred = landmark_files(isbi_run.root / "eval" / "inference" / "landmarks", [item["id"]])[item["id"]]
    np.testing.assert_allclose(inferred, landmark_files(out / "landmarks", [item["id"]])[item["id"]], atol=1e-3)
