# Copyright (c) monai_ceph contributors.
# Licensed under the Apache License, Version 2.0.
"""Atrous spatial pyramid pooling whose branches are summed (ResUNet++ style)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
from monai.networks.blocks import Convolution

__all__ = ["AdditiveASPP"]


class AdditiveASPP(nn.Module):
    """
    Atrous spatial pyramid pooling with summed branches, as used by ResUNet++:
    `Jha et al., ResUNet++: An Advanced Architecture for Medical Image Segmentation, ISM 2019
    <https://arxiv.org/abs/1911.07067>`_.

    Each branch is a 3x3 (or ``kernel_size``) convolution with its own dilation followed by a
    normalisation layer; the branches are added and projected by a 1x1 convolution. Unlike
    :py:class:`monai.networks.blocks.SimpleASPP` (which concatenates the branches), the width of every
    branch equals ``out_channels``, so any output width is possible.

    Args:
        spatial_dims: number of spatial dimensions.
        in_channels: number of input channels.
        out_channels: number of output channels (and of every branch).
        dilations: one dilation per branch. Defaults to ``(1, 6, 12, 18)``.
        kernel_size: kernel size of the branches. Defaults to 3.
        norm: normalisation after each branch. Defaults to batch normalisation.

    Raises:
        ValueError: when ``dilations`` is empty.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        dilations: Sequence[int] = (1, 6, 12, 18),
        kernel_size: int = 3,
        norm: tuple | str = "batch",
    ) -> None:
        super().__init__()
        if len(dilations) == 0:
            raise ValueError("AdditiveASPP needs at least one dilation.")
        self.branches = nn.ModuleList(
            Convolution(
                spatial_dims,
                in_channels,
                out_channels,
                kernel_size=kernel_size,
                dilation=d,
                padding=d * (kernel_size - 1) // 2,
                act=None,
                norm=norm,
                adn_ordering="N",
            )
            for d in dilations
        )
        self.project = Convolution(spatial_dims, out_channels, out_channels, kernel_size=1, conv_only=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.branches[0](x)
        for branch in self.branches[1:]:
            y = y + branch(x)
        return self.project(y)
