import torch

from monai_ceph.handlers import latest_checkpoint


def _save(path, n=1000):
    torch.save({"weights": torch.arange(n, dtype=torch.float32)}, path)


def test_none_for_missing_or_empty_folder(tmp_path):
    assert latest_checkpoint(tmp_path / "absent") is None
    assert latest_checkpoint(tmp_path) is None


def test_newest_by_number_not_by_name(tmp_path):
    for n in (2, 9, 10):
        _save(tmp_path / f"checkpoint_epoch={n}.pt")
    _save(tmp_path / "model.pt")
    _save(tmp_path / "other_epoch=99.pt")
    assert latest_checkpoint(tmp_path) == str(tmp_path / "checkpoint_epoch=10.pt")


def test_truncated_newest_is_skipped(tmp_path):
    _save(tmp_path / "checkpoint_epoch=1.pt")
    newest = tmp_path / "checkpoint_epoch=2.pt"
    _save(newest)
    data = newest.read_bytes()
    newest.write_bytes(data[: len(data) // 2])  # a run killed while saving
    assert latest_checkpoint(tmp_path) == str(tmp_path / "checkpoint_epoch=1.pt")
    newest.write_bytes(b"")
    assert latest_checkpoint(tmp_path) == str(tmp_path / "checkpoint_epoch=1.pt")
