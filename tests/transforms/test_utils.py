import math

import numpy as np
import pytest
import torch

from monai.data import MetaTensor, set_track_meta

from monai_ceph.transforms import MODEL_SPATIAL_SIZE
from monai_ceph.transforms.utils import (
    carry_landmarks,
    convert_like,
    image_affine,
    landmark_visibility,
    model_to_source_affine,
    record_source_affine,
    transform_points,
    transform_spacing,
)

TYPES = [np.asarray, torch.as_tensor]


def test_model_size_is_the_paper_input_in_monai_order():
    assert MODEL_SPATIAL_SIZE == (576, 736)  # 736 x 576 (height x width): dim0 = x = 576 columns


@pytest.mark.parametrize("as_type", TYPES)
def test_transform_points_keeps_type_and_nan(as_type):
    m = torch.tensor([[0.0, -2.0, 10.0], [3.0, 0.0, -1.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    pts = as_type(np.array([[1.0, 2.0], [math.nan, math.nan]], np.float32))
    out = transform_points(pts, m)
    assert type(out) is type(pts) and out.dtype == pts.dtype
    np.testing.assert_allclose(np.asarray(out)[0], [6.0, 2.0])
    assert np.isnan(np.asarray(out)[1]).all()


def test_transform_spacing_is_the_length_of_a_new_pixel_step():
    c, s = math.cos(0.3), math.sin(0.3)
    new_to_old = torch.tensor([[2 * c, -3 * s, 5.0], [2 * s, 3 * c, 1.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    out = transform_spacing([0.1, 0.2], new_to_old)
    expected = [math.hypot(0.1 * 2 * c, 0.2 * 2 * s), math.hypot(0.1 * 3 * s, 0.2 * 3 * c)]
    assert out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6)


@pytest.mark.parametrize("as_type", TYPES)
def test_visibility_and_convert_like_return_the_input_type(as_type):
    pts = as_type(np.array([[0.0, 0.0], [-0.6, 1.0], [3.4, 1.0], [math.nan, math.nan]], np.float32))
    vis = landmark_visibility(pts, (4, 2))
    assert type(vis) is type(pts)
    np.testing.assert_array_equal(np.asarray(vis), [1.0, 0.0, 1.0, 0.0])
    meta = MetaTensor(torch.zeros(2), meta={"filename_or_obj": "a.png"})
    assert isinstance(convert_like(torch.ones(2), meta), MetaTensor)
    plain = convert_like(torch.ones(2), meta, keep_meta=False)
    assert type(plain) is torch.Tensor
    set_track_meta(False)
    try:
        assert type(convert_like(torch.ones(2), meta)) is torch.Tensor
    finally:
        set_track_meta(True)


def test_source_affine_and_carried_landmarks_follow_a_resize():
    img = MetaTensor(torch.zeros(1, 10, 20))
    with pytest.raises(ValueError, match="no original_affine in its meta"):
        model_to_source_affine(img)
    record_source_affine(img)
    before = image_affine(img)
    zoomed = MetaTensor(torch.zeros(1, 5, 10), affine=torch.diag(torch.tensor([2.0, 2.0, 1.0, 1.0])),
                        meta={"original_affine": img.meta["original_affine"]})
    landmarks, spacing = carry_landmarks(before, zoomed, torch.tensor([[4.0, 9.0]]), torch.tensor([0.1, 0.1]))
    torch.testing.assert_close(landmarks, torch.tensor([[2.0, 4.5]]))  # new pixel i is world 2 i
    torch.testing.assert_close(spacing, torch.tensor([0.2, 0.2]))
    torch.testing.assert_close(transform_points(landmarks, model_to_source_affine(zoomed)), torch.tensor([[4.0, 9.0]]))
