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


class Counted(ScaleIntensityd):
    """ScaleIntensityd that counts its calls (a deterministic transform: cached)."""

    calls = 0

    def __call__(self, data):
        Counted.calls += 1
        return super().__call__(data)


def test_build_cache_computes_only_the_missing_items_and_prints_nothing_off_a_terminal(tmp_path, capsys):
    def dataset():
        transform = Compose([EnsureChannelFirstd("image", channel_dim="no_channel"), Counted("image", minv=0.0)])
        return SafePersistentDataset(items() + [{**items()[0], "id": "002"}], transform, tmp_path)

    Counted.calls = 0
    first = dataset()
    assert first.build_cache() == 3 and Counted.calls == 3  # "002" has the pixels of "000", but its own entry
    assert len(list(tmp_path.glob("*.pt"))) == 3
    again = dataset()
    assert again.build_cache() == 0 and Counted.calls == 3  # all cached: nothing computed
    assert [again[i]["id"] for i in range(3)] == ["000", "001", "002"] and Counted.calls == 3  # read from the cache
    next(tmp_path.glob("*.pt")).unlink()
    assert dataset().build_cache(progress=True) == 1 and Counted.calls == 4
    assert capsys.readouterr().err == ""  # the bar shows on a terminal only
    assert SafePersistentDataset(items(), transform(), None).build_cache() == 0  # no cache folder: nothing to build


@pytest.mark.parametrize("progress", [True, False])
def test_build_cache_shows_a_bar_on_a_terminal(tmp_path, capsys, monkeypatch, progress):
    import sys

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    SafePersistentDataset(items(), transform(), tmp_path).build_cache(progress=progress, desc="caching training")
    err = capsys.readouterr().err
    assert ("caching training" in err and "2/2" in err) == progress, err
