import pytest
import torch
import torch.nn.functional as F

from monai.networks.blocks import Convolution

from monai_ceph.networks.blocks import (
    ChannelAttention,
    DualAttention,
    ResidualConvBlock,
    ResidualUpBlock,
    SpatialAttention,
    get_conv_block,
)


def _n_params(module):
    return sum(p.numel() for p in module.parameters())


def _randomise(module, seed=0):
    """Random weights everywhere, BN running statistics included, so no value test passes by zeros."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
        for name, b in module.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=g) * 0.1)
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)
    return module


def _unit_ref(unit, x):
    """Conv -> BatchNorm (eval) -> ReLU of a MONAI ``Convolution`` unit, written out with functionals."""
    conv, bn = unit.conv, unit.adn.N
    y = F.conv2d(x, conv.weight, conv.bias, padding=conv.weight.shape[-1] // 2)
    y = F.batch_norm(y, bn.running_mean, bn.running_var, bn.weight, bn.bias, training=False, eps=bn.eps)
    return F.relu(y)


@pytest.mark.parametrize("in_ch,out_ch,projection", [(3, 8, True), (8, 8, True), (8, 8, False)])
def test_residual_block_values(in_ch, out_ch, projection):
    block = _randomise(ResidualConvBlock(2, in_ch, out_ch, kernel_size=5, dropout=0.05, projection=projection)).eval()
    x = torch.randn(2, in_ch, 12, 10)
    main = _unit_ref(block.conv2, _unit_ref(block.conv1, x))
    if projection or in_ch != out_ch:
        shortcut = F.conv2d(x, block.shortcut.conv.weight, block.shortcut.conv.bias)
        n_short = in_ch * out_ch + out_ch
    else:
        assert isinstance(block.shortcut, torch.nn.Identity)
        shortcut, n_short = x, 0
    torch.testing.assert_close(block(x), main + shortcut, rtol=1e-5, atol=1e-5)
    # two 5x5 conv units (weights, bias, BN affine) and the 1x1 shortcut
    assert _n_params(block) == 25 * in_ch * out_ch + 25 * out_ch * out_ch + 2 * 3 * out_ch + n_short


def test_residual_block_shortcut_carries_input():
    # with the main path switched off (zero BN affine -> ReLU(0) = 0) the output is exactly the shortcut
    block = _randomise(ResidualConvBlock(2, 6, 6, projection=False)).eval()
    with torch.no_grad():
        for unit in (block.conv1, block.conv2):
            unit.adn.N.weight.zero_()
            unit.adn.N.bias.zero_()
    x = torch.randn(1, 6, 8, 8)
    assert torch.equal(block(x), x)


def test_get_conv_block_plain_vs_residual():
    plain = get_conv_block(2, 4, 16, kernel_size=5, residual=False)
    assert isinstance(plain, Convolution)
    assert _n_params(plain) == 25 * 4 * 16 + 16 + 2 * 16
    res = get_conv_block(2, 4, 16, kernel_size=5, residual=True)
    assert isinstance(res, ResidualConvBlock)
    assert _n_params(res) == _n_params(plain) + 25 * 16 * 16 + 16 + 2 * 16 + 4 * 16 + 16
    x = torch.randn(2, 4, 8, 6)
    assert plain.eval()(x).shape == res.eval()(x).shape == (2, 16, 8, 6)


@pytest.mark.parametrize("residual", [True, False])
def test_up_block(residual):
    block = _randomise(ResidualUpBlock(2, 16, 8, 12, kernel_size=5, residual=residual)).eval()
    x, skip = torch.randn(2, 16, 4, 6), torch.randn(2, 8, 8, 12)
    y = block(x, skip)
    assert y.shape == (2, 12, 8, 12)
    # the transposed convolution with kernel = stride = 2 places each input pixel on its own 2x2 patch
    up = block.upsample(x)
    ref = torch.einsum("bihw,iokl->bohkwl", x, block.upsample.conv.weight).reshape(2, 12, 8, 12)
    torch.testing.assert_close(up, ref + block.upsample.conv.bias.view(1, -1, 1, 1), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(y, block.conv_block(torch.cat([up, skip], 1)))
    # the skip feature reaches the output
    assert not torch.allclose(block(x, skip + 1.0), y)


def _spatial_ref(att, x):
    q = F.conv2d(x, att.query.conv.weight, att.query.conv.bias).flatten(2).double()
    k = F.conv2d(x, att.key.conv.weight, att.key.conv.bias).flatten(2).double()
    v = F.conv2d(x, att.value.conv.weight, att.value.conv.bias).flatten(2).double()
    a = torch.softmax(torch.einsum("bci,bcj->bij", q, k), dim=-1)  # (B, N, N): position i attends over j
    out = torch.einsum("bcj,bij->bci", v, a).reshape(x.shape)
    return (att.gamma.double() * out + x.double()).float()


def _channel_ref(att, x):
    f = x.flatten(2).double()
    a = torch.softmax(torch.einsum("bin,bjn->bij", f, f), dim=-1)  # (B, C, C)
    return (att.gamma.double() * torch.einsum("bij,bjn->bin", a, f).reshape(x.shape) + x.double()).float()


def test_spatial_attention_values():
    att = _randomise(SpatialAttention(2, 16, reduction=8))
    assert att.query.conv.out_channels == att.key.conv.out_channels == 2
    x = torch.randn(2, 16, 5, 7)
    with torch.no_grad():
        att.gamma.fill_(0.7)
    torch.testing.assert_close(att(x), _spatial_ref(att, x), rtol=1e-4, atol=1e-4)
    with torch.no_grad():
        att.gamma.zero_()
    assert torch.equal(att(x), x)


def test_channel_attention_values():
    att = ChannelAttention()
    assert _n_params(att) == 1
    x = torch.randn(2, 6, 5, 7) * 0.3
    with torch.no_grad():
        att.gamma.fill_(-1.3)
    torch.testing.assert_close(att(x), _channel_ref(att, x), rtol=1e-4, atol=1e-4)


def test_spatial_attention_bad_reduction():
    with pytest.raises(ValueError, match="reduction"):
        SpatialAttention(2, 4, reduction=8)


def test_dual_attention_identity_at_init():
    dam = DualAttention(2, 16)
    assert dam.spatial.gamma.item() == 0.0 and dam.channel.gamma.item() == 0.0
    _randomise(dam)  # random fuse / projection weights ...
    with torch.no_grad():
        dam.spatial.gamma.zero_()
        dam.channel.gamma.zero_()
    x = torch.randn(2, 16, 6, 4) * 5
    assert torch.equal(dam(x), x)  # ... still exactly the identity while both gammas are 0


def test_dual_attention_values_and_gradients():
    dam = _randomise(DualAttention(2, 16))
    x = torch.randn(2, 16, 6, 4) * 0.3
    with torch.no_grad():
        dam.spatial.gamma.fill_(0.5)
        dam.channel.gamma.fill_(-0.25)
    increments = torch.cat([_spatial_ref(dam.spatial, x) - x, _channel_ref(dam.channel, x) - x], 1)
    ref = x + F.conv2d(increments, dam.fuse.conv.weight)
    torch.testing.assert_close(dam(x), ref, rtol=1e-4, atol=1e-4)
    assert dam.fuse.conv.bias is None and _n_params(dam) == 2 * (16 * 2 + 2) + 16 * 16 + 16 + 32 * 16 + 2
    # at gamma = 0 both gammas still receive a gradient, so training can open the attention
    with torch.no_grad():
        dam.spatial.gamma.zero_()
        dam.channel.gamma.zero_()
    (dam(x) * torch.randn_like(x)).sum().backward()
    assert dam.spatial.gamma.grad.abs().item() > 0 and dam.channel.gamma.grad.abs().item() > 0
