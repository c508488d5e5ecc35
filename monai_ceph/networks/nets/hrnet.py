# Copyright (c) monai_ceph contributors.
# Licensed under the Apache License, Version 2.0.
"""HRNet-W48 with a super-resolution heatmap head."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import torch
import torch.nn as nn
from monai.networks.blocks import Convolution, UpSample
from monai.networks.layers.utils import get_act_layer
from monai.networks.nets.resnet import ResNetBlock, ResNetBottleneck

from monai_ceph.networks.blocks.sr_head import SRHeatmapHead

from ._input_size import check_input_size

__all__ = ["HRNetSR", "HRNetW48SR", "HighResolutionModule", "HRNetBackbone"]

logger = logging.getLogger(__name__)


def _conv(c_in: int, c_out: int, kernel_size: int = 3, strides: int = 1, norm="batch", act=None) -> Convolution:
    """Bias-free 2-D ``conv -> norm [-> act]``."""
    return Convolution(2, c_in, c_out, strides=strides, kernel_size=kernel_size, bias=False, norm=norm, act=act)


class HighResolutionModule(nn.Module):
    """
    One HRNet exchange unit (`Sun et al., Deep High-Resolution Representation Learning for Human Pose
    Estimation, CVPR 2019 <https://arxiv.org/abs/1902.09212>`_): every branch (resolution ``1/2**i`` of
    the first, ``channels[i]`` channels) runs ``num_blocks`` basic residual blocks, then every output
    resolution sums all branches, brought to it by 1x1 convolution + nearest upsampling (coarser
    branches) or a chain of strided 3x3 convolutions (finer branches), followed by the activation.

    Args:
        channels: channels per branch, finest first.
        num_blocks: basic residual blocks per branch. Defaults to 4.
        num_outputs: number of output resolutions (finest first). Defaults to all branches.
        norm: normalisation type. Defaults to batch normalisation.
        act: activation type. Defaults to ReLU.
    """

    def __init__(
        self,
        channels: Sequence[int],
        num_blocks: int = 4,
        num_outputs: int | None = None,
        norm: tuple | str = "batch",
        act: tuple | str = "relu",
    ) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(*[ResNetBlock(c, c, spatial_dims=2, act=act, norm=norm) for _ in range(num_blocks)])
            for c in channels
        )
        num_outputs = len(channels) if num_outputs is None else num_outputs
        self.fuse = nn.ModuleList(
            nn.ModuleList(self._exchange(channels, j, i, norm, act) for j in range(len(channels)))
            for i in range(num_outputs)
        )
        self.act = get_act_layer(act)

    @staticmethod
    def _exchange(channels: Sequence[int], j: int, i: int, norm, act) -> nn.Module:
        """The path from branch ``j`` to output resolution ``i``."""
        if j == i:
            return nn.Identity()
        if j > i:
            return nn.Sequential(
                _conv(channels[j], channels[i], kernel_size=1, norm=norm),
                UpSample(2, scale_factor=2 ** (j - i), mode="nontrainable", interp_mode="nearest", align_corners=None),
            )
        steps = [_conv(channels[j], channels[j], strides=2, norm=norm, act=act) for _ in range(i - j - 1)]
        return nn.Sequential(*steps, _conv(channels[j], channels[i], strides=2, norm=norm))

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        outputs = []
        for paths in self.fuse:
            y = paths[0](xs[0])
            for path, x in zip(paths[1:], xs[1:]):
                y = y + path(x)
            outputs.append(self.act(y))
        return outputs


class HRNetBackbone(nn.Module):
    """
    HRNet backbone (Sun et al., CVPR 2019), returning the features of all four branches (strides 4,
    8, 16 and 32, ``width * (1, 2, 4, 8)`` channels), finest first.

    Stem: two stride-2 3x3 convolutions (64 channels) and four bottleneck blocks (256 channels). Stages
    2-4 add one branch each (a strided 3x3 convolution from the coarsest branch) and run
    ``num_modules`` :py:class:`HighResolutionModule` units; the last unit of stage 4 keeps all
    resolutions so a multi-scale head can use them.

    Args:
        in_channels: number of input channels.
        width: channels of the finest branch (48 for HRNet-W48). Defaults to 48.
        num_modules: exchange units of stages 2, 3 and 4. Defaults to ``(1, 4, 3)``.
        num_blocks: basic residual blocks per branch and unit. Defaults to 4.
        norm: normalisation type. Defaults to batch normalisation.
        act: activation type. Defaults to ReLU.
    """

    def __init__(
        self,
        in_channels: int = 1,
        width: int = 48,
        num_modules: Sequence[int] = (1, 4, 3),
        num_blocks: int = 4,
        norm: tuple | str = "batch",
        act: tuple | str = "relu",
    ) -> None:
        super().__init__()
        self.out_channels = tuple(width * 2**i for i in range(len(num_modules) + 1))
        self.stem = nn.Sequential(
            _conv(in_channels, 64, strides=2, norm=norm, act=act), _conv(64, 64, strides=2, norm=norm, act=act)
        )
        project = _conv(64, 256, kernel_size=1, norm=norm)
        bottlenecks = [ResNetBottleneck(64, 64, spatial_dims=2, downsample=project, act=act, norm=norm)]
        bottlenecks += [ResNetBottleneck(256, 64, spatial_dims=2, act=act, norm=norm) for _ in range(num_blocks - 1)]
        self.layer1 = nn.Sequential(*bottlenecks)

        self.transitions = nn.ModuleList()
        self.stages = nn.ModuleList()
        previous: tuple[int, ...] = (256,)
        for n_branches, n_modules in enumerate(num_modules, start=2):
            current = self.out_channels[:n_branches]
            transition = nn.ModuleList(
                nn.Identity() if c_prev == c else _conv(c_prev, c, norm=norm, act=act)
                for c_prev, c in zip(previous, current)
            )
            transition.append(_conv(previous[-1], current[-1], strides=2, norm=norm, act=act))
            self.transitions.append(transition)
            units = [HighResolutionModule(current, num_blocks, norm=norm, act=act) for _ in range(n_modules)]
            self.stages.append(nn.Sequential(*units))
            previous = current

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        xs = [self.layer1(self.stem(x))]
        for transition, stage in zip(self.transitions, self.stages):
            # existing branches pass through their transition; the new branch grows from the coarsest one
            xs = [t(x) for t, x in zip(transition, xs)] + [transition[-1](xs[-1])]
            xs = stage(xs)
        return xs


class HRNetSR(nn.Module):
    """
    HRNet-W48 with a super-resolution heatmap head, the heatmap baseline of
    `Wu et al., Revisiting Cephalometric Landmark Detection from the View of Human Pose Estimation
    with Lightweight Super-Resolution Head, CL-Detection 2023 <https://arxiv.org/abs/2309.17143>`_.

    :py:class:`HRNetBackbone` (W48: branches 48/96/192/384 at strides 4/8/16/32) feeds all four
    branches to :py:class:`~monai_ceph.networks.blocks.SRHeatmapHead`, which fuses them coarse-to-fine
    and super-resolves the stride-4 feature by 4 with per-landmark sub-pixel convolutions, so the
    output is ``out_channels`` heatmap logits at the full input resolution. With 1 input channel and 19
    outputs it has 66,638,540 parameters (Table 1 of CephRes-MHNet: 66.67M; the plain pose HRNet-W48
    has 63.6M, the all-resolution last exchange unit and the head add the rest).

    The network is trained from scratch; ``pretrained_path`` loads local weights (nothing is
    downloaded), see :py:meth:`load_pretrained`.

    Every spatial size of the input must be divisible by 32, otherwise ``ValueError`` is raised.

    Args:
        spatial_dims: number of spatial dimensions; only 2 is supported. Defaults to 2.
        in_channels: number of input channels. Defaults to 1.
        out_channels: number of output heatmaps. Defaults to 19.
        width: HRNet width (48 for W48). Defaults to 48.
        head_channels: working widths of the head per branch, finest first. Defaults to the branch
            widths ``width * (1, 2, 4, 8)``.
        pretrained_path: optional local state-dict file loaded with :py:meth:`load_pretrained`.
        norm: normalisation type. Defaults to batch normalisation.
        act: activation type. Defaults to ReLU.

    Raises:
        ValueError: when ``spatial_dims`` is not 2.
    """

    divisor = 32

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 19,
        width: int = 48,
        head_channels: Sequence[int] | None = None,
        pretrained_path: str | os.PathLike | None = None,
        norm: tuple | str = "batch",
        act: tuple | str = "relu",
    ) -> None:
        super().__init__()
        if spatial_dims != 2:
            raise ValueError(f"HRNetSR is a 2-D network, got spatial_dims={spatial_dims}.")
        self.spatial_dims = spatial_dims
        self.backbone = HRNetBackbone(in_channels, width, norm=norm, act=act)
        branches = self.backbone.out_channels
        head_channels = branches if head_channels is None else head_channels
        self.head = SRHeatmapHead(branches, out_channels, head_channels, upsample_factor=4, norm=norm, act=act)
        if pretrained_path is not None:
            self.load_pretrained(pretrained_path)

    def load_pretrained(self, path: str | os.PathLike) -> tuple[list[str], list[str], list[str]]:
        """
        Load a local state dict (a ``torch.save``-d dict of tensors, optionally under a ``"state_dict"``
        key) non-strictly: tensors whose name is unknown or whose shape differs (e.g. a head trained for
        another number of landmarks) are skipped. The missing, unexpected and shape-mismatched keys are
        logged as a warning and returned, in that order (a mismatched key is not also listed as missing).

        Raises:
            FileNotFoundError: when ``path`` does not exist.
            ValueError: when the file does not hold a state dict.
        """
        if not os.path.isfile(path):
            raise FileNotFoundError(f"HRNetSR pretrained weights not found: {path}")
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise ValueError(f"{path} does not hold a state dict of tensors.")
        own = self.state_dict()
        mismatched = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
        result = self.load_state_dict({k: v for k, v in state.items() if k not in mismatched}, strict=False)
        missing = [k for k in result.missing_keys if k not in mismatched]
        unexpected = list(result.unexpected_keys)
        if missing or unexpected or mismatched:
            logger.warning(
                "HRNetSR weights from %s: %d missing keys %s, %d unexpected keys %s, %d shape-mismatched keys %s "
                "(all left at their initial values).",
                path, len(missing), missing[:5], len(unexpected), unexpected[:5], len(mismatched), mismatched[:5],
            )
        return missing, unexpected, mismatched

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input_size(x, self.divisor, self.spatial_dims, type(self).__name__)
        return self.head(self.backbone(x))


HRNetW48SR = HRNetSR
