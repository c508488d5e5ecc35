# Copyright (c) monai_ceph contributors.
# Licensed under the Apache License, Version 2.0.
"""AFPF-Net: attentive feature pyramid fusion on a VGG19-BN backbone."""

from __future__ import annotations

from collections.abc import Sequence
from math import prod

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.networks.blocks import Convolution
from monai.networks.layers.factories import Conv, Pool

from monai_ceph.networks.blocks.dilated_inception import DilatedInception

from ._input_size import check_input_size

__all__ = ["AFPFNet", "AFPFnet", "AfpfNet", "LandmarkChannelAttention", "VGG19_BN_STAGES"]

#: convolution widths of the five VGG19 blocks (each block ends with a 2x max pooling).
VGG19_BN_STAGES: tuple[tuple[int, ...], ...] = ((64, 64), (128, 128), (256,) * 4, (512,) * 4, (512,) * 4)


class LandmarkChannelAttention(nn.Module):
    """
    The per-landmark channel attention of AFPF-Net. For every output heatmap ``k`` a softmax over the
    ``C`` fused feature channels is predicted from the globally pooled features, and the heatmap is a
    1x1 convolution of the re-weighted features:
    ``y_k = b_k + sum_c w_kc * (C * a_kc) * x_c``.

    The attention comes from each channel's average-pooled ``grid`` (``prod(grid)`` values per
    channel), mapped by a shared ``prod(grid) -> hidden -> out_channels`` bias-free MLP with a
    normalisation over the whole sample (one learned scale and shift) and tanh in between. The authors
    pool 8x8 windows of a fixed-size input to 25x20 cells; adaptive pooling to ``grid`` gives the same
    for that input and keeps other input sizes usable.

    Args:
        channels: number of fused feature channels ``C``.
        out_channels: number of heatmaps.
        grid: pooled grid size, in the order of the spatial dims. Defaults to ``(20, 25)``.
        hidden: width of the hidden layer. Defaults to 128.
    """

    def __init__(
        self, channels: int, out_channels: int, grid: Sequence[int] = (20, 25), hidden: int = 128
    ) -> None:
        super().__init__()
        self.pool = Pool[Pool.ADAPTIVEAVG, len(grid)](tuple(grid))
        self.fc1 = nn.Linear(prod(grid), hidden, bias=False)
        self.norm = nn.GroupNorm(1, 1)
        self.fc2 = nn.Linear(hidden, out_channels, bias=False)
        self.predict = Conv[Conv.CONV, len(grid)](channels, out_channels, kernel_size=1)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """Channel attention ``(B, C, out_channels)``, summing to one over ``C``."""
        h = self.fc1(self.pool(x).flatten(2))  # (B, C, hidden)
        h = torch.tanh(self.norm(h.reshape(h.shape[0], 1, -1)).reshape(h.shape))
        return torch.softmax(self.fc2(h), dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        weight = self.predict.weight.flatten(1)  # (K, C)
        mixed = weight.unsqueeze(0) * self.attention(x).transpose(1, 2) * c  # (B, K, C)
        y = torch.einsum("bkc,bc...->bk...", mixed, x)
        return y + self.predict.bias.view(1, -1, *([1] * (x.ndim - 2)))


class AFPFNet(nn.Module):
    """
    AFPF-Net from `Chen et al., Cephalometric Landmark Detection by Attentive Feature Pyramid Fusion
    and Regression-Voting, MICCAI 2019 <https://arxiv.org/abs/1908.08841>`_, used as a baseline.

    - Backbone: VGG19 with batch normalisation (``conv3x3 -> norm -> act``, widths
      :py:data:`VGG19_BN_STAGES`); the pyramid takes the outputs of blocks 2-5 (strides 4, 8, 16, 32).
    - Feature pyramid fusion: each level is reduced to ``fusion_channels`` by a 1x1 convolution,
      bilinearly upsampled to stride 4 and concatenated (``4 * fusion_channels`` channels).
    - :py:class:`~monai_ceph.networks.blocks.DilatedInception` (1x1 and 3x3 dilation 1, 2, 4 branches).
    - :py:class:`LandmarkChannelAttention` predicts one heatmap per landmark, upsampled 4x bilinearly.

    **Shared heatmap protocol.** The original predicts a heatmap and two offset maps per landmark
    (regression-voting); here the network outputs only the ``out_channels`` heatmap logits at the
    input resolution, decoded like every other network of this package. With 1 input channel and 19
    outputs it has 20,655,957 parameters (Table 1 of CephRes-MHNet: 20.65M). The backbone is trained
    from scratch (the authors start from ImageNet weights; nothing is downloaded here) and batch
    normalisation keeps running statistics (the authors' code normalises with batch statistics at
    test time too).

    Every spatial size of the input must be divisible by 32, otherwise ``ValueError`` is raised.

    Args:
        spatial_dims: number of spatial dimensions; only 2 is supported. Defaults to 2.
        in_channels: number of input channels. Defaults to 1.
        out_channels: number of output heatmaps. Defaults to 19.
        fusion_channels: channels of each pyramid level after its 1x1 reduction. Defaults to 64.
        dilations: dilations of the dilated inception's 3x3 branches. Defaults to ``(1, 2, 4)``.
        attention_grid: pooled grid of the attention, see :py:class:`LandmarkChannelAttention`.
        attention_hidden: hidden width of the attention MLP. Defaults to 128.
        norm: normalisation type. Defaults to batch normalisation.
        act: activation type. Defaults to ReLU.
        dropout: dropout ratio in the backbone convolutions. Defaults to no dropout.

    Raises:
        ValueError: when ``spatial_dims`` is not 2.
    """

    divisor = 32

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 19,
        fusion_channels: int = 64,
        dilations: Sequence[int] = (1, 2, 4),
        attention_grid: Sequence[int] = (20, 25),
        attention_hidden: int = 128,
        norm: tuple | str = "batch",
        act: tuple | str = "relu",
        dropout: tuple | str | float | None = None,
    ) -> None:
        super().__init__()
        if spatial_dims != 2:
            raise ValueError(f"AFPFNet is a 2-D network (VGG19 backbone), got spatial_dims={spatial_dims}.")
        self.spatial_dims = spatial_dims
        blocks = []
        c_in = in_channels
        for widths in VGG19_BN_STAGES:
            layers: list[nn.Module] = []
            for c_out in widths:
                layers.append(Convolution(spatial_dims, c_in, c_out, norm=norm, act=act, dropout=dropout))
                c_in = c_out
            layers.append(Pool[Pool.MAX, spatial_dims](kernel_size=2, stride=2))
            blocks.append(nn.Sequential(*layers))
        # pyramid levels: blocks 1+2 (stride 4), 3 (8), 4 (16), 5 (32)
        self.backbone = nn.ModuleList([nn.Sequential(*blocks[0], *blocks[1]), *blocks[2:]])
        self.lateral = nn.ModuleList(
            Convolution(spatial_dims, widths[-1], fusion_channels, kernel_size=1, norm=norm, act=act)
            for widths in VGG19_BN_STAGES[1:]
        )
        fused = fusion_channels * len(self.lateral)
        self.inception = DilatedInception(spatial_dims, fused, fused, dilations, norm=norm, act=act)
        self.head = LandmarkChannelAttention(fused, out_channels, attention_grid, attention_hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input_size(x, self.divisor, self.spatial_dims, type(self).__name__)
        size = x.shape[2:]
        levels = []
        for stage, lateral in zip(self.backbone, self.lateral):
            x = stage(x)
            levels.append(lateral(x))
        fine = levels[0].shape[2:]
        levels = [levels[0]] + [F.interpolate(f, size=fine, mode="bilinear", align_corners=False) for f in levels[1:]]
        y = self.head(self.inception(torch.cat(levels, dim=1)))
        return F.interpolate(y, size=size, mode="bilinear", align_corners=False)


AFPFnet = AfpfNet = AFPFNet
