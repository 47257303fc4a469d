"""A real gunicorn server (4 workers) on the session's test database, for the load tests."""

from __future__ import annotations

import pytest

from tests.conftest import TEST_SECRET
from tests.live_server import LiveServer, start_server


@pytest.fixture(scope="session")
def live_server(app, database_url, tmp_path_factory) -> LiveServer:
    # `app` has migrated the database; the server only connects to it.
    log_path = tmp_path_factory.mktemp("gunicorn") / "load-server.log"
    server = start_server(database_url, secret_key=TEST_SECRET, workers=4, log_path=log_path)
    yield server
    server.stop()
