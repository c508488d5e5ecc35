import numpy as np
import pytest
import torch

from monai.data import MetaTensor

from monai_ceph.transforms import ToGreyscale, ToGreyscaleD, ToGreyscaled, ToGreyscaleDict

TYPES = [np.asarray, torch.as_tensor]


@pytest.mark.parametrize("as_type", TYPES)
def test_rgb_is_combined_with_bt601_luma_weights(as_type):
    rgb = np.zeros((3, 2, 2), np.float32)
    rgb[0, 0, 0], rgb[1, 0, 1], rgb[2, 1, 0] = 1.0, 1.0, 1.0  # a pure red, green and blue pixel
    rgb[:, 1, 1] = 0.5  # a grey pixel stored as RGB
    out = ToGreyscale()(as_type(rgb))
    assert type(out) is type(as_type(rgb)) and tuple(out.shape) == (1, 2, 2)
    np.testing.assert_allclose(np.asarray(out)[0], [[0.299, 0.587], [0.114, 0.5]], rtol=1e-6)
    assert out.dtype == rgb.dtype if isinstance(out, np.ndarray) else out.dtype == torch.float32


@pytest.mark.parametrize("as_type", TYPES)
def test_alpha_is_dropped_and_integers_give_float32(as_type):
    rgba = np.stack([np.full((2, 3), v, np.uint8) for v in (100, 100, 100, 7)])
    out = ToGreyscale()(as_type(rgba))
    np.testing.assert_allclose(np.asarray(out), np.full((1, 2, 3), 100.0), rtol=1e-6)
    assert str(out.dtype) in ("float32", "torch.float32")


@pytest.mark.parametrize("as_type", TYPES)
def test_one_channel_passes_through_unchanged(as_type):
    grey = as_type(np.arange(6, dtype=np.float32).reshape(1, 2, 3))
    assert ToGreyscale()(grey) is grey


def test_metadata_is_kept():
    img = MetaTensor(torch.rand(3, 4, 5), meta={"filename_or_obj": "ceph.jpg"})
    out = ToGreyscaled("image")({"image": img})["image"]
    assert isinstance(out, MetaTensor) and out.shape == (1, 4, 5) and out.meta["filename_or_obj"] == "ceph.jpg"
    torch.testing.assert_close(out.as_tensor()[0], (torch.tensor([0.299, 0.587, 0.114])[:, None, None] * img).sum(0))
    assert ToGreyscaleD is ToGreyscaleDict is ToGreyscaled


@pytest.mark.parametrize("shape, match", [((2, 4, 4), "2 channels"), ((4, 4), "channel-first")])
def test_other_channel_counts_are_refused(shape, match):
    with pytest.raises(ValueError, match=match):
        ToGreyscale()(torch.zeros(shape))
