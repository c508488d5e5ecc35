import csv
import math

import numpy as np
import pytest
import torch

from monai.data import MetaTensor
from monai.transforms import LoadImaged

from monai_ceph.transforms import (
    EnsureLandmarks,
    EnsureLandmarksD,
    EnsureLandmarksd,
    EnsureLandmarksDict,
    as_spacing,
    landmark_visibility,
)

TYPES = [np.asarray, torch.as_tensor]
NAN = math.nan


def item(**overrides):
    d = {
        "image": "/data/017.jpg",
        "id": "017",
        "landmarks": [[10, 20.5], None, [3.25, 4]],
        "spacing": [0.1, 0.2],
    }
    d.update(overrides)
    return d


def test_datalist_landmarks_become_float32_with_nan_rows_mask_and_spacing():
    d = EnsureLandmarksd(num_landmarks=3)(item())
    assert isinstance(d["landmarks"], torch.Tensor) and d["landmarks"].dtype == torch.float32
    np.testing.assert_array_equal(d["landmarks"].numpy(), np.array([[10, 20.5], [NAN, NAN], [3.25, 4]], np.float32))
    np.testing.assert_array_equal(d["landmark_mask"].numpy(), [1.0, 0.0, 1.0])
    assert d["spacing"].dtype == torch.float32
    np.testing.assert_allclose(d["spacing"].numpy(), [0.1, 0.2])
    assert EnsureLandmarksD is EnsureLandmarksDict is EnsureLandmarksd


@pytest.mark.parametrize("as_type", TYPES)
def test_array_input_keeps_its_type(as_type):
    points = as_type(np.array([[1.0, 2.0], [NAN, NAN]]))
    out = EnsureLandmarks()(points)
    assert type(out) is type(points) and out.dtype in (np.float32, torch.float32)
    np.testing.assert_array_equal(np.asarray(out), [[1.0, 2.0], [NAN, NAN]])
    mask = landmark_visibility(out, (5, 5))
    assert type(mask) is type(points)
    np.testing.assert_array_equal(np.asarray(mask), [1.0, 0.0])


def test_object_array_with_none_is_parsed_like_the_datalist_list():
    out = EnsureLandmarks(num_landmarks=2)(np.array([[1, 2.5], None], dtype=object))
    assert isinstance(out, np.ndarray) and out.dtype == np.float32  # the input's type
    np.testing.assert_array_equal(out, [[1.0, 2.5], [NAN, NAN]])


def test_count_is_checked_against_the_items_landmark_set():
    points = [[float(i), float(i)] for i in range(18)]
    expected = r"id='017'.*/data/017.jpg.*expected 19 landmarks \(the isbi2015 set\), got 18"
    with pytest.raises(ValueError, match=expected):
        EnsureLandmarksd()(item(landmarks=points, landmark_set="isbi2015"))
    d = EnsureLandmarksd()(item(landmarks=points + [[1.0, 1.0]], landmark_set="isbi2015"))
    assert d["landmarks"].shape == (19, 2)
    with pytest.raises(ValueError, match="has 19 landmarks but 29 are expected"):
        EnsureLandmarksd(num_landmarks=29)(item(landmarks=points + [[1.0, 1.0]], landmark_set="isbi2015"))
    with pytest.raises(ValueError, match=r"expected 29 landmarks \(the aariz set\)"):
        EnsureLandmarksd(landmark_set="aariz")(item(landmarks=points))
    with pytest.raises(ValueError, match="unknown landmark set"):
        EnsureLandmarksd()(item(landmark_set="isbi2016"))
    with pytest.raises(ValueError, match="disagrees"):
        EnsureLandmarks(num_landmarks=3, landmark_set="isbi2015")


@pytest.mark.parametrize("landmarks,match", [
    ([[1, 2, 3]], r"landmarks\[0\]: expected \[x, y\] or null, got \[1, 2, 3\]"),
    ([1, 2, 3, 4], r"landmarks\[0\]: expected \[x, y\] or null, got 1"),
    ([[1, "abc"]], r"landmarks\[0\] y: coordinate 'abc' is not a number"),
    ([[1, True]], r"landmarks\[0\] y: coordinate True is not a number"),
    ([[1, 2], [None, 5]], r"landmarks\[1\]: 'x' and 'y' must both be numbers or both null"),
    (torch.tensor([[1.0, 2.0], [math.nan, 5.0]]), r"landmark 1 has one missing coordinate"),
    ([[1, 2], [math.inf, 5]], r"landmarks\[1\] x: coordinate inf is not finite"),
    (np.array([[1.0, 2.0], [math.inf, 5.0]]), r"landmark 1 has an infinite coordinate"),
    ("1,2", r"expected a list of \[x, y\] pairs"),
    (np.zeros((3, 3)), r"shape \(N, 2\), got \(3, 3\)"),
    (np.zeros((2, 3, 2)), r"shape \(N, 2\)"),
    (np.array([["a", "b"]], dtype=object), r"landmarks\[0\] x: coordinate 'a' is not a number"),
    (np.array([["1", "2"]]), r"real numbers, got dtype <U1"),
    (torch.ones(2, 2, dtype=torch.bool), r"real numbers, got dtype torch.bool"),
])
def test_bad_landmarks_name_the_item_and_the_problem(landmarks, match):
    with pytest.raises(ValueError, match=r"item id='017', image /data/017.jpg: 'landmarks': .*" + match):
        EnsureLandmarksd()(item(landmarks=landmarks))


@pytest.mark.parametrize("spacing,match", [
    ([0.1, -0.1], "finite and > 0"),
    ([0.0, 0.1], "finite and > 0"),
    ([0.1, 0.1, 0.1], "2 values"),
    (["a", 0.1], "not numeric"),
    ([0.1, None], "finite and > 0"),
    ("0.1", "positive numbers"),
])
def test_bad_spacing_names_the_item(spacing, match):
    with pytest.raises(ValueError, match=r"item id='017', image /data/017.jpg: 'spacing': .*" + match):
        EnsureLandmarksd()(item(spacing=spacing))


def test_spacing_scalar_is_isotropic_and_missing_spacing_is_an_error():
    np.testing.assert_allclose(as_spacing(0.1).numpy(), [0.1, 0.1])
    d = item()
    del d["spacing"]
    with pytest.raises(ValueError, match=r"id='017'.*no 'spacing' entry"):
        EnsureLandmarksd()(d)
    assert "spacing" not in EnsureLandmarksd(spacing_key=None)(d)


def test_points_outside_the_loaded_image_are_rejected_or_masked():
    image = MetaTensor(torch.zeros(1, 30, 20), meta={"filename_or_obj": "/data/017.jpg"})
    swapped = [[25.0, 5.0], [5.0, 25.0]]  # the second is outside dim1 = 20: (y, x) given for (x, y)
    with pytest.raises(ValueError, match=r"image /data/017.jpg.*landmark 1 at \[5.0, 25.0\] lies outside.*\(30, 20\)"):
        EnsureLandmarksd()(item(image=image, landmarks=swapped))
    d = EnsureLandmarksd(check_bounds=False)(item(image=image, landmarks=swapped))
    np.testing.assert_array_equal(d["landmark_mask"].numpy(), [1.0, 0.0])
    np.testing.assert_array_equal(d["landmarks"].numpy(), swapped)  # kept, only masked


def test_the_loaded_image_affine_is_recorded_as_the_source_affine():
    affine = torch.diag(torch.tensor([0.1, 0.1, 1.0, 1.0], dtype=torch.float64))
    image = MetaTensor(torch.zeros(1, 30, 25), affine=affine)
    d = EnsureLandmarksd()(item(image=image))
    torch.testing.assert_close(d["image"].meta["original_affine"], affine)


def test_missing_landmarks_key_is_allowed_for_inference_items():
    d = item()
    del d["landmarks"]
    out = EnsureLandmarksd(allow_missing_keys=True)(d)
    assert "landmarks" not in out and "landmark_mask" not in out
    with pytest.raises(KeyError):
        EnsureLandmarksd()(d)


def test_real_isbi_image_and_annotation(isbi_dir):
    with open(isbi_dir / "train_senior.csv") as f:
        header, row = next(csv.reader(f)), None
        row = next(csv.reader(f))
    assert header[1:3] == ["1_x", "1_y"]
    points = [[float(row[1 + 2 * i]), float(row[2 + 2 * i])] for i in range(19)]
    data = {"image": str(isbi_dir / "images" / row[0]), "landmarks": points, "spacing": [0.1, 0.1],
            "id": row[0][:3], "landmark_set": "isbi2015"}
    d = EnsureLandmarksd()(LoadImaged("image", ensure_channel_first=True)(data))
    assert d["image"].shape[1:] == (1935, 2400)  # (x, y): the landmarks' order
    np.testing.assert_array_equal(d["landmarks"].numpy(), np.array(points, np.float32))
    np.testing.assert_array_equal(d["landmark_mask"].numpy(), np.ones(19, np.float32))
    assert "original_affine" in d["image"].meta


def test_deprecated_names_warn_and_behave_as_the_new_ones():
    from monai_ceph.transforms import LoadLandmarks, LoadLandmarksD, LoadLandmarksd, LoadLandmarksDict

    with pytest.warns(FutureWarning, match="use EnsureLandmarksd instead"):
        old = LoadLandmarksd(num_landmarks=3)
    assert isinstance(old, EnsureLandmarksd) and LoadLandmarksD is LoadLandmarksDict is LoadLandmarksd
    torch.testing.assert_close(old(item())["landmarks"], EnsureLandmarksd(num_landmarks=3)(item())["landmarks"],
                               equal_nan=True)
    with pytest.warns(FutureWarning, match="use EnsureLandmarks instead"):
        array = LoadLandmarks()
    assert torch.equal(array([[1, 2]]), torch.tensor([[1.0, 2.0]]))
