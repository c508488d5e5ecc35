"""A plain ``pip install`` of the built wheel is enough for the API and the CLI: the wheel is built from a copy of
the sources, installed into a fresh virtual environment, and ``monai-ceph --help``, ``monai-ceph bundle DIR`` and a
``detect`` with the written bundle run there, from a folder outside the checkout and without ``PYTHONPATH``.

The environment sees the installed dependencies (torch, MONAI, ...) through one ``.pth`` file listing the system
site-packages as plain paths. Unlike ``--system-site-packages`` that does not run the ``.pth`` files found there,
so the editable install of the checkout (its import finder) cannot stand in for a module or file the wheel lacks.
"""

import importlib.util
import json
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from monai_ceph import LandmarkDetector

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("setup.py", "setup.cfg", "pyproject.toml", "README.md", "LICENSE")
NOT_SOURCES = shutil.ignore_patterns("__pycache__", "*.egg-info")
NOT_BUNDLE = shutil.ignore_patterns("__pycache__", "models", "cache", "eval", "data", "runs")  # a bundle's outputs


def _cannot_build() -> str | None:
    """Why a wheel cannot be built and installed here, or None."""
    if not all((REPO / name).is_file() for name in SOURCES):
        return f"{REPO} is not a source checkout (no {', '.join(SOURCES)})"
    for module in ("pip", "setuptools", "venv"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (needed to build the wheel without build isolation)"
    import pip

    if tuple(int(v) for v in pip.__version__.split(".")[:2]) < (22, 3):
        return f"pip {pip.__version__} has no --python option (needs >= 22.3)"
    return None


pytestmark = [pytest.mark.slow, pytest.mark.skipif(_cannot_build() is not None, reason=str(_cannot_build()))]


def _run(args, cwd, **kwargs):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
                            **kwargs)
    assert result.returncode == 0, f"{args}: {result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    """A fresh virtual environment with the wheel installed (``--no-deps``): its ``bin`` folder."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"  # a copy, so that the build writes no build/ or *.egg-info into the checkout
    src.mkdir()
    for name in SOURCES:
        shutil.copy2(REPO / name, src / name)
    shutil.copytree(REPO / "monai_ceph", src / "monai_ceph", ignore=NOT_SOURCES)
    shutil.copytree(REPO / "bundles" / "cephres", src / "bundles" / "cephres", ignore=NOT_BUNDLE)
    _run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "-q", "-w", tmp / "dist"],
         cwd=src)
    (wheel,) = (tmp / "dist").glob("monai_ceph-*.whl")
    env_dir = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", env_dir], cwd=tmp)
    (env_python,) = env_dir.glob("bin/python")
    purelib = _run([env_python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp)
    Path(purelib.stdout.strip(), "system_site.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    _run([sys.executable, "-m", "pip", "--python", env_python, "install", "--no-deps", "--no-index", "-q", wheel],
         cwd=tmp)
    return env_dir / "bin"


def test_the_venv_imports_the_wheel_not_the_checkout(venv, tmp_path):
    probe = ("import json, sys, monai_ceph; from monai_ceph.apps import default_bundle_dir; "
             "print(json.dumps([monai_ceph.__file__, str(default_bundle_dir()), "
             "[type(f).__module__ for f in sys.meta_path]]))")
    module, bundle, finders = json.loads(_run([venv / "python", "-c", probe], cwd=tmp_path).stdout)
    env_dir = str(venv.parent)
    assert module.startswith(env_dir) and bundle.startswith(env_dir), (module, bundle)
    assert Path(bundle, "configs", "inference.json").is_file()
    assert not any("editable" in f for f in finders), finders


def test_help(venv, tmp_path):
    text = _run([venv / "monai-ceph", "--help"], cwd=tmp_path).stdout
    for command in ("detect", "analyse", "datalist", "bundle"):
        assert command in text
    assert "mm/pixel" in " ".join(_run([venv / "monai-ceph", "detect", "--help"], cwd=tmp_path).stdout.split())


def test_bundle_and_detect(venv, tmp_path, trained_bundle, phantoms):
    """``monai-ceph bundle DIR`` writes the packaged configs; a model trained with them detects from the wheel's CLI
    what the checkout's ``LandmarkDetector`` finds, and the console stays free of MONAI's nvImageCodec noise."""
    bundle = tmp_path / "mybundle"
    _run([venv / "monai-ceph", "bundle", bundle], cwd=tmp_path)
    for config in (REPO / "bundles" / "cephres" / "configs").glob("*.json"):
        assert (bundle / "configs" / config.name).read_text() == config.read_text(), config.name
    shutil.copytree(trained_bundle / "models", bundle / "models")

    with open(phantoms) as f:
        image = str(phantoms.parent / json.load(f)["test"][0]["image"])
    out = tmp_path / "out"
    result = _run([venv / "monai-ceph", "detect", image, "--bundle", bundle, "--spacing", "3", "--out", out,
                   "--device", "cpu"], cwd=tmp_path)
    assert "nvImageCodec" not in result.stdout + result.stderr
    assert f"wrote {out / 'detections.csv'}" in result.stdout
    (record,) = json.loads((out / "detections.json").read_text())
    got = np.array([[p["x"], p["y"]] for p in record["landmarks"]])
    expected = LandmarkDetector.from_bundle(trained_bundle, device="cpu")(image, spacing=3)
    np.testing.assert_allclose(got, expected.landmarks, atol=1e-4)
    np.testing.assert_allclose([p["x_mm"] for p in record["landmarks"]], expected.landmarks[:, 0] * 3, atol=1e-3)


def test_readme_three_lines_with_the_released_model(venv, tmp_path, released_reference):
    """Right after ``pip install`` of the wheel, the README's three lines on real ISBI Test1 images give the released
    model's landmarks, within its measured error (regression.json, MODEL_CARD.md)."""
    ref = released_reference
    script = ("import json, sys\n"
              "from monai_ceph import LandmarkDetector\n"
              "det = LandmarkDetector.from_pretrained()\n"
              "results = det(sys.argv[1:], spacing=0.1)\n"
              "print(json.dumps({'files': [det.parser.get_parsed_content('ckpt_path')], "
              "'model': det.model, 'landmarks': {r.id: r.landmarks.tolist() for r in results}}))\n")
    out = json.loads(_run([venv / "python", "-c", script, *ref.paths[:3]], cwd=tmp_path).stdout.strip().splitlines()[-1])
    assert out["files"][0].startswith(str(venv.parent)), out["files"]  # the wheel's own copy of the weights
    assert out["model"]["kind"] == "released"
    expected = LandmarkDetector.from_pretrained(device="cpu")(ref.paths[:3], spacing=0.1)
    for r in expected:
        np.testing.assert_allclose(out["landmarks"][r.id], r.landmarks, atol=1e-3)
