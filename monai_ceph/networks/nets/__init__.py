# Copyright (c) monai_ceph contributors.
# Licensed under the Apache License, Version 2.0.
"""Networks for cephalometric landmark heatmap regression; one file per network."""

from __future__ import annotations

from .cephres_mhnet import CephResMHNet, CephresMHNet, CephResMHNET
