"""Adds the data-only package ``monai_ceph.bundle`` (mapped to ``bundles/cephres`` in setup.cfg) to the packages
``find:`` lists, so the bundle's configs and docs ship in the wheel without a second copy in the repository.
Everything else is in setup.cfg."""

from setuptools import find_packages, setup

setup(packages=find_packages(include=["monai_ceph*"]) + ["monai_ceph.bundle"])
