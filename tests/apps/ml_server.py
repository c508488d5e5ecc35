"""What the app's test modules share: a real MONAI Label server over real ISBI radiographs (the ``server`` fixture
of conftest.py starts it) and the bundle copy it serves. (The DICOM writer is the suite's ``write_dicom`` fixture,
tests/conftest.py.)

The server runs ``python -m monailabel.main start_server`` on 127.0.0.1 (a free port) with the app's ``main.py``
copied into a temporary app folder (MONAI Label writes ``logs/``, ``model/``... into the app folder), a temporary
studies folder holding three ISBI images, a copy of ``bundles/cephres`` (training writes ``models/model.pt`` into
the bundle) and its own system temporary folder (``TMPDIR``, where MONAI Label saves uploads), at a model input
of 64x80 so that inference and a training epoch take seconds on a CPU. With ``token``, the server is started with
``MONAI_CEPH_TOKEN`` and the helpers send ``Authorization: Bearer <token>`` unless told otherwise (``token=None``
or another value in the call).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
APP_DIR = REPO / "monai_ceph" / "apps" / "monailabel"
BUNDLE = REPO / "bundles" / "cephres"
SMALL = "64,80"
IMAGE_IDS = ("001", "002", "003")

NO_MONAILABEL = "MONAI Label is not installed (pip install 'monai_ceph[monailabel]', see INSTALL.md)"


def copy_bundle(dst: Path) -> Path:
    """The bundle's configs only (no models, caches or phantoms of a local run)."""
    shutil.copytree(BUNDLE, dst, ignore=shutil.ignore_patterns("models", "cache", "eval", "data", "runs", "pretrained"))
    return dst


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """The running server's address and folders, with small HTTP helpers."""

    def __init__(self, url: str, studies: Path, bundle: Path, log: Path, tmp: Path, token: str | None = None):
        self.url, self.studies, self.bundle, self.log, self.tmp = url, studies, bundle, log, tmp
        self.token = token
        self.tmp_at_start: set[str] = set()

    def _send(self, method: str, path: str, token="server", **kwargs):
        import requests

        token = self.token if token == "server" else token
        if token is not None:
            kwargs["headers"] = {"Authorization": f"Bearer {token}", **kwargs.get("headers", {})}
        return requests.request(method, self.url + path, timeout=120, **kwargs)

    def get(self, path: str, **kwargs):
        return self._send("GET", path, **kwargs)

    def post(self, path: str, **kwargs):
        return self._send("POST", path, **kwargs)

    def put(self, path: str, **kwargs):
        return self._send("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs):
        return self._send("DELETE", path, **kwargs)

    def put_label(self, image_id: str, label, tag: str = "final", name: str | None = None):
        """``PUT /datastore/label``; ``label`` is a dict (sent as JSON) or the raw bytes of the file ``name``."""
        content = label if isinstance(label, bytes) else json.dumps(label)
        files = {"label": (name or f"{image_id}.json", content, "application/json")}
        return self.put("/datastore/label", params={"image": image_id, "tag": tag}, files=files,
                        data={"params": json.dumps({"client_id": "pytest"})})

    def infer(self, image_id: str) -> dict:
        response = self.post(f"/infer/cephres?image={image_id}&output=json")
        assert response.status_code == 200, response.text
        return response.json()

    def wait_for_training(self, timeout: float = 240) -> dict:
        """The status of the latest training round once it is no longer SUBMITTED or RUNNING."""
        deadline = time.time() + timeout
        while (status := self.get("/train/").json())["status"] in ("SUBMITTED", "RUNNING"):
            assert time.time() < deadline, f"training did not finish in {timeout} s: {status.get('details')}"
            time.sleep(2)
        return status

    def temp_files(self, wait: float = 3.0) -> list[str]:
        """What the server left in its system temporary folder besides what it wrote at start-up (its logging
        config). MONAI Label removes a successful upload just after answering, so this waits up to ``wait`` s."""
        deadline = time.time() + wait
        while (left := sorted(p.name for p in self.tmp.iterdir() if p.name not in self.tmp_at_start)) and (
            time.time() < deadline
        ):
            time.sleep(0.2)
        return left

    def log_tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.is_file() else ""


def start_server(root: Path, isbi_dir: Path, image_ids=IMAGE_IDS, conf: dict | None = None, token: str | None = None):
    """Start the server under ``root`` with the ISBI images ``image_ids``; yields the :class:`Server` and stops it
    afterwards. ``conf`` replaces the default ``--conf`` pairs besides the bundle (the small untrained model); with
    ``token``, write requests need it."""
    requests = pytest.importorskip("requests", reason="requests (a MONAI Label dependency) is not installed")
    studies, app, tmp = root / "studies", root / "app", root / "tmp"
    for folder in (studies, app, tmp):
        folder.mkdir()
    for image_id in image_ids:
        shutil.copy(isbi_dir / "images" / f"{image_id}.jpg", studies)
    shutil.copy(APP_DIR / "main.py", app)  # the package's main.py, in a folder MONAI Label may write into
    bundle = copy_bundle(root / "cephres")
    port = _free_port()
    log = root / "server.log"
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"), TMPDIR=str(tmp))
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])  # this checkout's
    env.pop("MONAI_CEPH_TOKEN", None)
    if token is not None:
        env["MONAI_CEPH_TOKEN"] = token
    conf = {"spatial_size": SMALL, "spacing": "0.1", "pretrained": "none"} if conf is None else conf
    cmd = [sys.executable, "-m", "monailabel.main", "start_server", "--app", str(app), "--studies", str(studies),
           "--conf", "bundle", str(bundle), *(x for k, v in conf.items() for x in ("--conf", k, v)),
           "--host", "127.0.0.1", "--port", str(port)]
    with open(log, "w") as out:
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=root, env=env)
    srv = Server(f"http://127.0.0.1:{port}", studies, bundle, log, tmp, token)
    try:
        deadline = time.time() + 150
        while True:
            if process.poll() is not None:
                pytest.fail(f"the server exited with {process.returncode}:\n{srv.log_tail()}")
            try:
                if requests.get(srv.url + "/info/", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.time() > deadline:
                pytest.fail(f"the server did not answer /info/ within 150 s:\n{srv.log_tail()}")
            time.sleep(1)
        srv.tmp_at_start = {p.name for p in tmp.iterdir()}
        yield srv
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
