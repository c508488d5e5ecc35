# Copyright (c) monai_ceph contributors.
# Licensed under the Apache License, Version 2.0.
"""Dilated inception block: parallel 1x1 and dilated 3x3 convolutions, concatenated."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
from monai.networks.blocks import Convolution

__all__ = ["DilatedInception"]


class DilatedInception(nn.Module):
    """
    Inception-style block of AFPF-Net (`Chen et al., Cephalometric Landmark Detection by Attentive
    Feature Pyramid Fusion and Regression-Voting, MICCAI 2019 <https://arxiv.org/abs/1908.08841>`_):
    a 1x1 branch and one 3x3 branch per dilation (each ``conv -> norm -> act`` with
    ``out_channels / (1 + len(dilations))`` channels) are concatenated, enlarging the receptive field
    at several rates without losing resolution.

    Args:
        spatial_dims: number of spatial dimensions.
        in_channels: number of input channels.
        out_channels: number of output channels, divisible by ``1 + len(dilations)``.
        dilations: dilations of the 3x3 branches. Defaults to ``(1, 2, 4)``.
        norm: normalisation type. Defaults to batch normalisation.
        act: activation type. Defaults to ReLU.

    Raises:
        ValueError: when ``out_channels`` is not divisible by the number of branches.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        dilations: Sequence[int] = (1, 2, 4),
        norm: tuple | str = "batch",
        act: tuple | str = "relu",
    ) -> None:
        super().__init__()
        n_branches = 1 + len(dilations)
        if out_channels % n_branches:
            raise ValueError(f"DilatedInception: out_channels={out_channels} must be divisible by {n_branches}.")
        width = out_channels // n_branches
        branch = dict(act=act, norm=norm)
        self.branches = nn.ModuleList([Convolution(spatial_dims, in_channels, width, kernel_size=1, **branch)])
        self.branches.extend(
            Convolution(spatial_dims, in_channels, width, kernel_size=3, dilation=d, padding=d, **branch)
            for d in dilations
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)
