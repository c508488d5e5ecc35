"""RadiographReader: the reader chosen by suffix, DICOM through PydicomReader with MONOCHROME1 inverted."""

import logging

import numpy as np
import pytest
from PIL import Image

from monai.transforms import LoadImage, LoadImaged

from monai_ceph.data import DICOM_SUFFIXES, RadiographReader, is_dicom

PIXELS = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 20 + 5)  # (rows, cols) = (y, x)


def load(path):
    return LoadImage(reader=RadiographReader(), image_only=True, ensure_channel_first=True)(str(path))


@pytest.mark.parametrize("suffix", [".dcm", ".DICOM"])
def test_dicom_and_png_give_the_same_x_y_array(tmp_path, write_dicom, suffix, caplog):
    dcm = write_dicom(tmp_path / f"a{suffix}", PIXELS, PixelSpacing=[0.1, 0.2])
    Image.fromarray(PIXELS.astype(np.uint8)).save(tmp_path / "a.png")
    with caplog.at_level(logging.INFO):
        from_dicom, from_png = load(dcm), load(tmp_path / "a.png")
    assert tuple(from_dicom.shape) == tuple(from_png.shape) == (1, 4, 3)  # (C, x, y)
    np.testing.assert_array_equal(from_dicom[0].numpy(), PIXELS.T)
    np.testing.assert_array_equal(from_png[0].numpy(), PIXELS.T)
    assert not [r for r in caplog.records if "unable to load" in r.getMessage()]  # no reader fall-through


def test_monochrome1_is_inverted_with_a_warning(tmp_path, write_dicom, caplog):
    path = write_dicom(tmp_path / "neg.dcm", PIXELS, PhotometricInterpretation="MONOCHROME1")
    with caplog.at_level(logging.WARNING, logger="monai_ceph.data.image_io"):
        image = load(path)
    lo, hi = PIXELS.min(), PIXELS.max()
    np.testing.assert_array_equal(image[0].numpy(), (lo + hi - PIXELS).T)
    assert image.meta["PhotometricInterpretation"] == "MONOCHROME2"
    assert any("neg.dcm" in r.getMessage() and "MONOCHROME1" in r.getMessage() for r in caplog.records)


def test_monochrome2_is_not_inverted_and_not_warned(tmp_path, write_dicom, caplog):
    path = write_dicom(tmp_path / "pos.dcm", PIXELS)
    with caplog.at_level(logging.WARNING, logger="monai_ceph.data.image_io"):
        image = LoadImaged("image", reader=RadiographReader(), ensure_channel_first=True)({"image": str(path)})
    np.testing.assert_array_equal(image["image"][0].numpy(), PIXELS.T)
    assert not [r for r in caplog.records if r.name == "monai_ceph.data.image_io"]


@pytest.mark.parametrize("name", ["a.png", "a.JPG", "a.bmp", "a.nii.gz", "a.mha"])
def test_other_files_get_monai_default_choice(name):
    """Not DICOM: the reader MONAI's LoadImage picks by suffix, without any DICOM reader in the running."""
    default = LoadImage()  # auto-selects by suffix, last registered first
    expected = next(r for r in default.readers[::-1] if "Dicom" not in type(r).__name__ and r.verify_suffix(name))
    assert type(RadiographReader().reader_for(name)) is type(expected)


def test_suffixes():
    assert DICOM_SUFFIXES == (".dcm", ".dicom")
    assert is_dicom("x/IMG.DCM") and is_dicom("a.dicom") and not is_dicom("a.png") and not is_dicom("dcm")
    reader = RadiographReader()
    assert reader.reader_for("a.dcm") is reader.dicom_reader and reader.reader_for(["b.DCM"]) is reader.dicom_reader
    assert reader.verify_suffix("a.png") and reader.verify_suffix("a.dcm")
