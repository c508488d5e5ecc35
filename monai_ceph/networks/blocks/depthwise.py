# Copyright (c) monai_ceph contributors.
# Licensed under the Apache License, Version 2.0.
"""Depthwise-separable building blocks: the CMUNeXt block and the multi-kernel inverted residual."""

from __future__ import annotations

from collections.abc import Sequence
from math import gcd

import torch
import torch.nn as nn
from monai.networks.blocks import Convolution

__all__ = ["CMUNeXtBlock", "MultiKernelDepthwiseConv", "MultiKernelInvertedResidual", "channel_shuffle"]


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """
    Interleave the channels of ``x`` (``(B, C, *S)``) across ``groups`` groups (ShuffleNet).

    Raises:
        ValueError: when ``groups`` does not divide the channel count.
    """
    b, c = x.shape[:2]
    if c % groups:
        raise ValueError(f"channel_shuffle: groups={groups} must divide the {c} channels.")
    return x.reshape(b, groups, c // groups, *x.shape[2:]).transpose(1, 2).reshape(x.shape)


class CMUNeXtBlock(nn.Module):
    """
    The CMUNeXt block (`Tang et al., CMUNeXt: An Efficient Medical Image Segmentation Network based on
    Large Kernel and Skip Fusion, ISBI 2024 <https://arxiv.org/abs/2308.01239>`_).

    A residual large-kernel depthwise convolution (``dwconv k x k -> act -> norm``, added to its input)
    mixes space; an inverted-bottleneck pair of pointwise convolutions
    (``C -> expansion*C -> C``, each ``conv -> act -> norm``) mixes channels.

    Args:
        spatial_dims: number of spatial dimensions.
        channels: number of input and output channels.
        kernel_size: depthwise kernel size. Defaults to 7.
        expansion: pointwise expansion ratio. Defaults to 4.
        norm: normalisation type. Defaults to batch normalisation.
        act: activation type. Defaults to GELU.
    """

    def __init__(
        self,
        spatial_dims: int,
        channels: int,
        kernel_size: int = 7,
        expansion: int = 4,
        norm: tuple | str = "batch",
        act: tuple | str = "gelu",
    ) -> None:
        super().__init__()
        adn = dict(act=act, norm=norm, adn_ordering="AN")
        self.depthwise = Convolution(spatial_dims, channels, channels, kernel_size=kernel_size, groups=channels, **adn)
        self.pointwise = nn.Sequential(
            Convolution(spatial_dims, channels, channels * expansion, kernel_size=1, **adn),
            Convolution(spatial_dims, channels * expansion, channels, kernel_size=1, **adn),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(x + self.depthwise(x))


class MultiKernelDepthwiseConv(nn.Module):
    """
    Parallel depthwise convolutions with different kernel sizes (each ``conv -> norm -> act``),
    summed. The multi-kernel depthwise convolution (MKDC) of MK-UNet
    (`Rahman & Marculescu, ICCV 2025 workshops <https://arxiv.org/abs/2509.18493>`_).

    Args:
        spatial_dims: number of spatial dimensions.
        channels: number of input and output channels.
        kernel_sizes: one depthwise kernel size per branch (odd). Defaults to ``(1, 3, 5)``.
        strides: stride of every branch. Defaults to 1.
        norm: normalisation type. Defaults to batch normalisation.
        act: activation type. Defaults to ReLU6.
    """

    def __init__(
        self,
        spatial_dims: int,
        channels: int,
        kernel_sizes: Sequence[int] = (1, 3, 5),
        strides: int = 1,
        norm: tuple | str = "batch",
        act: tuple | str = "relu6",
    ) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            Convolution(
                spatial_dims, channels, channels, strides=strides, kernel_size=k, groups=channels, bias=False,
                act=act, norm=norm,
            )
            for k in kernel_sizes
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.branches[0](x)
        for branch in self.branches[1:]:
            y = y + branch(x)
        return y


class MultiKernelInvertedResidual(nn.Module):
    """
    Multi-kernel inverted residual block (MKIR) of MK-UNet: pointwise expansion
    (``conv -> norm -> act``), :py:class:`MultiKernelDepthwiseConv`, channel shuffle, pointwise
    projection (``conv -> norm``), and an identity (or 1x1 projection) shortcut when the stride is 1.

    Args:
        spatial_dims: number of spatial dimensions.
        in_channels: number of input channels.
        out_channels: number of output channels.
        strides: depthwise stride (1 or 2); stride 2 drops the shortcut. Defaults to 1.
        expansion: expansion ratio of the first pointwise convolution. Defaults to 2.
        kernel_sizes: depthwise kernel sizes. Defaults to ``(1, 3, 5)``.
        norm: normalisation type. Defaults to batch normalisation.
        act: activation type. Defaults to ReLU6.

    Raises:
        ValueError: when ``strides`` is not 1 or 2.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        strides: int = 1,
        expansion: int = 2,
        kernel_sizes: Sequence[int] = (1, 3, 5),
        norm: tuple | str = "batch",
        act: tuple | str = "relu6",
    ) -> None:
        super().__init__()
        if strides not in (1, 2):
            raise ValueError(f"MultiKernelInvertedResidual: strides must be 1 or 2, got {strides}.")
        hidden = int(in_channels * expansion)
        self.expand = Convolution(spatial_dims, in_channels, hidden, kernel_size=1, bias=False, act=act, norm=norm)
        self.depthwise = MultiKernelDepthwiseConv(spatial_dims, hidden, kernel_sizes, strides, norm=norm, act=act)
        self.shuffle_groups = gcd(hidden, out_channels)
        self.project = Convolution(spatial_dims, hidden, out_channels, kernel_size=1, bias=False, act=None, norm=norm)
        self.shortcut: nn.Module | None = None
        if strides == 1:
            self.shortcut = (
                nn.Identity()
                if in_channels == out_channels
                else Convolution(spatial_dims, in_channels, out_channels, kernel_size=1, bias=False, conv_only=True)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(channel_shuffle(self.depthwise(self.expand(x)), self.shuffle_groups))
        return y if self.shortcut is None else y + self.shortcut(x)
