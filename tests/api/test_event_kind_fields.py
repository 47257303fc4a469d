"""Issue 15 items 6–7 through the API: an online seminar's URL reveal time, a fieldwork's 集合/解散 times."""

from __future__ import annotations

import pytest
from icalendar import Calendar

from tests.api.test_api import Tokens, assert_error, auth
from tests.api.test_event_days import TWO_DAYS


@pytest.fixture()
def tokens(app) -> Tokens:
    return Tokens(app)


def test_meeting_and_dismissal_round_trip_and_shape_the_calendar(app, client, tokens):
    headers = auth(tokens["staff"])
    body = {**TWO_DAYS, "meeting_point": "JR北上駅 東口", "meeting_at": "2031-11-08T12:00:00+09:00",
            "dismissal_at": "2031-11-09T12:30:00+09:00"}
    created = client.post("/api/v1/events", json=body, headers=headers)
    assert created.status_code == 201, created.get_json()
    event = created.get_json()
    assert event["meeting_at"] == "2031-11-08T12:00:00+09:00"
    assert event["dismissal_at"] == "2031-11-09T12:30:00+09:00"
    vevents = sorted(Calendar.from_ical(client.get(f"/events/{event['slug']}.ics").data).walk("VEVENT"),
                     key=lambda v: v.decoded("DTSTART"))
    assert vevents[0].decoded("DTSTART").isoformat() == "2031-11-08T12:00:00+09:00"
    assert str(vevents[0]["LOCATION"]) == "JR北上駅 東口"
    assert vevents[1].decoded("DTEND").isoformat() == "2031-11-09T12:30:00+09:00"

    url = f"/api/v1/events/{event['id']}"
    error = assert_error(client.patch(url, json={"dismissal_at": "2031-11-08T11:00:00+09:00"}, headers=headers),
                         422, "invalid")
    assert "dismissal_at" in error["fields"]
    cleared = client.patch(url, json={"meeting_at": None}, headers=headers)
    assert cleared.status_code == 200 and cleared.get_json()["meeting_at"] is None


def test_online_url_reveal_at_round_trips_and_is_validated(app, client, tokens):
    headers = auth(tokens["staff"])
    body = {"slug": "online-2031", "kind": "online_seminar", "title": "オンライン相談会", "capacity": 10,
            "status": "published", "online_url": "https://zoom.example.jp/j/1",
            "starts_at": "2031-11-08T19:00:00+09:00", "ends_at": "2031-11-08T21:00:00+09:00",
            "online_url_reveal_at": "2031-11-07T12:00:00+09:00"}
    created = client.post("/api/v1/events", json=body, headers=headers)
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["online_url_reveal_at"] == "2031-11-07T12:00:00+09:00"
    url = f"/api/v1/events/{created.get_json()['id']}"
    error = assert_error(client.patch(url, json={"online_url_reveal_at": "2031-11-09T12:00:00+09:00"},
                                      headers=headers), 422, "invalid")
    assert "online_url_reveal_at" in error["fields"]


def test_calendar_alarms_round_trip_and_are_validated(app, client, tokens):
    headers = auth(tokens["staff"])
    created = client.post("/api/v1/events", json={**TWO_DAYS, "calendar_alarms": ["eve", "1h"]}, headers=headers)
    assert created.status_code == 201, created.get_json()
    event = created.get_json()
    assert event["calendar_alarms"] == ["eve", "1h"]
    vevent = Calendar.from_ical(client.get(f"/events/{event['slug']}.ics").data).walk("VEVENT")[0]
    # day 1 starts 13:00: 18:00 the evening before (19 hours) and 1 hour before
    assert sorted(str(a["TRIGGER"].to_ical(), "ascii") for a in vevent.walk("VALARM")) == ["-PT19H", "-PT1H"]
    url = f"/api/v1/events/{event['id']}"
    error = assert_error(client.patch(url, json={"calendar_alarms": ["2d"]}, headers=headers), 422, "invalid")
    assert list(error["fields"]) == ["calendar_alarms.0"]
    reset = client.patch(url, json={"calendar_alarms": None}, headers=headers)
    assert reset.status_code == 200 and reset.get_json()["calendar_alarms"] is None


def test_reminders_round_trip_and_are_validated(app, client, tokens):
    headers = auth(tokens["staff"])
    created = client.post("/api/v1/events", json={**TWO_DAYS, "reminders": ["1h", "2d"]}, headers=headers)
    assert created.status_code == 201, created.get_json()
    event = created.get_json()
    assert event["reminders"] == ["2d", "1h"]  # earliest first
    url = f"/api/v1/events/{event['id']}"
    error = assert_error(client.patch(url, json={"reminders": ["eve"]}, headers=headers), 422, "invalid")
    assert list(error["fields"]) == ["reminders.0"]
    error = assert_error(client.patch(url, json={"reminders": ["1w", "3d", "1d", "1h"]}, headers=headers),
                         422, "invalid")
    assert list(error["fields"]) == ["reminders"]
    none = client.patch(url, json={"reminders": []}, headers=headers)
    assert none.status_code == 200 and none.get_json()["reminders"] == []
    reset = client.patch(url, json={"reminders": None}, headers=headers)
    assert reset.status_code == 200 and reset.get_json()["reminders"] is None
