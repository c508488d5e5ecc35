# Copyright (c) monai_ceph contributors.
# Licensed under the Apache License, Version 2.0.
"""MK-UNet for landmark heatmap regression."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
from monai.networks.blocks import Convolution, UpSample
from monai.networks.layers.factories import Pool
from monai.networks.layers.utils import get_act_layer

from monai_ceph.networks.blocks.attention_gate import GroupedAttentionGate
from monai_ceph.networks.blocks.cbam import ChannelAttentionGate, SpatialAttentionGate
from monai_ceph.networks.blocks.depthwise import MultiKernelInvertedResidual

from ._input_size import check_input_size

__all__ = ["MKUNet", "MKUnet", "MK_UNet", "MK_UNET_WIDTHS"]

#: the published MK-UNet widths (T, S, base, M, L).
MK_UNET_WIDTHS: dict[str, tuple[int, ...]] = {
    "T": (4, 8, 16, 24, 32),
    "S": (8, 16, 32, 48, 80),
    "base": (16, 32, 64, 96, 160),
    "M": (32, 64, 128, 192, 320),
    "L": (64, 128, 256, 384, 512),
}


class MKUNet(nn.Module):
    """
    MK-UNet from `Rahman & Marculescu, MK-UNet: Multi-kernel Lightweight CNN for Medical Image
    Segmentation, ICCV 2025 workshops <https://arxiv.org/abs/2509.18493>`_, used as a heatmap-regression
    baseline.

    Encoder: per level a :py:class:`~monai_ceph.networks.blocks.MultiKernelInvertedResidual` (MKIR:
    pointwise expansion, parallel depthwise kernels ``kernel_sizes``, channel shuffle, pointwise
    projection, residual) followed by 2x max pooling, so the bottleneck is at 1/32 resolution.
    Decoder: per level CBAM-style channel attention then a spatial attention shared by all levels, an
    MKIR to the next width, bilinear 2x upsampling and ReLU, and the skip (gated by a
    :py:class:`~monai_ceph.networks.blocks.GroupedAttentionGate`) added. A 1x1 convolution gives
    ``out_channels`` heatmap logits at the input resolution (the shared heatmap protocol); the
    authors' deep-supervision side outputs are not built.

    **Width and the Table 1 deviation.** CephRes-MHNet's Table 1 lists MK-UNet with 5.12M parameters,
    but none of the published widths (:py:data:`MK_UNET_WIDTHS`, which give 0.027M, 0.093M, 0.315M,
    1.15M and 3.76M as in the MK-UNet paper) reaches that. The largest, MK-UNet-L
    ``(64, 128, 256, 384, 512)``, is the default here: 3,758,265 parameters with 1 input channel and 19
    outputs, 27% below the table. The CephRes-MHNet paper does not say how its 5.12M model was widened,
    so no unpublished width is invented; pass ``features`` to change it.

    Every spatial size of the input must be divisible by ``2 ** len(features)`` (32 by default),
    otherwise ``ValueError`` is raised.

    Args:
        spatial_dims: number of spatial dimensions. Defaults to 2.
        in_channels: number of input channels. Defaults to 1.
        out_channels: number of output heatmaps. Defaults to 19.
        features: width of every level. Defaults to MK-UNet-L.
        kernel_sizes: depthwise kernel sizes of every MKIR block. Defaults to ``(1, 3, 5)``.
        expansion: expansion ratio of the MKIR blocks. Defaults to 2.
        gag_kernel_size: kernel size of the grouped attention gates. Defaults to 3.
        norm: normalisation type. Defaults to batch normalisation.
        act: activation of the MKIR blocks. Defaults to ReLU6.

    Raises:
        ValueError: when ``features`` has fewer than 2 levels.
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 19,
        features: Sequence[int] = MK_UNET_WIDTHS["L"],
        kernel_sizes: Sequence[int] = (1, 3, 5),
        expansion: int = 2,
        gag_kernel_size: int = 3,
        norm: tuple | str = "batch",
        act: tuple | str = "relu6",
    ) -> None:
        super().__init__()
        if len(features) < 2:
            raise ValueError(f"features needs at least 2 levels, got {features}.")
        self.spatial_dims = spatial_dims
        self.divisor = 2 ** len(features)
        mkir = dict(spatial_dims=spatial_dims, expansion=expansion, kernel_sizes=kernel_sizes, norm=norm, act=act)

        self.encoder = nn.ModuleList(
            MultiKernelInvertedResidual(in_channels=c_in, out_channels=c_out, **mkir)
            for c_in, c_out in zip([in_channels, *features[:-1]], features)
        )
        self.pool = Pool[Pool.MAX, spatial_dims](kernel_size=2, stride=2)

        dec_in = list(features[::-1])
        dec_out = [*features[-2::-1], features[0]]
        ca_ratios = [16] * (len(features) - 2) + [8, 4]
        self.channel_attention = nn.ModuleList(
            ChannelAttentionGate(spatial_dims, c, ratio=r) for c, r in zip(dec_in, ca_ratios[-len(features):])
        )
        self.spatial_attention = SpatialAttentionGate(spatial_dims, kernel_size=7)
        self.decoder = nn.ModuleList(
            MultiKernelInvertedResidual(in_channels=c_in, out_channels=c_out, **mkir)
            for c_in, c_out in zip(dec_in, dec_out)
        )
        self.gates = nn.ModuleList(
            GroupedAttentionGate(spatial_dims, c, c, c // 2, kernel_size=gag_kernel_size, norm=norm)
            for c in dec_out[:-1]
        )
        self.upsample = nn.Sequential(
            UpSample(spatial_dims, scale_factor=2, mode="nontrainable", interp_mode="linear", align_corners=False),
            get_act_layer("relu"),
        )
        self.out = Convolution(spatial_dims, features[0], out_channels, kernel_size=1, conv_only=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input_size(x, self.divisor, self.spatial_dims, type(self).__name__)
        skips = []
        for block in self.encoder:
            x = self.pool(block(x))
            skips.append(x)
        d = skips.pop()
        for i, (ca, block) in enumerate(zip(self.channel_attention, self.decoder)):
            d = self.upsample(block(self.spatial_attention(ca(d))))
            if i < len(self.gates):
                d = d + self.gates[i](d, skips.pop())
        return self.out(d)


MKUnet = MK_UNet = MKUNet
