# Copyright (c) monai_ceph contributors.
# Licensed under the Apache License, Version 2.0.
"""Pre-activation convolution: normalisation and activation *before* the convolution."""

from __future__ import annotations

import torch.nn as nn
from monai.networks.blocks import ADN
from monai.networks.layers.factories import Conv
from monai.networks.layers.convutils import same_padding

__all__ = ["PreActivationConv"]


class PreActivationConv(nn.Sequential):
    """
    ``norm -> act [-> dropout] -> conv``, the unit of pre-activation residual networks
    (`He et al., Identity Mappings in Deep Residual Networks <https://arxiv.org/abs/1603.05027>`_).
    :py:class:`monai.networks.blocks.Convolution` applies its ADN block after the convolution; this
    block applies it before.

    Args:
        spatial_dims: number of spatial dimensions.
        in_channels: number of input channels.
        out_channels: number of output channels.
        kernel_size: convolution kernel size. Defaults to 3.
        strides: convolution stride. Defaults to 1.
        norm: normalisation type. Defaults to batch normalisation.
        act: activation type. Defaults to ReLU.
        dropout: dropout ratio applied between activation and convolution. Defaults to no dropout.
        bias: whether the convolution has a bias. Defaults to True.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        strides: int = 1,
        norm: tuple | str = "batch",
        act: tuple | str = "relu",
        dropout: tuple | str | float | None = None,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.add_module(
            "adn",
            ADN(
                ordering="NAD",
                in_channels=in_channels,
                act=act,
                norm=norm,
                norm_dim=spatial_dims,
                dropout=dropout,
                dropout_dim=spatial_dims,
            ),
        )
        conv_type = Conv[Conv.CONV, spatial_dims]
        self.add_module(
            "conv", conv_type(in_channels, out_channels, kernel_size, strides, same_padding(kernel_size), bias=bias)
        )
