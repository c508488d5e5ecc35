"""``--finetune_from``: the bundle trains from the released model (or another bundle's models) instead of random
weights, at the input size that model was trained at, for the global and the local stage; a resumed run continues
from its own checkpoint; a source without a model, or of other settings, is refused naming it."""

import json
import shutil

import pytest
import torch
from monai.bundle import ConfigWorkflow

from monai_ceph.data import build_datalist, write_datalist
from monai_ceph.data.locations import pretrained_dir


@pytest.fixture(scope="module")
def isbi_datalist(isbi_dir, tmp_path_factory):
    """Four ISBI training images, two for validation."""
    items = build_datalist(isbi_dir, fmt="isbi2015", ground_truth="average")["training"][:4]
    return write_datalist({"training": items[:2], "validation": items[2:]},
                          tmp_path_factory.mktemp("finetune") / "datalist.json")


def _run(bundles_dir, files, root, datalist, **overrides):
    wf = ConfigWorkflow(config_file=[str(bundles_dir / "cephres" / "configs" / f) for f in files], workflow_type="train",
                        bundle_root=str(root), datalist_file=str(datalist), num_workers=0, batch_size=2,
                        save_overlays=False, **overrides)
    wf.initialize()
    wf.run()
    wf.finalize()
    return wf


def _messages(error: BaseException) -> str:
    """The messages of an error and its causes (MONAI wraps a config expression's error in a RuntimeError)."""
    out = []
    while error is not None:
        out.append(str(error))
        error = error.__cause__ or error.__context__
    return "\n".join(out)


def _distance(a: dict, b: dict) -> float:
    """Relative L2 distance between two state dicts' floating-point weights (BN statistics left out)."""
    keys = [k for k, v in b.items() if v.is_floating_point() and "running" not in k]
    num = sum(float(((a[k].float() - b[k].float()) ** 2).sum()) for k in keys)
    return (num / sum(float((b[k].float() ** 2).sum()) for k in keys)) ** 0.5


@pytest.mark.parametrize("files, variant", [(["train.json"], ""), (["train.json", "local_train.json"], "local")])
def test_finetune_from_the_released_model(bundles_dir, isbi_datalist, tmp_path, files, variant):
    released = pretrained_dir()
    settings = json.loads((released / "model.json").read_text())
    wf = _run(bundles_dir, files, tmp_path, isbi_datalist, finetune_from="pretrained", max_epochs=1,
              learning_rate=1e-6)
    assert wf.parser.get_parsed_content("spatial_size") == settings["spatial_size"]  # the released model's size
    start = torch.load(released / variant / "model.pt", weights_only=True)
    tuned = torch.load(tmp_path / "models" / variant / "model.pt", weights_only=True)
    assert _distance(tuned, start) < 0.01  # from the released weights, not from a random init
    assert _distance(wf.parser.get_parsed_content("network").state_dict(), start) < 0.01
    # the released model's shape model and calibration come along (its own would replace them)
    side = ["two_stage_uncertainty_calibration.json"] if variant else ["shape_model.json", "uncertainty_calibration.json"]
    for name in side:
        assert (tmp_path / "models" / variant / name).read_bytes() == (released / variant / name).read_bytes()


def test_finetune_source_without_a_model(bundles_dir, isbi_datalist, tmp_path):
    with pytest.raises(Exception) as e:
        _run(bundles_dir, ["train.json"], tmp_path / "b", isbi_datalist, finetune_from=str(tmp_path), max_epochs=1)
    assert f"--finetune_from {tmp_path}: no model.pt" in _messages(e.value)


def test_finetune_source_of_other_settings(bundles_dir, isbi_datalist, tmp_path):
    source = tmp_path / "source"
    shutil.copytree(pretrained_dir(), source)
    settings = json.loads((source / "model.json").read_text())
    settings["landmark_set"] = "aariz"
    (source / "model.json").write_text(json.dumps(settings))
    with pytest.raises(Exception) as e:
        _run(bundles_dir, ["train.json"], tmp_path / "b", isbi_datalist, finetune_from=str(source), max_epochs=1)
    assert f"{source / 'model.json'}: the model was trained with landmark_set 'aariz'" in _messages(e.value)
