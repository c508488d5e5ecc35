# Copyright (c) monai_ceph contributors.
# Licensed under the Apache License, Version 2.0.
"""Building blocks of the cephalometric networks."""

from __future__ import annotations

from .decoder import ResidualUpBlock
from .dual_attention import ChannelAttention, DualAttention, SpatialAttention
from .residual import ResidualConvBlock, get_conv_block

# blocks of the baseline networks
from .aspp import AdditiveASPP
from .attention_gate import GroupedAttentionGate, PooledAttentionGate
from .cbam import ChannelAttentionGate, SpatialAttentionGate
from .depthwise import CMUNeXtBlock, MultiKernelDepthwiseConv, MultiKernelInvertedResidual, channel_shuffle
from .dilated_inception import DilatedInception
from .preactivation import PreActivationConv
from .sr_head import SRHeatmapHead
