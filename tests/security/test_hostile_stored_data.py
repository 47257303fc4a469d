"""Calendars and mails are built from whatever the database holds (issue 21 item 6): rows written before
the single-line rules, by a migration or by hand. With CR/LF, `Bcc:` lines, NUL (where the database
stores it) and column-filling lengths in the event's fields, people's names and addresses, every
calendar still answers 200 with a parseable file, every mail kind is sent, and no stored text adds a
header line (no injected Bcc/recipient)."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from icalendar import Calendar
from sqlalchemy import select, text

from eventapp.extensions import db
from eventapp.models import OutboxMessage
from eventapp.services import announcements, mail, organisations
from eventapp.services import registration as registration_service
from eventapp.services.matching import event_organisation_list, settings_for
from tests.conftest import future, make_event, make_registration
from tests.services.test_matching import make_org

CRLF = "\r\n"
INJECT = f"{CRLF}Bcc: evil@attacker.example{CRLF}X-Injected: yes{CRLF}"
MAIL_HEADERS = {"from", "to", "subject", "date", "message-id", "reply-to", "mime-version", "content-type",
                "content-transfer-encoding", "list-unsubscribe", "list-unsubscribe-post"}  # the latter: announcements
MAIL_KINDS = {p.stem for p in (Path(__file__).parents[2] / "templates" / "mail").glob("*.txt")
              if not p.stem.startswith("_")}


def fill(prefix: str, length: int) -> str:
    """`prefix` padded with a three-byte character to exactly `length` characters (the column's)."""
    return (prefix + "長" * length)[:length]


def _store_hostile_values(events: list[int], people: dict[int, str]) -> None:
    """Raw UPDATEs, past every validation, as an old row or a hand edit would be."""
    nul = db.engine.dialect.name == "sqlite"  # PostgreSQL refuses NUL in text; SQLite stores it
    values = {
        "title": fill("題" + INJECT, 300), "organiser_email": "org@example.jp" + INJECT,
        "organiser_name": "主催" + INJECT, "organiser_phone": "0" + CRLF + "Bcc: x@y",
        "venue_name": fill("会場" + INJECT, 300), "venue_address": fill("住所" + INJECT, 500),
        "summary": "概要" + INJECT + ("\x00" if nul else "") + "概要" * 3000,
        "meeting_point": "集合" + INJECT, "what_to_bring": "持ち物" + INJECT + ("\x00" if nul else ""),
    }
    assignments = ", ".join(f"{column} = :{column}" for column in values)
    db.session.execute(text(f"UPDATE events SET {assignments} WHERE id IN ({', '.join(map(str, events))})"),
                       values)
    db.session.execute(text("UPDATE events SET online_url = :url WHERE kind = 'online_seminar'"),
                       {"url": "https://meet.example/x" + INJECT})
    db.session.execute(text("UPDATE event_days SET title = :title"), {"title": fill("日" + INJECT, 200)})
    db.session.execute(text("UPDATE organisations SET name = :name, challenges = :challenges"),
                       {"name": fill("団体" + INJECT, 200), "challenges": "課題" + INJECT})
    for person_id, email in people.items():
        db.session.execute(text("UPDATE people SET name = :name, email = :email WHERE id = :id"),
                           {"name": fill("氏名" + INJECT, 100), "email": email, "id": person_id})
    db.session.execute(text("UPDATE registrations SET name = :name"), {"name": fill("参加者" + INJECT, 100)})
    db.session.commit()
    db.session.expire_all()


@pytest.fixture
def scene(ctx):
    fieldwork = make_event(slug="hostile-fw", capacity=2)
    online = make_event(slug="hostile-online", kind="online_seminar", online_url="https://meet.example/x")
    session = make_event(slug="hostile-ms", kind="matching_session", starts_at=future(40), fee_yen=0)
    organisations.link_event(session.id, make_org().id)
    confirmed = make_registration(fieldwork, email="confirmed@example.com")
    hijacked = make_registration(fieldwork, email="hijacked@example.com")  # its address gets a Bcc line
    waitlisted = make_registration(fieldwork, email="waiting@example.com")
    cancelled = make_registration(online, email="cancelled@example.com")
    registration_service.cancel(cancelled.id, by="self")
    on_line = make_registration(online, email="online@example.com")
    db.session.commit()
    _store_hostile_values([fieldwork.id, online.id, session.id], {
        hijacked.person_id: "hijacked@example.com" + INJECT})
    db.session.execute(text("DELETE FROM outbox"))  # the sign-ups' own mails were built from clean rows
    db.session.commit()
    return SimpleNamespace(fieldwork=fieldwork, online=online, session=session, confirmed=confirmed,
                           hijacked=hijacked, waitlisted=waitlisted, cancelled=cancelled, on_line=on_line)


def _unfolded_lines(body: bytes) -> list[str]:
    return re.sub(r"\r\n[ \t]", "", body.decode("utf-8")).split("\r\n")


def test_every_calendar_answers_with_a_parseable_file(scene, client):
    urls = [f"/events/{scene.fieldwork.slug}.ics", f"/events/{scene.online.slug}.ics",
            f"/events/{scene.session.slug}.ics", "/feeds/events.ics", "/feeds/fieldwork.ics",
            "/feeds/online_seminar.ics", "/feeds/matching_session.ics"]
    for registration in (scene.confirmed, scene.hijacked, scene.cancelled, scene.on_line):
        urls.append(f"/r/{registration.manage_token}/invite.ics")
        urls.append(f"/feeds/person/{registration.person.calendar_token}.ics")
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        calendar = Calendar.from_ical(response.data)
        assert calendar.walk("VEVENT"), url
        # Nothing stored became a property line of its own.
        for line in _unfolded_lines(response.data):
            assert not re.match(r"(?i)(bcc|x-injected)\s*[:;]", line), (url, line)
        for vevent in calendar.walk("VEVENT"):
            assert "\n" not in str(vevent["location"]) and "\n" not in str(vevent["summary"]), url
            assert "\r" not in str(vevent["organizer"]) and "Bcc" not in str(vevent["organizer"]), url


def test_every_mail_kind_is_built_and_sent_without_an_injected_header(scene, sent_mail):
    extra = {"changed": ["starts_at", "venue_name", "online_url"], "join_url": scene.online.online_url,
             "reason": "理由" + INJECT, "waitlist_position": 1}
    queued = set()
    for kind in ("registration_confirmed", "registration_promoted", "registration_confirmed_by_staff",
                 "registration_waitlisted", "registration_cancelled", "event_cancelled", "event_updated",
                 "join_url_revealed"):
        for registration in (scene.confirmed, scene.hijacked, scene.waitlisted, scene.on_line,
                             scene.cancelled):
            mail.queue_registration_mail(kind, registration, **extra)
        queued.add(kind)
    for registration in (scene.confirmed, scene.hijacked, scene.waitlisted, scene.on_line):
        event = registration.event
        mail.queue_registration_mail("reminder", registration, code="1d", starts_at=event.starts_at,
                                     meeting_at=event.meeting_at)
        mail.queue_registration_mail("waitlist_closed", registration)
    queued |= {"reminder", "waitlist_closed"}
    for registration in (scene.confirmed, scene.hijacked, scene.waitlisted):
        # 抽選: the application and the not-selected note; the draw's waiting-list mail is this kind too.
        registration.event.lottery_draw_at = registration.event.starts_at
        mail.queue_registration_mail("registration_applied", registration)
        mail.queue_registration_mail("lottery_not_selected", registration, next_events=[scene.online])
        mail.queue_registration_mail("registration_waitlisted", registration, waitlist_position=2, lottery=True)
    queued |= {"registration_applied", "lottery_not_selected"}
    for registration in (scene.confirmed, scene.hijacked):
        person = registration.person
        context = {"event": registration.event, "person": person, "registration": registration}
        mail.queue("staff_message", person.email, "staff_message",
                   {**context, "subject": "件名" + INJECT, "body": "本文" + INJECT}, registration=registration)
        mail.queue("survey_request", person.email, "survey_request", context, registration=registration)
        mail.queue("matching_invitation", person.email, "matching_invitation", {
            "person": person, "event": scene.session, "attended": scene.fieldwork,
            "invitation": SimpleNamespace(token="x" * 32), "settings": settings_for(scene.session.id),
            "organisations": event_organisation_list(scene.session.id)})
        # マイページ: the sign-in link, the duplicate sign-up's manage link, the organiser's change notice.
        mail.queue("my_page_link", person.email, "my_page_link",
                   {"link": "https://example.jp/my/" + "x" * 43, "expires_at": registration.created_at,
                    "minutes": 30})
        mail.queue("manage_link", person.email, "manage_link", {**context, "my_url": "https://example.jp/my"},
                   registration=registration)
        mail.queue("attendee_changed", registration.event.organiser_email, "attendee_changed", {
            **context, "changes": {"name": {"before": "前" + INJECT, "after": registration.name}},
            "labels": {"name": "氏名"}})
        # Announcements: the opt-in confirmation, and an announcement with its List-Unsubscribe headers.
        announcements.request_opt_in(registration)
        consent = announcements.set_from_mypage(person, True)
        mail.queue("announcement", person.email, "announcement",
                   announcements.announcement_context(scene.session, person, consent, "ひとこと" + INJECT),
                   headers=announcements.unsubscribe_headers(consent))
    queued |= {"staff_message", "survey_request", "matching_invitation", "my_page_link", "manage_link",
               "attendee_changed", "announcement", "announcement_opt_in"}
    assert queued == MAIL_KINDS  # a new mail template must be added here
    db.session.commit()  # on PostgreSQL the derived subjects must fit outbox.subject varchar(300)

    messages = db.session.execute(select(OutboxMessage)).scalars().all()
    assert max(len(m.subject) for m in messages) == 300  # the 300-character title: shortened with …
    assert all(len(m.subject) <= 300 and "\n" not in m.subject for m in messages)
    sent, failed = mail.deliver_due(limit=1000)
    assert (sent, failed) == (len(messages), 0)

    emails = sent_mail()
    assert len(emails) == len(messages)
    subjects = set()
    for email in emails:
        names = {name.lower() for name in email}
        assert names <= MAIL_HEADERS, names - MAIL_HEADERS
        assert "reply-to" not in names  # the stored organiser address is not one address
        recipients = email.get_all("To")
        assert len(recipients) == 1 and "attacker" not in str(recipients[0])
        assert "\n" not in str(email["Subject"])
        subjects.add(str(email["Subject"]))
        # The attached invite, built at send time from the hostile rows, parses too.
        for part in email.iter_attachments():
            Calendar.from_ical(part.get_content())
    assert {str(e["To"]) for e in emails} >= {"confirmed@example.com", "undisclosed-recipients:;"}
    assert any(s.endswith("…") for s in subjects)
