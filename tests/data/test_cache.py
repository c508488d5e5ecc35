"""SafePersistentDataset: a cache that never runs code and never outlives a change of the pre-processing."""

import os

import numpy as np
import pytest
import torch

from monai.data import MetaTensor
from monai.transforms import Compose, EnsureChannelFirstd, ScaleIntensityd

from monai_ceph.data import SafePersistentDataset


class Payload:
    """What an attacker plants: unpickling it calls os.system."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def items():
    return [{"image": np.arange(12, dtype=np.float32).reshape(3, 4) + i, "id": f"{i:03d}"} for i in range(2)]


def transform(maxv=1.0):
    return Compose([EnsureChannelFirstd("image", channel_dim="no_channel"), ScaleIntensityd("image", minv=0.0, maxv=maxv)])


def test_cached_items_keep_their_metadata(tmp_path):
    data = [{**d, "image": MetaTensor(d["image"], meta={"filename_or_obj": f"{d['id']}.png"})} for d in items()]
    first = SafePersistentDataset(data, transform(), tmp_path, track_meta=True)
    computed = [first[i] for i in range(2)]
    assert len(list(tmp_path.glob("*.pt"))) == 2
    cached = SafePersistentDataset(data, transform(), tmp_path, track_meta=True)
    for a, b in zip(computed, [cached[i] for i in range(2)]):
        assert isinstance(b["image"], MetaTensor) and b["image"].meta["filename_or_obj"] == a["image"].meta["filename_or_obj"]
        torch.testing.assert_close(b["image"].as_tensor(), a["image"].as_tensor())
        assert b["id"] == a["id"]
    assert len(list(tmp_path.glob("*.pt"))) == 2  # read back, not written again


def test_a_planted_payload_never_runs(tmp_path):
    ds = SafePersistentDataset(items(), transform(), tmp_path)
    expected = ds[0]["image"].clone()
    (cache_file,) = [f for f in tmp_path.glob("*.pt")]
    marker = tmp_path / "pwned"
    torch.save({"image": Payload(marker)}, cache_file)  # a well-formed torch file
    again = SafePersistentDataset(items(), transform(), tmp_path)[0]
    assert not marker.exists()  # torch refused the global; MONAI recomputed the item
    torch.testing.assert_close(again["image"], expected)


def test_changed_settings_do_not_reuse_the_cache(tmp_path):
    before = SafePersistentDataset(items(), transform(maxv=1.0), tmp_path)[0]["image"]
    after = SafePersistentDataset(items(), transform(maxv=0.5), tmp_path)[0]["image"]
    assert len(list(tmp_path.glob("*.pt"))) == 2  # one per setting
    assert not torch.allclose(before, after)
    same = SafePersistentDataset(items(), transform(maxv=1.0), tmp_path)
    assert same.transform_hash == SafePersistentDataset(items(), transform(maxv=1.0), tmp_path).transform_hash
    torch.testing.assert_close(same[0]["image"], before)


def test_weights_only_cannot_be_switched_off(tmp_path):
    with pytest.raises(ValueError, match="weights_only=True"):
        SafePersistentDataset(items(), transform(), tmp_path, weights_only=False)
