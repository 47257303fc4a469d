"""200 simultaneous sign-ups against a real gunicorn server (4 workers), then 5 simultaneous
cancellations: no oversell, a gap-free FIFO waiting list, no 5xx, no "database is locked"."""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import func, select

from eventapp.extensions import db
from eventapp.models import OutboxMessage, Person, Registration
from eventapp.services.accounts import create_token, create_user
from tests.factories import make_event
from tests.live_server import server_errors

pytestmark = pytest.mark.server

CAPACITY = 20
SIGNUPS = 200
CANCELS = 5


def _concurrently(calls: list) -> list:
    """Run every call in its own thread, released together by a barrier so they really overlap."""
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait(timeout=30)
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def _post(url: str, body: dict | None = None) -> requests.Response:
    # Generous: on a busy CI machine the last of 200 requests waits in the listen queue for a while.
    return requests.post(url, json=body or {}, timeout=180)


@pytest.fixture
def staff_token(ctx) -> str:
    create_user("race-staff@example.jp", "staff", password="race-password-123")
    token = create_token("race-staff@example.jp")
    db.session.commit()
    return token


def _staff_list(live_server, event_id: int, token: str) -> dict:
    response = requests.get(f"{live_server.url}/api/v1/events/{event_id}/registrations",
                            headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def test_signup_burst_never_oversells_and_cancellations_promote_fifo(ctx, live_server, staff_token):
    event = make_event(capacity=CAPACITY, title="負荷試験フィールドワーク")
    signup_url = f"{live_server.url}/api/v1/events/{event.id}/registrations"
    bodies = [{"name": f"負荷 太郎{i}", "furigana": "ふか たろう", "email": f"race{i}@example.com",
               "consent_privacy": True} for i in range(SIGNUPS)]

    responses = _concurrently([lambda body=body: _post(signup_url, body) for body in bodies])

    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: SIGNUPS}, f"{statuses}: {[r.text for r in responses if r.status_code != 201][:3]}"
    created = [r.json()["registration"] for r in responses]
    assert Counter(r["status"] for r in created) == {"confirmed": CAPACITY, "waitlisted": SIGNUPS - CAPACITY}
    # Each person was told a distinct place: the queue order is the order the event lock was taken.
    told = sorted(r["waitlist_position"] for r in created if r["status"] == "waitlisted")
    assert told == list(range(1, SIGNUPS - CAPACITY + 1))
    assert all(r["ticket_code"] for r in created if r["status"] == "confirmed")

    listing = _staff_list(live_server, event.id, staff_token)
    assert (listing["confirmed_count"], listing["waitlist_count"]) == (CAPACITY, SIGNUPS - CAPACITY)
    waiting = sorted((r for r in listing["registrations"] if r["status"] == "waitlisted"),
                     key=lambda r: r["waitlist_position"])
    assert [r["waitlist_position"] for r in waiting] == list(range(1, SIGNUPS - CAPACITY + 1))
    told_by_token = {r["manage_token"]: r["waitlist_position"] for r in created}
    assert all(told_by_token[r["manage_token"]] == r["waitlist_position"] for r in waiting)

    # The database itself agrees (no API-level counting mistake can hide an oversell).
    db.session.rollback()
    in_db = dict(db.session.execute(
        select(Registration.status, func.count()).where(Registration.event_id == event.id)
        .group_by(Registration.status)).all())
    assert in_db == {"confirmed": CAPACITY, "waitlisted": SIGNUPS - CAPACITY}

    confirmed = [r for r in listing["registrations"] if r["status"] == "confirmed"]
    to_cancel = confirmed[:CANCELS]
    cancels = _concurrently([
        lambda token=r["manage_token"]: _post(f"{live_server.url}/api/v1/registrations/{token}/cancel")
        for r in to_cancel
    ])
    assert [c.status_code for c in cancels] == [200] * CANCELS, [c.text for c in cancels]
    assert all(c.json()["registration"]["status"] == "cancelled" for c in cancels)

    after = _staff_list(live_server, event.id, staff_token)
    by_token = {r["manage_token"]: r for r in after["registrations"]}
    assert (after["confirmed_count"], after["waitlist_count"]) == (CAPACITY, SIGNUPS - CAPACITY - CANCELS)
    # Exactly the first five of the queue were promoted, nobody else.
    promoted = [r["manage_token"] for r in waiting if by_token[r["manage_token"]]["status"] == "confirmed"]
    assert promoted == [r["manage_token"] for r in waiting[:CANCELS]]
    assert all(by_token[r["manage_token"]]["ticket_code"] for r in waiting[:CANCELS])
    still_waiting = sorted((r for r in after["registrations"] if r["status"] == "waitlisted"),
                           key=lambda r: r["waitlist_position"])
    assert [r["manage_token"] for r in still_waiting] == [r["manage_token"] for r in waiting[CANCELS:]]
    assert [r["waitlist_position"] for r in still_waiting] == list(range(1, SIGNUPS - CAPACITY - CANCELS + 1))

    assert server_errors(live_server) == [], live_server.log()[-6000:]


def test_one_new_address_signing_up_for_several_events_at_once_becomes_one_person(ctx, live_server):
    # Different events take different locks, so these sign-ups really run side by side: each may
    # find no person with the address and try to create one; the unique address decides, and the
    # losers take the winner's row instead of failing.
    event_ids = [make_event(capacity=5, title=f"同時申込テスト{i}").id for i in range(8)]
    body = {"name": "同時 花子", "furigana": "どうじ はなこ", "email": "same-new-address@example.com",
            "consent_privacy": True}
    responses = _concurrently([
        lambda event_id=event_id: _post(f"{live_server.url}/api/v1/events/{event_id}/registrations", body)
        for event_id in event_ids
    ])

    assert [r.status_code for r in responses] == [201] * len(event_ids), [r.text for r in responses if r.status_code != 201]
    db.session.rollback()
    people = db.session.execute(select(Person.id).where(Person.email == body["email"])).scalars().all()
    assert len(people) == 1
    registered = db.session.execute(select(Registration.event_id).where(Registration.person_id == people[0])
                                    ).scalars().all()
    assert sorted(registered) == sorted(event_ids)
    # Each confirmation goes out (the workers send after answering; waiting for that also keeps the
    # test's clean-up from racing them).
    deadline = time.monotonic() + 60
    while True:
        db.session.rollback()
        pending = db.session.execute(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.to_addr == body["email"], OutboxMessage.status != "sent")).scalar_one()
        if pending == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert pending == 0
    assert server_errors(live_server) == [], live_server.log()[-6000:]


def test_concurrent_duplicates_with_one_idempotency_key_make_one_registration_and_get_its_answer(ctx, live_server):
    """The same sign-up sent 8 times at once with one key (a client retrying impatiently): each copy waits
    for the one that went first and answers with its registration; none gets 409."""
    event = make_event(capacity=CAPACITY, title="同時再送試験")
    url = f"{live_server.url}/api/v1/events/{event.id}/registrations"
    body = {"name": "再送 太郎", "furigana": "さいそう たろう", "email": "retry@example.com", "consent_privacy": True}
    headers = {"Idempotency-Key": "concurrent-retry-0001"}
    responses = _concurrently([lambda: requests.post(url, json=body, headers=headers, timeout=180)] * 8)
    assert [r.status_code for r in responses] == [201] * 8, [r.text for r in responses]
    assert len({r.content for r in responses}) == 1  # one answer, byte for byte
    assert sum(1 for r in responses if r.headers.get("Idempotent-Replayed") == "true") == 7
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Registration)
                             .where(Registration.event_id == event.id)) == 1


GROUP_SIGNUPS = 60


def test_group_burst_never_oversells_never_splits_a_group_and_keeps_places_without_gaps(ctx, live_server, staff_token):
    # Groups of 1–4 (a lead and 0–3 companions) race for 20 seats: each group is confirmed whole or
    # waits whole, and the waiting list counts people 1..n with each group's places one after another.
    event = make_event(capacity=CAPACITY, max_companions=3, title="グループ負荷試験フィールドワーク")
    signup_url = f"{live_server.url}/api/v1/events/{event.id}/registrations"
    bodies = [{"name": f"代表 太郎{i}", "furigana": "だいひょう たろう", "email": f"group{i}@example.com",
               "consent_privacy": True,
               "companions": [{"name": f"同行 {i}-{j}", "furigana": "どうこう"} for j in range(i % 4)]}
              for i in range(GROUP_SIGNUPS)]
    people = sum(1 + len(b["companions"]) for b in bodies)

    responses = _concurrently([lambda body=body: _post(signup_url, body) for body in bodies])

    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: GROUP_SIGNUPS}, f"{statuses}: {[r.text for r in responses if r.status_code != 201][:3]}"
    created = [r.json()["registration"] for r in responses]
    for lead in created:  # no split group in the answers
        assert {c["status"] for c in lead["companions"]} <= {lead["status"]}

    def groups_in(listing: dict) -> dict[int, list[dict]]:
        groups: dict[int, list[dict]] = {}
        for r in listing["registrations"]:
            groups.setdefault(r["lead_registration_id"] or r["id"], []).append(r)
        return groups

    listing = _staff_list(live_server, event.id, staff_token)
    groups = groups_in(listing)
    assert len(groups) == GROUP_SIGNUPS and sum(map(len, groups.values())) == people
    assert all(len({r["status"] for r in group}) == 1 for group in groups.values()), "a group was split"
    confirmed = listing["confirmed_count"]
    # No oversell; and seats stay free only because the next group in line does not fit (≤ 4 people).
    assert CAPACITY - 3 <= confirmed <= CAPACITY
    assert confirmed + listing["waitlist_count"] == people

    def queue_of(listing: dict) -> list[dict]:
        waiting = sorted((r for r in listing["registrations"] if r["status"] == "waitlisted"),
                         key=lambda r: r["waitlist_position"])
        assert [r["waitlist_position"] for r in waiting] == list(range(1, len(waiting) + 1))
        return waiting

    waiting = queue_of(listing)
    # Each group's places are consecutive (a group is never interleaved with another).
    order = [r["lead_registration_id"] or r["id"] for r in waiting]
    runs = [key for n, key in enumerate(order) if n == 0 or order[n - 1] != key]
    assert len(runs) == len(set(runs))
    # What each lead was told is where it stands.
    told = {r["manage_token"]: r["waitlist_position"] for r in created}
    assert all(told[r["manage_token"]] == r["waitlist_position"] for r in waiting if r["manage_token"] in told)

    db.session.rollback()
    in_db = dict(db.session.execute(
        select(Registration.status, func.count()).where(Registration.event_id == event.id)
        .group_by(Registration.status)).all())
    assert in_db == {"confirmed": confirmed, "waitlisted": people - confirmed}

    # Cancel four confirmed people at once: whole groups move up, strictly in queue order.
    to_cancel = [r for r in listing["registrations"] if r["status"] == "confirmed"][:4]
    cancels = _concurrently([
        lambda token=r["manage_token"]: _post(f"{live_server.url}/api/v1/registrations/{token}/cancel")
        for r in to_cancel
    ])
    assert [c.status_code for c in cancels] == [200] * 4, [c.text for c in cancels]
    after = _staff_list(live_server, event.id, staff_token)
    assert after["confirmed_count"] <= CAPACITY
    for group in groups_in(after).values():
        active = {r["status"] for r in group if r["status"] != "cancelled"}
        assert len(active) <= 1, f"a group was split: {group}"
    still = {r["id"] for r in queue_of(after)}
    moved = [key for key in runs if not any(r["id"] in still for r in groups[key])]
    assert moved, "four freed seats always fit the head group (at most four people)"
    assert moved == runs[:len(moved)], "a group behind overtook the head of the queue"
    assert server_errors(live_server) == [], live_server.log()[-6000:]
