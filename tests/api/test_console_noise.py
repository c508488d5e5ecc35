"""MONAI's nvImageCodec start-up messages (logged and warned whenever a ``LoadImage`` is built, on a machine without
nvImageCodec) stay out of the console of ``monai-ceph`` and of the Python API; what else goes wrong is still said."""

import json
import os
import subprocess
import sys

import pytest

NOISE = "nvImageCodec"


def _stderr(code: str, cwd) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=cwd, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stderr


@pytest.fixture(scope="module")
def image(phantoms):
    with open(phantoms) as f:
        return str(phantoms.parent / json.load(f)["test"][0]["image"])


@pytest.fixture(scope="module")
def noisy(tmp_path_factory):
    """Whether plain MONAI says it here (not where nvImageCodec is installed): else nothing is left to test."""
    said = NOISE in _stderr("from monai.transforms import LoadImage; LoadImage(image_only=True)",
                            tmp_path_factory.mktemp("noise"))
    if not said:
        pytest.skip("MONAI logs no nvImageCodec message on this machine")


@pytest.mark.slow
@pytest.mark.parametrize("how", ["cli", "api"])
def test_no_nvimagecodec_noise(noisy, how, trained_bundle, image, tmp_path):
    if how == "cli":
        code = f"from monai_ceph.cli import main; main(['detect', {image!r}, '--bundle', {str(trained_bundle)!r}, " \
               "'--spacing', '3', '--device', 'cpu'])"
    else:
        code = f"from monai_ceph import LandmarkDetector; " \
               f"LandmarkDetector.from_bundle({str(trained_bundle)!r}, device='cpu')({image!r}, spacing=3)"
    err = _stderr(code, tmp_path)
    assert NOISE not in err, err[-2000:]
    if how == "api":
        return
    bad = tmp_path / "none.png"
    err = _stderr(f"from monai_ceph.cli import main; main(['detect', {str(bad)!r}, '--bundle', "
                  f"{str(trained_bundle)!r}])", tmp_path)
    assert err.strip() == f"error: {bad}: no such image file or folder."  # the one line a fault still prints
