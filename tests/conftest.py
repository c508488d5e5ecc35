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
