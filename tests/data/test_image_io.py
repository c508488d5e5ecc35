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


def test_the_memory_bound_is_the_documented_one():
    from monai_ceph.data.image_io import MAX_IMAGE_PIXELS
    from monai_ceph.transforms import MAX_IMAGE_PIXELS as VALIDATED

    assert RadiographReader().max_pixels == MAX_IMAGE_PIXELS == VALIDATED == 36_000_000
    assert RadiographReader(max_pixels=None).max_pixels is None
    with pytest.raises(ValueError, match="max_pixels must be a positive integer or None, got 0"):
        RadiographReader(max_pixels=0)


def test_a_huge_png_is_refused_before_decoding(tmp_path):
    """An 8000 x 8000 PNG of a few kB on disk: refused naming the file, its size and the limit, and no pixel
    buffer is allocated (decoding would allocate 64 MB as a numpy array, which tracemalloc sees)."""
    import tracemalloc

    path = tmp_path / "huge.png"
    Image.new("L", (8000, 8000)).save(path)
    assert path.stat().st_size < 200_000
    tracemalloc.start()
    try:
        with pytest.raises(ValueError) as refused:
            LoadImaged("image", reader=RadiographReader(), ensure_channel_first=True)({"image": str(path)})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert f"{path}: image of spatial size (8000, 8000) has 64000000 pixels, more than the 36000000 accepted" in str(
        refused.value.__cause__ or refused.value
    )
    assert peak < 8_000_000, peak
    # a bound above it decodes the same file: the refusal came from the header, and the array is (x, y)
    image = load_with(path, max_pixels=64_000_000)
    assert tuple(image.shape) == (1, 8000, 8000)


def load_with(path, **kwargs):
    return LoadImage(reader=RadiographReader(**kwargs), image_only=True, ensure_channel_first=True)(str(path))


def test_a_dicom_whose_header_is_too_large_is_refused_without_reading_pixels(tmp_path, write_dicom):
    """The header says 7000 x 6000 (its pixel data is 3 x 4): refused from the header, never decoded."""
    path = write_dicom(tmp_path / "big.dcm", PIXELS)
    import pydicom

    ds = pydicom.dcmread(path)
    ds.Rows, ds.Columns = 6000, 7000
    ds.save_as(path)
    with pytest.raises(ValueError, match=r"big.dcm: image of spatial size \(7000, 6000\) has 42000000 pixels"):
        load(path)
    assert tuple(load_with(write_dicom(tmp_path / "small.dcm", PIXELS), max_pixels=12).shape) == (1, 4, 3)
    with pytest.raises(ValueError, match=r"small.dcm: image of spatial size \(4, 3\) has 12 pixels, more than the 11"):
        load_with(tmp_path / "small.dcm", max_pixels=11)
