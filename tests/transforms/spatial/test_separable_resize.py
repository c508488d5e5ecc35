"""The anti-aliased bilinear resize as two matrix products gives MONAI's Resize values, and ResizeWithLandmarks
uses it without changing its metadata, trace or inverse."""

import numpy as np
import pytest
import torch

from monai.data import MetaTensor
from monai.transforms import Resize

from monai_ceph.transforms import ResizeWithLandmarks
from monai_ceph.transforms.spatial.separable_resize import antialiasing_sigma, resize_matrix, separable_resize

IMAGE = torch.as_tensor(np.random.default_rng(0).random((2, 387, 480)) * 255, dtype=torch.float32)


@pytest.mark.parametrize(
    "size,sigma",
    [((129, 160), None), ((31, 38), None), ((400, 200), None), ((387, 96), None), ((100, 90), (1.5, 0.7))],
)
def test_equals_monai_antialiased_resize(size, sigma):
    expected = Resize(size, mode="bilinear", anti_aliasing=True, anti_aliasing_sigma=sigma)(IMAGE)
    ours = separable_resize(IMAGE, size, sigma)
    assert ours.shape == (2, *size)
    np.testing.assert_allclose(ours.numpy(), np.asarray(expected), atol=1e-2, rtol=0)  # float32 sums, 0-255


def test_matrix_rows_sum_to_one_inside_and_same_size_is_the_input():
    m = resize_matrix(300, 40, antialiasing_sigma([300], [40])[0])
    assert m.shape == (40, 300) and m.dtype == torch.float64
    np.testing.assert_allclose(m[10:30].sum(1).numpy(), 1.0, atol=1e-4)  # MONAI truncates its kernel at 4 sigma
    assert separable_resize(IMAGE, IMAGE.shape[1:]) is IMAGE
    assert antialiasing_sigma((300, 50), (100, 100)) == [1.0, 0.0]
    assert antialiasing_sigma((300, 50), (100, 100), 2.0) == [2.0, 0.0]


def test_resize_with_landmarks_keeps_monai_values_metadata_and_inverse():
    img = MetaTensor(IMAGE[:1].clone())
    points = torch.tensor([[100.3, 200.7], [5.0, 470.2]])
    resize = ResizeWithLandmarks(spatial_size=None, target_spacing=0.3)
    out, moved, spacing = resize(img, points, (0.1, 0.1))
    reference = Resize(out.shape[1:], mode="bilinear", anti_aliasing=True)(IMAGE[:1])
    assert out.shape == (1, 129, 160)
    np.testing.assert_allclose(out.as_tensor().numpy(), np.asarray(reference), atol=1e-2)
    np.testing.assert_allclose(moved.numpy(), ((points + 0.5) / 3 - 0.5).numpy(), atol=1e-4)
    np.testing.assert_allclose(np.asarray(spacing), [0.3, 0.3], atol=1e-6)
    back = resize.inverse(out)
    assert back.shape == img.shape
    torch.testing.assert_close(back.affine, img.affine)
