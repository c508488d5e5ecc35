"""The annotator's browser client (``client/``: plain HTML/JS/CSS, no build step), served by the app's own server.

:func:`mount_client` adds ``/client/`` to MONAI Label's FastAPI application when it runs as the server; in MONAI
Label's training or inference subprocesses (no ``monailabel.app`` imported) it does nothing.
"""

from __future__ import annotations

import os
import sys

__all__ = ["CLIENT_DIR", "CLIENT_PATH", "mount_client"]

CLIENT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "client")
CLIENT_PATH = "/client"


def mount_client(path: str = CLIENT_PATH) -> bool:
    """Serve :data:`CLIENT_DIR` at ``path`` (``http://<host>:<port>/client/``); True when it was mounted now."""
    server = sys.modules.get("monailabel.app")
    fastapi_app = getattr(server, "app", None)
    if fastapi_app is None or any(getattr(r, "path", None) == path for r in fastapi_app.routes):
        return False
    from fastapi.staticfiles import StaticFiles

    fastapi_app.mount(path, StaticFiles(directory=CLIENT_DIR, html=True), name="ceph_client")
    return True
