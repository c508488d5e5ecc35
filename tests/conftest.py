import numpy as np
import pytest
import torch

from monai_ceph.data.locations import ISBI_ENV, isbi_dir as _isbi_dir

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


@pytest.fixture(scope="session")
def isbi_dir():
    """The real ISBI 2015 folder; the test is skipped (with the reason) when it is absent."""
    path = _isbi_dir()
    if not (path / "images").is_dir():
        pytest.skip(f"ISBI 2015 data not found at {path} (set {ISBI_ENV} to its folder)")
    return path


@pytest.fixture
def write_dicom():
    """``write_dicom(path, pixels (rows, cols), **tags)``: a minimal DX DICOM file with the given tags (the one DICOM
    fixture of the suite)."""
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    def write(path, pixels, **tags):
        pixels = np.ascontiguousarray(pixels, dtype=np.uint16)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = meta.MediaStorageSOPClassUID
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID = generate_uid()
        ds.SeriesInstanceUID = generate_uid()
        ds.Modality = "DX"
        ds.Rows, ds.Columns = pixels.shape
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 0
        ds.PixelData = pixels.tobytes()
        for tag, value in tags.items():
            setattr(ds, tag, value)
        if int(pydicom.__version__.split(".")[0]) >= 3:
            ds.save_as(path, enforce_file_format=True)
        else:  # pydicom 2.4 (pinned by the monailabel extra)
            ds.is_little_endian, ds.is_implicit_VR = True, False
            ds.save_as(path, write_like_original=False)
        return path

    return write


class ReleasedReference:
    """The released model's regression figures (``pretrained/isbi2015/regression.json``: the MRE of its first ten
    Test1 images, written by benchmarks/release_pretrained.py) with those images' files and averaged ground truth."""

    def __init__(self, isbi_dir):
        import json

        from monai_ceph.data import build_datalist
        from monai_ceph.data.locations import pretrained_dir

        self.reference = json.loads((pretrained_dir() / "regression.json").read_text())
        self.ids = list(self.reference["images"])
        test1 = {d["id"]: d for d in build_datalist(isbi_dir, fmt="isbi2015", ground_truth="average")["validation"]}
        self.paths = [test1[i]["image"] for i in self.ids]
        self.truth = {i: np.asarray(test1[i]["landmarks"], dtype=float) for i in self.ids}

    def mre(self, predicted: dict) -> float:
        """MRE (mm) of ``{id: (19, 2) source pixels}`` against the ground truth (ISBI: 0.1 mm/px)."""
        errors = [np.linalg.norm(np.asarray(predicted[i], dtype=float) - gt, axis=-1) * 0.1
                  for i, gt in self.truth.items()]
        return float(np.mean(np.concatenate(errors)))


@pytest.fixture(scope="session")
def released_reference(isbi_dir):
    """:class:`ReleasedReference` (skipped without the ISBI data)."""
    return ReleasedReference(isbi_dir)
