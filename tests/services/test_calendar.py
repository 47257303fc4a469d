"""Calendar invites and feeds (services.calendar), each output read back with two parsers:
`icalendar` (which wrote it) and the independent `ics` package."""

from __future__ import annotations

from datetime import time, timedelta
from urllib.parse import parse_qs, urlsplit

import ics
import pytest
from icalendar import Calendar

from eventapp.extensions import db
from eventapp.formatting import JST
from eventapp.models import OutboxMessage, Person
from eventapp.services import calendar, mail
from eventapp.services import registration as registration_service
from eventapp.services.errors import NotFound, ValidationFailed
from eventapp.services.events import update_event
from tests.factories import future, jst, make_event, make_registration

ZOOM = "https://zoom.example.jp/j/98765?pwd=secret"


def parse(data: bytes | str) -> tuple[Calendar, list]:
    """Parse with both libraries; return icalendar's calendar and ics's events sorted by start."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    cal = Calendar.from_ical(text)
    other = ics.Calendar(text)
    ours = {str(v["UID"]) for v in cal.walk("VEVENT")}
    assert {e.uid for e in other.events} == ours, "the two parsers disagree on the events"
    return cal, sorted(other.events, key=lambda e: (e.begin, e.uid))


def vevents(cal: Calendar) -> list:
    return sorted(cal.walk("VEVENT"), key=lambda v: (v.decoded("DTSTART"), str(v["UID"])))


def online_seminar(**overrides):
    start = overrides.pop("starts_at", future(days=20, hour=19))
    return make_event(kind="online_seminar", title="岩手の企業と話そう オンライン説明会", starts_at=start,
                      ends_at=start + timedelta(hours=1), online_url=ZOOM, venue_name="", venue_address="",
                      **overrides)


def test_public_event_in_jst_with_vtimezone_alarms_geo_and_organiser(ctx):
    event = make_event(starts_at=jst(2030, 9, 14, 10), ends_at=jst(2030, 9, 14, 15, 30), latitude=39.3886,
                       longitude=141.1167, meeting_point="JR花巻駅 東口", organiser_name="遠恋複業課",
                       summary="ブドウの収穫と農家さんとの交流")
    cal, (other,) = parse(calendar.event_ics(event))

    assert str(cal["METHOD"]) == "PUBLISH"
    (tz,) = cal.walk("VTIMEZONE")
    assert str(tz["TZID"]) == "Asia/Tokyo"
    (vevent,) = vevents(cal)
    assert vevent["DTSTART"].params["TZID"] == "Asia/Tokyo"
    assert vevent.decoded("DTSTART") == jst(2030, 9, 14, 10)
    assert vevent.decoded("DTSTART").utcoffset() == timedelta(hours=9)
    assert vevent.decoded("DTEND") == jst(2030, 9, 14, 15, 30)
    assert other.begin == jst(2030, 9, 14, 10) and other.end == jst(2030, 9, 14, 15, 30)
    assert other.begin.utcoffset() == timedelta(hours=9)

    assert str(vevent["UID"]) == f"event-{event.id}-1@testserver.local"
    assert vevent["SEQUENCE"] == 0 and str(vevent["STATUS"]) == "CONFIRMED"
    assert "DTSTAMP" in vevent and "LAST-MODIFIED" in vevent
    assert str(vevent["LOCATION"]) == "かんたはうす, 岩手県花巻市" == other.location
    assert (other.geo.latitude, other.geo.longitude) == (39.3886, 141.1167)
    assert (vevent["GEO"].latitude, vevent["GEO"].longitude) == (39.3886, 141.1167)
    assert str(vevent["URL"]) == f"http://testserver.local/events/{event.slug}" == other.url
    assert str(vevent["ORGANIZER"]) == "mailto:enren@example.jp"
    assert vevent["ORGANIZER"].params["CN"] == "遠恋複業課"
    assert "JR花巻駅 東口" in other.description and "ブドウの収穫" in other.description
    assert "/r/" not in other.description  # no personal link in a public calendar

    # Fieldwork: the evening before at 18:00 JST, and 2 hours before 集合.
    eve = jst(2030, 9, 13, 18) - jst(2030, 9, 14, 10)  # -16 hours, relative to the start
    triggers = sorted(a.decoded("TRIGGER") for a in vevent.walk("VALARM"))
    assert triggers == [eve, timedelta(hours=-2)]
    assert sorted(a.trigger for a in other.alarms) == [eve, timedelta(hours=-2)]
    assert all(str(a["ACTION"]) == "DISPLAY" for a in vevent.walk("VALARM"))


def test_two_day_fieldwork_is_one_vevent_per_day_with_that_days_programme(ctx):
    event = make_event(starts_at=jst(2030, 10, 4, 9), ends_at=jst(2030, 10, 5, 12), days=[
        {"starts_at": jst(2030, 10, 4, 9), "ends_at": jst(2030, 10, 4, 18), "title": "収穫",
         "items": [{"starts_at": time(9, 30), "ends_at": time(12),
                    "title": "ブドウ収穫", "place": "第2農場"}]},
        {"starts_at": jst(2030, 10, 5, 8, 30), "ends_at": jst(2030, 10, 5, 12), "title": "振り返り",
         "items": [{"starts_at": time(8, 30), "title": "ワークショップ"}]},
    ])
    cal, others = parse(calendar.event_ics(event))
    first, second = vevents(cal)
    assert [str(first["UID"]), str(second["UID"])] == [f"event-{event.id}-1@testserver.local",
                                                       f"event-{event.id}-2@testserver.local"]
    assert (first.decoded("DTSTART"), first.decoded("DTEND")) == (jst(2030, 10, 4, 9), jst(2030, 10, 4, 18))
    assert (second.decoded("DTSTART"), second.decoded("DTEND")) == (jst(2030, 10, 5, 8, 30), jst(2030, 10, 5, 12))
    assert [o.begin for o in others] == [jst(2030, 10, 4, 9), jst(2030, 10, 5, 8, 30)]
    assert "09:30〜12:00 ブドウ収穫(第2農場)" in others[0].description
    assert "ワークショップ" not in others[0].description and "08:30 ワークショップ" in others[1].description
    assert "(1日目/全2日)" in others[0].description
    assert str(second["SUMMARY"]).endswith("(振り返り)")
    assert all(len(v.walk("VALARM")) == 2 for v in (first, second))


def test_uid_is_stable_and_sequence_grows_on_time_place_and_status_changes(ctx):
    event = make_event(starts_at=jst(2030, 11, 1, 13), ends_at=jst(2030, 11, 1, 17))
    uid = str(vevents(parse(calendar.event_ics(event))[0])[0]["UID"])

    def current():
        db.session.expire_all()
        (vevent,) = vevents(parse(calendar.event_ics(db.session.get(type(event), event.id)))[0])
        assert str(vevent["UID"]) == uid
        return vevent

    update_event(event.id, {"title": "タイトルだけ変更"})
    db.session.commit()
    assert current()["SEQUENCE"] == 0  # wording is not a change calendars must replace

    update_event(event.id, {"starts_at": jst(2030, 11, 1, 14), "ends_at": jst(2030, 11, 1, 18)})
    db.session.commit()
    moved = current()
    assert moved["SEQUENCE"] == 1 and moved.decoded("DTSTART") == jst(2030, 11, 1, 14)

    update_event(event.id, {"venue_name": "花巻市民会館"})
    db.session.commit()
    assert current()["SEQUENCE"] == 2

    update_event(event.id, {"status": "cancelled"})
    db.session.commit()
    cancelled = current()
    assert cancelled["SEQUENCE"] == 3 and str(cancelled["STATUS"]) == "CANCELLED"
    assert cancelled.walk("VALARM") == []  # no reminders for something that will not happen
    assert str(cancelled["SUMMARY"]).startswith("【中止】")
    other = parse(calendar.event_ics(db.session.get(type(event), event.id)))[1][0]
    assert other.status == "CANCELLED"


def test_changing_only_a_days_hours_still_bumps_sequence(ctx):
    event = make_event(starts_at=jst(2030, 10, 4, 9), ends_at=jst(2030, 10, 5, 12), days=[
        {"starts_at": jst(2030, 10, 4, 9), "ends_at": jst(2030, 10, 4, 18)},
        {"starts_at": jst(2030, 10, 5, 8, 30), "ends_at": jst(2030, 10, 5, 12)}])
    update_event(event.id, {"days": [{"starts_at": jst(2030, 10, 4, 9), "ends_at": jst(2030, 10, 4, 17)},
                                     {"starts_at": jst(2030, 10, 5, 8, 30), "ends_at": jst(2030, 10, 5, 12)}]})
    db.session.commit()
    first, second = vevents(parse(calendar.event_ics(event))[0])
    assert event.sequence == 1 and first["SEQUENCE"] == 1 and second["SEQUENCE"] == 1
    assert first.decoded("DTEND") == jst(2030, 10, 4, 17)
    assert str(second["UID"]) == f"event-{event.id}-2@testserver.local"


def test_join_url_only_for_confirmed_online_registrations(ctx):
    event = online_seminar(capacity=1)
    confirmed = make_registration(event)
    waitlisted = make_registration(event)

    cal, (other,) = parse(calendar.registration_ics(confirmed))
    assert ZOOM in other.description
    assert f"http://testserver.local/r/{confirmed.manage_token}" in other.description
    (vevent,) = vevents(cal)
    assert str(vevent["UID"]) == f"reg-{confirmed.id}-1@testserver.local"
    assert str(vevent["LOCATION"]) == "オンライン"

    with pytest.raises(NotFound):
        calendar.registration_ics(waitlisted)
    for public in (calendar.event_ics(event), calendar.public_feed_ics(), calendar.public_feed_ics("online_seminar")):
        assert ZOOM.encode() not in public and b"zoom.example.jp" not in public
        parse(public)
    assert ZOOM not in calendar.web_calendar_links(event)["google"]
    assert "zoom.example.jp" not in str(calendar.calendar_links(event, waitlisted))
    assert b"zoom.example.jp" not in calendar.person_feed_ics(waitlisted.person.calendar_token)


def test_cancelled_registration_invite_is_cancelled_with_a_higher_sequence(ctx):
    event = make_event()
    registration = make_registration(event)
    registration_service.cancel(registration.id, by="staff")
    db.session.commit()
    cal, (other,) = parse(calendar.registration_ics(registration, method="REQUEST"))
    assert str(cal["METHOD"]) == "CANCEL"
    (vevent,) = vevents(cal)
    assert str(vevent["STATUS"]) == "CANCELLED" == other.status
    assert vevent["SEQUENCE"] == 1
    assert vevent["ATTENDEE"].params["PARTSTAT"] == "DECLINED"


def test_person_feed_lists_registrations_with_cancelled_ones_marked(ctx):
    first = make_event(title="花巻フィールドワーク", starts_at=future(days=10))
    second = make_event(title="盛岡セミナー", kind="onsite_seminar", starts_at=future(days=20))
    third = make_event(title="釜石マッチング", kind="matching_session", starts_at=future(days=30))
    draft = make_event(title="下書き", status="draft")
    mine = make_registration(first, email="feed@example.com")
    dropped = make_registration(second, email="feed@example.com")
    again = make_registration(third, email="feed@example.com")
    registration_service.cancel(dropped.id, by="self")
    registration_service.cancel(again.id, by="self")
    db.session.commit()
    again2 = make_registration(third, email="feed@example.com")  # signed up again after cancelling
    del draft
    person = db.session.get(Person, mine.person_id)
    assert mine.person_id == dropped.person_id == again2.person_id

    cal, others = parse(calendar.person_feed_ics(person.calendar_token))
    by_uid = {str(v["UID"]): v for v in cal.walk("VEVENT")}
    assert set(by_uid) == {f"reg-{r.id}-1@testserver.local" for r in (mine, dropped, again2)}
    assert str(by_uid[f"reg-{dropped.id}-1@testserver.local"]["STATUS"]) == "CANCELLED"
    assert str(by_uid[f"reg-{mine.id}-1@testserver.local"]["STATUS"]) == "CONFIRMED"
    assert {o.status for o in others} == {"CONFIRMED", "CANCELLED"}
    assert str(cal["METHOD"]) == "PUBLISH" and "X-WR-CALNAME" in cal
    assert "下書き" not in str(cal.to_ical().decode())

    with pytest.raises(NotFound):
        calendar.person_feed_ics("x" * 32)


def test_calendar_token_is_set_on_signup_long_and_unique(ctx):
    event = make_event()
    a, b = make_registration(event), make_registration(event)
    tokens = [a.person.calendar_token, b.person.calendar_token]
    assert all(t and len(t) >= 32 for t in tokens)  # token_urlsafe(24): 192 bits
    assert tokens[0] != tokens[1]


def test_public_feeds_skip_drafts_keep_cancelled_and_filter_by_kind(ctx):
    live = make_event(title="公開中", kind="fieldwork")
    gone = make_event(title="中止になった会", kind="onsite_seminar", status="cancelled")
    make_event(title="下書きの会", status="draft")
    cal, _ = parse(calendar.public_feed_ics())
    statuses = {str(v["UID"]): str(v["STATUS"]) for v in cal.walk("VEVENT")}
    assert statuses == {f"event-{live.id}-1@testserver.local": "CONFIRMED",
                        f"event-{gone.id}-1@testserver.local": "CANCELLED"}
    kind_cal, _ = parse(calendar.public_feed_ics("fieldwork"))
    assert [str(v["UID"]) for v in kind_cal.walk("VEVENT")] == [f"event-{live.id}-1@testserver.local"]
    assert "フィールドワーク" in str(kind_cal["X-WR-CALNAME"])
    with pytest.raises(NotFound):
        calendar.public_feed_ics("party")


def test_web_calendar_links_carry_utc_times_and_place(ctx):
    event = make_event(starts_at=jst(2030, 9, 14, 10), ends_at=jst(2030, 9, 14, 15))
    links = calendar.web_calendar_links(event)
    google = parse_qs(urlsplit(links["google"]).query)
    assert urlsplit(links["google"]).netloc == "calendar.google.com"
    assert google["dates"] == ["20300914T010000Z/20300914T060000Z"] and google["ctz"] == ["Asia/Tokyo"]
    assert google["location"] == ["かんたはうす, 岩手県花巻市"]
    outlook = parse_qs(urlsplit(links["outlook"]).query)
    assert outlook["startdt"] == ["2030-09-14T01:00:00+00:00"] and outlook["subject"] == [event.title]


# --- mail --------------------------------------------------------------------------------------

def invites(message) -> list:
    return [part for part in message.walk() if part.get_content_type() == "text/calendar"]


def test_confirmation_mail_carries_a_request_invite(ctx, sent_mail):
    event = online_seminar(starts_at=jst(2030, 8, 25, 19))
    registration = make_registration(event)
    mail.deliver_due()
    (message,) = sent_mail()
    (part,) = invites(message)
    assert part.get_param("method") == "REQUEST" and part.get_content_charset() == "utf-8"
    assert part.get_filename() == "invite.ics"
    cal, (other,) = parse(part.get_content())
    assert str(cal["METHOD"]) == "REQUEST"
    (vevent,) = vevents(cal)
    assert str(vevent["UID"]) == f"reg-{registration.id}-1@testserver.local"
    assert str(vevent["ATTENDEE"]) == f"mailto:{registration.person.email}"
    assert vevent.decoded("DTSTART") == jst(2030, 8, 25, 19) and other.begin == jst(2030, 8, 25, 19)
    assert ZOOM in other.description


def test_waitlisted_mail_has_no_invite_and_promotion_brings_it(ctx, sent_mail):
    event = online_seminar(capacity=1)
    first = make_registration(event)
    second = make_registration(event)
    mail.deliver_due()
    by_to = {m["To"]: m for m in sent_mail()}
    assert invites(by_to[second.person.email]) == []
    assert ZOOM not in by_to[second.person.email].get_body(("plain",)).get_content()

    registration_service.cancel(first.id, by="self")
    db.session.commit()
    mail.deliver_due()
    kinds = {m["To"] + m["Subject"]: m for m in sent_mail()}
    promoted = next(m for k, m in kinds.items() if k.startswith(second.person.email) and "繰り上げ" in k)
    (part,) = invites(promoted)
    assert part.get_param("method") == "REQUEST"
    assert ZOOM in parse(part.get_content())[1][0].description
    cancelled = next(m for k, m in kinds.items() if k.startswith(first.person.email) and "キャンセル完了" in k)
    (part,) = invites(cancelled)
    assert part.get_param("method") == "CANCEL"
    cal, (other,) = parse(part.get_content())
    assert str(cal["METHOD"]) == "CANCEL" and other.status == "CANCELLED"
    assert ZOOM not in other.description


def test_moving_an_event_mails_confirmed_people_an_update_with_same_uid_higher_sequence(ctx, sent_mail):
    event = make_event(capacity=1, starts_at=jst(2030, 9, 14, 10), ends_at=jst(2030, 9, 14, 15))
    confirmed = make_registration(event)
    waitlisted = make_registration(event)
    mail.deliver_due()
    (original,) = invites(next(m for m in sent_mail() if m["To"] == confirmed.person.email))
    uid = str(vevents(parse(original.get_content())[0])[0]["UID"])

    update_event(event.id, {"title": "表記だけ直しました"})
    db.session.commit()
    assert db.session.query(OutboxMessage).filter_by(kind="event_updated").count() == 0

    update_event(event.id, {"starts_at": jst(2030, 9, 21, 10), "ends_at": jst(2030, 9, 21, 15)})
    db.session.commit()
    updates = db.session.query(OutboxMessage).filter_by(kind="event_updated").all()
    assert [m.to_addr for m in updates] == [confirmed.person.email]  # not the waitlisted person
    assert waitlisted.person.email not in [m.to_addr for m in updates]
    mail.deliver_due()
    update_mail = next(m for m in sent_mail() if "変更" in m["Subject"])
    assert "日時が変更になりました" in update_mail.get_body(("plain",)).get_content()
    (part,) = invites(update_mail)
    assert part.get_param("method") == "REQUEST"
    cal, (other,) = parse(part.get_content())
    (vevent,) = vevents(cal)
    assert str(vevent["UID"]) == uid and vevent["SEQUENCE"] == 1
    assert other.begin == jst(2030, 9, 21, 10)


def test_cancelling_an_event_mails_a_cancel_to_confirmed_people(ctx, sent_mail):
    event = make_event()
    registration = make_registration(event)
    update_event(event.id, {"status": "cancelled"})
    db.session.commit()
    mail.deliver_due()
    cancel_mail = next(m for m in sent_mail() if "中止" in m["Subject"])
    assert cancel_mail["To"] == registration.person.email
    (part,) = invites(cancel_mail)
    assert part.get_param("method") == "CANCEL"
    cal, (other,) = parse(part.get_content())
    assert other.status == "CANCELLED" and vevents(cal)[0]["SEQUENCE"] == 1


def test_invite_times_are_jst_whatever_the_input_zone(ctx):
    from datetime import UTC, datetime

    event = make_event(starts_at=datetime(2030, 1, 31, 15, 0, tzinfo=UTC),
                       ends_at=datetime(2030, 1, 31, 17, 0, tzinfo=UTC))
    (vevent,) = vevents(parse(calendar.event_ics(event))[0])
    start = vevent.decoded("DTSTART")
    assert start.tzinfo is not None and start.astimezone(JST).replace(tzinfo=None).isoformat() == "2030-02-01T00:00:00"
    assert vevent["DTSTART"].to_ical() == b"20300201T000000"


def test_editing_a_day_or_programme_in_place_refreshes_feeds_and_last_modified(ctx):
    event = make_event(starts_at=jst(2030, 10, 4, 9), ends_at=jst(2030, 10, 4, 18), days=[
        {"starts_at": jst(2030, 10, 4, 9), "ends_at": jst(2030, 10, 4, 18),
         "items": [{"starts_at": time(9, 30), "title": "ブドウ収穫"}]}])
    before = vevents(parse(calendar.public_feed_ics())[0])[0]  # now cached
    assert before.decoded("LAST-MODIFIED") == event.updated_at.replace(microsecond=0)
    modified = event.updated_at

    event.days[0].items[0].title = "リンゴ収穫"
    db.session.commit()
    assert event.updated_at > modified
    (vevent,) = vevents(parse(calendar.public_feed_ics())[0])
    assert "リンゴ収穫" in str(vevent["DESCRIPTION"]) and "ブドウ収穫" not in str(vevent["DESCRIPTION"])
    assert vevent.decoded("LAST-MODIFIED") == event.updated_at.replace(microsecond=0)

    event.days[0].ends_at = jst(2030, 10, 4, 17)
    db.session.commit()
    (vevent,) = vevents(parse(calendar.public_feed_ics("fieldwork"))[0])
    assert vevent.decoded("DTEND") == jst(2030, 10, 4, 17)
    assert str(vevent["UID"]) == str(before["UID"])


def test_staff_calling_an_event_off_mails_a_cancel_only_to_people_who_had_an_invite(ctx, sent_mail):
    from eventapp.services.staff_events import cancel_event

    event = make_event(capacity=1)
    confirmed = make_registration(event)
    waitlisted = make_registration(event)
    mail.deliver_due()
    before = len(sent_mail())
    cancel_event(event.id, reason="台風の接近のため")
    db.session.commit()
    mail.deliver_due()
    called_off = {m["To"]: m for m in sent_mail()[before:]}
    assert set(called_off) == {confirmed.person.email, waitlisted.person.email}
    (part,) = invites(called_off[confirmed.person.email])
    assert part.get_param("method") == "CANCEL"
    cal, (other,) = parse(part.get_content())
    (vevent,) = vevents(cal)
    assert str(vevent["UID"]) == f"reg-{confirmed.id}-1@testserver.local" and other.status == "CANCELLED"
    assert vevent["SEQUENCE"] == 2  # the event's change (1) and the registration's cancellation (+1)
    assert invites(called_off[waitlisted.person.email]) == []  # never had an invite


def test_two_day_event_mail_has_one_single_uid_invite_per_day(ctx, sent_mail):
    event = make_event(starts_at=jst(2030, 10, 4, 9), ends_at=jst(2030, 10, 5, 12), days=[
        {"starts_at": jst(2030, 10, 4, 9), "ends_at": jst(2030, 10, 4, 18)},
        {"starts_at": jst(2030, 10, 5, 8, 30), "ends_at": jst(2030, 10, 5, 12)}])
    registration = make_registration(event)
    mail.deliver_due()
    (message,) = sent_mail()
    parts = invites(message)
    assert [p.get_filename() for p in parts] == ["invite.ics", "invite-day2.ics"]
    starts = []
    for n, part in enumerate(parts, start=1):
        assert part.get_param("method") == "REQUEST"
        cal, (other,) = parse(part.get_content())
        (vevent,) = vevents(cal)
        assert str(vevent["UID"]) == f"reg-{registration.id}-{n}@testserver.local"
        starts.append(other.begin)
    assert starts == [jst(2030, 10, 4, 9), jst(2030, 10, 5, 8, 30)]
    # the download keeps both days in one file
    assert len(parse(calendar.registration_ics(registration))[1]) == 2


@pytest.mark.parametrize(("kind", "expected"), [
    ("online_seminar", [timedelta(days=-1), timedelta(minutes=-15)]),
    ("onsite_seminar", [timedelta(days=-1), timedelta(hours=-2)]),
    ("matching_session", [timedelta(days=-1), timedelta(hours=-2)]),
])
def test_alarms_per_kind(ctx, kind, expected):
    event = make_event(kind=kind, starts_at=jst(2030, 9, 14, 19), ends_at=jst(2030, 9, 14, 21))
    cal, (other,) = parse(calendar.event_ics(event))
    (vevent,) = vevents(cal)
    assert sorted(a.decoded("TRIGGER") for a in vevent.walk("VALARM")) == expected
    assert sorted(a.trigger for a in other.alarms) == expected


def test_fieldwork_eve_reminder_is_before_each_day_even_after_midnight_utc(ctx):
    # Day 2 starts 08:30 JST (23:30 UTC the day before): its eve reminder is 18:00 JST on day 1.
    event = make_event(starts_at=jst(2030, 10, 4, 9), ends_at=jst(2030, 10, 5, 12), days=[
        {"starts_at": jst(2030, 10, 4, 9), "ends_at": jst(2030, 10, 4, 18)},
        {"starts_at": jst(2030, 10, 5, 8, 30), "ends_at": jst(2030, 10, 5, 12)}])
    cal, others = parse(calendar.event_ics(event))
    first, second = vevents(cal)
    rings = [sorted(v.decoded("DTSTART") + a.decoded("TRIGGER") for a in v.walk("VALARM")) for v in (first, second)]
    assert rings == [[jst(2030, 10, 3, 18), jst(2030, 10, 4, 7)], [jst(2030, 10, 4, 18), jst(2030, 10, 5, 6, 30)]]
    assert [sorted(o.begin + a.trigger for a in o.alarms) for o in others] == rings


def test_fieldwork_starts_at_meeting_time_and_place_and_ends_at_dismissal(ctx):
    event = make_event(starts_at=jst(2030, 10, 4, 13), ends_at=jst(2030, 10, 5, 15), meeting_point="JR北上駅 東口",
                       meeting_at=jst(2030, 10, 4, 12), dismissal_at=jst(2030, 10, 5, 16, 30), days=[
                           {"starts_at": jst(2030, 10, 4, 13), "ends_at": jst(2030, 10, 4, 18)},
                           {"starts_at": jst(2030, 10, 5, 9), "ends_at": jst(2030, 10, 5, 15)}])
    registration = make_registration(event)
    for data in (calendar.event_ics(event), calendar.registration_ics(registration)):
        cal, others = parse(data)
        first, second = vevents(cal)
        assert (first.decoded("DTSTART"), first.decoded("DTEND")) == (jst(2030, 10, 4, 12), jst(2030, 10, 4, 18))
        assert (second.decoded("DTSTART"), second.decoded("DTEND")) == (jst(2030, 10, 5, 9), jst(2030, 10, 5, 16, 30))
        assert str(first["LOCATION"]) == "JR北上駅 東口" == others[0].location
        assert str(second["LOCATION"]) == "かんたはうす, 岩手県花巻市"
        assert [(o.begin, o.end) for o in others] == [(jst(2030, 10, 4, 12), jst(2030, 10, 4, 18)),
                                                      (jst(2030, 10, 5, 9), jst(2030, 10, 5, 16, 30))]
        # 2 hours before 集合, not before the first programme item.
        assert sorted(first.decoded("DTSTART") + a.decoded("TRIGGER") for a in first.walk("VALARM")) == [
            jst(2030, 10, 3, 18), jst(2030, 10, 4, 10)]


def test_meeting_and_dismissal_times_are_validated(ctx):
    event = make_event(starts_at=jst(2030, 10, 4, 13), ends_at=jst(2030, 10, 4, 18))
    with pytest.raises(ValidationFailed) as failure:
        update_event(event.id, {"meeting_at": jst(2030, 10, 4, 19), "dismissal_at": jst(2030, 10, 4, 12)})
    assert set(failure.value.fields) == {"meeting_at", "dismissal_at"}
    db.session.rollback()
    update_event(event.id, {"meeting_at": jst(2030, 10, 4, 12), "dismissal_at": jst(2030, 10, 4, 18, 30)})
    db.session.commit()
    assert (event.meeting_at, event.dismissal_at) == (jst(2030, 10, 4, 12), jst(2030, 10, 4, 18, 30))


def test_every_alarm_code_has_a_meaning_and_a_label():
    from eventapp.models import CALENDAR_ALARMS

    assert tuple(calendar.ALARM_OFFSETS) == CALENDAR_ALARMS == tuple(calendar.ALARM_LABELS)


def test_alarms_chosen_per_event_replace_the_kind_defaults(ctx):
    event = make_event(kind="fieldwork", starts_at=jst(2030, 9, 14, 9), ends_at=jst(2030, 9, 14, 17),
                       meeting_at=jst(2030, 9, 14, 8, 30))
    update_event(event.id, {"calendar_alarms": ["1h", "3d", "1h"]})  # any order; repeats collapse
    assert event.calendar_alarms == ["3d", "1h"]
    cal, (other,) = parse(calendar.event_ics(event))
    (vevent,) = vevents(cal)
    rings = sorted(vevent.decoded("DTSTART") + a.decoded("TRIGGER") for a in vevent.walk("VALARM"))
    assert rings == [jst(2030, 9, 11, 8, 30), jst(2030, 9, 14, 7, 30)]  # from 集合, not from 09:00
    assert sorted(other.begin + a.trigger for a in other.alarms) == rings
    assert [str(a["DESCRIPTION"]) for a in vevent.walk("VALARM")][-1].startswith("1時間後に集合: ")

    update_event(event.id, {"calendar_alarms": []})  # staff want no reminders at all
    (vevent,) = vevents(parse(calendar.event_ics(event))[0])
    assert vevent.walk("VALARM") == []
    update_event(event.id, {"calendar_alarms": None})  # back to the kind's defaults
    (vevent,) = vevents(parse(calendar.event_ics(event))[0])
    # 18:00 the evening before 集合 08:30, and 2 hours before it
    assert sorted(a.decoded("TRIGGER") for a in vevent.walk("VALARM")) == [timedelta(hours=-14.5),
                                                                          timedelta(hours=-2)]


@pytest.mark.parametrize("value", [["2d"], ["1d", 15], "1d", ["1w", "3d", "eve", "1d", "2h"]])
def test_unknown_or_too_many_alarms_are_refused(ctx, value):
    event = make_event()
    with pytest.raises(ValidationFailed) as failure:
        update_event(event.id, {"calendar_alarms": value})
    assert set(failure.value.fields) == {"calendar_alarms"}


def test_a_stored_unknown_alarm_code_is_skipped_not_fatal(ctx):
    event = make_event(kind="onsite_seminar", starts_at=jst(2030, 9, 14, 19), ends_at=jst(2030, 9, 14, 21))
    event.calendar_alarms = ["1d", "fortnight"]  # e.g. written by a newer release, then rolled back
    db.session.flush()
    (vevent,) = vevents(parse(calendar.event_ics(event))[0])
    assert [a.decoded("TRIGGER") for a in vevent.walk("VALARM")] == [timedelta(days=-1)]
