# Copyright (c) monai_ceph contributors.
# Licensed under the Apache License, Version 2.0.
"""Networks for cephalometric landmark heatmap regression; one file per network."""

from __future__ import annotations

from .cephres_mhnet import CephResMHNet, CephresMHNet, CephResMHNET

# baselines of the CephRes-MHNet paper (Table 1); registry in .baselines
from .afpf_net import AFPFNet, AFPFnet, AfpfNet
from .baselines import BASELINES, get_baseline
from .cmunext import CMUNeXt, CMUNext, Cmunext
from .hrnet import HRNetSR, HRNetW48SR
from .mk_unet import MK_UNet, MKUNet, MKUnet
from .monai_baselines import monai_dynunet, monai_unet
from .resunetpp import ResUNetPlusPlus, ResUnetPlusPlus, ResUNetPP
