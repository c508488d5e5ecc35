"""LandmarkPrior / LandmarkPriord render the coarse-point prior channels exactly; RandJitterLandmarksd simulates a
first stage's estimates within the jitter in mm."""

import numpy as np
import pytest
import torch

from monai.data import MetaTensor

from monai_ceph.transforms import (
    GaussianHeatmapCodec,
    LandmarkPrior,
    LandmarkPriorD,
    LandmarkPriord,
    RandJitterLandmarksd,
    RandJitterLandmarksDict,
)

POINTS = np.array([[10.37, 20.81], [np.nan, np.nan], [30.2, 5.55]])
SPACING = (0.3, 0.25)


@pytest.mark.parametrize("array", [np.asarray, torch.as_tensor])
def test_prior_channels_peak_at_the_points_with_the_sigma_in_mm(array):
    img = array(np.random.default_rng(0).random((1, 40, 32)).astype(np.float32))
    out = LandmarkPrior(sigma=1.5)(img, array(POINTS), SPACING)
    assert type(out) is type(img) and out.shape == (4, 40, 32) and out.dtype == img.dtype
    np.testing.assert_array_equal(np.asarray(out[0]), np.asarray(img[0]))  # the image channel is untouched
    assert np.abs(np.asarray(out[2])).max() == 0  # a NaN point: an all-zero channel
    # unit peak, the Gaussian of 1.5 mm per dim: 5 and 6 pixels; decoded back to the sub-pixel point
    prior = torch.as_tensor(np.asarray(out[1:]))
    decoded, peak = GaussianHeatmapCodec(sigma=1.0).decode(prior[[0, 2]])
    np.testing.assert_allclose(decoded.numpy(), POINTS[[0, 2]], atol=1e-3)
    assert (peak > 0.98).all() and (peak <= 1.0).all()
    i0, i1 = 10, 21  # the pixel next to the first point: exp(-d^2 / 2 sigma^2) per dim
    expected = np.exp(-0.5 * ((i0 - 10.37) / 5.0) ** 2 - 0.5 * ((i1 - 20.81) / 6.0) ** 2)
    assert float(out[1, i0, i1]) == pytest.approx(expected, rel=1e-5)


def test_metatensor_keeps_its_meta_and_dictionary_version_reads_the_spacing():
    img = MetaTensor(torch.zeros(1, 40, 32), meta={"filename_or_obj": "a.png"})
    d = LandmarkPriord(keys="image", points_key="coarse", sigma=1.5)(
        {"image": img, "coarse": torch.as_tensor(POINTS), "spacing": torch.tensor(SPACING)}
    )
    assert isinstance(d["image"], MetaTensor) and d["image"].meta["filename_or_obj"] == "a.png"
    torch.testing.assert_close(d["image"].as_tensor(), LandmarkPrior(1.5)(img, POINTS, SPACING).as_tensor())
    assert LandmarkPriorD is LandmarkPriord
    with pytest.raises(KeyError, match="a.png.*'coarse'"):
        LandmarkPriord(keys="image", points_key="coarse")({"image": img, "spacing": SPACING})


def test_prior_rejects_bad_points_and_sigma():
    with pytest.raises(ValueError, match=r"shape \(N, 2\)"):
        LandmarkPrior()(np.zeros((1, 8, 8)), np.zeros((3, 3)), (1.0, 1.0))
    with pytest.raises(ValueError, match="sigma"):
        LandmarkPrior(sigma=0.0)


def test_jitter_moves_each_landmark_within_the_mm_bound_and_keeps_nan():
    t = RandJitterLandmarksd(keys="landmarks", jitter=(2.0, 1.0), output_keys="coarse_landmarks")
    t.set_random_state(3)
    points = np.tile(POINTS, (200, 1))
    d = t({"landmarks": points.astype(np.float32), "spacing": np.array(SPACING, dtype=np.float32)})
    assert d["landmarks"] is not d["coarse_landmarks"] and d["coarse_landmarks"].dtype == np.float32
    offset_mm = (d["coarse_landmarks"] - points) * np.array(SPACING)
    finite = np.isfinite(points).all(-1)
    assert np.isnan(d["coarse_landmarks"][~finite]).all()
    assert (np.abs(offset_mm[finite]) <= np.array([2.0, 1.0]) + 1e-5).all()
    assert np.abs(offset_mm[finite]).max(0) == pytest.approx([2.0, 1.0], abs=0.1)  # uniform up to the bound
    assert len(np.unique(offset_mm[finite][:, 0].round(6))) == finite.sum()  # an offset per landmark
    again = RandJitterLandmarksDict(keys="landmarks", jitter=(2.0, 1.0)).set_random_state(3)
    np.testing.assert_array_equal(again({"landmarks": points.astype(np.float32), "spacing": SPACING})["coarse_landmarks"],
                                  d["coarse_landmarks"])


def test_jitter_rejects_bad_settings_and_needs_the_spacing():
    with pytest.raises(ValueError, match="jitter"):
        RandJitterLandmarksd(jitter=-1.0)
    with pytest.raises(ValueError, match="output_keys"):
        RandJitterLandmarksd(keys=["a", "b"], output_keys="c")
    with pytest.raises(KeyError, match="'spacing'"):
        RandJitterLandmarksd()({"landmarks": POINTS})


def test_shared_jitter_moves_all_landmarks_of_an_item_alike():
    t = RandJitterLandmarksd(jitter=0.0, shared_jitter=(3.0, 1.0)).set_random_state(5)
    offsets = []
    for _ in range(50):
        d = t({"landmarks": torch.as_tensor(POINTS), "spacing": torch.tensor(SPACING)})
        offset_mm = ((d["coarse_landmarks"] - torch.as_tensor(POINTS)) * torch.tensor(SPACING))[[0, 2]]
        torch.testing.assert_close(offset_mm[0], offset_mm[1], atol=1e-9, rtol=0)  # one offset for the item
        offsets.append(offset_mm[0])
    offsets = torch.stack(offsets).abs()
    assert (offsets <= torch.tensor([3.0, 1.0]) + 1e-9).all() and (offsets.max(0).values > torch.tensor([2.0, 0.6])).all()
    with pytest.raises(ValueError, match="shared_jitter"):
        RandJitterLandmarksd(shared_jitter=float("nan"))
