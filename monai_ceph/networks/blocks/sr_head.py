# Copyright (c) monai_ceph contributors.
# Licensed under the Apache License, Version 2.0.
"""Super-resolution heatmap head: multi-scale features to full-resolution landmark heatmaps."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.networks.blocks import Convolution
from monai.networks.blocks.mednext_block import MedNeXtBlock
from monai.networks.utils import pixelshuffle

__all__ = ["SRHeatmapHead"]


class SRHeatmapHead(nn.Module):
    """
    Lightweight super-resolution heatmap head, after SRPose
    (`Wang et al., Lightweight Super-Resolution Head for Human Pose Estimation, ACM MM 2023
    <https://arxiv.org/abs/2307.16765>`_), as used for cephalometric landmarks by
    `Wu et al., CL-Detection 2023 <https://arxiv.org/abs/2309.17143>`_.

    The features arrive finest first (e.g. HRNet's strides 4, 8, 16, 32). Starting at the coarsest,
    each level is reduced to ``channels[i]`` (1x1 ``conv -> norm -> act``); going one level finer, the
    running feature is refined (depthwise 3x3 + pointwise 1x1 ``-> norm -> act``), resized to the finer
    level, concatenated with that level's reduction, merged by a 1x1 convolution and processed by
    ``num_blocks`` ConvNeXt-style blocks (:py:class:`monai.networks.blocks.mednext_block.MedNeXtBlock`).
    At the finest level every landmark gets ``embed_channels`` channels (1x1 ``conv -> act``), and a
    grouped convolution (one group per landmark) followed by a pixel shuffle super-resolves each
    heatmap by ``upsample_factor``.

    Args:
        in_channels: channels of the input features, finest first.
        out_channels: number of heatmaps (landmarks).
        channels: working width per level, finest first; same length as ``in_channels``.
        upsample_factor: super-resolution factor of the finest level (its stride). Defaults to 4.
        embed_channels: channels per landmark before the pixel shuffle. Defaults to 4.
        kernel_size: kernel size of the per-landmark super-resolution convolution. Defaults to 9.
        num_blocks: ConvNeXt-style blocks after each fusion. Defaults to 2.
        norm: normalisation type. Defaults to batch normalisation.
        act: activation type. Defaults to ReLU.

    Raises:
        ValueError: when ``channels`` and ``in_channels`` differ in length.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        out_channels: int,
        channels: Sequence[int],
        upsample_factor: int = 4,
        embed_channels: int = 4,
        kernel_size: int = 9,
        num_blocks: int = 2,
        norm: tuple | str = "batch",
        act: tuple | str = "relu",
    ) -> None:
        super().__init__()
        if len(channels) != len(in_channels):
            raise ValueError(f"channels {tuple(channels)} needs one width per input level {tuple(in_channels)}.")
        spatial_dims = 2
        self.upsample_factor = upsample_factor
        self.reduce = nn.ModuleList(
            Convolution(spatial_dims, c_in, c, kernel_size=1, norm=norm, act=act)
            for c_in, c in zip(in_channels, channels)
        )
        self.refine = nn.ModuleList(
            nn.Sequential(
                Convolution(spatial_dims, c_coarse, c_coarse, kernel_size=3, groups=c_coarse, conv_only=True),
                Convolution(spatial_dims, c_coarse, c_fine, kernel_size=1, norm=norm, act=act),
            )
            for c_fine, c_coarse in zip(channels[:-1], channels[1:])
        )
        self.merge = nn.ModuleList(
            nn.Sequential(
                Convolution(spatial_dims, 2 * c, c, kernel_size=1, conv_only=True),
                *[MedNeXtBlock(c, c, kernel_size=7, norm_type="group", dim="2d") for _ in range(num_blocks)],
            )
            for c in channels[:-1]
        )
        self.embed = Convolution(
            spatial_dims, channels[0], embed_channels * out_channels, kernel_size=1, act=act, norm=None
        )
        self.super_resolve = Convolution(
            spatial_dims,
            embed_channels * out_channels,
            upsample_factor**spatial_dims * out_channels,
            kernel_size=kernel_size,
            groups=out_channels,
            conv_only=True,
        )

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """
        Args:
            features: the multi-scale features, finest first.

        Returns:
            heatmap logits ``(B, out_channels, *finest size * upsample_factor)``.
        """
        y = self.reduce[-1](features[-1])
        for i in range(len(features) - 2, -1, -1):
            fine = self.reduce[i](features[i])
            y = F.interpolate(self.refine[i](y), size=fine.shape[2:], mode="bilinear", align_corners=False)
            y = self.merge[i](torch.cat([y, fine], dim=1))
        return pixelshuffle(self.super_resolve(self.embed(y)), 2, self.upsample_factor)
