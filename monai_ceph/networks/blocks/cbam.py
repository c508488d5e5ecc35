# Copyright (c) monai_ceph contributors.
# Licensed under the Apache License, Version 2.0.
"""CBAM-style channel and spatial attention gates (`Woo et al., ECCV 2018 <https://arxiv.org/abs/1807.06521>`_)."""

from __future__ import annotations

import torch
import torch.nn as nn
from monai.networks.blocks import Convolution
from monai.networks.layers.factories import Pool
from monai.networks.layers.utils import get_act_layer

__all__ = ["ChannelAttentionGate", "SpatialAttentionGate"]


class ChannelAttentionGate(nn.Module):
    """
    Re-weights the channels of ``x`` by ``sigmoid(mlp(avgpool(x)) + mlp(maxpool(x)))``, where ``mlp`` is a
    shared bias-free ``C -> C/ratio -> C`` pair of 1x1 convolutions.

    Args:
        spatial_dims: number of spatial dimensions.
        channels: number of input (and output) channels.
        ratio: reduction ratio of the hidden layer; capped at ``channels``. Defaults to 16.
        act: activation of the hidden layer. Defaults to ReLU.
    """

    def __init__(self, spatial_dims: int, channels: int, ratio: int = 16, act: tuple | str = "relu") -> None:
        super().__init__()
        hidden = channels // min(ratio, channels)
        self.avg_pool = Pool[Pool.ADAPTIVEAVG, spatial_dims](1)
        self.max_pool = Pool[Pool.ADAPTIVEMAX, spatial_dims](1)
        self.mlp = nn.Sequential(
            Convolution(spatial_dims, channels, hidden, kernel_size=1, bias=False, conv_only=True),
            get_act_layer(act),
            Convolution(spatial_dims, hidden, channels, kernel_size=1, bias=False, conv_only=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.mlp(self.avg_pool(x)) + self.mlp(self.max_pool(x)))


class SpatialAttentionGate(nn.Module):
    """
    Re-weights the positions of ``x`` by ``sigmoid(conv([mean_c(x), max_c(x)]))`` with a bias-free
    ``kernel_size`` convolution over the channel-wise mean and maximum maps.

    Args:
        spatial_dims: number of spatial dimensions.
        kernel_size: kernel size of the convolution (odd). Defaults to 7.
    """

    def __init__(self, spatial_dims: int, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = Convolution(spatial_dims, 2, 1, kernel_size=kernel_size, bias=False, conv_only=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stats = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(stats))
