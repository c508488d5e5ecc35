# Copyright (c) monai_ceph contributors.
# Licensed under the Apache License, Version 2.0.
"""CephRes-MHNet: a multi-head residual network for cephalometric landmark heatmap regression."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from monai.networks.blocks import Convolution
from monai.networks.layers.factories import Pool

from monai_ceph.data.landmark_sets import LANDMARK_SETS
from monai_ceph.networks.blocks import DualAttention, ResidualUpBlock, get_conv_block

__all__ = ["CephResMHNet", "CephresMHNet", "CephResMHNET"]


class _DecoderHead(nn.Module):
    """One decoder head: ``len(skips)`` up blocks, deepest first, and a 1x1 output convolution."""

    def __init__(self, up_blocks: Sequence[nn.Module], out_conv: nn.Module) -> None:
        super().__init__()
        self.up_blocks = nn.ModuleList(up_blocks)
        self.out_conv = out_conv

    def forward(self, x: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        for i, block in enumerate(self.up_blocks):
            x = block(x, skips[i])
        return self.out_conv(x)


class CephResMHNet(nn.Module):
    """
    CephRes-MHNet, based on:
    `CephRes-MHNet: A Multi-Head Residual Network for Accurate and Robust Cephalometric Landmark Detection
    <https://arxiv.org/abs/2511.10173>`_.

    A shared encoder of ``len(channels)`` stages (two residual blocks each, 5x5 convolutions, max-pooling by 2
    after every stage), a :py:class:`~monai_ceph.networks.blocks.DualAttention` module at the bottleneck
    (``1 / 2**len(channels)`` of the input size), and one decoder head per landmark group. Each head has one
    :py:class:`~monai_ceph.networks.blocks.ResidualUpBlock` per encoder stage (transposed-convolution upsampling,
    skip connection from that stage) and a 1x1 convolution to its group's heatmaps. The heads' outputs are put
    back in landmark order: output channel ``k`` is the heatmap (logits) of landmark ``k``.

    The paper's ablations are constructor arguments:

        - CephRes-MHNet: the defaults (three heads over the ISBI 2015 anatomical groups when
          ``out_channels == 19``); 4.64M parameters with one input channel (paper: 4.7M).
        - CephRes-Net (one head): ``groups=[range(out_channels)]``; 2.93M (paper: 2.93M).
        - Ceph-MHNet (no residual learning): ``residual=False``; every residual block becomes one plain
          conv-norm-act unit (see :py:func:`~monai_ceph.networks.blocks.get_conv_block`); 2.72M (paper: 2.63M).

    Args:
        spatial_dims: number of spatial dimensions. Defaults to 2.
        in_channels: number of input channels. Defaults to 1.
        out_channels: number of landmarks ``K`` (output heatmap channels). Defaults to 19.
        groups: the landmark channels predicted by each head, a sequence of index sequences covering
            ``0 .. out_channels - 1`` exactly once. Defaults to the anatomical groups of
            the landmark set of that size (:py:data:`monai_ceph.data.LANDMARK_SETS`: ISBI 2015's 19, Aariz's 29),
            otherwise a single head.
        channels: encoder widths, one per stage. Defaults to ``(24, 48, 144)``.
        decoder_channels: widths of each head's up blocks, deepest first; same length as ``channels``.
            Defaults to ``(80, 40, 20)``.
        kernel_size: convolution kernel size of the encoder and decoder blocks. Defaults to 5.
        upsample_kernel_size: kernel size and stride of the transposed convolutions (and the pooling size).
            Defaults to 2.
        attention_reduction: channel reduction of the spatial attention's query and key. Defaults to 8.
        residual: residual blocks (default) or plain conv units (Ceph-MHNet).
        norm: feature normalization type and arguments. Defaults to batch norm.
        act: activation type and arguments. Defaults to ReLU.
        dropout: dropout ratio (or type and arguments) inside every conv unit. Defaults to 0.05.

    Raises:
        ValueError: when ``groups`` does not partition the output channels, when widths are inconsistent, and,
            in ``forward``, when a spatial size is not divisible by ``upsample_kernel_size ** len(channels)``.

    Examples::

        # 19 ISBI 2015 landmarks on a 736x576 (height x width) radiograph, MONAI order (x, y)
        net = CephResMHNet()
        heatmaps = net(torch.rand(1, 1, 576, 736))  # (1, 19, 576, 736)

        # bundle config: {"_target_": "monai_ceph.networks.nets.CephResMHNet", "out_channels": 19}
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 19,
        groups: Sequence[Sequence[int]] | None = None,
        channels: Sequence[int] = (24, 48, 144),
        decoder_channels: Sequence[int] = (80, 40, 20),
        kernel_size: Sequence[int] | int = 5,
        upsample_kernel_size: int = 2,
        attention_reduction: int = 8,
        residual: bool = True,
        norm: tuple | str | None = "batch",
        act: tuple | str | None = "relu",
        dropout: tuple | str | float | None = 0.05,
    ) -> None:
        super().__init__()
        if len(channels) < 1 or len(decoder_channels) != len(channels):
            raise ValueError(
                f"channels and decoder_channels must be non-empty and of equal length, got {tuple(channels)} "
                f"and {tuple(decoder_channels)}."
            )
        if upsample_kernel_size < 1:
            raise ValueError(f"upsample_kernel_size must be a positive integer, got {upsample_kernel_size}.")
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.groups = self._check_groups(groups, out_channels)
        self.size_divisor = int(upsample_kernel_size) ** len(channels)

        stages = []
        prev = in_channels
        for c in channels:
            stages.append(
                nn.Sequential(
                    get_conv_block(spatial_dims, prev, c, kernel_size, norm, act, dropout, residual),
                    get_conv_block(spatial_dims, c, c, kernel_size, norm, act, dropout, residual),
                )
            )
            prev = c
        self.encoder = nn.ModuleList(stages)
        self.pool = Pool[Pool.MAX, spatial_dims](kernel_size=upsample_kernel_size)
        self.attention = DualAttention(spatial_dims, channels[-1], attention_reduction)

        heads = []
        for group in self.groups:
            ups, prev = [], channels[-1]
            for d, skip in zip(decoder_channels, reversed(channels)):
                ups.append(
                    ResidualUpBlock(
                        spatial_dims, prev, skip, d, kernel_size, upsample_kernel_size, norm, act, dropout, residual
                    )
                )
                prev = d
            out_conv = Convolution(spatial_dims, prev, len(group), kernel_size=1, conv_only=True)
            heads.append(_DecoderHead(ups, out_conv))
        self.heads = nn.ModuleList(heads)

        # the heads' outputs concatenated are in `flat` order; gather them back into landmark order
        flat = [i for g in self.groups for i in g]
        order = torch.empty(out_channels, dtype=torch.long)
        order[torch.tensor(flat, dtype=torch.long)] = torch.arange(out_channels)
        self.register_buffer("channel_order", order, persistent=False)

    @staticmethod
    def _check_groups(groups: Sequence[Sequence[int]] | None, out_channels: int) -> tuple[tuple[int, ...], ...]:
        if out_channels < 1:
            raise ValueError(f"out_channels must be a positive integer, got {out_channels}.")
        if groups is None:
            sized = [s for s in LANDMARK_SETS.values() if len(s) == out_channels and s.groups]
            if sized:
                return sized[0].group_indices
            return (tuple(range(out_channels)),)
        try:
            checked = tuple(tuple(int(i) for i in g) for g in groups)
        except (TypeError, ValueError):
            raise ValueError(f"groups must be a sequence of sequences of channel indices, got {groups!r}.") from None
        if not checked or any(len(g) == 0 for g in checked):
            raise ValueError(f"groups must be non-empty sequences of channel indices, got {checked}.")
        flat = [i for g in checked for i in g]
        expected = set(range(out_channels))
        missing = sorted(expected - set(flat))
        extra = sorted(set(flat) - expected)
        repeated = sorted({i for i in flat if flat.count(i) > 1})
        if missing or extra or repeated:
            raise ValueError(
                f"groups must cover the output channels 0..{out_channels - 1} exactly once, got {checked}: "
                f"missing {missing}, out of range {extra}, repeated {repeated}."
            )
        return checked

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial = x.shape[2:]
        for s in spatial:
            if s % self.size_divisor != 0:
                raise ValueError(
                    f"CephResMHNet: every spatial size must be divisible by {self.size_divisor}, "
                    f"got input shape {list(x.shape)}."
                )
        skips: list[torch.Tensor] = []
        for stage in self.encoder:
            x = stage(x)
            skips.insert(0, x)
            x = self.pool(x)
        x = self.attention(x)
        outputs: list[torch.Tensor] = []
        for head in self.heads:
            outputs.append(head(x, skips))
        return torch.index_select(torch.cat(outputs, dim=1), 1, self.channel_order)


CephresMHNet = CephResMHNET = CephResMHNet
