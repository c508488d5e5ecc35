"""One real MONAI Label server for every app test module (starting one takes tens of seconds)."""

import pytest

from ml_server import NO_MONAILABEL, start_server

SERVER_TOKEN = "pytest-token"


@pytest.fixture(scope="session")
def server(tmp_path_factory, isbi_dir):
    """The running server (:class:`ml_server.Server`), started with a token for write requests (the helpers send
    it); skipped without MONAI Label or the ISBI data."""
    pytest.importorskip("monailabel", reason=NO_MONAILABEL)
    yield from start_server(tmp_path_factory.mktemp("monailabel"), isbi_dir, token=SERVER_TOKEN)
