"""One real MONAI Label server for every app test module (starting one takes tens of seconds)."""

import pytest

from ml_server import NO_MONAILABEL, start_server


@pytest.fixture(scope="session")
def server(tmp_path_factory, isbi_dir):
    """The running server (:class:`ml_server.Server`); skipped without MONAI Label or the ISBI data."""
    pytest.importorskip("monailabel", reason=NO_MONAILABEL)
    yield from start_server(tmp_path_factory.mktemp("monailabel"), isbi_dir)
