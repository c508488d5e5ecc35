import numpy as np
import pytest

from monai_ceph.data import DataFileError, SpacingError, read_dicom_spacing


@pytest.mark.parametrize(
    "tags, expected",
    [
        ({"PixelSpacing": [0.2, 0.1]}, [0.1, 0.2]),  # DICOM is (row = y, column = x)
        ({"ImagerPixelSpacing": [0.148, 0.139]}, [0.139, 0.148]),
        ({"PixelSpacing": [0.3, 0.3], "ImagerPixelSpacing": [0.1, 0.1]}, [0.3, 0.3]),  # calibrated first
        ({"NominalScannedPixelSpacing": [0.05, 0.04]}, [0.04, 0.05]),
    ],
)
def test_spacing_from_tags(tmp_path, write_dicom, tags, expected):
    path = write_dicom(tmp_path / "a.dcm", np.zeros((4, 6)), **tags)
    spacing = read_dicom_spacing(path)
    np.testing.assert_allclose(spacing, expected)
    assert spacing.shape == (2,)


@pytest.mark.parametrize(
    "tags, message",
    [
        ({}, "none of the tags"),
        ({"PixelSpacing": [0.0, 0.1]}, r"PixelSpacing: pixel spacing .* must be finite and > 0"),
        ({"ImagerPixelSpacing": [-0.1, 0.1]}, "ImagerPixelSpacing: pixel spacing"),
        ({"PixelSpacing": [0.1, 0.1, 0.1]}, r"PixelSpacing: expected \[row spacing, column spacing\]"),
    ],
)
def test_bad_spacing(tmp_path, write_dicom, tags, message):
    path = write_dicom(tmp_path / "a.dcm", np.zeros((4, 6)), **tags)
    with pytest.raises(SpacingError, match=message) as e:
        read_dicom_spacing(path)
    assert "a.dcm" in str(e.value)


def test_not_dicom_and_missing(tmp_path):
    (tmp_path / "a.dcm").write_bytes(b"not a dicom file at all" * 10)
    with pytest.raises(DataFileError, match="a.dcm: not a DICOM file"):
        read_dicom_spacing(tmp_path / "a.dcm")
    with pytest.raises(FileNotFoundError, match="b.dcm"):
        read_dicom_spacing(tmp_path / "b.dcm")


def test_loaded_axes_match_spacing_order(tmp_path, write_dicom):
    """MONAI loads a DICOM as (C, columns, rows[, 1]), so spacing (x, y) = (column, row) spacing lines up with it.

    The default reader (ITK) returns a single-slice DICOM as 3-D with a trailing singleton dimension; a 2-D
    pipeline squeezes it (``SqueezeDimd(keys="image", dim=-1)``).
    """
    from monai.transforms import LoadImage

    pixels = np.arange(4 * 6).reshape(4, 6)  # 4 rows (y), 6 columns (x)
    path = write_dicom(tmp_path / "a.dcm", pixels, PixelSpacing=[0.2, 0.1])
    image = LoadImage(image_only=True, ensure_channel_first=True)(str(path))
    assert tuple(image.shape) == (1, 6, 4, 1)
    np.testing.assert_array_equal(np.asarray(image[0, ..., 0]), pixels.T)
    np.testing.assert_allclose(image.pixdim[:2], read_dicom_spacing(path))
