"""The CephRes-MHNet paper's baseline networks: sizes, shapes, gradients, input checks and block values."""

import io
import logging
from functools import lru_cache

import pytest
import torch
from monai.networks.nets import DynUNet, UNet

from monai_ceph.networks.blocks.attention_gate import GroupedAttentionGate, PooledAttentionGate
from monai_ceph.networks.blocks.depthwise import channel_shuffle
from monai_ceph.networks.blocks.sr_head import SRHeatmapHead
from monai_ceph.networks.nets.afpf_net import LandmarkChannelAttention
from monai_ceph.networks.nets.baselines import BASELINES, INPUT_DIVISOR, TABLE1_PARAMS, get_baseline
from monai_ceph.networks.nets.cmunext import CMUNeXt
from monai_ceph.networks.nets.hrnet import HRNetSR
from monai_ceph.networks.nets.mk_unet import MK_UNET_WIDTHS, MKUNet
from monai_ceph.networks.nets.monai_baselines import MONAI_UNET_CONFIG, monai_dynunet, monai_unet
from monai_ceph.networks.nets.resunetpp import ResUNetPlusPlus
from monai_ceph.transforms.spatial.array import MODEL_SPATIAL_SIZE

NAMES = sorted(BASELINES)
#: MK-UNet-L, the largest published MK-UNet (Table 1's 5.12M is not reachable, see MKUNet's docstring)
MK_UNET_L_PARAMS = 3_758_265
SMALL = (64, 96)  # divisible by 32, non-square so that the two spatial dims cannot be swapped silently


def n_params(net):
    return sum(p.numel() for p in net.parameters())


@lru_cache(maxsize=None)
def default_net(name):
    torch.manual_seed(0)
    return get_baseline(name, in_channels=1, out_channels=19)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Two threads on a loaded 2-core CI machine are many times slower than one for these small inputs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    default_net.cache_clear()


def test_registry_is_consistent():
    assert set(BASELINES) == set(TABLE1_PARAMS) == set(INPUT_DIVISOR)
    with pytest.raises(KeyError, match="unknown baseline 'vgg'.*resunetpp"):
        get_baseline("vgg")
    # the paper's model input must be accepted by every baseline
    for name, divisor in INPUT_DIVISOR.items():
        assert all(s % divisor == 0 for s in MODEL_SPATIAL_SIZE), name


@pytest.mark.parametrize("name", NAMES)
def test_parameter_count_matches_table1(name):
    count = n_params(default_net(name))
    if name == "mk_unet":
        assert count == MK_UNET_L_PARAMS
    else:
        assert abs(count - TABLE1_PARAMS[name]) <= 0.05 * TABLE1_PARAMS[name], (name, count)


def test_mk_unet_published_widths():
    """The five published MK-UNet widths reproduce the MK-UNet paper's sizes (0.027M ... 3.76M)."""
    expected = {"T": 0.027e6, "S": 0.093e6, "base": 0.316e6, "M": 1.15e6, "L": 3.76e6}
    for variant, width in MK_UNET_WIDTHS.items():
        count = n_params(MKUNet(in_channels=3, out_channels=1, features=width))
        assert abs(count - expected[variant]) <= 0.02 * expected[variant], (variant, count)


@pytest.mark.parametrize("name", NAMES)
def test_forward_shape_values_and_batch_independence(name):
    net = default_net(name).eval()
    torch.manual_seed(1)
    x = torch.randn(2, 1, *SMALL)
    with torch.no_grad():
        y = net(x)
        y1 = net(x[1:])
    assert y.shape == (2, 19, *SMALL)
    assert torch.isfinite(y).all()
    # in eval mode each sample is processed on its own, and the output depends on the input
    torch.testing.assert_close(y[1:], y1, rtol=1e-4, atol=1e-5)
    assert (y[0] - y[1]).abs().max() > 1e-6


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_every_parameter(name):
    net = default_net(name).train()
    net.zero_grad(set_to_none=True)
    torch.manual_seed(2)
    net(torch.randn(2, 1, *SMALL)).square().mean().backward()
    first = next(p for p in net.parameters() if p.ndim > 2)  # the first convolution's kernel
    assert first.grad is not None and first.grad.abs().sum() > 0
    unused = [n for n, p in net.named_parameters() if p.grad is None]
    assert not unused, unused
    assert all(torch.isfinite(p.grad).all() for p in net.parameters())
    net.zero_grad(set_to_none=True)


@pytest.mark.parametrize("name", NAMES)
def test_indivisible_input_is_rejected(name):
    net = default_net(name)
    divisor = INPUT_DIVISOR[name]
    bad = (2 * divisor, 2 * divisor + divisor // 2)
    with pytest.raises(ValueError, match=rf"divisible by {divisor}, got spatial size \({bad[0]}, {bad[1]}\)"):
        net(torch.zeros(1, 1, *bad))
    with pytest.raises(ValueError, match="4-D input"):
        net(torch.zeros(1, 2 * divisor, 2 * divisor))


@pytest.mark.parametrize("name", ["resunetpp", "cmunext", "mk_unet", "afpf_net"])
def test_channel_arguments(name):
    """Every input channel reaches the output and the output channels are distinct maps."""
    torch.manual_seed(0)
    net = get_baseline(name, in_channels=3, out_channels=5).eval()
    x = torch.randn(1, 3, 32, 64)
    with torch.no_grad():
        y = net(x)
        assert y.shape == (1, 5, 32, 64)
        for c in range(3):
            bumped = x.clone()
            bumped[:, c] += 1.0
            assert (net(bumped) - y).abs().max() > 1e-6, f"input channel {c} is ignored"
    flat = y[0].flatten(1)
    assert torch.cdist(flat, flat).add(torch.eye(5) * 1e9).min() > 1e-6  # no two output channels coincide


@pytest.mark.parametrize(
    "net, size",
    [
        (ResUNetPlusPlus(3, 1, 2, features=(8, 16, 32)), (8, 16, 8)),
        (CMUNeXt(3, 1, 2, features=(8, 8, 16), depths=(1, 1, 1), kernel_sizes=(3, 3, 5)), (8, 12, 4)),
        (MKUNet(3, 1, 2, features=(4, 8, 8)), (16, 8, 8)),
    ],
)
def test_three_dimensional_variants(net, size):
    """3-D variants: the shape is kept, samples are independent in eval mode and the output follows the input."""
    torch.manual_seed(0)
    x = torch.randn(2, 1, *size)
    with torch.no_grad():
        y = net.eval()(x)
        assert y.shape == (2, 2, *size) and torch.isfinite(y).all()
        torch.testing.assert_close(net(x[1:]), y[1:], rtol=1e-4, atol=1e-5)
        assert (y[0] - y[1]).abs().max() > 1e-6


def test_2d_only_networks_reject_3d():
    from monai_ceph.networks.nets.afpf_net import AFPFNet

    for cls in (AFPFNet, HRNetSR):
        with pytest.raises(ValueError, match="2-D network"):
            cls(spatial_dims=3)


def test_monai_factories_return_unmodified_monai_networks():
    unet, dynunet = monai_unet(), monai_dynunet()
    assert type(unet) is UNet and type(dynunet) is DynUNet
    plain = UNet(spatial_dims=2, in_channels=1, out_channels=19, **MONAI_UNET_CONFIG)
    assert list(unet.state_dict()) == list(plain.state_dict())
    unet.load_state_dict(plain.state_dict())  # interchangeable weights
    buffer = io.BytesIO()
    torch.save(unet, buffer)  # the input-size hook pickles
    buffer.seek(0)
    restored = torch.load(buffer, weights_only=False)
    with pytest.raises(ValueError, match="UNet needs every spatial size divisible by 16"):
        restored(torch.zeros(1, 1, 40, 48))


def test_channel_shuffle_order():
    x = torch.arange(6.0).view(1, 6, 1, 1)
    assert channel_shuffle(x, 2).flatten().tolist() == [0, 3, 1, 4, 2, 5]
    assert channel_shuffle(x, 3).flatten().tolist() == [0, 2, 4, 1, 3, 5]
    with pytest.raises(ValueError, match="groups=4 must divide the 6 channels"):
        channel_shuffle(x, 4)


def test_landmark_channel_attention_equals_per_landmark_convolutions():
    """y_k = conv_k(C * a_k * x): one 1x1 convolution per landmark on its own re-weighted features."""
    torch.manual_seed(3)
    head = LandmarkChannelAttention(channels=8, out_channels=3, grid=(4, 5), hidden=16)
    x = torch.randn(2, 8, 12, 10)
    a = head.attention(x)
    torch.testing.assert_close(a.sum(dim=1), torch.ones(2, 3))
    expected = torch.stack(
        [
            torch.nn.functional.conv2d(
                x * a[:, :, k, None, None] * 8, head.predict.weight[k : k + 1], head.predict.bias[k : k + 1]
            )[:, 0]
            for k in range(3)
        ],
        dim=1,
    )
    torch.testing.assert_close(head(x), expected, rtol=1e-5, atol=1e-5)


def test_sr_head_keeps_landmarks_apart():
    """Landmark k's sub-pixel convolution writes only heatmap k, at 4x the finest resolution."""
    head = SRHeatmapHead((4, 8), out_channels=3, channels=(4, 8), embed_channels=2, kernel_size=3)
    with torch.no_grad():
        head.super_resolve.conv.weight.zero_()
        head.super_resolve.conv.bias.zero_()
        head.super_resolve.conv.bias[16:32] = torch.arange(1.0, 17.0)  # landmark 1's 4x4 sub-pixels
        y = head([torch.randn(1, 4, 6, 8), torch.randn(1, 8, 3, 4)])
    assert y.shape == (1, 3, 24, 32)
    assert y[:, [0, 2]].abs().max() == 0
    # sub-pixel (i, j) of every 4x4 cell holds 1 + 4 i + j
    torch.testing.assert_close(y[0, 1, :4, :4], torch.arange(1.0, 17.0).view(4, 4))
    torch.testing.assert_close(y[0, 1, 4:8, 8:12], torch.arange(1.0, 17.0).view(4, 4))


def test_attention_gates_weight_their_feature():
    torch.manual_seed(4)
    gag = GroupedAttentionGate(2, gate_channels=8, skip_channels=8, inter_channels=4).eval()
    g, x = torch.randn(1, 8, 6, 6), torch.randn(1, 8, 6, 6)
    with torch.no_grad():
        out = gag(g, x)
        ratio = out / x
    # one sigmoid gate in (0, 1) per position, shared by all channels
    assert ((ratio > 0) & (ratio < 1)).all()
    torch.testing.assert_close(ratio, ratio[:, :1].expand_as(ratio))
    with pytest.raises(ValueError, match="groups=3 must divide gate_channels=8"):
        GroupedAttentionGate(2, 8, 8, 6, groups=3)
    pooled = PooledAttentionGate(2, skip_channels=4, channels=8)
    assert pooled(torch.randn(1, 4, 8, 8), torch.randn(1, 8, 4, 4)).shape == (1, 8, 4, 4)


def test_hrnet_pretrained_weights(tmp_path, caplog):
    torch.manual_seed(5)
    source = HRNetSR(out_channels=5, width=8)
    state = source.state_dict()
    stem_key = "backbone.stem.0.conv.weight"
    state.pop("backbone.layer1.0.conv1.weight")  # -> missing
    state["extra.weight"] = torch.zeros(1)  # -> unexpected
    path = tmp_path / "hrnet.pt"
    torch.save({"state_dict": state}, path)

    with caplog.at_level(logging.WARNING, logger="monai_ceph.networks.nets.hrnet"):
        target = HRNetSR(out_channels=3, width=8, pretrained_path=path)  # other landmark count: head differs
    torch.testing.assert_close(target.state_dict()[stem_key], source.state_dict()[stem_key])
    assert "1 missing keys" in caplog.text and "1 unexpected keys" in caplog.text

    missing, unexpected, mismatched = target.load_pretrained(path)
    assert missing == ["backbone.layer1.0.conv1.weight"]
    assert unexpected == ["extra.weight"]
    assert mismatched and all(k.startswith("head.") for k in mismatched)

    with pytest.raises(FileNotFoundError, match="not found"):
        target.load_pretrained(tmp_path / "absent.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="does not hold a state dict"):
        target.load_pretrained(tmp_path / "list.pt")
