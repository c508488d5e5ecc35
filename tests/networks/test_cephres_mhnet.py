import io
import warnings

import numpy as np
import pytest
import torch

from monai.bundle import ConfigParser
from monai.networks.utils import convert_to_torchscript

from monai_ceph.data import ISBI2015
from monai_ceph.networks.blocks import DualAttention, ResidualConvBlock
from monai_ceph.networks.nets import CephResMHNet, CephresMHNet, CephResMHNET
from monai_ceph.transforms.spatial.array import MODEL_SPATIAL_SIZE

SMALL = {"channels": (4, 8, 16), "decoder_channels": (8, 8, 4)}  # same topology, cheap widths


def _n_params(module):
    return sum(p.numel() for p in module.parameters())


def _open_attention(net, spatial=0.5, channel=-0.3):
    """Non-zero attention gammas, so the attention path takes part in the output."""
    with torch.no_grad():
        net.attention.spatial.gamma.fill_(spatial)
        net.attention.channel.gamma.fill_(channel)
    return net


# paper Table 2 (in_channels=1, K=19): CephRes-MHNet 4.7M, CephRes-Net 2.93M, Ceph-MHNet 2.63M
@pytest.mark.parametrize(
    "kwargs,expected,rel",
    [
        ({}, 4.7e6, 0.03),
        ({"groups": [list(range(19))]}, 2.93e6, 0.06),
        ({"residual": False}, 2.63e6, 0.06),
    ],
    ids=["CephRes-MHNet", "CephRes-Net", "Ceph-MHNet"],
)
def test_parameter_counts(kwargs, expected, rel):
    n = _n_params(CephResMHNet(in_channels=1, out_channels=19, **kwargs))
    assert abs(n / expected - 1) <= rel, f"{n} parameters, expected {expected:.0f} +- {rel:.0%}"


def test_defaults_and_variants():
    assert CephresMHNet is CephResMHNet and CephResMHNET is CephResMHNet
    net = CephResMHNet()
    assert net.groups == ISBI2015.group_indices and len(net.heads) == 3
    assert isinstance(net.attention, DualAttention)
    assert any(isinstance(m, ResidualConvBlock) for m in net.modules())
    assert {m.p for m in net.modules() if isinstance(m, torch.nn.Dropout)} == {0.05}
    plain = CephResMHNet(residual=False)
    assert not any(isinstance(m, ResidualConvBlock) for m in plain.modules())
    assert len(CephResMHNet(out_channels=7).heads) == 1
    # three heads cost exactly two more heads than one (same encoder and attention)
    one = CephResMHNet(groups=[list(range(19))])
    head_sizes = [_n_params(h) for h in net.heads]
    assert _n_params(net) - _n_params(one) == sum(head_sizes) - _n_params(one.heads[0])


@pytest.mark.parametrize(
    "kwargs,in_shape,out_channels",
    [
        ({}, (2, 1, 64, 48), 19),
        ({"in_channels": 3}, (1, 3, 40, 56), 19),
        ({"out_channels": 5, "groups": [[4, 0], [1, 2, 3]], **SMALL}, (2, 1, 16, 24), 5),
        ({"residual": False, **SMALL}, (1, 1, 32, 8), 19),
        ({"spatial_dims": 3, "out_channels": 2, "kernel_size": 3, **SMALL}, (1, 1, 8, 16, 8), 2),
    ],
)
def test_output_shape(kwargs, in_shape, out_channels):
    net = CephResMHNet(**kwargs).eval()
    with torch.no_grad():
        y = net(torch.randn(in_shape))
    assert y.shape == (in_shape[0], out_channels, *in_shape[2:])
    assert torch.isfinite(y).all()


def test_output_shape_at_model_size():
    # the paper's 736x576 (height x width) radiograph in MONAI order; cheap widths, same topology and attention
    net = _open_attention(CephResMHNet(**SMALL)).eval()
    with torch.no_grad():
        y = net(torch.rand(1, 1, *MODEL_SPATIAL_SIZE))
    assert y.shape == (1, 19, *MODEL_SPATIAL_SIZE)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("shape", [(1, 1, 60, 48), (1, 1, 64, 50), (1, 1, 4, 8)])
def test_bad_spatial_size(shape):
    net = CephResMHNet(**SMALL)
    with pytest.raises(ValueError, match="divisible by 8"):
        net(torch.randn(shape))


@pytest.mark.parametrize(
    "groups,match",
    [
        ([[0, 1], [2]], "missing \\[3\\]"),
        ([[0, 1, 2], [2, 3]], "repeated \\[2\\]"),
        ([[0, 1, 2, 3, 4]], "out of range \\[4\\]"),
        ([[0, 1, 2, 3], []], "non-empty"),
        ([], "non-empty"),
        ([["a"], [0]], "sequences of channel indices"),
    ],
)
def test_bad_groups(groups, match):
    with pytest.raises(ValueError, match=match):
        CephResMHNet(out_channels=4, groups=groups, **SMALL)


def test_bad_widths():
    with pytest.raises(ValueError, match="equal length"):
        CephResMHNet(channels=(4, 8, 16), decoder_channels=(8, 8))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"out_channels": 19},  # ISBI 2015 anatomical groups
        {"out_channels": 6, "groups": [[4, 0], [5, 2, 1], [3]]},  # any grouping, any order
    ],
)
def test_heads_map_to_their_landmarks(kwargs):
    torch.manual_seed(0)
    net = _open_attention(CephResMHNet(**SMALL, **kwargs)).eval()
    x = torch.randn(2, 1, 16, 24)
    with torch.no_grad():
        ref = net(x)
        for h, group in enumerate(net.groups):
            saved = [p.clone() for p in net.heads[h].parameters()]
            for p in net.heads[h].parameters():
                p.zero_()
            y = net(x)
            changed = sorted(k for k in range(ref.shape[1]) if not torch.equal(y[:, k], ref[:, k]))
            assert changed == sorted(group), f"zeroing head {h} changed channels {changed}, expected {sorted(group)}"
            assert torch.equal(y[:, list(group)], torch.zeros_like(y[:, list(group)]))
            for p, s in zip(net.heads[h].parameters(), saved):
                p.copy_(s)


def test_gradients_reach_every_head_and_gamma():
    torch.manual_seed(0)
    net = CephResMHNet(**SMALL).train()  # gammas at their initial 0
    x = torch.randn(2, 1, 16, 24)
    (net(x) * torch.randn(2, 19, 16, 24)).sum().backward()
    for h, head in enumerate(net.heads):
        grads = [p.grad for p in head.parameters()]
        assert all(g is not None for g in grads), f"head {h} has parameters without gradient"
        assert all(g.abs().sum() > 0 for g in grads), f"head {h} has a parameter with zero gradient"
    assert net.attention.spatial.gamma.grad.abs().item() > 0
    assert net.attention.channel.gamma.grad.abs().item() > 0
    # once the attention is open every parameter of the network learns
    net.zero_grad()
    _open_attention(net)
    (net(x) * torch.randn(2, 19, 16, 24)).sum().backward()
    silent = [n for n, p in net.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not silent, f"parameters without gradient: {silent}"


def test_attention_is_identity_at_init():
    net = CephResMHNet(**SMALL).eval()
    seen = {}
    net.attention.register_forward_hook(lambda m, i, o: seen.update(inp=i[0], out=o))
    with torch.no_grad():
        net(torch.randn(1, 1, 16, 24))
    assert torch.equal(seen["out"], seen["inp"]) and seen["inp"].abs().sum() > 0


def test_dropout_only_in_training():
    torch.manual_seed(0)
    net = CephResMHNet(**SMALL)
    x = torch.randn(2, 1, 16, 24)
    net.train()
    assert not torch.equal(net(x), net(x))
    net.eval()
    with torch.no_grad():
        assert torch.equal(net(x), net(x))


def test_bundle_target():
    config = {
        "network_def": {
            "_target_": "monai_ceph.networks.nets.CephResMHNet",
            "spatial_dims": 2,
            "in_channels": 1,
            "out_channels": 19,
            "channels": [4, 8, 16],
            "decoder_channels": [8, 8, 4],
            "residual": False,
        }
    }
    net = ConfigParser(config).get_parsed_content("network_def")
    assert isinstance(net, CephResMHNet) and net.groups == ISBI2015.group_indices
    assert _n_params(net) == _n_params(CephResMHNet(**SMALL, residual=False))


@pytest.fixture(scope="module")
def export_pair():
    """The default network with open attention and random BN statistics (eval), and a 64x48 input."""
    torch.manual_seed(0)
    net = _open_attention(CephResMHNet())
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    net.eval()
    x = torch.randn(1, 1, 64, 48)
    with torch.no_grad():
        ref = net(x)
    return net, x, ref


def test_torchscript(export_pair):
    # the path of `python -m monai.bundle ckpt_export` (torch.jit.script), through a save/load round trip
    net, x, ref = export_pair
    buf = io.BytesIO()
    convert_to_torchscript(net, filename_or_obj=buf)
    buf.seek(0)
    ts = torch.jit.load(buf)
    with torch.no_grad():
        torch.testing.assert_close(ts(x), ref, rtol=0, atol=1e-4)
        with pytest.raises(torch.jit.Error, match="divisible by 8"):
            ts(torch.randn(1, 1, 60, 48))


def test_onnx(export_pair):
    ort = pytest.importorskip("onnxruntime")
    net, x, ref = export_pair
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # the TorchScript-based exporter: the dynamo one needs onnxscript, which is not a dependency
        torch.onnx.export(net, (x,), buf, dynamo=False, input_names=["image"], output_names=["heatmaps"])
    session = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"image": x.numpy()})
    assert out.shape == (1, 19, 64, 48)
    np.testing.assert_allclose(out, ref.numpy(), rtol=0, atol=1e-4)
