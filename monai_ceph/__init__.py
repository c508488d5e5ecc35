"""monai_ceph: cephalometric landmark detection on lateral skull radiographs, the MONAI way."""

__version__ = "0.1.0"
