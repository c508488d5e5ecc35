"""TwoStageInferer / LandmarkRefiner with an oracle local network (it returns the heatmap the image holds), so the
refined points are known exactly; check_local_checkpoint on mismatched checkpoints."""

import numpy as np
import pytest
import torch
import torch.nn as nn

from monai.data import MetaTensor, list_data_collate

from monai_ceph.inferers import LandmarkRefiner, TwoStageInferer, check_local_checkpoint
from monai_ceph.networks.nets import monai_unet
from monai_ceph.shape import heatmap_covariance
from monai_ceph.transforms import GaussianHeatmapCodec, LandmarksToSource, ResizeWithLandmarks

CODEC = GaussianHeatmapCodec(sigma=2.0)
SOURCE = (120, 100)
TRUE = torch.tensor([[30.37, 40.81], [85.6, 62.25]], dtype=torch.float64)


class Oracle(nn.Module):
    """Logits whose sigmoid is the input's first channel, for every one of ``k`` heatmaps."""

    def __init__(self, k: int = 2):
        super().__init__()
        self.k = k
        self.calls = nn.Parameter(torch.zeros(()))  # gives the refiner a device

    def forward(self, x):
        p = x[:, :1].clamp(1e-6, 1 - 1e-6)
        return torch.logit(p).expand(-1, self.k, -1, -1)


def blobs(points, size=SOURCE):
    """One channel holding a codec Gaussian at each point (the maximum where they overlap)."""
    return CODEC.encode(torch.as_tensor(points), size).amax(0, keepdim=True)


def refiner(exploration=False, k=2):
    return LandmarkRefiner(Oracle(k), patch_size=16.0, patch_spacing=1.0, codec=CODEC, exploration=exploration)


@pytest.mark.parametrize("exploration,atol", [(False, 1e-3), (True, 0.2)])
def test_refiner_finds_the_blob_from_an_offset_coarse_point(exploration, atol):
    coarse = TRUE + torch.tensor([[3.2, -2.7], [-4.1, 1.9]], dtype=torch.float64)
    out = refiner(exploration)(blobs(TRUE), coarse, (1.0, 1.0))
    np.testing.assert_allclose(out["landmarks"].numpy(), TRUE.numpy(), atol=atol)
    assert (out["confidence"] > 0.9).all() and not out["outside"].any()


@pytest.mark.parametrize("exploration", [False, True])
def test_nan_coarse_point_stays_nan_and_outside_is_flagged(exploration):
    image = blobs(torch.tensor([[2.3, 50.4], [85.6, 62.25]]))
    coarse = torch.tensor([[-3.0, 50.0], [np.nan, np.nan]], dtype=torch.float64)
    out = refiner(exploration)(image, coarse, (1.0, 1.0))
    assert out["outside"].tolist() == [True, False]
    assert torch.isnan(out["landmarks"][1]).all() and out["confidence"][1] == 0
    # refined from a padded patch: the blob near the border is still found
    np.testing.assert_allclose(out["landmarks"][0].numpy(), [2.3, 50.4], atol=0.2 if exploration else 1e-3)


@pytest.mark.parametrize("exploration", [False, True])
def test_refined_covariance_is_the_local_heatmaps_in_image_pixels(exploration):
    """The oracle's heatmap is the image's blob: its covariance, read on a patch at 1 mm, comes back in image
    pixels, so an image at 0.5 mm/px (the same blob in mm) has 4x the covariance in pixels and the same in mm."""
    expected = heatmap_covariance(CODEC.encode(TRUE, SOURCE), TRUE)  # the blob on its own grid, 1 px = 1 mm
    assert torch.isfinite(expected).all() and (expected[:, 0, 0] > 1).all()
    coarse = TRUE + torch.tensor([[1.2, -0.7], [-0.6, 0.9]], dtype=torch.float64)
    out = refiner(exploration)(blobs(TRUE), coarse, (1.0, 1.0))
    assert out["covariance"].dtype == torch.float64 and tuple(out["covariance"].shape) == (2, 2, 2)
    np.testing.assert_allclose(out["covariance"].numpy(), expected.numpy(), rtol=0.1, atol=0.1)
    fine = GaussianHeatmapCodec(sigma=2 * CODEC.sigma)  # the same blobs drawn at 0.5 mm/px
    size = tuple(2 * s for s in SOURCE)
    image = fine.encode(2 * TRUE + 0.5, size).amax(0, keepdim=True)
    out2 = refiner(exploration)(image, 2 * coarse + 0.5, (0.5, 0.5))
    np.testing.assert_allclose(out2["covariance"].numpy() / 4, out["covariance"].numpy(), rtol=0.1, atol=0.1)
    nan = refiner(exploration)(blobs(TRUE), torch.tensor([[np.nan, np.nan], [85.6, 62.25]]), (1.0, 1.0))
    assert torch.isnan(nan["covariance"][0]).all() and torch.isfinite(nan["covariance"][1]).all()


def test_exploration_offsets_cover_the_enlarged_square():
    r = LandmarkRefiner(Oracle(), patch_size=(20.0, 10.0), patch_spacing=(0.5, 0.5), epsilon=1.8)
    offsets = r.exploration_offsets((0.25, 0.5))  # patch 40 x 20 px of 0.5 mm = 80 x 20 image px
    np.testing.assert_allclose(offsets.numpy(), [[0, 0], [-32, -8], [-32, 8], [32, -8], [32, 8]])


def test_refiner_rejects_bad_settings():
    with pytest.raises(ValueError, match="epsilon"):
        LandmarkRefiner(Oracle(), 16.0, 1.0, epsilon=1.0)
    with pytest.raises(ValueError, match="threshold"):
        LandmarkRefiner(Oracle(), 16.0, 1.0, threshold=1.5)


class Fixed(nn.Module):
    """A global stage whose logits are those of the given heatmaps, whatever the input."""

    def __init__(self, heatmaps):
        super().__init__()
        self.heatmaps = heatmaps

    def forward(self, x):
        return torch.logit(self.heatmaps.clamp(1e-6, 1 - 1e-6)).expand(len(x), -1, -1, -1)


def _batch(spacing=(1.0, 1.0)):
    """A collated batch of one item: the model input (resized to 60 x 50) and the local image (the source)."""
    source = MetaTensor(blobs(TRUE))
    source.meta["original_affine"] = source.affine.clone()
    model, _, _ = ResizeWithLandmarks(spatial_size=(60, 50))(source.clone())
    item = {"image": model, "local_image": source, "local_spacing": torch.tensor(spacing)}
    return list_data_collate([item])


def test_two_stage_inferer_refines_in_source_pixels_and_reports_coarse():
    batch = _batch()
    inferer = TwoStageInferer(Oracle(), patch_size=16.0, patch_spacing=1.0, codec=CODEC)
    # the global stage is off by one model pixel (2 source pixels) in dim0
    model_points = (TRUE + 0.5) * torch.tensor([60 / 120, 50 / 100], dtype=torch.float64) - 0.5
    global_net = Fixed(CODEC.encode(model_points + torch.tensor([1.0, 0.0], dtype=torch.float64), (60, 50)))
    out = inferer(batch["image"], global_net, local_image=batch["local_image"], local_spacing=batch["local_spacing"])
    assert set(out) == {
        "pred_landmarks", "pred_confidence", "pred_covariance", "coarse_landmarks", "coarse_confidence", "coarse_outside"
    }
    assert tuple(out["pred_landmarks"].shape) == (1, 2, 2) and tuple(out["coarse_outside"].shape) == (1, 2)
    image = batch["image"][0]
    refined = LandmarksToSource()(out["pred_landmarks"][0], image)
    coarse = LandmarksToSource()(out["coarse_landmarks"][0], image)
    np.testing.assert_allclose(refined.numpy(), TRUE.numpy(), atol=2e-3)
    expected_coarse = TRUE + torch.tensor([2.0, 0.0], dtype=torch.float64)
    np.testing.assert_allclose(coarse.numpy(), expected_coarse.numpy(), atol=2e-3)
    assert out["coarse_outside"].sum() == 0
    # the covariance comes back in model pixels: the model grid is 2 source pixels per pixel in both dims
    direct = refiner()(batch["local_image"][0], TRUE + torch.tensor([2.0, 0.0], dtype=torch.float64), (1.0, 1.0))["covariance"]
    np.testing.assert_allclose(out["pred_covariance"][0].numpy(), direct.numpy() / 4, rtol=0.05, atol=1e-3)


def test_two_stage_inferer_needs_the_local_image():
    batch = _batch()
    inferer = TwoStageInferer(Oracle(), patch_size=16.0, patch_spacing=1.0, codec=CODEC)
    with pytest.raises(ValueError, match="PrepareBatchExtraInput"):
        inferer(batch["image"], Oracle())


def test_local_checkpoint_of_another_landmark_set_is_refused(tmp_path):
    global_net, local_net = monai_unet(2, 1, 19), monai_unet(2, 1, 19, channels=(8, 16), strides=(2,))
    global_path, local_path = tmp_path / "model.pt", tmp_path / "local" / "model.pt"
    local_path.parent.mkdir()
    torch.save(global_net.state_dict(), global_path)
    torch.save({"model": monai_unet(2, 1, 29, channels=(8, 16), strides=(2,)).state_dict()}, local_path)
    with pytest.raises(ValueError) as err:
        check_local_checkpoint(global_path, local_path, global_net, local_net, 19, "isbi2015")
    message = str(err.value)
    assert str(global_path) in message and str(local_path) in message and "19 landmarks" in message
    assert "has shape" in message
    # matching checkpoints pass; a missing one is named
    torch.save(local_net.state_dict(), local_path)
    check_local_checkpoint(global_path, local_path, global_net, local_net, 19, "isbi2015")
    with pytest.raises(FileNotFoundError, match="nothing.pt"):
        check_local_checkpoint(global_path, tmp_path / "nothing.pt", global_net, local_net)


class PriorOracle(nn.Module):
    """Logits whose sigmoid is the input's prior channels (channels 1..k): the heatmap of landmark k is its prior."""

    def __init__(self):
        super().__init__()
        self.calls = nn.Parameter(torch.zeros(()))
        self.inputs = []

    def forward(self, x):
        self.inputs.append(x)
        return torch.logit(x[:, 1:].clamp(1e-6, 1 - 1e-6))


@pytest.mark.parametrize("exploration,atol", [(False, 1e-3), (True, 0.2)])
def test_prior_channels_sit_at_the_coarse_points_of_every_patch(exploration, atol):
    """With prior_sigma each patch carries one Gaussian per landmark at its coarse point (in the patch's pixels):
    a network that returns its prior channels refines every point to its coarse point; a NaN coarse point gives a
    zero channel (and stays NaN)."""
    coarse = torch.tensor([[30.37, 40.81], [36.6, 44.25], [np.nan, np.nan]], dtype=torch.float64)
    net = PriorOracle()
    out = LandmarkRefiner(net, patch_size=16.0, patch_spacing=1.0, codec=CODEC, exploration=exploration,
                          prior_sigma=3.0)(blobs(TRUE), coarse, (1.0, 1.0))
    np.testing.assert_allclose(out["landmarks"][:2].numpy(), coarse[:2].numpy(), atol=atol)
    assert torch.isnan(out["landmarks"][2]).all()
    (x,) = net.inputs
    assert x.shape == (3 * (5 if exploration else 1), 1 + 3, 16, 16)
    assert x[:, 3].abs().max() == 0  # the NaN point's channel
    assert float(x[0, 1].max()) > 0.95 and float(x[0, 2].max()) > 0.5  # landmark 1 lies 7.2 mm off, inside patch 0


def test_two_stage_inferer_passes_prior_sigma():
    inferer = TwoStageInferer(PriorOracle(), patch_size=16.0, patch_spacing=1.0, prior_sigma=2.5)
    assert inferer.refiner.prior.sigma == 2.5
    assert TwoStageInferer(PriorOracle(), patch_size=16.0, patch_spacing=1.0).refiner.prior is None


def test_recentre_follows_a_point_that_lies_beyond_the_first_patch():
    """A coarse point 10 px off in a 16 px patch: one pass stops at the patch border, a second pass re-cropped
    around it finds the blob exactly."""
    coarse = TRUE + torch.tensor([[10.0, 0.0], [0.0, -10.0]], dtype=torch.float64)
    once = LandmarkRefiner(Oracle(), patch_size=16.0, patch_spacing=1.0, codec=CODEC)(blobs(TRUE), coarse, (1.0, 1.0))
    twice = LandmarkRefiner(Oracle(), patch_size=16.0, patch_spacing=1.0, codec=CODEC, recentre=1)(
        blobs(TRUE), coarse, (1.0, 1.0)
    )
    assert (torch.linalg.norm(once["landmarks"] - TRUE, dim=-1) > 1.0).all()
    np.testing.assert_allclose(twice["landmarks"].numpy(), TRUE.numpy(), atol=1e-3)
    with pytest.raises(ValueError, match="recentre"):
        LandmarkRefiner(Oracle(), patch_size=16.0, patch_spacing=1.0, recentre=-1)
