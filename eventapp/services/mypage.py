"""マイページ: a participant proves they own an address by a mailed, single-use sign-in link, then
sees and manages every registration of that address.

Security properties (see docs/mypage.md):
- The link's token (secrets.token_urlsafe(32)) is only in the mail; the database holds its SHA-256.
- A link is used once (an UPDATE … WHERE used_at IS NULL decides a race) and expires after
  MY_LINK_TTL_MINUTES.
- Asking for a link answers the same, with the same work (a row is written either way), whether the
  address is known or not: nobody learns from /my whether an address has registered.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from email_validator import EmailNotValidError
from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import or_, select, update
from sqlalchemy.orm import selectinload

from ..extensions import db
from ..models import (
    ATTENDEE_FIELDS,
    AuditEntry,
    CheckIn,
    Event,
    MyPageLink,
    OutboxMessage,
    Person,
    Registration,
)
from ..models.base import utcnow
from ..models.person import new_calendar_token
from ..urls import external_url
from . import audit, mail
from .capacity import roster_frozen
from .errors import DomainError, NotFound, ValidationFailed
from .people import clean_text, is_kana_reading, normalise_email, validate_person
from .registration import apply_attendee_changes, validate_answers, waitlist_position

LINK_MAIL = "my_page_link"
MANAGE_LINK_MAIL = "manage_link"
STAFF_CHANGE_MAIL = "attendee_changed"
# One "manage link" mail per registration in this time, however often a duplicate sign-up is tried
# (a stranger could otherwise fill the owner's inbox by signing up with their address).
MANAGE_LINK_QUIET = timedelta(minutes=10)


def clock() -> datetime:
    """The time マイページ works with; tests replace it to move through expiry."""
    return utcnow()


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def address_key(raw: str) -> str:
    """The per-address rate-limit key: the normalised address (or the raw text), hashed."""
    text = clean_text(raw).lower()
    with contextlib.suppress(EmailNotValidError):
        text = normalise_email(text)
    return hash_token(text)


def _person_by_email(email: str) -> Person | None:
    return db.session.execute(
        select(Person).where(Person.email == email, Person.anonymised_at.is_(None))
    ).scalar_one_or_none()


# --- sign-in links -------------------------------------------------------------------------------

def request_link(raw_email: str, *, now: datetime | None = None) -> str:
    """Mail a sign-in link to the address if anybody registered with it. Returns the normalised address.

    Known and unknown addresses take the same path: a token is made and hashed, a row is written
    (without a person for an unknown address, so it never signs anyone in) and the mail is rendered;
    only the last step, putting it into the outbox, is left out for an unknown address."""
    text = clean_text(raw_email)
    if not text:
        raise ValidationFailed({"email": _("メールアドレスを入力してください。")})
    if len(text) > 254:
        raise ValidationFailed({"email": _("メールアドレスが長すぎます。")})
    try:
        email = normalise_email(text)
    except EmailNotValidError:
        raise ValidationFailed({"email": _("メールアドレスの形式が正しくありません。")}) from None
    now = now or clock()
    person = _person_by_email(email)
    token = secrets.token_urlsafe(32)
    expires = now + timedelta(minutes=current_app.config["MY_LINK_TTL_MINUTES"])
    db.session.add(MyPageLink(token_hash=hash_token(token), person_id=person.id if person else None,
                              created_at=now, expires_at=expires))
    db.session.flush()
    context = {"link": external_url("mypage.open_link", token=token), "expires_at": expires,
               "minutes": current_app.config["MY_LINK_TTL_MINUTES"]}
    if person is not None:
        mail.queue(LINK_MAIL, person.email, LINK_MAIL, context)
    else:
        # The same rendering, thrown away, and one statement in place of the outbox INSERT.
        mail.render(LINK_MAIL, context)
        db.session.execute(select(OutboxMessage.id).where(OutboxMessage.id == -1))
    return email


def _link_by_token(token: str) -> MyPageLink | None:
    if not token or len(token) > 100:
        return None
    return db.session.execute(
        select(MyPageLink).where(MyPageLink.token_hash == hash_token(token))
    ).scalar_one_or_none()


def check_link(token: str, *, now: datetime | None = None) -> MyPageLink:
    """The link if it can still sign someone in (without using it up), else NotFound with the reason."""
    now = now or clock()
    link = _link_by_token(token)
    if link is None or link.person_id is None or link.person.anonymised_at is not None:
        raise NotFound("link_not_found", _("このリンクは無効です。もう一度マイページのリンクをお申し込みください。"))
    if link.used_at is not None:
        raise NotFound("link_used", _("このリンクは既に使われています。リンクは一度だけ使えます。"
                                      "もう一度マイページのリンクをお申し込みください。"))
    if now >= link.expires_at:
        raise NotFound("link_expired", _("このリンクは有効期限(%(n)s分)を過ぎています。"
                                         "もう一度マイページのリンクをお申し込みください。",
                                         n=current_app.config["MY_LINK_TTL_MINUTES"]))
    return link


def consume_link(token: str, *, now: datetime | None = None) -> MyPageLink:
    """Use a sign-in link up (single use) and return it; the session remembers the link's id."""
    now = now or clock()
    link = check_link(token, now=now)
    # Conditional: of two clicks at once, exactly one finds used_at still empty.
    used = db.session.execute(
        update(MyPageLink).where(MyPageLink.id == link.id, MyPageLink.used_at.is_(None))
        .values(used_at=now).execution_options(synchronize_session=False)
    ).rowcount
    if not used:
        raise NotFound("link_used", _("このリンクは既に使われています。リンクは一度だけ使えます。"
                                      "もう一度マイページのリンクをお申し込みください。"))
    db.session.refresh(link)
    return link


def session_person(link_id: object) -> Person | None:
    """The person of a signed-in session (by the link it was opened with), unless logged out or anonymised."""
    if not isinstance(link_id, int):
        return None
    link = db.session.get(MyPageLink, link_id)
    if link is None or link.used_at is None or link.signed_out_at is not None or link.person is None:
        return None
    return link.person if link.person.anonymised_at is None else None


def sign_out(link_id: object, *, now: datetime | None = None) -> None:
    """End the session server-side: a copy of the cookie no longer signs in."""
    if isinstance(link_id, int):
        db.session.execute(update(MyPageLink).where(MyPageLink.id == link_id, MyPageLink.signed_out_at.is_(None))
                           .values(signed_out_at=now or clock()))


def purge_links(*, now: datetime | None = None) -> int:
    """Delete links that expired over a day ago (their sessions have ended by then)."""
    now = now or clock()
    cutoff = now - timedelta(hours=current_app.config["MY_SESSION_MAX_HOURS"] + 1)
    result = db.session.execute(MyPageLink.__table__.delete().where(MyPageLink.expires_at < cutoff))
    return result.rowcount


# --- the overview ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Entry:
    registration: Registration
    event: Event
    position: int | None
    can_cancel: bool
    can_edit: bool
    past: bool


def own_registration(person: Person, registration_id: int) -> Registration:
    """One of the person's registrations, or NotFound (also for somebody else's)."""
    registration = db.session.get(Registration, registration_id)
    if registration is None or registration.person_id != person.id:
        raise NotFound("registration_not_found", _("お申し込みが見つかりません。"))
    return registration


def editable(registration: Registration, now: datetime) -> bool:
    return registration.status != "cancelled" and now < registration.event.starts_at


def overview(person: Person, *, now: datetime | None = None) -> tuple[list[Entry], list[Entry]]:
    """(upcoming, past) entries of every registration of the address; upcoming soonest first."""
    now = now or clock()
    registrations = db.session.execute(
        select(Registration).join(Event).where(Registration.person_id == person.id, Event.status != "draft")
        .options(selectinload(Registration.event), selectinload(Registration.answers))
        .order_by(Event.starts_at, Registration.id)
    ).scalars().all()
    upcoming: list[Entry] = []
    past: list[Entry] = []
    for registration in registrations:
        event = registration.event
        deadline = event.cancellation_deadline or event.starts_at
        entry = Entry(registration, event, waitlist_position(registration),
                      can_cancel=registration.is_active and now < deadline,
                      can_edit=editable(registration, now), past=event.ends_at < now)
        (past if entry.past else upcoming).append(entry)
    past.reverse()  # the most recent first
    return upcoming, past


# --- changes -------------------------------------------------------------------------------------

def update_attendee(registration: Registration, data: dict, answers: dict, *, by: str,
                    now: datetime | None = None, form_language: str = "ja") -> dict:
    """The participant changes a registration's attendee details and answers (until the event starts).

    Validated like a sign-up; applied by the same `registration.apply_attendee_changes` as staff
    corrections, and audit-logged in the same shape (`changes`: field → before/after). Once the
    roster is frozen (printed lists may be out) the event's organiser is also told by mail.
    Returns the changes ({} if none)."""
    now = now or clock()
    event = registration.event
    if registration.status == "cancelled":
        raise DomainError("registration_cancelled", _("キャンセル済みのお申し込みは変更できません。"))
    if now >= event.starts_at:
        raise DomainError("edit_closed", _("イベントが始まったため、登録内容は変更できません。事務局へ直接ご連絡ください。"))
    errors: dict[str, str] = {}
    person_data = None
    try:
        # The English form's optional reading, also for a registration made with one (kept as it is).
        latin = form_language == "en" or not is_kana_reading(registration.furigana)
        person_data = validate_person({**{f: data.get(f, "") for f in ATTENDEE_FIELDS}, "email": ""},
                                      email_required=False, latin_reading=latin)
    except ValidationFailed as exc:
        errors.update(exc.fields)
    values, answer_errors = validate_answers(event, answers)
    errors.update(answer_errors)
    if errors or person_data is None:
        raise ValidationFailed(errors)
    changes = apply_attendee_changes(registration, person_data, values)
    if not changes:
        return changes
    db.session.flush()
    labels = _change_labels(event)
    names = "、".join(labels.get(k, k) for k in changes)
    audit.record("update", "registration", registration.id,
                 f"{registration.name}(「{event.title}」): 本人がマイページで変更({names})",
                 {"by": by, "event_id": event.id, "person_id": registration.person_id, "changes": changes},
                 actor=by)
    if roster_frozen(event, now) and event.organiser_email:
        mail.queue(STAFF_CHANGE_MAIL, event.organiser_email, STAFF_CHANGE_MAIL, {
            "event": event, "registration": registration, "changes": changes, "labels": labels})
    return changes


def _change_labels(event: Event) -> dict[str, str]:
    from .participants import ATTENDEE_LABELS
    return {**ATTENDEE_LABELS, **{f"answers.{q.key}": q.label for q in event.questions}}


def resend_ticket(registration: Registration) -> None:
    """Queue the registration's confirmation (or waiting-list) mail again."""
    if registration.status == "confirmed":
        mail.queue_registration_mail("registration_confirmed", registration)
    elif registration.status == "waitlisted":
        mail.queue_registration_mail("registration_waitlisted", registration,
                                     waitlist_position=waitlist_position(registration))
    elif registration.status == "applied":  # a lottery application: no ticket until the draw
        mail.queue_registration_mail("registration_applied", registration)
    elif registration.status == "not_selected":
        raise DomainError("not_selected", _("抽選の結果、今回はお席をご用意できませんでした。"))
    else:
        raise DomainError("registration_cancelled", _("キャンセル済みのお申し込みです。"))


def rotate_feed(person: Person) -> str:
    """A new secret for the personal calendar feed; the old URL stops working."""
    person.calendar_token = new_calendar_token()
    db.session.flush()
    return person.calendar_token


def revoke_feed(person: Person) -> None:
    person.calendar_token = None
    db.session.flush()


def resend_manage_link(event_id: int, raw_email: str, *, now: datetime | None = None) -> bool:
    """After a refused duplicate sign-up: mail the existing registration's manage link to the
    address (the owner's inbox, never the page). Runs in its own transaction after the sign-up's
    rollback. Returns whether a mail was queued."""
    now = now or utcnow()
    try:
        email = normalise_email(clean_text(raw_email))
    except EmailNotValidError:
        return False
    person = _person_by_email(email)
    if person is None:
        return False
    registration = db.session.execute(
        select(Registration).where(Registration.event_id == event_id, Registration.person_id == person.id,
                                   Registration.status != "cancelled")
    ).scalar_one_or_none()
    if registration is None:
        return False
    recent = db.session.execute(
        select(OutboxMessage.id).where(OutboxMessage.registration_id == registration.id,
                                       OutboxMessage.kind == MANAGE_LINK_MAIL,
                                       OutboxMessage.created_at > now - MANAGE_LINK_QUIET).limit(1)
    ).first()
    if recent is not None:
        return False
    mail.queue(MANAGE_LINK_MAIL, person.email, MANAGE_LINK_MAIL,
               {"registration": registration, "event": registration.event, "person": person,
                "my_url": external_url("mypage.request_link")}, registration=registration,
               locale=registration.locale)
    return True


# --- disclosure (APPI 第33条) -----------------------------------------------------------------

def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def export_data(person: Person) -> dict:
    """Everything held about the person: contact record, registrations with attendee and answers,
    check-ins, matching preferences/outcomes/survey answers, consent versions and audit entries."""
    from ..models import Outcome, Preference, SurveyResponse

    registrations = db.session.execute(
        select(Registration).where(Registration.person_id == person.id)
        .options(selectinload(Registration.event), selectinload(Registration.answers))
        .order_by(Registration.id)
    ).scalars().all()
    ids = [r.id for r in registrations]
    checkins = db.session.execute(select(CheckIn).where(CheckIn.registration_id.in_(ids))
                                  .order_by(CheckIn.id)).scalars().all() if ids else []
    preferences = db.session.execute(select(Preference).where(Preference.registration_id.in_(ids))
                                     .order_by(Preference.registration_id, Preference.rank)).scalars().all() if ids else []
    surveys = db.session.execute(select(SurveyResponse).where(SurveyResponse.registration_id.in_(ids))
                                 .order_by(SurveyResponse.id)).scalars().all() if ids else []
    outcomes = db.session.execute(select(Outcome).where(Outcome.person_id == person.id)
                                  .order_by(Outcome.id)).scalars().all()
    conditions = [(AuditEntry.object_type == "person") & (AuditEntry.object_id == person.id)]
    if ids:
        conditions.append((AuditEntry.object_type == "registration") & AuditEntry.object_id.in_(ids))
    entries = db.session.execute(select(AuditEntry).where(or_(*conditions)).order_by(AuditEntry.id)).scalars().all()
    from .announcements import consent_for
    announcement = consent_for(person)
    return {
        "person": {"email": person.email, "name": person.name, "furigana": person.furigana, "phone": person.phone,
                   "prefecture": person.prefecture, "iwate_relation": person.iwate_relation,
                   "occupation": person.occupation, "skills": person.skills,
                   "created_at": _iso(person.created_at), "updated_at": _iso(person.updated_at),
                   "calendar_feed": bool(person.calendar_token)},
        "registrations": [{
            "id": r.id, "event": r.event.title, "event_starts_at": _iso(r.event.starts_at), "status": r.status,
            "attendee": r.attendee, "answers": [{"question": a.question_label, "value": a.value} for a in r.answers],
            "created_at": _iso(r.created_at), "confirmed_at": _iso(r.confirmed_at),
            "waitlisted_at": _iso(r.waitlisted_at), "cancelled_at": _iso(r.cancelled_at),
            "cancelled_by": r.cancelled_by, "source": r.source, "ticket_code": r.ticket_code,
            "consent_version": r.consent_version, "consent_language": r.consent_language,
            "consent_at": _iso(r.consent_at), "staff_note": r.staff_note,
        } for r in registrations],
        "checkins": [{"registration_id": c.registration_id, "checked_in_at": _iso(c.checked_in_at),
                      "source": c.source, "undone_at": _iso(c.undone_at)} for c in checkins],
        "matching_preferences": [{"registration_id": p.registration_id, "rank": p.rank,
                                  "organisation": p.organisation.name if p.organisation else ""}
                                 for p in preferences],
        "matching_outcomes": [{"organisation": o.organisation.name if o.organisation else "", "status": o.status,
                               "matched_on": o.matched_on.isoformat() if o.matched_on else None,
                               "project_type": o.project_type, "description": o.description} for o in outcomes],
        "survey_answers": [{"registration_id": s.registration_id, "satisfaction": s.satisfaction,
                            "would_join_again": s.would_join_again, "comment": s.comment,
                            "submitted_at": _iso(s.submitted_at)} for s in surveys],
        "consents": sorted({(r.consent_version, _iso(r.consent_at)) for r in registrations}),
        "announcement_consent": None if announcement is None else {
            "status": announcement.status, "version": announcement.consent_version,
            "consented_at": _iso(announcement.consented_at), "source": announcement.source,
            "withdrawn_at": _iso(announcement.withdrawn_at), "withdrawn_via": announcement.withdrawn_via},
        "audit": [{"at": _iso(e.at), "actor": e.actor, "action": e.action, "object": f"{e.object_type}:{e.object_id}",
                   "summary": e.summary, "details": e.details} for e in entries],
    }


def export_rows(data: dict) -> tuple[list[str], list[list[object]]]:
    """The export as one long table (区分, 項目, 値) for a spreadsheet."""
    rows: list[list[object]] = []

    def flat(section: str, prefix: str, value: object) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                flat(section, f"{prefix}.{key}" if prefix else str(key), item)
        elif isinstance(value, list | tuple):
            for n, item in enumerate(value, start=1):
                flat(section, f"{prefix}[{n}]", item)
        else:
            rows.append([section, prefix, "" if value is None else value])

    for section, value in data.items():
        flat(section, "", value)
    return ["区分", "項目", "値"], rows
