"""``ModelLoader`` / ``check_checkpoint``: a checkpoint that cannot be this network's is refused naming the file
and the fault before MONAI's ``CheckpointLoader`` loads it; a good one loads."""

import pytest
import torch
from ignite.engine import Engine

from monai_ceph.errors import InputError
from monai_ceph.handlers.model_loader import CheckpointError, ModelLoader, check_checkpoint


def _net(out=3):
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Conv2d(4, out, 1))


def test_a_good_checkpoint_loads(tmp_path):
    source, target = _net(), _net()
    torch.save(source.state_dict(), tmp_path / "model.pt")  # a bare state dict, as CheckpointLoader accepts
    ModelLoader(load_path=str(tmp_path / "model.pt"), load_dict={"model": target})(Engine(lambda e, b: None))
    for a, b in zip(source.state_dict().values(), target.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    "content, fault",
    [
        (None, "no such checkpoint file"),
        (b"", "an empty file (0 bytes), not a model checkpoint."),
        (b"hello", "not a PyTorch checkpoint ("),
        ([1, 2], "holds a list, not a model checkpoint."),
        ({"model": {"w": torch.zeros(1)}}, "not a checkpoint of this Sequential: 4 of its 4 weights missing ('0.bias', "
         "'0.weight', '1.bias' and 1 more), 1 unexpected ('w')."),  # fmt: skip
        ({"model": _net(5).state_dict()}, "2 weight(s) of another shape, e.g. '1.weight' [5, 4, 1, 1] in the file, "
         "[3, 4, 1, 1] in this Sequential"),  # fmt: skip
        ({"model": {"w": "text"}}, "entry 'model' is not a state dict of tensors"),
        ({"net": _net().state_dict(), "opt": {}}, "its content (entries: 'net', 'opt') is not a state dict of tensors"),
    ],
    ids=["missing", "empty", "not-pytorch", "a-list", "another-network", "another-shape", "not-tensors", "no-entry"],
)
def test_a_bad_checkpoint_is_refused_naming_it(tmp_path, content, fault):
    path = tmp_path / "model.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(CheckpointError) as error:
        check_checkpoint(path, {"model": _net()})
    assert str(error.value).startswith(f"{path}: ") and fault in str(error.value), str(error.value)
    assert isinstance(error.value, (InputError, ValueError))


def test_strict_shape_false_skips_the_shape_check(tmp_path):
    torch.save({"model": _net(5).state_dict()}, tmp_path / "model.pt")
    check_checkpoint(tmp_path / "model.pt", {"model": _net()}, strict_shape=False)  # MONAI then skips those keys
