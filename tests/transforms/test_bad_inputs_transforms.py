"""Bad-input catalogue, transforms lane: each case asserts the exception, that the message names the file (or the
datalist item) and the fault, and that the input was not altered."""

import math
import re
import warnings

import numpy as np
import pytest
import torch

from monai.data import MetaTensor

from monai_ceph.transforms import (
    MAX_IMAGE_PIXELS,
    MIN_IMAGE_SIZE,
    BlankImageWarning,
    EnsureLandmarksd,
    ResizeWithLandmarksd,
    ToGreyscaled,
    ValidateImage,
    ValidateImageD,
    ValidateImaged,
    ValidateImageDict,
)

TYPES = [np.asarray, torch.as_tensor]
FILE = "/data/ceph_017.png"


def _image(array):
    return MetaTensor(torch.as_tensor(array), meta={"filename_or_obj": FILE})


def _ramp(c=1, size=(80, 96)):
    return np.broadcast_to(np.arange(size[0] * size[1], dtype=np.float32).reshape(size), (c, *size)).copy()


@pytest.mark.parametrize("as_type", TYPES)
def test_a_good_image_passes_unchanged(as_type):
    img = as_type(_ramp())
    assert ValidateImage()(img) is img
    assert MIN_IMAGE_SIZE == 64 and MAX_IMAGE_PIXELS == 36_000_000
    assert ValidateImageD is ValidateImageDict is ValidateImaged


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_pixels_are_refused_naming_the_file(value):
    pixels = _ramp()
    pixels[0, 3, 4], pixels[0, 5, 6] = value, value
    img = _image(pixels)
    with pytest.raises(ValueError, match=f"{FILE}: 2 pixel value\\(s\\) are not finite"):
        ValidateImaged()({"image": img})
    assert torch.isnan(img[0, 3, 4]) or torch.isinf(img[0, 3, 4])  # the input is left as it was


@pytest.mark.parametrize("size", [(63, 200), (200, 10)])
def test_tiny_images_are_refused(size):
    with pytest.raises(ValueError, match=re.escape(f"{FILE}: image of spatial size {size} is smaller than 64 pixels")):
        ValidateImage()(_image(np.random.rand(1, *size).astype(np.float32)))


def test_huge_images_are_refused_before_processing():
    huge = MetaTensor(torch.zeros(1, 1, 1).expand(1, 8000, 8000), meta={"filename_or_obj": FILE})  # no 64 M copy
    with pytest.raises(ValueError, match=f"{FILE}: image of spatial size \\(8000, 8000\\) has 64000000 pixels, more "
                                         "than the 36000000 accepted"):
        ValidateImage()(huge)
    assert ValidateImage(max_pixels=None, warn_blank=False)(huge) is huge


def test_blank_images_warn_and_pass():
    img = _image(np.full((1, 70, 70), 17, np.uint8))
    with pytest.warns(BlankImageWarning, match=f"{FILE}: the image is blank \\(every pixel is 17\\)"):
        assert ValidateImage()(img) is img
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ValidateImage(warn_blank=False)(img)


@pytest.mark.parametrize("kwargs, match", [({"min_size": 0}, "min_size"), ({"max_pixels": -1}, "max_pixels")])
def test_bad_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ValidateImage(**kwargs)


def test_wrong_channel_count_names_the_problem():
    with pytest.raises(ValueError, match="ToGreyscale: 2 channels"):
        ToGreyscaled("image")({"image": _image(np.zeros((2, 70, 70), np.float32))})


@pytest.mark.parametrize("landmarks, match", [
    ([[10.0, 20.0]] * 18, "expected 19 landmarks"),
    ([[10.0, 20.0]] * 18 + [[1e6, 5.0]], r"landmark 18 at \[1000000.0, 5.0\] lies outside"),
    ([[10.0, 20.0]] * 18 + [["a", 5.0]], r"landmarks\[18\] x: coordinate 'a' is not a number"),
    ("S 10 20", r"expected a list of \[x, y\] pairs"),
])
def test_bad_landmarks_name_the_item_and_leave_it_unchanged(landmarks, match):
    item = {"image": _image(_ramp()), "id": "017", "landmarks": landmarks, "spacing": [0.1, 0.1]}
    before = repr(item["landmarks"])
    with pytest.raises(ValueError, match=f"item id='017', image {FILE}: 'landmarks': .*{match}"):
        EnsureLandmarksd(landmark_set="isbi2015")(item)
    assert repr(item["landmarks"]) == before


def test_resampling_to_a_target_spacing_without_a_spacing_names_the_fault():
    with pytest.raises(ValueError, match="needs the image's spacing"):
        ResizeWithLandmarksd(spatial_size=None, target_spacing=0.2, spacing_key=None)({"image": _image(_ramp())})


@pytest.mark.parametrize("spacing", [100.0, 0.0001, [0.1, 20.0]])
def test_an_implausible_sample_spacing_names_the_item_and_the_range(spacing):
    item = {"image": _image(_ramp()), "id": "017", "landmarks": [[10.0, 20.0]] * 19, "spacing": spacing}
    with pytest.raises(ValueError, match=rf"item id='017', image {FILE}: 'spacing': .*outside the range of a "
                                         r"radiograph \[0.01, 5\]"):
        EnsureLandmarksd(landmark_set="isbi2015")(item)
    assert item["spacing"] == spacing


def test_a_derived_spacing_may_be_coarser_than_a_radiograph():
    from monai_ceph.transforms import as_spacing

    assert as_spacing(12.0).tolist() == [12.0, 12.0]  # a small model input's spacing: only finite and > 0
    with pytest.raises(ValueError, match="outside the range"):
        as_spacing(12.0, plausible=(0.01, 5.0))


@pytest.mark.parametrize("spacing", [100.0, 0.0001])
def test_the_physical_scale_input_refuses_an_implausible_spacing_before_resampling(spacing):
    """100 mm/px once made the physical-scale resize allocate 42.8 GB; now it stops first, naming the image."""
    from monai_ceph.transforms import PhysicalFieldd

    item = {"image": _image(_ramp()), "landmarks": np.full((19, 2), 10.0), "spacing": [spacing, spacing]}
    with pytest.raises(ValueError, match=rf"image {FILE}: pixel spacing .* outside the range of a radiograph"):
        PhysicalFieldd(keys="image", spatial_size=(64, 80), field_mm=240)(item)
