# Copyright (c) monai_ceph contributors.
# Licensed under the Apache License, Version 2.0.
"""ResUNet++ for landmark heatmap regression."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
from monai.networks.blocks import ChannelSELayer, Convolution, UpSample

from monai_ceph.networks.blocks.aspp import AdditiveASPP
from monai_ceph.networks.blocks.attention_gate import PooledAttentionGate
from monai_ceph.networks.blocks.preactivation import PreActivationConv

from ._input_size import check_input_size

__all__ = ["ResUNetPlusPlus", "ResUnetPlusPlus", "ResUNetPP", "ResidualSEBlock"]


class ResidualSEBlock(nn.Module):
    """
    Residual unit of ResUNet++: two 3x3 pre-activation convolutions (the first strided), a 1x1
    projection shortcut with normalisation, then squeeze-and-excitation
    (:py:class:`monai.networks.blocks.ChannelSELayer`) on the sum.

    With ``stem=True`` the first convolution sees the raw input (no norm/activation before it), as in
    the network's first block.

    Args:
        spatial_dims: number of spatial dimensions.
        in_channels: number of input channels.
        out_channels: number of output channels.
        strides: stride of the first convolution and of the shortcut. Defaults to 1.
        stem: whether this is the input block. Defaults to False.
        se_ratio: squeeze-and-excitation reduction ratio. Defaults to 8.
        norm: normalisation type. Defaults to batch normalisation.
        act: activation type. Defaults to ReLU.
        dropout: dropout ratio before the second convolution. Defaults to no dropout.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        strides: int = 1,
        stem: bool = False,
        se_ratio: int = 8,
        norm: tuple | str = "batch",
        act: tuple | str = "relu",
        dropout: tuple | str | float | None = None,
    ) -> None:
        super().__init__()
        if stem:
            first: nn.Module = Convolution(
                spatial_dims, in_channels, out_channels, strides=strides, kernel_size=3, conv_only=True
            )
        else:
            first = PreActivationConv(spatial_dims, in_channels, out_channels, strides=strides, norm=norm, act=act)
        second = PreActivationConv(spatial_dims, out_channels, out_channels, norm=norm, act=act, dropout=dropout)
        self.residual = nn.Sequential(first, second)
        self.shortcut = Convolution(
            spatial_dims, in_channels, out_channels, strides=strides, kernel_size=1, act=None, norm=norm
        )
        self.se = ChannelSELayer(spatial_dims, out_channels, r=se_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.se(self.residual(x) + self.shortcut(x))


class ResUNetPlusPlus(nn.Module):
    """
    ResUNet++ from `Jha et al., ResUNet++: An Advanced Architecture for Medical Image Segmentation,
    ISM 2019 <https://arxiv.org/abs/1911.07067>`_, used as a heatmap-regression baseline.

    Layout (``features=(f0, f1, f2, f3, f4)``, the authors' widths ``(16, 32, 64, 128, 256)``):

    - stem residual block (``f0``, full resolution) and strided residual blocks ``f1..f3``, each
      followed by squeeze-and-excitation;
    - an :py:class:`~monai_ceph.networks.blocks.AdditiveASPP` bridge (``f4``);
    - per decoder level: an attention gate between the skip and the decoder feature, nearest-neighbour
      upsampling by 2, concatenation with the skip and a residual block (``f3, f2, f1``);
    - an ASPP (``f0``) before the 1x1 output convolution.

    The output is ``out_channels`` heatmap logits at the input resolution (no sigmoid), the shared
    heatmap protocol of this package. With 1 input channel and 19 outputs the network has 4,063,501
    parameters (Table 1 of CephRes-MHNet: 4.06M). The authors' Keras code uses the same widths;
    the SE layers here have biases (MONAI's ``ChannelSELayer``), theirs do not (+~1k parameters).

    The number of stride-2 stages is ``len(features) - 2``; every spatial size of the input must be
    divisible by ``2 ** (len(features) - 2)`` (8 by default), otherwise ``ValueError`` is raised.

    Args:
        spatial_dims: number of spatial dimensions. Defaults to 2.
        in_channels: number of input channels. Defaults to 1.
        out_channels: number of output heatmaps. Defaults to 19.
        features: stem, encoder and bridge widths; the decoder mirrors them.
        aspp_dilations: dilations of the two ASPP blocks. Defaults to ``(1, 6, 12, 18)``.
        se_ratio: squeeze-and-excitation reduction ratio. Defaults to 8.
        norm: normalisation type. Defaults to batch normalisation.
        act: activation type. Defaults to ReLU.
        dropout: dropout ratio inside the residual blocks. Defaults to no dropout.

    Raises:
        ValueError: when ``features`` has fewer than 3 entries.
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 19,
        features: Sequence[int] = (16, 32, 64, 128, 256),
        aspp_dilations: Sequence[int] = (1, 6, 12, 18),
        se_ratio: int = 8,
        norm: tuple | str = "batch",
        act: tuple | str = "relu",
        dropout: tuple | str | float | None = None,
    ) -> None:
        super().__init__()
        if len(features) < 3:
            raise ValueError(f"features needs at least 3 widths (stem, one encoder level, bridge), got {features}.")
        self.spatial_dims = spatial_dims
        self.divisor = 2 ** (len(features) - 2)
        block = dict(spatial_dims=spatial_dims, se_ratio=se_ratio, norm=norm, act=act, dropout=dropout)
        skips = list(features[:-1])  # widths of the stem and the strided encoder blocks

        self.stem = ResidualSEBlock(in_channels=in_channels, out_channels=skips[0], stem=True, **block)
        self.encoder = nn.ModuleList(
            ResidualSEBlock(in_channels=c_in, out_channels=c_out, strides=2, **block)
            for c_in, c_out in zip(skips[:-1], skips[1:])
        )
        self.bridge = AdditiveASPP(spatial_dims, skips[-1], features[-1], aspp_dilations, norm=norm)

        self.gates = nn.ModuleList()
        self.decoder = nn.ModuleList()
        c_dec = features[-1]
        for c_skip, c_out in zip(skips[-2::-1], features[-2:0:-1]):
            self.gates.append(PooledAttentionGate(spatial_dims, c_skip, c_dec, norm=norm, act=act))
            self.decoder.append(ResidualSEBlock(in_channels=c_dec + c_skip, out_channels=c_out, **block))
            c_dec = c_out
        self.upsample = UpSample(
            spatial_dims, scale_factor=2, mode="nontrainable", interp_mode="nearest", align_corners=None
        )
        self.head_aspp = AdditiveASPP(spatial_dims, c_dec, features[0], aspp_dilations, norm=norm)
        self.out = Convolution(spatial_dims, features[0], out_channels, kernel_size=1, conv_only=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input_size(x, self.divisor, self.spatial_dims, type(self).__name__)
        skips = [self.stem(x)]
        for block in self.encoder:
            skips.append(block(skips[-1]))
        d = self.bridge(skips[-1])
        for gate, block, skip in zip(self.gates, self.decoder, skips[-2::-1]):
            d = self.upsample(gate(skip, d))
            d = block(torch.cat([d, skip], dim=1))
        return self.out(self.head_aspp(d))


ResUnetPlusPlus = ResUNetPP = ResUNetPlusPlus
