"""The app's history (what the datastore deletes or replaces is kept, restorable) and which requests need the
token; no server (the server cases are in test_bad_inputs_app.py)."""

import json

import pytest

from monai_ceph.apps.monailabel.auth import needs_token
from monai_ceph.apps.monailabel.history import HISTORY_DIR, History, main


def test_keep_and_restore(tmp_path, capsys):
    (tmp_path / "labels" / "final").mkdir(parents=True)
    image, label = tmp_path / "001.jpg", tmp_path / "labels" / "final" / "001.json"
    image.write_bytes(b"old image")
    label.write_text('{"v": 1}')
    history = History(tmp_path)
    first = history.keep([image, label, tmp_path / "none.jpg"], "image '001' deleted")
    assert not image.exists() and not label.exists()
    assert (tmp_path / HISTORY_DIR / first / "labels" / "final" / "001.json").read_text() == '{"v": 1}'
    assert history.versions() == [{"version": first, "time": first, "reason": "image '001' deleted",
                                   "files": ["001.jpg", "labels/final/001.json"]}]  # fmt: skip
    assert history.keep([tmp_path / "none.jpg"], "nothing") is None

    image.write_bytes(b"new image")  # a new 001 arrived meanwhile: the restore keeps it first
    assert main([str(tmp_path)]) == 0 and first in capsys.readouterr().out
    assert main([str(tmp_path), first]) == 0
    assert image.read_bytes() == b"old image" and json.loads(label.read_text()) == {"v": 1}
    (second,) = [v for v in history.versions() if v["version"] != first]
    assert second["reason"] == f"replaced by the restore of {first}" and second["files"] == ["001.jpg"]
    assert (tmp_path / HISTORY_DIR / second["version"] / "001.jpg").read_bytes() == b"new image"
    assert not (tmp_path / HISTORY_DIR / first).exists()

    assert main([str(tmp_path), "20000101T000000.000000Z"]) == 2
    assert "no version '20000101T000000.000000Z'" in capsys.readouterr().err
    outside = tmp_path.parent / f"{tmp_path.name}-outside.jpg"
    outside.write_bytes(b"x")
    with pytest.raises(ValueError, match="not inside the studies folder"):
        history.keep([outside], "x")
    assert outside.read_bytes() == b"x"


@pytest.mark.parametrize(
    "method, path, needed",
    [
        ("GET", "/datastore/image", False), ("HEAD", "/datastore/label", False), ("OPTIONS", "/train/", False),
        ("POST", "/infer/cephres", False), ("POST", "/activelearning/random", False), ("PUT", "/session/", False),
        ("PUT", "/datastore/image", True), ("DELETE", "/datastore/image", True), ("PUT", "/datastore/label", True),
        ("DELETE", "/datastore/label", True), ("POST", "/train/cephres", True), ("DELETE", "/train/", True),
        ("PUT", "/model/cephres", True), ("POST", "/batch/infer/cephres", True), ("POST", "/reload", True),
        ("GET", "/logs/", True),
    ],
)
def test_which_requests_need_the_token(method, path, needed):
    assert needs_token(method, path) is needed
