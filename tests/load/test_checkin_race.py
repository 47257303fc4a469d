"""20 devices submit the same ticket at the same moment to a real gunicorn server (4 workers):
exactly one check-in, nineteen "already checked in", no 5xx and no "database is locked"."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import func, select

from eventapp.extensions import db
from eventapp.models import CheckIn
from eventapp.services.accounts import create_token, create_user
from tests.factories import make_event, make_registration
from tests.live_server import server_errors

pytestmark = pytest.mark.server
DEVICES = 20


def _concurrently(calls: list) -> list:
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait(timeout=30)
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def test_twenty_simultaneous_scans_of_one_ticket_make_one_checkin(ctx, live_server):
    create_user("race-desk@example.jp", "checkin", password="race-password-123", name="受付")
    token = create_token("race-desk@example.jp")
    db.session.commit()
    event = make_event()
    code, other = make_registration(event).ticket_code, make_registration(event).ticket_code
    url = f"{live_server.url}/api/v1/events/{event.id}/checkins"
    db.session.rollback()  # no read snapshot held open while the server writes
    headers = {"Authorization": f"Bearer {token}"}

    def scan(device: int):
        return lambda: requests.post(url, json={"code": code, "nonce": uuid.uuid4().hex, "device_id": f"d{device}"},
                                     headers=headers, timeout=60)

    responses = _concurrently([scan(n) for n in range(DEVICES)])
    assert [r.status_code for r in responses] == [200] * DEVICES, [r.text for r in responses if r.status_code != 200]
    results = Counter(r.json()["result"] for r in responses)
    assert results == {"checked_in": 1, "already_checked_in": DEVICES - 1}
    assert len({r.json()["checkin_id"] for r in responses}) == 1

    # The same nonce retried by 20 threads at once (a flaky connection): still one row.
    nonce = uuid.uuid4().hex
    retries = _concurrently([lambda: requests.post(url, json={"code": other, "nonce": nonce}, headers=headers,
                                                   timeout=60)] * DEVICES)
    assert {r.status_code for r in retries} == {200}
    assert len({r.json()["checkin_id"] for r in retries}) == 1

    db.session.rollback()
    assert db.session.execute(select(func.count()).select_from(CheckIn)).scalar_one() == 2
    assert server_errors(live_server) == []
