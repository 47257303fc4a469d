"""Days are the source of truth for when an event happens (issue 15, item 8): the API keeps the event's
start/end in step with its days, and every calendar has one VEVENT per day with every day's UID."""

from __future__ import annotations

import ics
import pytest
from icalendar import Calendar

from eventapp.extensions import db
from eventapp.models import Event, Registration
from eventapp.services import calendar, mail
from tests.api.test_api import Tokens, assert_error, auth, signup_body

TWO_DAYS = {
    "slug": "kitakami-2031", "kind": "fieldwork", "title": "北上フィールドワーク", "capacity": 10,
    "status": "published", "venue_name": "夏油温泉観光ホテル",
    "starts_at": "2031-11-08T13:00:00+09:00", "ends_at": "2031-11-09T12:00:00+09:00",
    "days": [{"starts_at": "2031-11-08T13:00:00+09:00", "ends_at": "2031-11-08T21:00:00+09:00"},
             {"starts_at": "2031-11-09T08:00:00+09:00", "ends_at": "2031-11-09T12:00:00+09:00"}],
}


@pytest.fixture()
def tokens(app) -> Tokens:
    return Tokens(app)


def parse(data: bytes | str) -> list:
    """VEVENTs by icalendar, checked against the `ics` package's reading of the same text."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    vevents = Calendar.from_ical(text).walk("VEVENT")
    assert {e.uid for e in ics.Calendar(text).events} == {str(v["UID"]) for v in vevents}
    return sorted(vevents, key=lambda v: v.decoded("DTSTART"))


def test_patch_keeps_the_event_in_step_with_its_days(app, client, tokens):
    headers = auth(tokens["staff"])
    event = client.post("/api/v1/events", json=TWO_DAYS, headers=headers).get_json()
    url = f"/api/v1/events/{event['id']}"

    # Only the end (or only the start) of a two-day event: refused, it would leave a day outside it.
    for body in ({"ends_at": "2031-11-08T21:00:00+09:00"}, {"starts_at": "2031-11-09T08:00:00+09:00"}):
        error = assert_error(client.patch(url, json=body, headers=headers), 422, "invalid")
        assert "日程" in next(iter(error["fields"].values()))
    # days: [] and days that contradict the given start/end: refused
    assert "days" in assert_error(client.patch(url, json={"days": []}, headers=headers), 422)["fields"]
    contradiction = {"days": TWO_DAYS["days"], "ends_at": "2031-11-10T12:00:00+09:00"}
    assert "ends_at" in assert_error(client.patch(url, json=contradiction, headers=headers), 422)["fields"]
    assert client.get(url).get_json()["ends_at"] == "2031-11-09T12:00:00+09:00"  # nothing was saved

    # Moving the whole event (same length) moves every day.
    moved = client.patch(url, json={"starts_at": "2031-11-15T13:00:00+09:00", "ends_at": "2031-11-16T12:00:00+09:00"},
                         headers=headers)
    assert moved.status_code == 200, moved.get_data(as_text=True)
    assert [d["starts_at"] for d in moved.get_json()["days"]] == ["2031-11-15T13:00:00+09:00",
                                                                  "2031-11-16T08:00:00+09:00"]
    # New days alone: the event's start and end follow them.
    days = [{"starts_at": "2031-11-15T10:00:00+09:00", "ends_at": "2031-11-15T18:00:00+09:00"},
            {"starts_at": "2031-11-16T09:00:00+09:00", "ends_at": "2031-11-16T15:00:00+09:00"}]
    changed = client.patch(url, json={"days": days}, headers=headers).get_json()
    assert (changed["starts_at"], changed["ends_at"]) == ("2031-11-15T10:00:00+09:00", "2031-11-16T15:00:00+09:00")


def test_every_calendar_has_every_day_and_the_cancellation_withdraws_both(app, client, tokens, sent_mail):
    headers = auth(tokens["staff"])
    event_id = client.post("/api/v1/events", json=TWO_DAYS, headers=headers).get_json()["id"]
    url = f"/api/v1/events/{event_id}"
    registration = client.post(f"{url}/registrations", json=signup_body()).get_json()["registration"]
    assert registration["status"] == "confirmed"

    def deliver() -> None:  # invites show the state at sending time: send after each step
        with app.app_context():
            mail.deliver_due()

    deliver()
    assert client.patch(url, json={"days": [TWO_DAYS["days"][0], {
        "starts_at": "2031-11-09T08:00:00+09:00", "ends_at": "2031-11-09T13:00:00+09:00"}]},
        headers=headers).status_code == 200
    deliver()
    assert client.patch(url, json={"status": "cancelled"}, headers=headers).status_code == 200
    deliver()
    # A cancelled event stays cancelled.
    for status in ("draft", "published"):
        assert_error(client.patch(url, json={"status": status}, headers=headers), 409, "event_cancelled")

    with app.app_context():
        event = db.session.get(Event, event_id)
        token = db.session.get(Registration, registration["id"]).person.calendar_token
        public = parse(calendar.event_ics(event))
        feeds = [parse(calendar.public_feed_ics()), parse(calendar.person_feed_ics(token))]
    assert [v.decoded("DTEND").hour for v in public] == [21, 13]
    assert {str(v["UID"]) for v in public} == {f"event-{event_id}-1@testserver.local",
                                               f"event-{event_id}-2@testserver.local"}
    assert all(str(v["STATUS"]) == "CANCELLED" for v in public)
    assert all(len(feed) == 2 for feed in feeds)

    messages = sent_mail()
    sequences: dict[str, list[tuple[str, int]]] = {}
    for message in messages:
        parts = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
        if not parts:
            continue
        # Every mail with an invite has one per day (REQUEST/CANCEL are about one UID each).
        assert len(parts) == 2, message["Subject"]
        for part in parts:
            (vevent,) = parse(part.get_content())
            sequences.setdefault(str(vevent["UID"]), []).append((part.get_param("method"), vevent["SEQUENCE"]))
    assert set(sequences) == {f"reg-{registration['id']}-1@testserver.local",
                              f"reg-{registration['id']}-2@testserver.local"}
    for history in sequences.values():
        # confirmation, update (day 2 ends later), cancellation: each a higher SEQUENCE
        assert [method for method, _ in history] == ["REQUEST", "REQUEST", "CANCEL"]
        assert [s for _, s in history] == sorted({s for _, s in history}) and len(history) == 3, history
