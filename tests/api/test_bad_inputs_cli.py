"""The CLI's share of the bad-input catalogue (issue 24): ``monai-ceph detect`` with a checkpoint that is empty,
not PyTorch, of another network or of another landmark count, a ``--device`` this machine lacks, or an image whose
header is too large ends in one line ``error: <file or option>: <fault>`` on stderr, exit status 2, no traceback
(unless ``MONAI_CEPH_TRACEBACK=1``), and the files given are left as they were."""

import json
import struct
import zlib

import pytest
import torch

from monai_ceph.cli import main


@pytest.fixture(scope="module")
def image(phantoms):
    with open(phantoms) as f:
        return str(phantoms.parent / json.load(f)["test"][0]["image"])


def _huge_png(path, width=20000, height=20000):
    """A PNG whose header says ``width`` x ``height`` (3.2 GB as float64) with two rows of pixel data."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\0" * (width + 1) * 2)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b""))
    return path


def _checkpoint(path, kind):
    if kind == "zero-byte":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("not a checkpoint\n")
    elif kind == "foreign":
        torch.save({"weights": torch.zeros(3)}, path)
    elif kind == "29-landmarks":
        from monai_ceph.networks.nets import CephResMHNet

        torch.save(CephResMHNet(spatial_dims=2, in_channels=1, out_channels=29).state_dict(), path)
    return path


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert "Traceback (most recent call last):" not in err, "\n".join(err)
    return err[-1]


@pytest.mark.parametrize(
    "kind, fault",
    [
        ("zero-byte", "an empty file (0 bytes), not a model checkpoint."),
        ("text", "not a PyTorch checkpoint ("),
        ("foreign", "not a checkpoint of this CephResMHNet: 273 of its 273 weights missing"),
        ("29-landmarks", "weight(s) of another shape, e.g. 'heads."),
    ],
)
def test_bad_checkpoint(trained_bundle, image, tmp_path, capsys, kind, fault):
    checkpoint = _checkpoint(tmp_path / f"{kind}.pt", kind)
    before = checkpoint.read_bytes()
    code = main(["detect", image, "--bundle", str(trained_bundle), "--spacing", "3", "--device", "cpu",
                 "--checkpoint", str(checkpoint), "--out", str(tmp_path / "out")])  # fmt: skip
    line = _one_error_line(capsys)
    assert code == 2 and line.startswith(f"error: {checkpoint}: ") and fault in line, line
    assert checkpoint.read_bytes() == before and not (tmp_path / "out" / "detections.csv").exists()


@pytest.mark.parametrize(
    "device, fault",
    [("cuda:0", "this machine has no CUDA GPU; use --device cpu."), ("gpu7", "not a torch device (")],
)
def test_device_this_machine_lacks(trained_bundle, image, capsys, device, fault):
    if device.startswith("cuda") and torch.cuda.is_available():
        device, fault = f"cuda:{torch.cuda.device_count()}", f"this machine has {torch.cuda.device_count()} CUDA"
    assert main(["detect", image, "--bundle", str(trained_bundle), "--spacing", "3", "--device", device]) == 2
    line = _one_error_line(capsys)
    assert line.startswith(f"error: --device {device}: ") and fault in line, line


def test_image_too_large_is_refused_from_its_header(trained_bundle, tmp_path, capsys):
    huge = _huge_png(tmp_path / "huge.png")
    assert main(["detect", str(huge), "--bundle", str(trained_bundle), "--spacing", "0.1", "--device", "cpu"]) == 2
    line = _one_error_line(capsys)
    assert line.startswith(f"error: {huge}: cannot read this image (image of spatial size (20000, 20000) has "
                           "400000000 pixels, more than the 36000000 accepted (max_pixels); refused before decoding")


def test_the_traceback_on_request(trained_bundle, image, tmp_path, capsys, monkeypatch):
    checkpoint = _checkpoint(tmp_path / "empty.pt", "zero-byte")
    monkeypatch.setenv("MONAI_CEPH_TRACEBACK", "1")
    assert main(["detect", image, "--bundle", str(trained_bundle), "--spacing", "3", "--device", "cpu",
                 "--checkpoint", str(checkpoint)]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert "Traceback (most recent call last):" in err
    assert err[-1] == f"error: {checkpoint}: an empty file (0 bytes), not a model checkpoint."


@pytest.mark.parametrize("spacing", ["100", "0.0001"])
def test_implausible_spacing(trained_bundle, image, capsys, spacing):
    assert main(["detect", image, "--bundle", str(trained_bundle), "--spacing", spacing, "--device", "cpu"]) == 2
    line = _one_error_line(capsys)
    assert line.startswith("error: ") and f"pixel spacing [{float(spacing)}, {float(spacing)}] mm/pixel" in line
    assert "outside the range of a radiograph [0.01, 5] mm/pixel" in line, line
