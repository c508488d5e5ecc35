"""The robustness overlays of the cephres bundle (physical_scale.json, scanner_augmentation.json, tta.json):
they resolve on train.json, their spatial steps carry landmarks exactly, and a phantom run trains and evaluates
through them with MONAI's ConfigWorkflow."""

import json
import math

import numpy as np
import pytest
import torch

from monai.bundle import ConfigParser, ConfigWorkflow
from monai.data import MetaTensor
from monai.transforms import RandomizableTransform

from monai_ceph.inferers import OrientationInferer, TestTimeAugmentationInferer
from monai_ceph.transforms import GaussianHeatmapCodec
from monai_ceph.transforms.spatial.field_of_view import PhysicalFieldd

SMALL = {"spatial_size": [64, 64], "batch_size": 2, "num_workers": 0}


@pytest.fixture(scope="module")
def configs(bundles_dir):
    return bundles_dir / "cephres" / "configs"


def parser(configs, *overlays, **override):
    p = ConfigParser()
    p.read_config([str(configs / "train.json")] + [str(configs / f"{o}.json") for o in overlays])
    p.update({"dataset_dir": "unused", "landmark_set": "isbi2015", **override})  # not the phantom demo
    return p


def test_physical_scale_is_the_default_and_fixed_size_the_papers_option(configs):
    for overlays in ((), ("physical_scale",)):  # physical_scale.json: the default, kept for existing commands
        p = parser(configs, *overlays, spatial_size=[160, 200])
        resize = p.get_parsed_content("resize")
        assert isinstance(resize, PhysicalFieldd)
        assert p.get_parsed_content("model_pixel_spacing") == pytest.approx(1.25)
        assert resize.field.field_mm == pytest.approx((200.0, 250.0))
        assert "physical_160x200" in p.get_parsed_content("cache_dir")  # its own preprocessing cache
        assert p.get_parsed_content("input_scaling") == "physical 1.25 mm/px"
        assert p.get_parsed_content("preprocessing_transforms")[4] is resize  # after the four loading steps
    paper = parser(configs, "fixed_size", spatial_size=[160, 200])
    resize = paper.get_parsed_content("resize")
    assert type(resize).__name__ == "ResizeWithLandmarksd" and resize.resizers[0].target_spacing is None
    assert paper.get_parsed_content("input_scaling") == "fixed size"
    assert paper.get_parsed_content("cache_dir").endswith("/cache/160x200")


def test_scanner_augmentation_spatial_steps_carry_a_blob_exactly(configs):
    p = parser(configs, "scanner_augmentation", spatial_size=[96, 80])
    steps = p.get_parsed_content("train#augmentation")
    names = [type(s).__name__ for s in steps]
    assert names[:2] == ["RandAffineWithLandmarksd", "RandFieldOfViewd"] and "RandJPEGCompressiond" in names
    assert all(isinstance(s, RandomizableTransform) for s in steps)
    spatial = steps[:2]
    spatial[0].prob = spatial[1].prob = 1.0
    centre = torch.tensor([[47.3, 38.6]], dtype=torch.float64)
    blob = GaussianHeatmapCodec(sigma=4.0, normalize=True).encode(centre, (96, 80))
    for seed in range(3):
        d = {"image": MetaTensor(blob.clone()), "landmarks": centre.float(), "spacing": torch.tensor([0.5, 0.5])}
        for step in spatial:
            d = step.set_random_state(seed)(d)
        img = d["image"][0].double()
        g0, g1 = torch.meshgrid(torch.arange(96.0, dtype=torch.float64), torch.arange(80.0, dtype=torch.float64),
                                indexing="ij")
        centroid = np.array([(img * g0).sum() / img.sum(), (img * g1).sum() / img.sum()])
        np.testing.assert_allclose(centroid, d["landmarks"][0].numpy(), atol=0.05)


def test_tta_overlay_sets_the_inferers(configs):
    """tta.json sets the network pass; evaluation runs it inside the orientation check, on the winning side."""
    p = parser(configs, "evaluate", "tta")
    inferer = p.get_parsed_content("validate#inferer")
    assert isinstance(inferer, OrientationInferer) and isinstance(inferer.inferer, TestTimeAugmentationInferer)
    assert inferer.inferer.scales == (0.9, 1.0, 1.1)
    p = parser(configs, "evaluate", "tta", orientation=False)
    assert isinstance(p.get_parsed_content("validate#inferer"), TestTimeAugmentationInferer)


@pytest.mark.slow
def test_phantoms_train_with_both_options_and_evaluate_with_tta(configs, phantom_datalist, tmp_path):
    override = {"bundle_root": str(tmp_path), "datalist_file": str(phantom_datalist), **SMALL}
    files = [str(configs / f"{n}.json") for n in ("train", "physical_scale", "scanner_augmentation")]
    train = ConfigWorkflow(config_file=files, workflow_type="train", max_epochs=1, **override)
    train.initialize()
    train.run()
    train.finalize()
    assert (tmp_path / "models" / "model.pt").is_file()
    files = [str(configs / f"{n}.json") for n in ("train", "physical_scale", "evaluate", "tta")]
    evaluate = ConfigWorkflow(config_file=files, workflow_type="eval", save_overlays=False, **override)
    evaluate.initialize()
    evaluate.run()
    evaluate.finalize()
    summary = json.loads((tmp_path / "eval" / "test" / "radial_error_summary.json").read_text())
    assert summary["n_images"] == 2 and math.isfinite(summary["mre_mm"])
