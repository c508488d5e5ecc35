"""Nothing the MONAI Label app deletes or replaces is lost: it is moved into a version folder of the studies
folder's history, from which it can be restored.

Layout: ``<studies>/.history/<version>/`` holds the moved files at their paths relative to the studies folder
(``001.jpg``, ``labels/final/001.json``) and ``version.json`` (``time``, ``reason``, ``files``). ``<version>`` is
the UTC time of the change (``20261207T234501.123456Z``), so versions sort by time. The folder starts with ``.``,
so MONAI Label's datastore does not list it.

Restore with::

    python -m monai_ceph.apps.monailabel.history STUDIES            # list the versions
    python -m monai_ceph.apps.monailabel.history STUDIES VERSION    # move its files back

or :meth:`History.restore`. A file that a restore would overwrite is first kept in a new version itself. The
server's datastore picks restored files up on its next refresh (it watches the folder; restart it otherwise).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Iterable, Sequence

__all__ = ["HISTORY_DIR", "History", "main"]

HISTORY_DIR = ".history"
VERSION_FILE = "version.json"


class History:
    """The history folder of the studies folder ``root`` (see the module docstring)."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = os.path.realpath(os.fspath(root))
        self.folder = os.path.join(self.root, HISTORY_DIR)

    def _relative(self, path: str) -> str:
        rel = os.path.relpath(os.path.realpath(path), self.root)
        if rel == os.curdir or rel.startswith(os.pardir + os.sep) or rel == os.pardir or os.path.isabs(rel):
            raise ValueError(f"{path}: not inside the studies folder {self.root}.")
        if rel.split(os.sep)[0] == HISTORY_DIR:
            raise ValueError(f"{path}: already in the history folder.")
        return rel

    def _new_version(self) -> tuple[str, str]:
        os.makedirs(self.folder, exist_ok=True)
        while True:
            now = time.time()
            name = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"
            try:
                os.mkdir(os.path.join(self.folder, name))
                return name, os.path.join(self.folder, name)
            except FileExistsError:
                time.sleep(1e-6)

    def keep(self, paths: Iterable[str | os.PathLike], reason: str) -> str | None:
        """Move the existing files of ``paths`` (inside the studies folder) into a new version; returns its name,
        or ``None`` when none of them exists."""
        files = [os.fspath(p) for p in paths if os.path.isfile(os.fspath(p))]
        if not files:
            return None
        relative = [self._relative(p) for p in files]
        name, folder = self._new_version()
        for path, rel in zip(files, relative):
            target = os.path.join(folder, rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.move(path, target)
        record = {"time": name, "reason": reason, "files": relative}
        with open(os.path.join(folder, VERSION_FILE), "w") as f:
            json.dump(record, f, indent=2)
        return name

    def versions(self) -> list[dict]:
        """The versions, oldest first: ``{"version", "time", "reason", "files"}``."""
        if not os.path.isdir(self.folder):
            return []
        found = []
        for name in sorted(os.listdir(self.folder)):
            record_file = os.path.join(self.folder, name, VERSION_FILE)
            if os.path.isfile(record_file):
                with open(record_file) as f:
                    found.append({"version": name, **json.load(f)})
        return found

    def restore(self, version: str) -> list[str]:
        """Move the files of ``version`` back to their places; a file there now is kept in a new version first.
        Returns the restored paths. Raises ``FileNotFoundError`` naming an unknown version."""
        record = next((v for v in self.versions() if v["version"] == version), None)
        if record is None or os.sep in version or "/" in version:
            raise FileNotFoundError(f"{self.folder}: no version {version!r}; versions: "
                                    f"{[v['version'] for v in self.versions()]}.")
        folder = os.path.join(self.folder, version)
        targets = [os.path.join(self.root, rel) for rel in record["files"]]
        self.keep(targets, f"replaced by the restore of {version}")
        # labels first, the image last: a datastore watching the folder re-indexes on the image's arrival
        for rel, target in sorted(zip(record["files"], targets), key=lambda pair: -pair[0].count(os.sep)):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.move(os.path.join(folder, rel), target)
        shutil.rmtree(folder)
        return targets


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m monai_ceph.apps.monailabel.history STUDIES [VERSION]``: list the versions, or restore one."""
    p = argparse.ArgumentParser(prog="python -m monai_ceph.apps.monailabel.history",
                                description="List or restore what the MONAI Label app deleted or replaced.")
    p.add_argument("studies", help="the studies folder of the server")
    p.add_argument("version", nargs="?", help="the version to restore (default: list the versions)")
    args = p.parse_args(argv)
    history = History(args.studies)
    if args.version is None:
        for v in history.versions():
            print(f"{v['version']}  {v['reason']}: {', '.join(v['files'])}")
        return 0
    try:
        restored = history.restore(args.version)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"restored {', '.join(restored)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
