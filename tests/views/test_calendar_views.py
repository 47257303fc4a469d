"""Calendar routes through the test client: .ics per event and per registration, the personal feed,
public feeds, and the "add to calendar" links on the event and manage pages."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import ics
import pytest
from icalendar import Calendar

from eventapp.extensions import db
from eventapp.services import registration as registration_service
from tests.factories import future, jst, make_event, make_registration

ZOOM = "https://zoom.example.jp/j/55555?pwd=only-for-confirmed"


def parse(response) -> tuple[Calendar, list]:
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/calendar; charset=utf-8"
    text = response.get_data(as_text=True)
    cal = Calendar.from_ical(text)
    other = ics.Calendar(text)
    assert {e.uid for e in other.events} == {str(v["UID"]) for v in cal.walk("VEVENT")}
    return cal, sorted(other.events, key=lambda e: e.begin)


def online(capacity: int = 5):
    start = future(days=14, hour=19)
    return make_event(kind="online_seminar", title="オンライン相談会", starts_at=start,
                      ends_at=start + timedelta(hours=1), online_url=ZOOM, venue_name="", venue_address="",
                      capacity=capacity)


def test_event_ics_is_public_in_jst_and_drafts_are_hidden(ctx, client):
    event = make_event(starts_at=jst(2031, 5, 10, 9), ends_at=jst(2031, 5, 10, 16))
    draft = make_event(status="draft")
    cal, (other,) = parse(client.get(f"/events/{event.slug}.ics"))
    (vevent,) = cal.walk("VEVENT")
    assert vevent.decoded("DTSTART") == jst(2031, 5, 10, 9) and other.begin == jst(2031, 5, 10, 9)
    assert str(cal["METHOD"]) == "PUBLISH"
    assert client.get(f"/events/{draft.slug}.ics").status_code == 404
    assert client.get("/events/no-such-event.ics").status_code == 404
    # The plain event page still answers at its own URL.
    assert client.get(f"/events/{event.slug}").status_code == 200


def test_registration_invite_for_confirmed_only_and_kept_private(ctx, client):
    event = online(capacity=1)
    confirmed = make_registration(event)
    waitlisted = make_registration(event)
    response = client.get(f"/r/{confirmed.manage_token}/invite.ics")
    cal, (other,) = parse(response)
    assert ZOOM in other.description
    assert "no-store" in response.headers["Cache-Control"]
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert client.get(f"/r/{waitlisted.manage_token}/invite.ics").status_code == 404
    assert client.get("/r/not-a-token/invite.ics").status_code == 404


def test_anonymous_visitor_never_gets_the_join_url(ctx, client):
    event = online(capacity=1)
    make_registration(event)
    for url in (f"/events/{event.slug}.ics", "/feeds/events.ics", "/feeds/online_seminar.ics",
                f"/events/{event.slug}"):
        body = client.get(url).get_data(as_text=True)
        assert "zoom.example.jp" not in html.unescape(body), url


def test_person_feed_lists_confirmed_and_cancelled_and_rejects_bad_tokens(ctx, client):
    first, second = make_event(title="遠野フィールドワーク"), make_event(title="盛岡交流会")
    kept = make_registration(first, email="sub@example.com")
    dropped = make_registration(second, email="sub@example.com")
    registration_service.cancel(dropped.id, by="self")
    db.session.commit()
    token = kept.person.calendar_token
    response = client.get(f"/feeds/person/{token}.ics")
    cal, others = parse(response)
    statuses = {str(v["UID"]): str(v["STATUS"]) for v in cal.walk("VEVENT")}
    assert statuses == {f"reg-{kept.id}-1@testserver.local": "CONFIRMED",
                        f"reg-{dropped.id}-1@testserver.local": "CANCELLED"}
    assert sorted(o.status for o in others) == ["CANCELLED", "CONFIRMED"]
    assert "no-store" in response.headers["Cache-Control"]
    assert client.get(f"/feeds/person/{token[:-1]}x.ics").status_code == 404
    assert client.get("/feeds/person/short.ics").status_code == 404


def test_public_feeds_all_and_per_kind(ctx, client):
    field = make_event(kind="fieldwork")
    seminar = make_event(kind="onsite_seminar")
    cal, _ = parse(client.get("/feeds/events.ics"))
    assert {str(v["UID"]) for v in cal.walk("VEVENT")} == {f"event-{field.id}-1@testserver.local",
                                                           f"event-{seminar.id}-1@testserver.local"}
    cal, _ = parse(client.get("/feeds/onsite_seminar.ics"))
    assert [str(v["UID"]) for v in cal.walk("VEVENT")] == [f"event-{seminar.id}-1@testserver.local"]
    assert "REFRESH-INTERVAL" in cal
    assert client.get("/feeds/party.ics").status_code == 404


def _links(page: str) -> list[str]:
    return [html.unescape(h) for h in re.findall(r'href="([^"]+)"', page)]


def test_event_page_offers_google_outlook_and_ics(ctx, client):
    event = make_event(starts_at=jst(2031, 5, 10, 9), ends_at=jst(2031, 5, 10, 16))
    page = client.get(f"/events/{event.slug}").get_data(as_text=True)
    assert "Googleカレンダーに追加" in page
    google = next(h for h in _links(page) if h.startswith("https://calendar.google.com/"))
    assert parse_qs(urlsplit(google).query)["dates"] == ["20310510T000000Z/20310510T070000Z"]
    assert any(h.startswith("https://outlook.live.com/calendar/") for h in _links(page))
    assert f"/events/{event.slug}.ics" in _links(page)
    cancelled = make_event(status="cancelled")
    assert "Googleカレンダーに追加" not in client.get(f"/events/{cancelled.slug}").get_data(as_text=True)


@pytest.mark.parametrize("status", ["confirmed", "waitlisted"])
def test_manage_page_calendar_links(ctx, client, status):
    event = online(capacity=1)
    confirmed = make_registration(event)
    registration = confirmed if status == "confirmed" else make_registration(event)
    page = client.get(f"/r/{registration.manage_token}").get_data(as_text=True)
    links = _links(page)
    if status == "confirmed":
        # One registration's page: never the address's personal feed (it lists the address's other
        # registrations); that is only shown in マイページ.
        token = registration.person.calendar_token
        assert token and token not in html.unescape(page) and "/feeds/person/" not in html.unescape(page)
        assert not any(h.startswith("webcal:") for h in links)
        assert f"/r/{registration.manage_token}/invite.ics" in links
        google = next(h for h in links if h.startswith("https://calendar.google.com/"))
        assert ZOOM in parse_qs(urlsplit(google).query)["details"][0]
    else:
        assert "Googleカレンダーに追加" not in page and "invite.ics" not in page
        assert "zoom.example.jp" not in html.unescape(page)


def test_public_feed_answers_304_while_unchanged(ctx, client):
    make_event()
    first = client.get("/feeds/events.ics")
    etag = first.headers["ETag"]
    again = client.get("/feeds/events.ics", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    make_event(title="新しいイベント")
    changed = client.get("/feeds/events.ics", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and "新しいイベント" in changed.get_data(as_text=True)


def test_calendar_text_stays_japanese_when_the_site_is_shown_in_english(ctx, client):
    event = make_event(starts_at=jst(2031, 5, 10, 9), ends_at=jst(2031, 5, 10, 16))
    client.get("/?lang=en")
    for url in (f"/events/{event.slug}.ics", "/feeds/events.ics"):
        _, (other,) = parse(client.get(url, headers={"Accept-Language": "en"}))
        assert "2031年5月10日(土) 09:00 〜 16:00" in other.description


def test_feed_of_an_anonymised_person_is_gone(ctx, client):
    from eventapp.services.privacy import anonymise_person

    registration = make_registration(make_event())
    token = registration.person.calendar_token
    assert client.get(f"/feeds/person/{token}.ics").status_code == 200
    anonymise_person(registration.person_id, actor="test")
    db.session.commit()
    assert client.get(f"/feeds/person/{token}.ics").status_code == 404
