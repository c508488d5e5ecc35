# Copyright (c) monai_ceph contributors.
# Licensed under the Apache License, Version 2.0.
"""Residual convolution block of CephRes-MHNet and the plain block that replaces it in Ceph-MHNet."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from monai.networks.blocks import Convolution

__all__ = ["ResidualConvBlock", "get_conv_block"]


class ResidualConvBlock(nn.Module):
    """
    Two convolution units with a shortcut, as in CephRes-MHNet:

    .. math:: y = \\mathrm{Act}(\\mathrm{Norm}(\\mathrm{Conv}(\\mathrm{Act}(\\mathrm{Norm}(\\mathrm{Conv}(x)))))) + S(x)

    where :math:`S` is a 1x1 convolution (the paper's channel-alignment projection). Each convolution unit is
    MONAI's :py:class:`monai.networks.blocks.Convolution` (conv, then norm, dropout, activation), with "same"
    padding and stride 1, so the spatial shape is kept.

    Args:
        spatial_dims: number of spatial dimensions.
        in_channels: number of input channels.
        out_channels: number of output channels.
        kernel_size: convolution kernel size of the two units. Defaults to 5.
        norm: feature normalization type and arguments. Defaults to batch norm.
        act: activation type and arguments. Defaults to ReLU.
        dropout: dropout ratio (or type and arguments) applied inside each unit. Defaults to no dropout.
        projection: if ``True`` (default) the shortcut is always a 1x1 convolution; if ``False`` it is the
            identity when ``in_channels == out_channels`` and a 1x1 convolution otherwise.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        kernel_size: Sequence[int] | int = 5,
        norm: tuple | str | None = "batch",
        act: tuple | str | None = "relu",
        dropout: tuple | str | float | None = None,
        projection: bool = True,
    ) -> None:
        super().__init__()
        self.conv1 = Convolution(
            spatial_dims, in_channels, out_channels, kernel_size=kernel_size, act=act, norm=norm, dropout=dropout
        )
        self.conv2 = Convolution(
            spatial_dims, out_channels, out_channels, kernel_size=kernel_size, act=act, norm=norm, dropout=dropout
        )
        self.shortcut: nn.Module = nn.Identity()
        if projection or in_channels != out_channels:
            self.shortcut = Convolution(spatial_dims, in_channels, out_channels, kernel_size=1, conv_only=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x)) + self.shortcut(x)


def get_conv_block(
    spatial_dims: int,
    in_channels: int,
    out_channels: int,
    kernel_size: Sequence[int] | int = 5,
    norm: tuple | str | None = "batch",
    act: tuple | str | None = "relu",
    dropout: tuple | str | float | None = None,
    residual: bool = True,
) -> nn.Module:
    """
    The convolution block of CephRes-MHNet (``residual=True``: a :py:class:`ResidualConvBlock`) or of the
    ablation Ceph-MHNet (``residual=False``: one plain conv-norm-dropout-activation unit, no shortcut).

    The plain variant drops the shortcut together with the second convolution of the block: the paper's
    parameter counts (4.7M with residual blocks, 2.63M without) cannot be explained by removing 1x1 shortcuts
    alone, which are a few percent of the weights of 5x5 convolutions.
    """
    if residual:
        return ResidualConvBlock(spatial_dims, in_channels, out_channels, kernel_size, norm, act, dropout)
    return Convolution(
        spatial_dims, in_channels, out_channels, kernel_size=kernel_size, act=act, norm=norm, dropout=dropout
    )
