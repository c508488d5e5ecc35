# Copyright (c) monai_ceph contributors.
# Licensed under the Apache License, Version 2.0.
"""Dual attention module (spatial + channel self-attention), after DANet, as used by CephRes-MHNet."""

from __future__ import annotations

import torch
import torch.nn as nn

from monai.networks.blocks import Convolution

__all__ = ["SpatialAttention", "ChannelAttention", "DualAttention"]


class SpatialAttention(nn.Module):
    """
    Spatial (position) self-attention over all :math:`N = \\prod` spatial positions:

    .. math:: A_s = \\mathrm{softmax}(F_0^T F_1) \\in \\mathbb{R}^{N \\times N}, \\qquad
              Y = \\gamma \\, F_2 A_s^T + X

    with :math:`F_0, F_1` 1x1 convolutions to ``channels // reduction`` channels, :math:`F_2` a 1x1 convolution
    keeping ``channels``, and a learnable scalar :math:`\\gamma` initialised to 0, so the block starts as the
    identity. The attention matrix costs :math:`N^2` floats per image (a 72x92 map: 6624 positions, 175 MB fp32).

    Args:
        spatial_dims: number of spatial dimensions.
        channels: number of input (and output) channels.
        reduction: channel reduction of the query and key projections. Defaults to 8.
    """

    def __init__(self, spatial_dims: int, channels: int, reduction: int = 8) -> None:
        super().__init__()
        if reduction < 1 or channels // reduction < 1:
            raise ValueError(f"reduction must be in [1, channels={channels}], got {reduction}.")
        inner = channels // reduction
        self.query = Convolution(spatial_dims, channels, inner, kernel_size=1, conv_only=True)
        self.key = Convolution(spatial_dims, channels, inner, kernel_size=1, conv_only=True)
        self.value = Convolution(spatial_dims, channels, channels, kernel_size=1, conv_only=True)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.query(x).flatten(2)  # B, C', N
        k = self.key(x).flatten(2)  # B, C', N
        v = self.value(x).flatten(2)  # B, C, N
        attn = torch.softmax(torch.bmm(q.transpose(1, 2), k), dim=-1)  # B, N, N; row i attends over positions j
        out = torch.bmm(v, attn.transpose(1, 2))  # B, C, N
        return self.gamma * out.reshape(x.shape) + x


class ChannelAttention(nn.Module):
    """
    Channel self-attention:

    .. math:: A_c = \\mathrm{softmax}(X X^T) \\in \\mathbb{R}^{C \\times C}, \\qquad Y = \\gamma \\, A_c X + X

    with :math:`X` flattened to ``(C, N)`` and a learnable scalar :math:`\\gamma` initialised to 0.
    It has no other parameters, so it works for any number of channels.
    """

    def __init__(self) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = x.flatten(2)  # B, C, N
        attn = torch.softmax(torch.bmm(f, f.transpose(1, 2)), dim=-1)  # B, C, C
        return self.gamma * torch.bmm(attn, f).reshape(x.shape) + x


class DualAttention(nn.Module):
    """
    Dual attention module (DAM): spatial and channel attention in parallel, concatenated and fused by a 1x1
    convolution back to ``channels``.

    The fusion acts on what the two branches add to their input:

    .. math:: Z = X + W_{1\\times 1} * [\\,Y_s - X,\\; Y_c - X\\,]
              = X + W_{1\\times 1} * [\\,\\gamma_s A_s F_2,\\; \\gamma_c A_c X\\,]

    (``W`` has no bias). This keeps the paper's "concatenate and fuse with a 1x1 bottleneck convolution" and makes
    the module exactly the identity while both :math:`\\gamma` are 0, as they are at initialisation, whatever the
    fusion weights are; :math:`\\gamma` still receives gradients from the first step.

    Args:
        spatial_dims: number of spatial dimensions.
        channels: number of input (and output) channels.
        reduction: channel reduction of the spatial attention's query and key. Defaults to 8.
    """

    def __init__(self, spatial_dims: int, channels: int, reduction: int = 8) -> None:
        super().__init__()
        self.spatial = SpatialAttention(spatial_dims, channels, reduction)
        self.channel = ChannelAttention()
        self.fuse = Convolution(spatial_dims, 2 * channels, channels, kernel_size=1, conv_only=True, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fuse(torch.cat([self.spatial(x) - x, self.channel(x) - x], dim=1))
