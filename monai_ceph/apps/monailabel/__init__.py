"""MONAI Label app for cephalometric landmarks (optional extra ``monai_ceph[monailabel]``).

The app folder is this package folder (``main.py``); its modules import ``monailabel``, so this ``__init__`` does
not, and ``import monai_ceph`` works without the extra. See README.md here for how to start and use it.
"""
