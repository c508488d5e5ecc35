# Copyright (c) monai_ceph contributors.
# Licensed under the Apache License, Version 2.0.
"""Attention gates between encoder skips and decoder features."""

from __future__ import annotations

import torch
import torch.nn as nn
from monai.networks.blocks import Convolution
from monai.networks.layers.factories import Pool
from monai.networks.layers.utils import get_act_layer

from .preactivation import PreActivationConv

__all__ = ["PooledAttentionGate", "GroupedAttentionGate"]


class PooledAttentionGate(nn.Module):
    """
    The ResUNet++ attention block (`Jha et al., ISM 2019 <https://arxiv.org/abs/1911.07067>`_).

    The higher-resolution encoder feature ``skip`` is convolved and max-pooled by 2 to the resolution
    of the decoder feature ``x``; both are summed, convolved again, and the result re-weights ``x``
    element-wise. All convolutions are 3x3 pre-activation convolutions with ``channels(x)`` outputs.
    As in the authors' reference implementation the gate is not squashed by a sigmoid.

    Args:
        spatial_dims: number of spatial dimensions.
        skip_channels: channels of the encoder feature (at twice the resolution of ``x``).
        channels: channels of the decoder feature ``x`` (and of the output).
        norm: normalisation type. Defaults to batch normalisation.
        act: activation type. Defaults to ReLU.
    """

    def __init__(
        self,
        spatial_dims: int,
        skip_channels: int,
        channels: int,
        norm: tuple | str = "batch",
        act: tuple | str = "relu",
    ) -> None:
        super().__init__()
        self.skip_conv = PreActivationConv(spatial_dims, skip_channels, channels, norm=norm, act=act)
        self.pool = Pool[Pool.MAX, spatial_dims](kernel_size=2, stride=2)
        self.x_conv = PreActivationConv(spatial_dims, channels, channels, norm=norm, act=act)
        self.gate_conv = PreActivationConv(spatial_dims, channels, channels, norm=norm, act=act)

    def forward(self, skip: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            skip: encoder feature, ``(B, skip_channels, *2S)``.
            x: decoder feature, ``(B, channels, *S)``.

        Returns:
            the re-weighted decoder feature, ``(B, channels, *S)``.
        """
        gate = self.gate_conv(self.pool(self.skip_conv(skip)) + self.x_conv(x))
        return gate * x


class GroupedAttentionGate(nn.Module):
    """
    Grouped attention gate (GAG) of MK-UNet / EMCAD
    (`Rahman & Marculescu, MK-UNet, ICCV 2025 workshops <https://arxiv.org/abs/2509.18493>`_), a grouped
    variant of the additive gate of `Attention U-Net <https://arxiv.org/abs/1804.03999>`_.

    The gating signal ``g`` (decoder) and the skip feature ``x`` (encoder, same resolution) are each
    projected to ``inter_channels`` by a grouped ``kernel_size`` convolution with normalisation; their
    activated sum is mapped to a single-channel sigmoid gate that re-weights ``x``. With
    ``kernel_size=1`` (groups are then ignored) this is the original Attention U-Net gate.

    Args:
        spatial_dims: number of spatial dimensions.
        gate_channels: channels of the gating signal ``g``.
        skip_channels: channels of the skip feature ``x`` (and of the output).
        inter_channels: channels of the intermediate projections.
        kernel_size: kernel size of the projections. Defaults to 3.
        groups: groups of the projections (used when ``kernel_size > 1``). Defaults to ``inter_channels``.
        norm: normalisation type. Defaults to batch normalisation.
        act: activation applied to the summed projections. Defaults to ReLU.

    Raises:
        ValueError: when ``groups`` does not divide the channel counts.
    """

    def __init__(
        self,
        spatial_dims: int,
        gate_channels: int,
        skip_channels: int,
        inter_channels: int,
        kernel_size: int = 3,
        groups: int | None = None,
        norm: tuple | str = "batch",
        act: tuple | str = "relu",
    ) -> None:
        super().__init__()
        groups = 1 if kernel_size == 1 else (inter_channels if groups is None else groups)
        for name, c in (("gate_channels", gate_channels), ("skip_channels", skip_channels), ("inter", inter_channels)):
            if c % groups:
                raise ValueError(f"GroupedAttentionGate: groups={groups} must divide {name}={c}.")

        def projection(in_channels: int) -> Convolution:
            return Convolution(
                spatial_dims, in_channels, inter_channels, kernel_size=kernel_size, groups=groups, act=None, norm=norm
            )

        self.gate_proj = projection(gate_channels)
        self.skip_proj = projection(skip_channels)
        self.act = get_act_layer(act)
        self.psi = Convolution(spatial_dims, inter_channels, 1, kernel_size=1, act="sigmoid", norm=norm)

    def forward(self, g: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            g: gating signal, ``(B, gate_channels, *S)``.
            x: skip feature, ``(B, skip_channels, *S)``.

        Returns:
            the gated skip feature, ``(B, skip_channels, *S)``.
        """
        return x * self.psi(self.act(self.gate_proj(g) + self.skip_proj(x)))
