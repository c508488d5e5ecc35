"""Shared fixtures for the bundle tests: where the bundles are, and a tiny phantom datalist to train on."""

from pathlib import Path

import pytest

from monai_ceph.data import write_phantom_dataset

BUNDLES_DIR = Path(__file__).resolve().parents[2] / "bundles"


@pytest.fixture(scope="session")
def bundles_dir() -> Path:
    """The repository's ``bundles/`` folder (configs are read in place; runs write into ``tmp_path``)."""
    return BUNDLES_DIR


@pytest.fixture(scope="session")
def phantom_datalist(tmp_path_factory) -> Path:
    """A datalist JSON of 6 synthetic phantoms of 64 x 80 (W x H) pixels, split 2 / 2 / 2 into
    training / validation / test (two validation images, so two-rank DDP gives each rank one)."""
    return write_phantom_dataset(
        tmp_path_factory.mktemp("phantoms"), num_images=6, spatial_size=(64, 80), fractions=(0.34, 0.33, 0.33)
    )
