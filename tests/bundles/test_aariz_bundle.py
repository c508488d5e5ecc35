"""An Aariz folder trains and evaluates with the cephres bundle's default config given only ``dataset_dir``
(issue 14, item 12): the number of landmarks (29) and the network's heads (the Aariz anatomical groups) follow the
landmark set of the data, and the outputs name the Aariz landmarks. Tiny: 2 / 1 / 1 images of 64 x 80 pixels in
the Aariz release layout, one epoch at 32 x 32."""

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from monai.bundle import ConfigWorkflow
from monai_ceph.data import AARIZ

SPLITS = {"train": ["ckaaa0", "ckaaa1"], "valid": ["ckbbb0"], "test": ["ckccc0"]}
PIXEL_SIZE = {"ckaaa0": 0.1, "ckaaa1": 0.12, "ckbbb0": 0.127, "ckccc0": 0.14}
SIZE = (64, 80)  # (W, H)
SMALL = {"spatial_size": [32, 32], "batch_size": 2, "num_workers": 0, "save_overlays": False}


def write_aariz(root):
    """The Aariz layout: ``<split>/Cephalograms/<id>.png``, senior and junior annotation JSONs (matched by symbol)
    and the pixel-size CSV; returns {id: (29, 2) ground truth}, the mean of the two annotators."""
    rng = np.random.default_rng(0)
    truth = {}
    for split, ids in SPLITS.items():
        annotations = root / split / "Annotations" / "Cephalometric Landmarks"
        for image_id in ids:
            (root / split / "Cephalograms").mkdir(parents=True, exist_ok=True)
            pixels = rng.integers(0, 256, size=(SIZE[1], SIZE[0]), dtype=np.uint8)  # rows = y
            Image.fromarray(pixels).save(root / split / "Cephalograms" / f"{image_id}.png")
            senior = rng.uniform([4, 4], [SIZE[0] - 5, SIZE[1] - 5], size=(len(AARIZ), 2))
            junior = senior + rng.uniform(-1, 1, size=senior.shape)
            for annotator, points in (("Senior", senior), ("Junior", junior)):
                entries = [{"landmark_id": k, "symbol": symbol, "value": {"x": float(x), "y": float(y)}}
                           for k, (symbol, (x, y)) in enumerate(zip(AARIZ.abbreviations, points))]  # fmt: skip
                path = annotations / f"{annotator} Orthodontists" / f"{image_id}.json"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps({"ceph_id": image_id, "landmarks": entries}))
            truth[image_id] = (senior + junior) / 2
    with open(root / "cephalogram_machine_mappings.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["cephalogram_id", "machine", "pixel_size", "image_format", "mode"])
        for split, ids in SPLITS.items():
            writer.writerows([image_id, "Machine", PIXEL_SIZE[image_id], "png", split] for image_id in ids)
    return truth


def run(bundles_dir, overlays, workflow_type, **override):
    configs = bundles_dir / "cephres" / "configs"
    files = [str(configs / "train.json")] + [str(configs / f"{name}.json") for name in overlays]
    wf = ConfigWorkflow(config_file=files, workflow_type=workflow_type, **override)
    wf.initialize()
    wf.run()
    wf.finalize()
    return wf


@pytest.fixture(scope="module")
def aariz_run(bundles_dir, tmp_path_factory):
    """One epoch of training on the Aariz folder, then evaluation of its test split, in a temporary bundle root."""
    root = tmp_path_factory.mktemp("aariz_bundle")
    truth = write_aariz(root / "Aariz")
    override = {"bundle_root": str(root / "bundle"), "dataset_dir": str(root / "Aariz"), **SMALL}
    trained = run(bundles_dir, [], "train", max_epochs=1, **override)
    evaluated = run(bundles_dir, ["evaluate"], "eval", **override)
    return trained, evaluated, root / "bundle", truth


def test_the_network_follows_the_aariz_landmark_set(aariz_run):
    trained, evaluated, bundle, _ = aariz_run
    for wf in (trained, evaluated):
        assert wf.parser.get_parsed_content("landmark_set") == "aariz"
        network = wf.parser.get_parsed_content("network_def")
        assert network.out_channels == len(AARIZ) == 29
        assert network.groups == AARIZ.group_indices and len(network.groups) == len(AARIZ.groups) > 1
        with torch.no_grad():
            assert network.eval()(torch.zeros(1, 1, 32, 32)).shape == (1, 29, 32, 32)
    assert json.loads((bundle / "models" / "model.json").read_text())["landmark_set"] == "aariz"
    state = torch.load(bundle / "models" / "model.pt", map_location="cpu", weights_only=True)
    assert state.keys() == trained.parser.get_parsed_content("network_def").state_dict().keys()


def test_the_evaluation_reports_the_29_aariz_landmarks(aariz_run):
    _, evaluated, bundle, truth = aariz_run
    results = bundle / "eval" / "test"
    assert json.loads((results / "failed.json").read_text()) == []
    (image_id,) = SPLITS["test"]
    report = json.loads((results / "landmarks" / f"{image_id}.json").read_text())
    assert report["landmark_set"] == "aariz"
    assert [p["abbreviation"] for p in report["landmarks"]] == list(AARIZ.abbreviations)
    np.testing.assert_allclose(report["spacing"], [PIXEL_SIZE[image_id]] * 2, rtol=1e-6)
    gt = np.array([[p["gt_x"], p["gt_y"]] for p in report["landmarks"]])
    np.testing.assert_allclose(gt, truth[image_id], atol=1e-3)
    points = np.array([[p["x"], p["y"]] for p in report["landmarks"]])
    error = np.hypot(*((points - gt) * PIXEL_SIZE[image_id]).T)
    np.testing.assert_allclose([p["error_mm"] for p in report["landmarks"]], error, rtol=1e-5, atol=1e-6)
    metrics = evaluated.parser.get_parsed_content("validate#evaluator").state.metrics
    assert {f"MRE_{a}" for a in AARIZ.abbreviations} <= set(metrics)
