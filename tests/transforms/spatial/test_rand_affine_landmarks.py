import numpy as np
import pytest
import torch

from monai.data import MetaTensor
from monai.transforms import Compose, RandAffined, RandomizableTransform

from monai_ceph.transforms import (
    LandmarksToSourced,
    EnsureLandmarksd,
    RandAffineWithLandmarks,
    RandAffineWithLandmarksD,
    RandAffineWithLandmarksd,
    RandAffineWithLandmarksDict,
    ResizeWithLandmarksd,
)

TYPES = [np.asarray, torch.as_tensor, MetaTensor]
SIZE = (160, 128)
CENTRE = (71.37, 57.81)
AUGMENT = {"rotate_range": 0.5, "scale_range": 0.2, "translate_range": 10, "shear_range": 0.1}


@pytest.mark.parametrize("as_type", TYPES)
def test_blob_moves_exactly_with_its_landmark(as_type, blob_image, intensity_centroid):
    transform = RandAffineWithLandmarks(prob=1.0, **AUGMENT).set_random_state(7)
    assert isinstance(transform, RandomizableTransform)
    for _ in range(4):
        image = as_type(blob_image(SIZE, CENTRE, sigma=5.0).numpy())
        out, landmarks, _ = transform(image, torch.tensor([CENTRE]))
        assert type(out) is type(image) and out.shape == (1, *SIZE)
        assert np.abs(landmarks[0].numpy() - CENTRE).max() > 0.5  # it did move
        np.testing.assert_allclose(intensity_centroid(out), landmarks[0].numpy(), atol=0.05)


def test_dictionary_version_is_monais_rand_affined_plus_landmarks(blob_image, intensity_centroid):
    data = {"image": MetaTensor(blob_image(SIZE, CENTRE, sigma=5.0)), "landmarks": torch.tensor([CENTRE, CENTRE]),
            "spacing": torch.tensor([0.1, 0.1])}
    ours = RandAffineWithLandmarksd(keys="image", prob=1.0, **AUGMENT).set_random_state(3)
    monai = RandAffined(keys="image", prob=1.0, **AUGMENT).set_random_state(3)
    assert isinstance(ours, RandomizableTransform)
    for _ in range(3):
        d, reference = ours(data), monai(data)
        torch.testing.assert_close(d["image"].as_tensor(), reference["image"].as_tensor())  # same pixels
        np.testing.assert_allclose(intensity_centroid(d["image"]), d["landmarks"][0].numpy(), atol=0.05)
        np.testing.assert_array_equal(d["landmark_mask"].numpy(), [1.0, 1.0])
    assert RandAffineWithLandmarksD is RandAffineWithLandmarksDict is RandAffineWithLandmarksd


def test_translation_and_zoom_by_hand():
    data = {"image": MetaTensor(torch.zeros(1, *SIZE)), "landmarks": torch.tensor([[20.0, 30.0], [np.nan, np.nan]]),
            "spacing": torch.tensor([0.1, 0.2])}
    # output pixel p samples the input at p + t, so the content (and the landmark) moves by -t
    shift = RandAffineWithLandmarksd(keys="image", prob=1.0, translate_range=((5, 5), (-3, -3)))(data)
    np.testing.assert_allclose(shift["landmarks"][0].numpy(), [15.0, 33.0], atol=1e-4)
    assert torch.isnan(shift["landmarks"][1]).all()
    np.testing.assert_allclose(shift["spacing"].numpy(), [0.1, 0.2], rtol=1e-6)
    # scale 1.25 about the centre c = (size - 1) / 2: output p samples c + 1.25 (p - c), content shrinks
    zoom = RandAffineWithLandmarksd(keys="image", prob=1.0, scale_range=((0.25, 0.25), (0.25, 0.25)))(data)
    c = (np.array(SIZE) - 1) / 2
    np.testing.assert_allclose(zoom["landmarks"][0].numpy(), c + (np.array([20.0, 30.0]) - c) / 1.25, atol=1e-4)
    np.testing.assert_allclose(zoom["spacing"].numpy(), [0.125, 0.25], rtol=1e-6)  # a pixel now covers more


def test_points_that_leave_the_image_keep_coordinates_and_lose_visibility():
    data = {"image": MetaTensor(torch.zeros(1, *SIZE)), "landmarks": torch.tensor([[3.0, 30.0], [80.0, 60.0]])}
    d = RandAffineWithLandmarksd(keys="image", prob=1.0, translate_range=((10, 10), (0, 0)), spacing_key=None)(data)
    np.testing.assert_allclose(d["landmarks"].numpy(), [[-7.0, 30.0], [70.0, 60.0]], atol=1e-4)
    np.testing.assert_array_equal(d["landmark_mask"].numpy(), [0.0, 1.0])


def test_not_applied_leaves_everything_unchanged():
    points = torch.tensor([[20.25, 30.5]])
    data = {"image": MetaTensor(torch.rand(1, *SIZE)), "landmarks": points, "spacing": torch.tensor([0.1, 0.2])}
    d = RandAffineWithLandmarksd(keys="image", prob=0.0, **AUGMENT)(data)
    torch.testing.assert_close(d["image"].as_tensor(), data["image"].as_tensor())
    torch.testing.assert_close(d["landmarks"], points)
    torch.testing.assert_close(d["spacing"], torch.tensor([0.1, 0.2]))


def test_inverse_and_mapping_to_source_after_resize_and_augmentation():
    items = {"image": MetaTensor(torch.zeros(1, 300, 240)), "spacing": [0.1, 0.1], "id": "x",
             "landmarks": [[131.37, 97.81], [10.0, 230.5]]}
    pre = Compose([
        EnsureLandmarksd(),
        ResizeWithLandmarksd(spatial_size=(96, 80)),
        RandAffineWithLandmarksd(keys="image", prob=1.0, **AUGMENT),
    ]).set_random_state(11)
    d = pre(items)
    assert np.abs(d["landmarks"].numpy() - [[131.37, 97.81], [10.0, 230.5]]).max() > 1.0
    source = LandmarksToSourced(keys=("landmarks",))(d)
    np.testing.assert_allclose(source["landmarks"].numpy(), [[131.37, 97.81], [10.0, 230.5]], atol=1e-3)
    back = pre.inverse(d)
    assert back["image"].shape == (1, 300, 240)
    np.testing.assert_allclose(back["landmarks"].numpy(), [[131.37, 97.81], [10.0, 230.5]], atol=1e-3)


def test_bad_input():
    with pytest.raises(ValueError, match=r"2-D channel-first image"):
        RandAffineWithLandmarks(prob=1.0)(torch.zeros(8, 8))
    with pytest.raises(ValueError, match="lazily"):
        RandAffineWithLandmarksd(keys="image")({"image": torch.zeros(1, 8, 8)}, lazy=True)
    with pytest.raises(ValueError, match="mask_keys must align"):
        RandAffineWithLandmarksd(keys="image", landmark_keys=("a", "b"), mask_keys="m")
