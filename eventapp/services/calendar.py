"""Calendar invites (.ics) for events, registrations and feeds, built with the `icalendar` library.

Shape of an event in a calendar
    One VEVENT per EventDay. A two-day fieldwork (Sat 9:00–18:00, Sun 8:30–12:00) becomes two
    entries at the real hours: Google, Outlook and iPhone then show each day as a normal timed block,
    the night in between stays free, each day gets its own reminders (the day before, 2 hours before)
    and each VEVENT's description holds that day's programme. One VEVENT spanning Sat 9:00 – Sun 12:00
    would instead be drawn as a 27-hour bar (an all-day banner in most month/week views), block the
    night, and remind only once before Saturday. A one-day event simply has one day. Downloads and
    feeds hold all days in one file; mails attach one invite per day (invite.ics, invite-day2.ics),
    since an iTIP REQUEST/CANCEL is about a single UID.

UIDs are stable per day position: `event-<id>-<n>@<domain>` for the public calendar and feeds,
`reg-<registration id>-<n>@<domain>` for a person's own invite. Day rows are rebuilt when staff edit
the programme, so their ids are not used. A person's invite has its own UID so that cancelling a
registration (METHOD:CANCEL) removes only their copy, and a new registration after a cancellation is
a new entry rather than a resurrected cancelled one.

SEQUENCE is `Event.sequence` (bumped by services.events on every change of time, place or status),
plus one once a person's registration is cancelled, so a cancellation always supersedes the invite.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from email.utils import parseaddr
from functools import lru_cache
from urllib.parse import urlencode, urlsplit

from flask import Flask, current_app
from flask_babel import force_locale
from icalendar import Alarm, Calendar, Timezone, vCalAddress, vText
from icalendar import Event as VEvent
from sqlalchemy import event as sa_event
from sqlalchemy import func, inspect, select
from sqlalchemy.orm import Session, selectinload

from ..extensions import db
from ..formatting import JST, format_range, kind_label
from ..models import (
    CALENDAR_ALARMS,
    EVENT_KINDS,
    Event,
    EventDay,
    OutboxMessage,
    Person,
    ProgrammeItem,
    Registration,
)
from ..models.base import utcnow
from ..urls import external_url
from .errors import NotFound
from .text import single_line

TZID = "Asia/Tokyo"
PRODID = "-//Iwate Enren Fukugyo-ka//eventapp//JA"
# What each Event.calendar_alarms code means: a time before each day's start, or "eve" for 18:00 JST
# the evening before (fieldwork: time to pack).
ALARM_OFFSETS: dict[str, timedelta | str] = {
    "1w": timedelta(weeks=1), "3d": timedelta(days=3), "eve": "eve", "1d": timedelta(days=1),
    "3h": timedelta(hours=3), "2h": timedelta(hours=2), "1h": timedelta(hours=1),
    "30m": timedelta(minutes=30), "15m": timedelta(minutes=15),
}
# How staff see each choice (event form) and how the alarm reads when it rings.
ALARM_LABELS = {"1w": "1週間前", "3d": "3日前", "eve": "前日18:00", "1d": "1日前", "3h": "3時間前",
                "2h": "2時間前", "1h": "1時間前", "30m": "30分前", "15m": "15分前"}
_ALARM_RINGS = {"1w": "1週間後", "3d": "3日後", "eve": "明日", "1d": "明日", "3h": "3時間後", "2h": "2時間後",
                "1h": "1時間後", "30m": "30分後", "15m": "15分後"}
# Defaults per kind, used while an event's calendar_alarms is NULL.
KIND_ALARMS: dict[str, tuple[str, ...]] = {"fieldwork": ("eve", "2h"), "online_seminar": ("1d", "15m")}
DEFAULT_ALARMS = ("1d", "2h")

# Statuses without a seat (waiting, or a lottery application not drawn or not selected): no invite.
NO_INVITE = ("waitlisted", "applied", "not_selected")


def default_alarms(kind: str) -> tuple[str, ...]:
    return KIND_ALARMS.get(kind, DEFAULT_ALARMS)


def event_alarms(event: Event) -> tuple[str, ...]:
    """The event's reminder codes: its own choice, else its kind's defaults. Unknown stored codes are
    skipped (a builder never raises on stored data)."""
    chosen = event.calendar_alarms
    if not isinstance(chosen, list):
        return default_alarms(event.kind)
    return tuple(code for code in CALENDAR_ALARMS if code in chosen)


def _alarm_text(code: str, kind: str) -> str:
    rings = _ALARM_RINGS[code]
    if code.endswith(("h", "m")):
        rings += "に集合" if kind == "fieldwork" else "に開始"
    return rings


EVE_REMINDER_HOUR = 18
# Past events stay in feeds for a while so a subscribed calendar keeps its history.
FEED_PAST_WINDOW = timedelta(days=365)
ICS_MIMETYPE = "text/calendar; charset=utf-8"
# Mails that carry the invite (REQUEST), and those that withdraw it (CANCEL) once it is void.
INVITE_KINDS = {"registration_confirmed", "registration_promoted", "registration_confirmed_by_staff", "event_updated",
                "join_url_revealed"}
CANCEL_KINDS = {"registration_cancelled", "event_cancelled", "event_updated"}


# --- building blocks -------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _vtimezone_ical() -> bytes:
    # Japan has had no DST since 1951, so the generated VTIMEZONE is a single STANDARD rule.
    return Timezone.from_tzid(TZID, first_date=date(1970, 1, 1), last_date=date(2038, 1, 1)).to_ical()


def _vtimezone() -> Timezone:
    return Timezone.from_ical(_vtimezone_ical())


def uid_domain() -> str:
    """Stable right-hand side of every UID (override with CALENDAR_UID_DOMAIN if the host moves)."""
    return current_app.config.get("CALENDAR_UID_DOMAIN") or urlsplit(
        current_app.config["PUBLIC_BASE_URL"]).hostname or "eventapp.local"


def event_uid(event: Event, position: int) -> str:
    return f"event-{event.id}-{position}@{uid_domain()}"


def registration_uid(registration: Registration, position: int) -> str:
    return f"reg-{registration.id}-{position}@{uid_domain()}"


@dataclass(frozen=True)
class _Span:
    position: int  # 1-based day number
    starts_at: datetime
    ends_at: datetime
    day: EventDay | None


def _spans(event: Event) -> list[_Span]:
    # Days are the source of truth (services.events keeps the event's start/end in step with them):
    # one entry per day, always, so every day's UID is in every update and cancellation.
    if event.days:
        spans = [_Span(i, d.starts_at, d.ends_at, d) for i, d in enumerate(event.days, start=1)]
    else:
        spans = [_Span(1, event.starts_at, event.ends_at, None)]
    # 集合 / 解散: the first day begins at the meeting time, the last ends at dismissal (a time that
    # would turn a day inside out is ignored rather than written as an entry ending before it starts).
    if event.meeting_at is not None and event.meeting_at < spans[0].ends_at:
        spans[0] = replace(spans[0], starts_at=event.meeting_at)
    if event.dismissal_at is not None and event.dismissal_at > spans[-1].starts_at:
        spans[-1] = replace(spans[-1], ends_at=event.dismissal_at)
    return spans


def _span_location(event: Event, span: _Span) -> str:
    """The first day of an onsite event with a 集合 time starts where people meet (meeting_point)."""
    if span.position == 1 and event.meeting_at is not None and event.meeting_point and not event.is_online:
        return single_line(event.meeting_point)
    return location_text(event)


def location_text(event: Event) -> str:
    if event.is_online:
        return "オンライン"
    # One line: a stored CR/LF (rows from before the single-line rules) must not reach the file.
    return ", ".join(single_line(p) for p in (event.venue_name, event.venue_address) if p)


def _mail_address(value: str | None) -> str:
    """A stored address if it is one valid address, else "" (a calendar is built from whatever the
    database holds; icalendar refuses CR/LF in a CAL-ADDRESS, and that once made every calendar of
    an event a 500)."""
    from email_validator import EmailNotValidError, validate_email

    try:
        return validate_email((value or "").strip(), check_deliverability=False).normalized
    except EmailNotValidError:
        return ""


def _organizer(event: Event) -> vCalAddress:
    name = single_line(event.organiser_name or current_app.config.get("ORGANISER_NAME", ""))
    email = (_mail_address(event.organiser_email) or parseaddr(current_app.config.get("MAIL_SENDER", ""))[1]
             or "noreply@example.jp")
    organizer = vCalAddress(f"mailto:{email}")
    if name:
        organizer.params["CN"] = vText(name)
    return organizer


def _programme_lines(span: _Span) -> list[str]:
    if span.day is None or not span.day.items:
        return []
    lines = ["■ プログラム"]
    for item in span.day.items:
        when = item.starts_at.strftime("%H:%M") + (f"〜{item.ends_at.strftime('%H:%M')}" if item.ends_at else "")
        lines.append(f"{when} {item.title}" + (f"({item.place})" if item.place else ""))
    return lines


def description_text(event: Event, span: _Span, total_days: int, *, join_url: str = "",
                     manage_url: str = "") -> str:
    """Plain-text DESCRIPTION: what, when, the day's programme, meeting point, links."""
    lines: list[str] = []
    if event.status == "cancelled":
        lines += ["【このイベントは中止になりました】", ""]
    if event.summary:
        lines += [event.summary, ""]
    day_label = f"({span.position}日目/全{total_days}日)" if total_days > 1 else ""
    lines.append(f"日時: {format_range(span.starts_at, span.ends_at)}{day_label}")
    lines.append(f"会場: {location_text(event)}")
    if event.meeting_point:
        lines.append(f"集合: {event.meeting_point}")
    programme = _programme_lines(span)
    if programme:
        lines += ["", *programme]
    if event.what_to_bring:
        lines += ["", f"■ 持ち物\n{event.what_to_bring}"]
    if join_url:
        lines += ["", f"■ 参加URL\n{join_url}"]
    if manage_url:
        lines += ["", f"■ お申し込み内容の確認・キャンセル\n{manage_url}"]
    lines += ["", f"詳細: {external_url('public.event_detail', slug=event.slug)}"]
    return "\n".join(lines).strip()


def _trigger(before: timedelta | str, starts_at: datetime) -> timedelta:
    """How long before `starts_at` an alarm rings; "eve" is 18:00 JST on the day before, written as a
    relative trigger too (clients handle relative triggers far better than absolute ones)."""
    if before == "eve":
        day_before = starts_at.astimezone(JST).date() - timedelta(days=1)
        eve = datetime(day_before.year, day_before.month, day_before.day, EVE_REMINDER_HOUR, tzinfo=JST)
        return eve - starts_at
    return -before


def _vevents(event: Event, *, uid, now: datetime, status: str, sequence: int, last_modified: datetime,
             join_url: str = "", manage_url: str = "", attendee: Registration | None = None) -> list[VEvent]:
    spans = _spans(event)
    summary = ("【中止】" if status == "CANCELLED" else "") + single_line(event.title)
    url = external_url("public.event_detail", slug=event.slug)
    result = []
    for span in spans:
        vevent = VEvent()
        vevent.add("uid", uid(span.position))
        vevent.add("dtstamp", now.astimezone(UTC))
        vevent.add("sequence", sequence)
        vevent.add("last-modified", last_modified.astimezone(UTC))
        vevent.add("created", event.created_at.astimezone(UTC))
        day_title = (single_line(span.day.title) if span.day and span.day.title else f"{span.position}日目")
        vevent.add("summary", f"{summary}({day_title})" if len(spans) > 1 else summary)
        vevent.add("dtstart", span.starts_at.astimezone(JST))
        vevent.add("dtend", span.ends_at.astimezone(JST))
        vevent.add("status", status)
        vevent.add("transp", "OPAQUE")
        vevent.add("location", _span_location(event, span))
        if not event.is_online and event.latitude is not None and event.longitude is not None:
            vevent.add("geo", (event.latitude, event.longitude))
        vevent.add("url", url)
        vevent.add("categories", [kind_label(event.kind)])
        vevent.add("description", description_text(event, span, len(spans), join_url=join_url,
                                                   manage_url=manage_url))
        vevent.add("organizer", _organizer(event))
        email = attendee.person.email if attendee is not None and attendee.person is not None else None
        attendee_email = _mail_address(email) if email else ""
        if attendee_email:
            # The registration's attendee at the address the invite is mailed to.
            address = vCalAddress(f"mailto:{attendee_email}")
            address.params.update({"CN": vText(single_line(attendee.name)), "ROLE": "REQ-PARTICIPANT",
                                   "PARTSTAT": "DECLINED" if status == "CANCELLED" else "ACCEPTED",
                                   "RSVP": "FALSE"})
            vevent.add("attendee", address)
        if status != "CANCELLED":
            for code in event_alarms(event):
                alarm = Alarm()
                alarm.add("action", "DISPLAY")
                alarm.add("trigger", _trigger(ALARM_OFFSETS[code], span.starts_at))
                alarm.add("description", f"{_alarm_text(code, event.kind)}: {single_line(event.title)}")
                vevent.add_component(alarm)
        result.append(vevent)
    return result


def _calendar(method: str, vevents: Iterable[VEvent | bytes], *, name: str | None = None) -> bytes:
    head, end = _calendar_frame(method, name)
    return head + b"".join(v if isinstance(v, bytes) else v.to_ical() for v in vevents) + end


@lru_cache(maxsize=32)
def _calendar_frame(method: str, name: str | None) -> tuple[bytes, bytes]:
    """The VCALENDAR around the events (properties and VTIMEZONE), serialised once per method and
    name: every confirmation mail carries an invite, and this part never changes."""
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", method)
    if name:
        cal.add("name", name)
        cal.add("x-wr-calname", name)
        cal.add("x-wr-timezone", TZID)
        cal.add("refresh-interval", timedelta(hours=1), parameters={"VALUE": "DURATION"})
        cal.add("x-published-ttl", "PT1H")
    cal.add_component(_vtimezone())
    head, end = cal.to_ical().rsplit(b"END:VCALENDAR", 1)
    return head, b"END:VCALENDAR" + end


# --- public calendars ------------------------------------------------------------------------

def _public_vevents(event: Event, now: datetime) -> list[VEvent]:
    status = "CANCELLED" if event.status == "cancelled" else "CONFIRMED"
    return _vevents(event, uid=lambda n: event_uid(event, n), now=now, status=status,
                    sequence=event.sequence or 0, last_modified=event.updated_at)


def event_ics(event: Event, *, now: datetime | None = None) -> bytes:
    """The public calendar of one event (no join URL, no personal links)."""
    with force_locale("ja"):  # calendar text is Japanese whatever language the page is shown in
        return _calendar("PUBLISH", _public_vevents(event, now or utcnow()))


# Feeds are polled by every subscribed calendar, so they are served from a per-process cache that
# one aggregate query validates: any change to an event, its days or programme moves its updated_at
# (see _touch_events_on_programme_change), and the window start moves the key once a day.
_feed_cache: dict[tuple, bytes] = {}
# Serialised VEVENTs per event version, so rebuilding a feed after one edit re-renders one event.
_vevent_cache: dict[tuple, bytes] = {}
_VEVENT_CACHE_MAX = 20000


def _feed_window(now: datetime) -> datetime:
    cutoff = (now - FEED_PAST_WINDOW).astimezone(JST)
    return cutoff.replace(hour=0, minute=0, second=0, microsecond=0)


def _feed_fingerprint(kind: str | None, cutoff: datetime) -> tuple:
    stmt = select(func.count(Event.id), func.max(Event.updated_at), func.sum(Event.sequence), func.max(Event.id)
                  ).where(Event.status != "draft", Event.ends_at >= cutoff)
    if kind is not None:
        stmt = stmt.where(Event.kind == kind)
    count, updated, sequences, last_id = db.session.execute(stmt).one()
    return (kind, cutoff, count, str(updated), sequences, last_id, current_app.config["PUBLIC_BASE_URL"])


def _vevent_key(event_id: int, updated_at: datetime, sequence: int, status: str) -> tuple:
    return (event_id, updated_at, sequence, status, current_app.config["PUBLIC_BASE_URL"])


def _feed_vevents(kind: str | None, cutoff: datetime, now: datetime) -> list[bytes]:
    """Serialised VEVENTs in feed order; only events without a cached rendering are loaded as objects."""
    stmt = (select(Event.id, Event.updated_at, Event.sequence, Event.status)
            .where(Event.status != "draft", Event.ends_at >= cutoff).order_by(Event.starts_at, Event.id))
    if kind is not None:
        stmt = stmt.where(Event.kind == kind)
    keys = [_vevent_key(*row) for row in db.session.execute(stmt).all()]
    missing = [key[0] for key in keys if key not in _vevent_cache]
    if len(_vevent_cache) + len(missing) > _VEVENT_CACHE_MAX:
        _vevent_cache.clear()
        missing = [key[0] for key in keys]
    for start in range(0, len(missing), 500):  # one query per table per 500 events (selectinload)
        events = db.session.execute(
            select(Event).where(Event.id.in_(missing[start:start + 500]))
            .options(selectinload(Event.days).selectinload(EventDay.items))
        ).scalars().all()
        for event in events:
            key = _vevent_key(event.id, event.updated_at, event.sequence, event.status)
            _vevent_cache[key] = b"".join(v.to_ical() for v in _public_vevents(event, now))
    return [_vevent_cache[key] for key in keys if key in _vevent_cache]


def public_feed_ics(kind: str | None = None, *, now: datetime | None = None) -> bytes:
    """All published (and cancelled, so subscribers drop them) events, optionally of one kind."""
    if kind is not None and kind not in EVENT_KINDS:
        raise NotFound("feed_not_found", "カレンダーが見つかりません。")
    now = now or utcnow()
    cutoff = _feed_window(now)
    key = _feed_fingerprint(kind, cutoff)
    cached = _feed_cache.get(kind)
    if cached is not None and cached[0] == key:
        return cached[1]
    with force_locale("ja"):
        name = "遠恋複業課 イベント" + (f"({kind_label(kind)})" if kind else "")
        vevents = _feed_vevents(kind, cutoff, now)
        body = _calendar("PUBLISH", vevents, name=name)
    _feed_cache[kind] = (key, body)
    return body


# --- personal calendars ----------------------------------------------------------------------

def join_url_for(registration: Registration, now: datetime | None = None) -> str:
    """The online join URL, only ever for a confirmed registration of a live online seminar, and
    not before the time staff chose to reveal it (a calendar fetched earlier gets it on its next refresh)."""
    event = registration.event
    if registration.status == "confirmed" and event.status == "published" and event.join_url_revealed(now):
        return event.online_url
    return ""


def _registration_vevents(registration: Registration, now: datetime, *, attendee: bool) -> list[VEvent]:
    event = registration.event
    cancelled = registration.status == "cancelled" or event.status == "cancelled"
    sequence = (event.sequence or 0) + (1 if registration.status == "cancelled" else 0)
    last_modified = max(event.updated_at, registration.updated_at)
    return _vevents(
        event, uid=lambda n: registration_uid(registration, n), now=now,
        status="CANCELLED" if cancelled else "CONFIRMED", sequence=sequence, last_modified=last_modified,
        join_url=join_url_for(registration, now),
        manage_url=external_url("public.manage", token=registration.manage_token),
        attendee=registration if attendee else None,
    )


def registration_ics(registration: Registration, *, method: str = "PUBLISH", now: datetime | None = None) -> bytes:
    """One person's invite: the event plus their manage link (and join URL when confirmed online).

    A waitlisted registration has no invite until it is promoted.
    """
    return b"".join(registration_invites(registration, method=method, now=now, split=False))


def registration_invites(registration: Registration, *, method: str = "PUBLISH", now: datetime | None = None,
                         split: bool = True) -> list[bytes]:
    """The invite as calendars; with `split`, one per day, because an iTIP message (REQUEST/CANCEL)
    carries one UID, and Outlook only acts on the first event of a multi-UID invite."""
    if registration.status in NO_INVITE:
        raise NotFound("invite_not_available", "キャンセル待ちの間はカレンダーに登録できません。")
    if method == "REQUEST" and "cancelled" in (registration.status, registration.event.status):
        method = "CANCEL"  # iTIP: a withdrawn invite is a CANCEL, not a REQUEST with STATUS:CANCELLED
    with force_locale("ja"):
        vevents = _registration_vevents(registration, now or utcnow(), attendee=method != "PUBLISH")
        if not split:
            return [_calendar(method, vevents)]
        return [_calendar(method, [vevent]) for vevent in vevents]


def person_feed_ics(token: str, *, now: datetime | None = None) -> bytes:
    """A person's subscription feed: confirmed registrations, and cancelled ones as STATUS:CANCELLED."""
    person = person_by_calendar_token(token)
    now = now or utcnow()
    key = _person_fingerprint(person)
    cached = _feed_cache.get(("person", person.id))
    if cached is not None and cached[0] == key:
        return cached[1]
    registrations = db.session.execute(
        select(Registration).join(Event).where(
            Registration.person_id == person.id, Registration.status.not_in(NO_INVITE), Event.status != "draft")
        .options(selectinload(Registration.event).selectinload(Event.days).selectinload(EventDay.items))
        .order_by(Event.starts_at, Registration.id)
    ).scalars().all()
    # After cancel + sign up again, the live registration is enough; the old one would be noise.
    live_events = {r.event_id for r in registrations if r.status != "cancelled"}
    shown = [r for r in registrations if r.status != "cancelled" or r.event_id not in live_events]
    with force_locale("ja"):
        vevents = [v for r in shown for v in _registration_vevents(r, now, attendee=False)]
        body = _calendar("PUBLISH", vevents, name=f"遠恋複業課 {single_line(person.name)} さんの参加予定")
    if len(_feed_cache) > _VEVENT_CACHE_MAX:
        _feed_cache.clear()
    _feed_cache[("person", person.id)] = (key, body)
    return body


def _person_fingerprint(person: Person) -> tuple:
    row = db.session.execute(
        select(func.count(Registration.id), func.max(Registration.updated_at), func.max(Event.updated_at),
               func.sum(Event.sequence), func.max(Registration.id))
        .join(Event, Event.id == Registration.event_id).where(Registration.person_id == person.id)
    ).one()
    return (*(str(v) for v in row), person.name, person.email, current_app.config["PUBLIC_BASE_URL"])


def person_by_calendar_token(token: str) -> Person:
    person = None
    if token and 20 <= len(token) <= 64:
        person = db.session.execute(select(Person).where(Person.calendar_token == token)).scalar_one_or_none()
    if person is None or person.anonymised_at is not None:
        raise NotFound("feed_not_found", "カレンダーが見つかりません。")
    return person


# --- links for templates ---------------------------------------------------------------------

def _utc_stamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def web_calendar_links(event: Event, registration: Registration | None = None) -> dict[str, str]:
    """"Add to calendar" links for Google Calendar and Outlook on the web (one entry for the whole event)."""
    join_url = join_url_for(registration) if registration is not None else ""
    details = [event.summary] if event.summary else []
    if join_url:
        details.append(f"参加URL: {join_url}")
    if registration is not None:
        details.append(f"お申し込み内容: {external_url('public.manage', token=registration.manage_token)}")
    details.append(external_url("public.event_detail", slug=event.slug))
    text, body, location = event.title, "\n\n".join(details), location_text(event)
    google = "https://calendar.google.com/calendar/render?" + urlencode({
        "action": "TEMPLATE", "text": text, "details": body, "location": location, "ctz": TZID,
        "dates": f"{_utc_stamp(event.starts_at)}/{_utc_stamp(event.ends_at)}",
    })
    outlook_query = urlencode({
        "path": "/calendar/action/compose", "rru": "addevent", "subject": text, "body": body,
        "location": location, "startdt": event.starts_at.astimezone(UTC).isoformat(timespec="seconds"),
        "enddt": event.ends_at.astimezone(UTC).isoformat(timespec="seconds"),
    })
    return {
        "google": google,
        "outlook": "https://outlook.live.com/calendar/0/deeplink/compose?" + outlook_query,
        "office365": "https://outlook.office.com/calendar/0/deeplink/compose?" + outlook_query,
    }


def calendar_links(event: Event, registration: Registration | None = None) -> dict[str, str]:
    """The calendar links a page may show for one event or one registration: .ics download and web
    calendars.

    Never the address's personal feed: a manage page (or a mail) is reached with one registration's
    token, and the feed lists every registration of the address with their manage links. Anyone can
    sign up with someone else's address, so the feed is only shown where the mailbox was proven
    (マイページ, `personal_feed_links`)."""
    links = web_calendar_links(event, registration)
    if registration is None:
        links["ics"] = external_url("public.event_ics", slug=event.slug)
    elif registration.status not in NO_INVITE:
        links["ics"] = external_url("public.registration_ics", token=registration.manage_token)
    return links


def personal_feed_links(person: Person) -> dict[str, str]:
    """The subscription URLs of a person's feed ({"feed", "webcal"}; empty without a token, e.g. once
    anonymised). The feed holds the manage links of all the address's registrations: show it only
    to someone who proved they own the mailbox (マイページ), never on a manage page or in a sign-up mail."""
    if not person.calendar_token or person.anonymised_at is not None:
        return {}
    feed = external_url("public.person_feed", token=person.calendar_token)
    return {"feed": feed, "webcal": "webcal://" + feed.split("://", 1)[1]}


# --- mail -------------------------------------------------------------------------------------

def mail_attachments(kind: str, registration: Registration) -> list[dict]:
    """Hook for services.mail: the invite for confirmation, promotion and update mails, a CANCEL otherwise."""
    event = registration.event
    if registration.status in NO_INVITE or event.status == "draft":
        return []
    if kind in CANCEL_KINDS and "cancelled" in (registration.status, event.status):
        if registration.confirmed_at is None:  # never had an invite, nothing to withdraw
            return []
        method = "CANCEL"
    elif kind in INVITE_KINDS and registration.status == "confirmed" and event.status == "published":
        method = "REQUEST"
    else:
        return []
    invites = registration_invites(registration, method=method)
    return [{"filename": "invite.ics" if n == 1 else f"invite-day{n}.ics", "content": content.decode("utf-8"),
             "content_type": f"text/calendar; method={method}; charset=utf-8"}
            for n, content in enumerate(invites, start=1)]


@dataclass(frozen=True)
class EventSnapshot:
    sequence: int
    status: str
    fields: dict
    days: tuple


def snapshot(event: Event) -> EventSnapshot:
    """What calendars care about, taken before an edit (see notify_event_change)."""
    from .events import SEQUENCE_FIELDS

    return EventSnapshot(event.sequence or 0, event.status, {f: getattr(event, f) for f in SEQUENCE_FIELDS},
                         tuple((d.starts_at, d.ends_at) for d in event.days))


def notify_event_change(event: Event, before: EventSnapshot) -> list[OutboxMessage]:
    """After staff moved, relocated or cancelled an event: queue the updated invite to confirmed people.

    Day-only time changes (the programme's days edited, the overall span unchanged) also bump SEQUENCE.
    Drafts notify nobody; a cancellation goes out with METHOD:CANCEL (see mail_attachments).
    """
    from . import mail
    from .events import SEQUENCE_FIELDS

    changed = [f for f in SEQUENCE_FIELDS if getattr(event, f) != before.fields[f]]
    if tuple((d.starts_at, d.ends_at) for d in event.days) != before.days:
        changed.append("days")
        if (event.sequence or 0) == before.sequence:
            event.sequence = before.sequence + 1
    if not changed or event.status == "draft" or before.status == "draft":
        return []
    confirmed = db.session.execute(
        select(Registration).where(Registration.event_id == event.id, Registration.status == "confirmed")
        .order_by(Registration.id)
    ).scalars().all()
    messages = []
    ids = {r.id for r in confirmed}
    for registration in confirmed:
        if registration.lead_registration_id in ids:
            continue  # a companion: the lead's mail (same address) tells the group, with one invite
        message = mail.queue_registration_mail("event_updated", registration, changed=changed,
                                               join_url=join_url_for(registration))
        if message is not None:
            messages.append(message)
    return messages


def _touch_events_on_programme_change(session: Session, _context, _instances) -> None:
    """Editing an event's days or programme moves the event's updated_at (LAST-MODIFIED, feed cache)."""
    touched: set[Event] = set()
    for obj in (*session.new, *session.dirty, *session.deleted):
        if isinstance(obj, Event):
            if inspect(obj).attrs.days.history.has_changes():  # a day added or removed
                touched.add(obj)
            continue
        day = obj.day if isinstance(obj, ProgrammeItem) else obj if isinstance(obj, EventDay) else None
        if day is not None and day.event is not None:
            touched.add(day.event)
    for event in touched:
        if inspect(event).persistent and event not in session.deleted:
            event.updated_at = utcnow()


def init_app(app: Flask) -> None:
    """Register the mail hook and the template helper (called from create_app)."""
    app.extensions["eventapp_mail_attachments"] = mail_attachments
    app.jinja_env.globals["calendar_links"] = calendar_links
    if not sa_event.contains(Session, "before_flush", _touch_events_on_programme_change):
        sa_event.listen(Session, "before_flush", _touch_events_on_programme_change)


__all__ = ["ICS_MIMETYPE", "calendar_links", "event_ics", "init_app", "mail_attachments", "notify_event_change",
           "person_feed_ics", "personal_feed_links", "public_feed_ics", "registration_ics", "snapshot",
           "web_calendar_links"]
