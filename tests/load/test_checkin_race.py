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
from tests.factories import make_checkin_event, make_registration
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
    event = make_checkin_event()
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


def test_an_offline_queue_uploaded_twice_at_once_is_applied_once(ctx, live_server):
    """A device whose first batch upload is still running sends it again: the earlier offline scan
    wins over another device's check-in exactly once, and no request fails on the nonce."""
    from datetime import timedelta

    from eventapp.models.base import utcnow

    create_user("race-sync@example.jp", "checkin", password="race-password-123", name="受付")
    token = create_token("race-sync@example.jp")
    db.session.commit()
    event = make_checkin_event()
    code = make_registration(event).ticket_code
    headers = {"Authorization": f"Bearer {token}"}
    base = f"{live_server.url}/api/v1/events/{event.id}/checkins"
    db.session.rollback()
    later = requests.post(base, json={"code": code, "nonce": uuid.uuid4().hex}, headers=headers, timeout=60)
    assert later.status_code == 200 and later.json()["result"] == "checked_in"

    scan = {"code": code, "nonce": uuid.uuid4().hex, "scanned_at": (utcnow() - timedelta(minutes=5)).isoformat()}
    uploads = _concurrently([lambda: requests.post(f"{base}/batch", json={"scans": [scan], "device_id": "d0"},
                                                   headers=headers, timeout=60)] * 8)
    assert [u.status_code for u in uploads] == [200] * 8, [u.text for u in uploads if u.status_code != 200]
    winners = {u.json()["results"][0]["checkin_id"] for u in uploads}
    assert len(winners) == 1 and winners != {later.json()["checkin_id"]}

    db.session.rollback()
    rows = db.session.execute(select(CheckIn)).scalars().all()
    assert len(rows) == 2
    assert [r.nonce for r in rows if r.duplicate_of_id is None] == [scan["nonce"]]
    assert server_errors(live_server) == []
