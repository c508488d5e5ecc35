# Copyright (c) monai_ceph contributors.
# Licensed under the Apache License, Version 2.0.
"""CMUNeXt for landmark heatmap regression."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
from monai.networks.blocks import Convolution, UpSample
from monai.networks.layers.factories import Pool

from monai_ceph.networks.blocks.depthwise import CMUNeXtBlock

from ._input_size import check_input_size

__all__ = ["CMUNeXt", "CMUNext", "Cmunext", "SkipFusion"]


class SkipFusion(nn.Sequential):
    """
    The skip-fusion block of CMUNeXt: the concatenated skip and decoder features (``2C`` channels) go
    through a 3x3 convolution with two groups (one per source) and an inverted bottleneck of pointwise
    convolutions ``2C -> 4C -> C``; every convolution is followed by ``act -> norm``.

    Args:
        spatial_dims: number of spatial dimensions.
        in_channels: channels of the concatenated input (``2C``).
        out_channels: output channels (``C``).
        expansion: width of the bottleneck relative to ``out_channels``. Defaults to 4.
        norm: normalisation type. Defaults to batch normalisation.
        act: activation type. Defaults to GELU.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        expansion: int = 4,
        norm: tuple | str = "batch",
        act: tuple | str = "gelu",
    ) -> None:
        adn = dict(act=act, norm=norm, adn_ordering="AN")
        super().__init__(
            Convolution(spatial_dims, in_channels, in_channels, kernel_size=3, groups=2, **adn),
            Convolution(spatial_dims, in_channels, out_channels * expansion, kernel_size=1, **adn),
            Convolution(spatial_dims, out_channels * expansion, out_channels, kernel_size=1, **adn),
        )


class CMUNeXt(nn.Module):
    """
    CMUNeXt from `Tang et al., CMUNeXt: An Efficient Medical Image Segmentation Network based on Large
    Kernel and Skip Fusion, ISBI 2024 <https://arxiv.org/abs/2308.01239>`_, used as a heatmap-regression
    baseline.

    Encoder: a 3x3 convolution stem, then per level ``depths[i]``
    :py:class:`~monai_ceph.networks.blocks.CMUNeXtBlock` (large-kernel depthwise residual + pointwise
    inverted bottleneck) followed by a 3x3 convolution to the level's width, with 2x max pooling
    between levels. Decoder: per level nearest-neighbour 2x upsampling with a 3x3 convolution, then
    :py:class:`SkipFusion` of the skip and the upsampled feature. A 1x1 convolution gives
    ``out_channels`` heatmap logits at the input resolution (the shared heatmap protocol).

    The defaults are the base CMUNeXt of the paper (widths ``(16, 32, 128, 160, 256)``, depths
    ``(1, 1, 1, 3, 1)``, kernels ``(3, 3, 7, 7, 7)``): 3,149,203 parameters with 1 input channel and
    19 outputs (Table 1 of CephRes-MHNet: 3.15M).

    Every spatial size of the input must be divisible by ``2 ** (len(features) - 1)`` (16 by default),
    otherwise ``ValueError`` is raised.

    Args:
        spatial_dims: number of spatial dimensions. Defaults to 2.
        in_channels: number of input channels. Defaults to 1.
        out_channels: number of output heatmaps. Defaults to 19.
        features: width of every level.
        depths: number of CMUNeXt blocks per level.
        kernel_sizes: depthwise kernel size per level.
        norm: normalisation type. Defaults to batch normalisation.
        act: activation of the plain 3x3 convolutions. Defaults to ReLU.
        mixer_act: activation of the CMUNeXt and skip-fusion blocks. Defaults to GELU.
        dropout: dropout ratio in the plain 3x3 convolutions. Defaults to no dropout.

    Raises:
        ValueError: when ``features``, ``depths`` and ``kernel_sizes`` differ in length or have fewer
            than two levels.
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 19,
        features: Sequence[int] = (16, 32, 128, 160, 256),
        depths: Sequence[int] = (1, 1, 1, 3, 1),
        kernel_sizes: Sequence[int] = (3, 3, 7, 7, 7),
        norm: tuple | str = "batch",
        act: tuple | str = "relu",
        mixer_act: tuple | str = "gelu",
        dropout: tuple | str | float | None = None,
    ) -> None:
        super().__init__()
        if not len(features) == len(depths) == len(kernel_sizes) or len(features) < 2:
            raise ValueError(
                "features, depths and kernel_sizes need the same length (>= 2), got "
                f"{len(features)}, {len(depths)} and {len(kernel_sizes)}."
            )
        self.spatial_dims = spatial_dims
        self.divisor = 2 ** (len(features) - 1)
        conv = dict(kernel_size=3, norm=norm, act=act, dropout=dropout)
        self.stem = Convolution(spatial_dims, in_channels, features[0], **conv)
        self.pool = Pool[Pool.MAX, spatial_dims](kernel_size=2, stride=2)
        self.encoder = nn.ModuleList()
        for i, (depth, k) in enumerate(zip(depths, kernel_sizes)):
            c_in = features[max(i - 1, 0)]
            blocks = [CMUNeXtBlock(spatial_dims, c_in, k, norm=norm, act=mixer_act) for _ in range(depth)]
            self.encoder.append(nn.Sequential(*blocks, Convolution(spatial_dims, c_in, features[i], **conv)))
        self.up = nn.ModuleList()
        self.fuse = nn.ModuleList()
        upsample = dict(scale_factor=2, mode="nontrainable", interp_mode="nearest", align_corners=None)
        for c_deep, c_skip in zip(features[:0:-1], features[-2::-1]):
            self.up.append(
                nn.Sequential(UpSample(spatial_dims, **upsample), Convolution(spatial_dims, c_deep, c_skip, **conv))
            )
            self.fuse.append(SkipFusion(spatial_dims, 2 * c_skip, c_skip, norm=norm, act=mixer_act))
        self.out = Convolution(spatial_dims, features[0], out_channels, kernel_size=1, conv_only=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input_size(x, self.divisor, self.spatial_dims, type(self).__name__)
        skips = [self.encoder[0](self.stem(x))]
        for stage in self.encoder[1:]:
            skips.append(stage(self.pool(skips[-1])))
        d = skips.pop()
        for up, fuse, skip in zip(self.up, self.fuse, reversed(skips)):
            d = fuse(torch.cat([skip, up(d)], dim=1))
        return self.out(d)


CMUNext = Cmunext = CMUNeXt
