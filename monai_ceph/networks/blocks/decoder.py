# Copyright (c) monai_ceph contributors.
# Licensed under the Apache License, Version 2.0.
"""Decoder block of CephRes-MHNet: transposed-convolution upsampling, skip concatenation, conv block."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from monai.networks.blocks import Convolution

from .residual import get_conv_block

__all__ = ["ResidualUpBlock"]


class ResidualUpBlock(nn.Module):
    """
    Upsample ``x`` with a transposed convolution (kernel and stride ``upsample_kernel_size``), concatenate the
    encoder feature ``skip`` along channels, and apply a residual block (or, with ``residual=False``, one plain
    conv unit; see :py:func:`monai_ceph.networks.blocks.get_conv_block`).

    Args:
        spatial_dims: number of spatial dimensions.
        in_channels: channels of the input to upsample.
        skip_channels: channels of the skip feature (at the upsampled resolution).
        out_channels: number of output channels.
        kernel_size: kernel size of the convolution block. Defaults to 5.
        upsample_kernel_size: kernel size and stride of the transposed convolution. Defaults to 2.
        norm: feature normalization type and arguments.
        act: activation type and arguments.
        dropout: dropout ratio (or type and arguments).
        residual: residual block (default) or plain conv unit.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        skip_channels: int,
        out_channels: int,
        kernel_size: Sequence[int] | int = 5,
        upsample_kernel_size: Sequence[int] | int = 2,
        norm: tuple | str | None = "batch",
        act: tuple | str | None = "relu",
        dropout: tuple | str | float | None = None,
        residual: bool = True,
    ) -> None:
        super().__init__()
        self.upsample = Convolution(
            spatial_dims,
            in_channels,
            out_channels,
            strides=upsample_kernel_size,
            kernel_size=upsample_kernel_size,
            conv_only=True,
            is_transposed=True,
            padding=0,
            output_padding=0,
        )
        self.conv_block = get_conv_block(
            spatial_dims, out_channels + skip_channels, out_channels, kernel_size, norm, act, dropout, residual
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv_block(torch.cat([self.upsample(x), skip], dim=1))
