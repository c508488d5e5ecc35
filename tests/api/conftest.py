"""A tiny trained cephres bundle for the API and CLI tests: the packaged configs copied into a temporary folder and
trained for one epoch at 64 x 64 on six phantoms (once per session)."""

import shutil

import pytest
from monai.bundle import ConfigWorkflow

from monai_ceph.apps import default_bundle_dir
from monai_ceph.data import write_phantom_dataset


@pytest.fixture(scope="session")
def phantoms(tmp_path_factory):
    """A datalist JSON of six 64 x 80 (W x H) phantoms at 3 mm/px, split 2 / 2 / 2."""
    return write_phantom_dataset(
        tmp_path_factory.mktemp("api_phantoms"), num_images=6, spatial_size=(64, 80), fractions=(0.34, 0.33, 0.33)
    )


@pytest.fixture(scope="session")
def trained_bundle(tmp_path_factory, phantoms):
    root = tmp_path_factory.mktemp("api_bundle")
    for name in ("configs", "docs"):
        shutil.copytree(default_bundle_dir() / name, root / name)
    wf = ConfigWorkflow(
        config_file=str(root / "configs" / "train.json"), workflow_type="train", bundle_root=str(root),
        datalist_file=str(phantoms), spatial_size=[64, 64], batch_size=2, num_workers=0, max_epochs=1,
        save_overlays=False,
    )
    wf.initialize()
    wf.run()
    wf.finalize()
    assert (root / "models" / "model.pt").is_file()
    return root
