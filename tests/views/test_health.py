"""GET /healthz and the optional Server-Timing header (eventapp/health.py)."""

from __future__ import annotations

import re

from eventapp import create_app


def test_healthz_answers_ok_as_json_and_is_not_cached(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}
    assert response.headers["Cache-Control"] == "no-store"


def test_server_timing_only_when_switched_on(app, client):
    assert "Server-Timing" not in client.get("/healthz").headers
    timed = create_app({**{k: v for k, v in app.config.items() if k.startswith(("SQLALCHEMY_", "SECRET"))},
                        "TESTING": True, "SERVER_TIMING": True})
    header = timed.test_client().get("/healthz").headers["Server-Timing"]
    assert re.fullmatch(r"app;dur=\d+\.\d, cpu;dur=\d+\.\d", header)
