"""The MONAI Label app's share of the bad-input catalogue (issue 14): what a client (or a file put into the
datastore by hand) can get wrong, and what the app answers.

Every case asserts the HTTP code (or the exception), that the one-line message names the file, image or entry and
the fault, and that nothing already stored was lost: the stored label, the datastore's images, the planted files.
The server cases share the session's one real server (``server`` fixture, conftest.py); the others need no server.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from monai_ceph.apps.monailabel.config import CephAppConfig
from monai_ceph.apps.monailabel.errors import RequestError, input_error, one_line
from monai_ceph.apps.monailabel.images import (
    UPLOAD_MAX_AGE_S,
    NotAnImageError,
    check_image_file,
    check_landmarks_inside,
    image_size,
    is_upload,
    remove_upload,
)
from monai_ceph.data import ISBI2015, LandmarkFileError, SpacingError, monailabel_label, write_monailabel_json

from ml_server import NO_MONAILABEL, SMALL, copy_bundle

ISBI_SIZE = (1935, 2400)  # (x, y) of every ISBI 2015 radiograph


def _jpeg_bytes(size=(40, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.arange(size[0] * size[1], dtype=np.uint8).reshape(size[1], size[0])).save(buffer, "JPEG")
    return buffer.getvalue()


def _truncated_jpeg() -> bytes:
    data = _jpeg_bytes((400, 300))
    return data[: len(data) // 2]


def _dicom(write_dicom, path: Path, rows: int, columns: int, pixels: bool = True) -> Path:
    """A DICOM file of ``rows`` x ``columns`` zeros written with the ``write_dicom`` fixture; without its pixel
    data when ``pixels`` is False."""
    import pydicom

    write_dicom(path, np.zeros((rows, columns)))
    if not pixels:
        ds = pydicom.dcmread(path)
        del ds.PixelData
        ds.save_as(path)
    return path


def _one_line(detail) -> str:
    assert isinstance(detail, str) and "\n" not in detail, detail
    return detail


# ----------------------------------------------------------------------------------------- without a server


@pytest.mark.parametrize("as_type", [np.asarray, torch.as_tensor])
def test_landmarks_inside_the_image(as_type):
    points = np.full((19, 2), np.nan)
    points[0] = [-0.5, -0.5]  # the corner pixel's outer edge is inside
    points[1] = [39.5, 29.5]
    check_landmarks_inside(as_type(points), (40, 30), ISBI2015, "a.json")  # NaN (missing) passes
    points[2] = [40.0, 3.0]  # Or
    points[18] = [3.0, -0.6]  # Ar
    with pytest.raises(LandmarkFileError) as error:
        check_landmarks_inside(as_type(points), (40, 30), ISBI2015, "a.json")
    message = str(error.value)
    assert message.startswith("a.json: landmark 'Or' at (40, 3), 'Ar' at (3, -0.6) outside the image of 40 x 30")
    assert "x in [-0.5, 39.5], y in [-0.5, 29.5]" in message and "'S'" not in message
    points[2:] = np.nan
    points[5] = [np.inf, 1.0]
    with pytest.raises(LandmarkFileError, match=r"'B' at \(inf, 1\) outside"):
        check_landmarks_inside(as_type(points), (40, 30), ISBI2015, "a.json")


def test_image_size_and_not_an_image(tmp_path, write_dicom):
    Image.new("L", (40, 30)).save(tmp_path / "a.png")
    (tmp_path / "b.jpg").write_bytes(_jpeg_bytes((50, 20)))
    assert image_size(str(tmp_path / "a.png")) == (40, 30)  # (x, y) = (columns, rows)
    assert check_image_file(str(tmp_path / "b.jpg")) == (50, 20)
    assert check_image_file(str(_dicom(write_dicom, tmp_path / "c.dcm", rows=7, columns=5))) == (5, 7)

    (tmp_path / "text.jpg").write_text("hello")
    with pytest.raises(NotAnImageError, match=r"^upload: not an image \(the content is not a JPG image\)\.$"):
        check_image_file(str(tmp_path / "text.jpg"), "upload")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(NotAnImageError, match=r"notes.txt: not an image \(\.txt; expected one of \.png, \.jpg"):
        image_size(str(tmp_path / "notes.txt"))
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(_truncated_jpeg())
    assert image_size(str(truncated)) == (400, 300)  # the header is intact...
    with pytest.raises(NotAnImageError, match=r"cut.jpg: not an image \(image file is truncated"):
        check_image_file(str(truncated))  # ...the pixels are not
    with pytest.raises(NotAnImageError, match=r"d.dcm: not an image \(a DICOM file without pixel data\)"):
        check_image_file(str(_dicom(write_dicom, tmp_path / "d.dcm", rows=7, columns=5, pixels=False)))
    (tmp_path / "e.dcm").write_bytes(b"\x00" * 10)
    with pytest.raises(NotAnImageError, match=r"e.dcm: not an image \(not a DICOM file"):
        check_image_file(str(tmp_path / "e.dcm"))


def test_only_a_fresh_upload_is_an_upload(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    upload = tmp_path / "tmpab_cd123.jpg"
    upload.write_bytes(b"x")
    assert is_upload(str(upload))
    planted = tmp_path / "secret.jpg"  # not a NamedTemporaryFile name
    planted.write_bytes(b"x")
    old = tmp_path / "tmpzzzzzzzz.png"  # the right name, but not just written
    old.write_bytes(b"x")
    os.utime(old, (time.time() - UPLOAD_MAX_AGE_S - 10,) * 2)
    (tmp_path / "sub").mkdir()
    nested = tmp_path / "sub" / "tmpab_cd123.jpg"
    nested.write_bytes(b"x")
    assert not any(is_upload(str(p)) for p in (planted, old, nested, tmp_path / "tmpnothere1.jpg"))
    for path in (upload, planted, old, nested):
        remove_upload(str(path))
    assert not upload.exists() and planted.exists() and old.exists() and nested.exists()


def test_the_cause_of_an_exception_chain():
    try:
        try:
            raise SpacingError("x.png: pixel spacing -1 must be finite and > 0 mm/pixel.")
        except SpacingError as e:
            raise RuntimeError("applying transform <Resize>") from e
    except RuntimeError as e:
        wrapped = e
    assert str(input_error(wrapped)).startswith("x.png: pixel spacing -1")
    assert one_line(wrapped) == "SpacingError: x.png: pixel spacing -1 must be finite and > 0 mm/pixel."
    assert input_error(RuntimeError("out of memory")) is None
    worker = ValueError("Caught ValueError in DataLoader worker process 0.\nOriginal Traceback (most recent call "
                        "last):\n  File ...\nValueError: 003.jpg: image of 3 x 3 pixels is too small.\n")
    assert one_line(worker) == "ValueError: 003.jpg: image of 3 x 3 pixels is too small."
    assert one_line(RuntimeError("Error(s) in loading state_dict:\n\tsize mismatch for w")) == (
        "RuntimeError: Error(s) in loading state_dict: size mismatch for w"
    )


class _Datastore:
    """What the train task reads of a datastore: ``datalist()``."""

    def __init__(self, pairs):
        self.pairs = pairs

    def datalist(self):
        return self.pairs


@pytest.fixture
def train_task(tmp_path):
    pytest.importorskip("monailabel", reason=NO_MONAILABEL)
    from monai_ceph.apps.monailabel.train import CephLandmarkTrain

    config = CephAppConfig.from_conf({"bundle": str(copy_bundle(tmp_path / "cephres")), "spatial_size": SMALL,
                                      "pretrained": "none"})
    return CephLandmarkTrain(config)


def _labelled(folder: Path, isbi_dir: Path, image_id: str, points) -> dict:
    image = shutil.copy(isbi_dir / "images" / f"{image_id}.jpg", folder)
    label = write_monailabel_json(folder / "labels" / "final" / f"{image_id}.json", points, spacing=0.1)
    return {"image": str(image), "label": str(label)}


def test_train_round_refuses_bad_requests_and_labels(train_task, tmp_path, isbi_dir):
    from monai_ceph.apps.monailabel.errors import TrainingRoundError

    good = np.tile([[100.0, 200.0]], (19, 1))
    bad = good.copy()
    bad[1] = [100.0, 2400.0]  # one row below the last
    pairs = [_labelled(tmp_path, isbi_dir, "001", good), _labelled(tmp_path, isbi_dir, "002", bad)]
    for request, match in [
        ({"max_epochs": 0}, "training request max_epochs 0: expected a whole number >= 1"),
        ({"max_epochs": "two"}, "training request max_epochs 'two': expected a whole number >= 1"),
        ({"max_epochs": 1, "val_fraction": 1.5}, r"val_fraction 1.5: expected a number in \[0, 1\)"),
        ({"max_epochs": 1}, r"002.json: landmark 'N' at \(100, 2400\) outside the image of 1935 x 2400 pixels"),
    ]:
        with pytest.raises(TrainingRoundError, match=f"^training round failed: .*{match}") as error:
            train_task(request, _Datastore(pairs))
        assert isinstance(input_error(error.value), (RequestError, LandmarkFileError))
        assert train_task.stats()["last_error"]["error"] == str(error.value)
    assert not (train_task.work_dir / "datalist.json").exists()  # refused before anything was written


def test_train_round_loads_weights_with_the_bundle_model_loader(train_task, tmp_path, isbi_dir):
    """A ``model.pt`` that does not fit the network stops the round when the bundle's ``model_loader`` loads it
    (at the trainer's start), with the loader's check (:class:`~monai_ceph.handlers.model_loader.ModelLoader`) as
    the one-line cause; the checkpoint is kept."""
    from monai_ceph.apps.monailabel.errors import TrainingRoundError

    checkpoint = Path(train_task.ckpt_path)
    checkpoint.parent.mkdir(parents=True)
    state = train_task.app_config.parser().get_parsed_content("network_def").state_dict()
    key = next(k for k in state if k.endswith("out_conv.conv.bias"))
    state[key] = torch.zeros(len(state[key]) + 1)
    torch.save({"model": state}, checkpoint)
    before = checkpoint.read_bytes()
    points = np.tile([[100.0, 200.0]], (19, 1))
    datastore = _Datastore([_labelled(tmp_path, isbi_dir, i, points) for i in ("001", "002")])
    with pytest.raises(TrainingRoundError) as error:
        train_task({"max_epochs": 1}, datastore)
    n = len(state[key]) - 1
    assert str(error.value) == (  # the bundle's ModelLoader names the file and the first weight at fault
        f"training round failed: CheckpointError: {checkpoint}: 1 weight(s) of another shape, e.g. {key!r} [{n + 1}] in the file, "
        f"[{n}] in this CephResMHNet (a model of another landmark set or network size?)."
    )
    assert checkpoint.read_bytes() == before and train_task.stats()["last_error"]["error"] == str(error.value)


# ------------------------------------------------------------------------------------------- the real server


def _upload(name: str, content: bytes):
    return {"file": (name, content, "application/octet-stream")}


@pytest.fixture
def stored_label(server):
    """A valid label stored for image 003 under the tag ``pytest`` (training reads only ``final``)."""
    points = np.tile([[500.0, 600.0]], (19, 1))
    assert server.put_label("003", monailabel_label(points, spacing=0.1), tag="pytest").status_code == 200
    return server.get("/datastore/label", params={"label": "003", "tag": "pytest"}).content


@pytest.mark.parametrize(
    "change, message",
    [
        ((1, 5000.0, 20.0), "landmark 'N' at (5000, 20) outside the image of 1935 x 2400 pixels"),
        ((18, 10.0, -3.0), "landmark 'Ar' at (10, -3) outside the image of 1935 x 2400 pixels"),
        ((0, float("inf"), 3.0), "landmarks[0] (S) x: coordinate inf is not finite"),
        ((0, float("nan"), 3.0), "landmarks[0] (S) x: coordinate nan is not finite"),
    ],
    ids=["right-of-image", "above-image", "infinite", "nan"],
)
def test_label_with_absurd_coordinates_is_refused(server, stored_label, change, message):
    label = monailabel_label(np.tile([[500.0, 600.0]], (19, 1)), spacing=0.1)
    index, x, y = change
    label["landmarks"][index].update(x=x, y=y)  # json.dumps writes Infinity/NaN, which Python's json reads
    response = server.put_label("003", label, tag="pytest")
    assert response.status_code == 400, response.text
    assert _one_line(response.json()["detail"]).startswith("label for image '003'")
    assert message in response.json()["detail"]
    assert server.get("/datastore/label", params={"label": "003", "tag": "pytest"}).content == stored_label
    assert server.temp_files() == []


@pytest.mark.parametrize(
    "content, name, message",
    [
        (_jpeg_bytes(), "003.png", "label for image '003': a .png file, expected a .json landmark label."),
        (b"[1, 2]", "003.json", "label for image '003': not a landmark label (expected an object with a 'landmarks'"),
        (b"\xff\xfe{", "003.json", "label for image '003': not valid JSON"),
    ],
    ids=["png", "json-list", "not-utf8"],
)
def test_label_that_is_not_a_landmark_label_is_refused(server, stored_label, content, name, message):
    response = server.put_label("003", content, tag="pytest", name=name)
    assert response.status_code == 400, response.text
    assert _one_line(response.json()["detail"]).startswith(message)
    assert server.get("/datastore/label", params={"label": "003", "tag": "pytest"}).content == stored_label
    assert server.temp_files() == []


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("004.jpg", b"this is text", "image '004': not an image (the content is not a JPG image)."),
        ("004.txt", b"this is text", "image '004': not an image (.txt; expected one of .png, .jpg"),
        ("004.jpg", _truncated_jpeg(), "image '004': not an image (image file is truncated"),
        ("004.dcm", b"\x00" * 200, "image '004': not an image (not a DICOM file"),
    ],
    ids=["text-as-jpg", "txt", "truncated-jpg", "not-dicom"],
)
def test_datastore_image_that_is_not_an_image_is_refused(server, name, content, message):
    before = sorted(os.listdir(server.studies))
    response = server.put("/datastore/image", params={"image": "004"}, files=_upload(name, content))
    assert response.status_code == 400, response.text
    assert _one_line(response.json()["detail"]).startswith(message)
    assert sorted(os.listdir(server.studies)) == before
    assert "004" not in server.get("/datastore/", params={"output": "all"}).json()["objects"]
    assert server.temp_files() == []


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("x.jpg", b"this is text", "uploaded file (.jpg): not an image (the content is not a JPG image)."),
        ("x.txt", b"this is text", "uploaded file (.txt): not an image (.txt; expected one of"),
        ("x", b"this is text", "uploaded file (no suffix): not an image (no suffix; expected one of"),
        ("x.jpg", _truncated_jpeg(), "uploaded file (.jpg): not an image (image file is truncated"),
    ],
    ids=["text-as-jpg", "txt", "no-suffix", "truncated-jpg"],
)
def test_infer_upload_that_is_not_an_image_is_a_400(server, name, content, message):
    response = server.post("/infer/cephres?output=json", files=_upload(name, content))
    assert response.status_code == 400, response.text
    assert message in _one_line(response.json()["detail"])
    assert server.temp_files() == []


def test_infer_upload_with_a_bad_spacing_is_a_400_and_cleaned(server):
    response = server.post("/infer/cephres?output=json", files=_upload("x.jpg", _jpeg_bytes((60, 70))),
                           data={"params": json.dumps({"spacing": -1})})
    assert response.status_code == 400, response.text
    assert "request 'spacing': pixel spacing -1 must be finite and > 0" in _one_line(response.json()["detail"])
    assert server.temp_files() == []


def test_a_file_in_the_temporary_folder_is_not_an_image_id(server):
    planted = server.tmp / "secret.jpg"
    planted.write_bytes(_jpeg_bytes())
    stale = server.tmp / "tmpabcdefgh.jpg"  # an upload's name, but not this request's upload
    stale.write_bytes(_jpeg_bytes())
    os.utime(stale, (time.time() - UPLOAD_MAX_AGE_S - 10,) * 2)
    try:
        for path in (planted, stale):
            response = server.post("/infer/cephres", params={"image": str(path), "output": "json"})
            assert response.status_code == 400, response.text
            expected = f"image {str(path)!r}: give a datastore image id, not a path."
            assert _one_line(response.json()["detail"]) == expected
        assert planted.read_bytes() == stale.read_bytes() == _jpeg_bytes()  # refused, not deleted
    finally:
        planted.unlink()
        stale.unlink()


def test_train_request_mistake_is_a_400_when_run_in_the_server(server):
    response = server.post("/train/cephres", params={"run_sync": "true"}, json={"max_epochs": 0})
    assert response.status_code == 400, response.text
    assert _one_line(response.json()["detail"]) == "training request max_epochs 0: expected a whole number >= 1."


def test_failed_training_round_names_the_cause(server):
    """A stored label that breaks training (one stored before labels were checked, or edited on disk) makes the
    round fail; its status and ``train_stats`` name the label file, the landmark and the image size."""
    points = np.tile([[500.0, 600.0]], (19, 1))
    assert server.put_label("003", monailabel_label(points, spacing=0.1)).status_code == 200
    label = server.studies / "labels" / "final" / "003.json"
    points[1] = [1935.0, 600.0]
    write_monailabel_json(label, points, spacing=0.1)  # edited on disk: the app never saw it
    try:
        assert server.post("/train/cephres", json={"max_epochs": 1}).status_code == 200
        status = server.wait_for_training()
    finally:
        assert server.delete("/datastore/label", params={"id": "003", "tag": "final"}).status_code == 200
    assert status["status"] == "ERROR"
    cause = f"training round failed: {label.resolve()}: landmark 'N' at (1935, 600) outside the image of 1935 x 2400"
    assert cause in status["details"][-1], "\n".join(status["details"])
    last_error = server.get("/info/").json()["train_stats"]["cephres"]["last_error"]
    assert last_error["error"].startswith(cause)
    assert not (server.bundle / "models" / "model.pt").exists()  # nothing was trained or written


@pytest.mark.parametrize(
    "params, message",
    [
        ("{not json", "params '{not json': not valid JSON (Expecting property name"),
        ('[["image", "002"]]', "params '[[\"image\", \"002\"]]': expected a JSON object {...}, got list."),
        ("null", "expected a JSON object {...}, got NoneType."),
        ('{"fixed": [[1, 2]]}', "request 'fixed': expected an object {landmark: [x, y]} in source pixels, got list"),
        ('{"missing": ["Zz"]}', "request 'missing'[0]: landmark 'Zz' is not in the isbi2015 landmark set"),
    ],
)
def test_infer_params_that_are_not_a_json_object_are_a_400(server, params, message):
    response = server.post("/infer/cephres", params={"image": "003", "output": "json"}, data={"params": params})
    assert response.status_code == 400, response.text
    assert message in _one_line(response.json()["detail"])


# ------------------------------------------------------------- issue 24: nothing destroyed, a token, a memory bound


def _huge_png(width: int = 20000, height: int = 20000) -> bytes:
    """A PNG whose header says ``width`` x ``height`` (400 Mpx: 3.2 GB as float64) in 150 bytes: its pixel data is
    a few rows, so anything that decodes it first fails or allocates; only a header check refuses it cleanly."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (width + 1) * 2)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def _image_ids(server) -> list[str]:
    return sorted(server.get("/datastore/", params={"output": "all"}).json()["objects"])


def _wait_for_ids(server, expected, timeout: float = 20.0) -> list[str]:
    """The datastore's image ids once they are ``expected`` (it picks up files restored on disk on its own)."""
    deadline = time.time() + timeout
    while (ids := _image_ids(server)) != sorted(expected) and time.time() < deadline:
        time.sleep(0.5)
    return ids


def _versions(server) -> list[dict]:
    from monai_ceph.apps.monailabel.history import History

    return History(server.studies).versions()


def _label_body(points, image_id: str):
    return {"label": (f"{image_id}.json", json.dumps(monailabel_label(points, spacing=0.1)), "application/json")}


@pytest.mark.parametrize(
    "method, path, kwargs",
    [
        ("delete", "/datastore/image", {"params": {"id": "001"}}),
        ("delete", "/datastore/label", {"params": {"id": "003", "tag": "pytest"}}),
        ("put", "/datastore/image", {"params": {"image": "001"}, "files": _upload("001.jpg", _jpeg_bytes())}),
        ("put", "/datastore/label", {"params": {"image": "001", "tag": "final"},
                                     "files": _label_body(np.tile([[5.0, 6.0]], (19, 1)), "001")}),
        ("post", "/train/cephres", {"params": {"run_sync": "true"}, "json": {"max_epochs": 1}}),
        ("delete", "/model/cephres", {}),
        ("get", "/logs/", {}),
    ],
    ids=["delete-image", "delete-label", "replace-image", "save-label", "train", "delete-model", "read-log"],
)
def test_write_requests_need_the_token(server, stored_label, method, path, kwargs):
    """Without the token: 401 naming the request; with another: 403; nothing in the studies folder changed."""
    before = {p: p.read_bytes() for p in sorted(server.studies.rglob("*")) if p.is_file()}
    send = getattr(server, method)
    missing = send(path, token=None, **kwargs)
    assert missing.status_code == 401, missing.text
    assert missing.json()["detail"] == (f"{method.upper()} {path}: this server needs a token for changes; send the "
                                        "header 'Authorization: Bearer <token>'.")  # fmt: skip
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    wrong = send(path, token="not-the-token", **kwargs)
    assert wrong.status_code == 403 and wrong.json()["detail"] == f"{method.upper()} {path}: wrong token."
    assert {p: p.read_bytes() for p in sorted(server.studies.rglob("*")) if p.is_file()} == before
    assert server.get("/datastore/label", params={"label": "003", "tag": "pytest"}).content == stored_label
    assert server.temp_files() == []


def test_reads_and_inference_need_no_token(server):
    assert server.get("/info/", token=None).status_code == 200
    assert server.get("/datastore/", params={"output": "all"}, token=None).status_code == 200
    response = server.post("/infer/cephres", params={"image": "002", "output": "json"}, token=None)
    assert response.status_code == 200, response.text
    assert len(response.json()["landmarks"]) == 19


def test_delete_image_keeps_it_and_its_labels_in_the_history(server):
    image = server.studies / "002.jpg"
    pixels = image.read_bytes()
    points = np.tile([[300.0, 400.0]], (19, 1))
    assert server.put_label("002", monailabel_label(points, spacing=0.1), tag="pytest").status_code == 200
    label = (server.studies / "labels" / "pytest" / "002.json").read_bytes()
    known = len(_versions(server))

    response = server.delete("/datastore/image", params={"id": "002"})
    assert response.status_code == 200, response.text
    assert not image.exists() and "002" not in _image_ids(server)
    version = _versions(server)[known]
    assert version["reason"] == "image '002' deleted (DELETE /datastore/image)"
    assert sorted(version["files"]) == ["002.jpg", os.path.join("labels", "pytest", "002.json")]
    kept = server.studies / ".history" / version["version"]
    assert (kept / "002.jpg").read_bytes() == pixels
    assert (kept / "labels" / "pytest" / "002.json").read_bytes() == label

    from monai_ceph.apps.monailabel.history import main as history_main

    assert history_main([str(server.studies), version["version"]]) == 0  # the documented restore
    assert image.read_bytes() == pixels and not kept.exists()
    assert _wait_for_ids(server, ["001", "002", "003"]) == ["001", "002", "003"]
    deadline = time.time() + 20
    while (restored := server.get("/datastore/label", params={"label": "002", "tag": "pytest"})).status_code != 200:
        assert time.time() < deadline, restored.text
        time.sleep(0.5)
    assert restored.content == label
    assert server.delete("/datastore/label", params={"id": "002", "tag": "pytest"}).status_code == 200


def test_replacing_an_image_that_has_labels_is_refused(server, stored_label):
    image = server.studies / "003.jpg"
    before = image.read_bytes()
    response = server.put("/datastore/image", params={"image": "003"}, files=_upload("003.jpg", _jpeg_bytes()))
    assert response.status_code == 409, response.text
    detail = _one_line(response.json()["detail"])
    assert detail.startswith("image '003' exists and has labels (")
    assert os.path.join("labels", "pytest", "003.json") in detail and "would orphan them" in detail
    assert image.read_bytes() == before
    assert server.get("/datastore/label", params={"label": "003", "tag": "pytest"}).content == stored_label
    assert server.temp_files() == []


def test_replacing_an_image_or_a_label_keeps_the_old_file(server):
    first, second = _jpeg_bytes((40, 30)), _jpeg_bytes((50, 20))
    assert server.put("/datastore/image", params={"image": "004"}, files=_upload("004.jpg", first)).status_code == 200
    try:
        known = len(_versions(server))
        response = server.put("/datastore/image", params={"image": "004"}, files=_upload("004.jpg", second))
        assert response.status_code == 200, response.text
        assert (server.studies / "004.jpg").read_bytes() == second
        version = _versions(server)[known]
        assert version["files"] == ["004.jpg"] and "replaced" in version["reason"]
        assert (server.studies / ".history" / version["version"] / "004.jpg").read_bytes() == first

        labels = [monailabel_label(np.tile([[float(v), 5.0]], (19, 1)), spacing=0.1) for v in (10, 20)]
        for label in labels:
            assert server.put_label("004", label, tag="pytest").status_code == 200
        version = _versions(server)[known + 1]
        assert version["reason"] == "label 'pytest' of image '004' replaced"
        kept = json.loads((server.studies / ".history" / version["version"] / "labels" / "pytest" / "004.json")
                          .read_text())  # fmt: skip
        assert kept["landmarks"][0]["x"] == 10.0
        stored = json.loads(server.get("/datastore/label", params={"label": "004", "tag": "pytest"}).content)
        assert stored["landmarks"][0]["x"] == 20.0
    finally:
        assert server.delete("/datastore/image", params={"id": "004"}).status_code == 200
    assert _image_ids(server) == ["001", "002", "003"] and not (server.studies / "004.jpg").exists()


@pytest.mark.parametrize(
    "path, params, message",
    [
        ("/datastore/image", {"id": "009"}, "no image '009' in the datastore."),
        ("/datastore/label", {"id": "001", "tag": "nothere"}, "no label 'nothere' of image '001' in the datastore."),
        ("/datastore/image", {"id": "../001"}, "image id '../001' must be a plain name"),
        ("/datastore/image/info", {"image": "009"}, "no image '009' in the datastore."),
        ("/datastore/label/info", {"label": "001", "tag": "nothere"}, "no label 'nothere' of image '001'"),
    ],
    ids=["unknown-image", "unknown-label", "path-as-id", "info-of-unknown-image", "info-of-unknown-label"],
)
def test_deleting_what_is_not_there_is_a_4xx(server, path, params, message):
    """DELETE of an unknown image or label, and PUT of the info of one (MONAI Label: 500)."""
    before = _versions(server)
    if path.endswith("/info"):
        response = server.put(path, params=params, data={"info": "{}"})
    else:
        response = server.delete(path, params=params)
    assert response.status_code in (400, 404), response.text
    assert _one_line(response.json()["detail"]).startswith(message)
    assert _versions(server) == before and _image_ids(server) == ["001", "002", "003"]


def test_huge_image_is_refused_from_its_header(server):
    message = "image of 20000 x 20000 pixels, more than the 36000000 pixels accepted; refused before decoding"
    response = server.put("/datastore/image", params={"image": "005"}, files=_upload("005.png", _huge_png()))
    assert response.status_code == 413, response.text
    assert _one_line(response.json()["detail"]).startswith(f"image '005': {message}")
    response = server.post("/infer/cephres?output=json", files=_upload("x.png", _huge_png()))
    assert response.status_code == 413, response.text
    assert _one_line(response.json()["detail"]).startswith(f"uploaded file (.png): {message}")
    assert not (server.studies / "005.png").exists() and server.temp_files() == []


def test_huge_image_header_is_read_without_decoding(tmp_path):
    from monai_ceph.apps.monailabel.images import ImageTooLargeError
    from monai_ceph.data.image_io import header_size

    path = tmp_path / "huge.png"
    path.write_bytes(_huge_png())
    assert header_size(path) == (20000, 20000)  # PIL's Image.open refuses it as a decompression bomb
    with pytest.raises(ImageTooLargeError, match=r"^huge: image of 20000 x 20000 pixels, more than the 36000000"):
        check_image_file(str(path), "huge")


@pytest.mark.parametrize("spacing", [100, 0.0001])
def test_implausible_request_spacing_is_a_400(server, spacing):
    from monai_ceph.data import check_spacing

    try:
        check_spacing(spacing, "probe")
    except SpacingError:
        pass
    else:
        pytest.skip("check_spacing has no plausible range yet (issue 24, monai_ceph.data)")
    response = server.post("/infer/cephres", params={"image": "003", "output": "json"},
                           data={"params": json.dumps({"spacing": spacing})})  # fmt: skip
    assert response.status_code == 400, response.text
    detail = _one_line(response.json()["detail"])
    assert detail.startswith(f"request 'spacing': pixel spacing [{float(spacing)}, {float(spacing)}] mm/pixel")
    assert "is outside the range of a radiograph [0.01, 5] mm/pixel" in detail
