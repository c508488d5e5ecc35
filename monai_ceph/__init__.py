"""monai_ceph: cephalometric landmark detection on lateral skull radiographs, the MONAI way."""

__version__ = "0.1.0"

__all__ = ["LandmarkDetector", "LandmarkResult"]


def __getattr__(name: str):
    """``from monai_ceph import LandmarkDetector`` without importing torch and MONAI on ``import monai_ceph``."""
    if name in __all__:
        from monai_ceph.apps import detector, result

        return getattr(detector if name == "LandmarkDetector" else result, name)
    raise AttributeError(f"module 'monai_ceph' has no attribute {name!r}")


def _install_bundle_excepthook() -> None:
    """Under ``python -m monai.bundle``, an input error ends the run in one line (see :mod:`monai_ceph.errors`)."""
    from monai_ceph import errors

    if errors.running_bundle_script():
        errors.install_excepthook()


_install_bundle_excepthook()
