"""Every file LandmarkWriter, OverlaySaver and EvaluationReport write goes through a temporary file and one
rename: a failure while writing (a full disk) leaves the previous files whole and no temporary file behind."""

import errno
import os

import numpy as np
import pytest
from PIL import Image

from monai.data import MetaTensor

from monai_ceph.handlers import EvaluationReport, LandmarkWriter, OverlaySaver, RadialError


def _full_disk(monkeypatch):
    """Make the rename of every atomic write fail as a full disk would; the temporary file is already written."""

    def replace(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    monkeypatch.setattr("monai_ceph.data.atomic.os.replace", replace)


def _snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def sources(tmp_path, example):
    """The handler cases with a real 8 x 8 source PNG each, named in the image's metadata (for the overlays)."""
    items = example.items()
    for item in items:
        path = tmp_path / "src" / f"{item['id']}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(np.full((8, 8), 128, np.uint8)).save(path)
        item["image"] = MetaTensor(item["image"], meta={"filename_or_obj": str(path)})
    return items


def _handlers(out):
    return [
        EvaluationReport(out / "report", landmark_set=None),
        LandmarkWriter(out / "landmarks", landmark_set=None),
        OverlaySaver(out / "overlays", landmark_set=None),
    ]


def test_full_disk_keeps_the_previous_outputs_whole(tmp_path, make_evaluator, sources, monkeypatch):
    out = tmp_path / "out"
    metric = {"val_mre": RadialError(landmark_set=None)}
    make_evaluator(items=sources, val_handlers=_handlers(out), key_val_metric=metric).run()
    before = _snapshot(out)
    names = {str(p) for p in before}
    assert {"report/radial_error_summary.json", "report/radial_error_per_landmark.csv"} <= names
    assert {"report/radial_error_per_landmark.png", "landmarks/000.json", "landmarks/002.csv"} <= names
    assert {"overlays/000.png", "overlays/001.png", "overlays/002.png"} <= names
    for path, data in before.items():
        assert len(data) > 0, path

    _full_disk(monkeypatch)
    with pytest.raises(Exception) as failure:
        make_evaluator(items=sources, val_handlers=_handlers(out), key_val_metric=metric).run()
    chain, exc = [], failure.value
    while exc is not None:
        chain.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    assert any("No space left on device" in text for text in chain), chain
    assert _snapshot(out) == before  # nothing truncated, nothing half-replaced
    assert not [p for p in out.rglob("*.tmp")], "temporary files left behind"


@pytest.mark.parametrize("handler", ["report", "writer", "overlay"])
def test_each_handler_writes_through_the_atomic_writer(tmp_path, make_evaluator, sources, monkeypatch, handler):
    """With the rename failing, each handler raises and leaves no partial file under its own name."""
    report, writer, overlay = _handlers(tmp_path)
    chosen = {"report": report, "writer": writer, "overlay": overlay}[handler]
    _full_disk(monkeypatch)
    evaluator = make_evaluator(items=sources, val_handlers=[chosen], key_val_metric={"val_mre": RadialError()})
    with pytest.raises(Exception):
        evaluator.run()
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.parent.name != "src"]
    assert written == [], written
    assert os.listdir(tmp_path / "src")  # the sources were there to read
