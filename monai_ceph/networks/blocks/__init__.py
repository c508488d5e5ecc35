# Copyright (c) monai_ceph contributors.
# Licensed under the Apache License, Version 2.0.
"""Building blocks of the cephalometric networks."""

from __future__ import annotations

from .decoder import ResidualUpBlock
from .dual_attention import ChannelAttention, DualAttention, SpatialAttention
from .residual import ResidualConvBlock, get_conv_block
