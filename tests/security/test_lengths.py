"""Lengths agree end to end (issue 21 item 1: a 295–300-character title passed validation, but
「【参加確定】」+ title overflowed outbox.subject varchar(300) and blocked every sign-up on PostgreSQL).

Every String(n) column of the models is accounted for here: either the services (which the staff
screens and the API both call) accept exactly n characters and refuse n + 1, and the API schemas that
take the field allow exactly n; or it is a fixed choice whose longest value fits; or it is derived from
another column of the same length; or it is not typed by anyone (with the reason). A new String column
fails `test_every_string_column_is_accounted_for` until it is added to one of these lists. Run this
on PostgreSQL too, which enforces varchar lengths (SQLite does not)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import time, timedelta

import pytest
from marshmallow import Schema, validate
from sqlalchemy import String

from eventapp.api import checkin_routes, payment_routes, schemas
from eventapp.extensions import db
from eventapp.models import (
    ALLOCATIONS,
    CHECKIN_SOURCES,
    EVENT_KINDS,
    EVENT_STATUSES,
    IWATE_RELATIONS,
    QUESTION_KINDS,
    REGISTRATION_STATUSES,
    REMINDERS,
    ROLES,
)
from eventapp.models.announcement import CONSENT_SOURCES, CONSENT_STATUSES, WITHDRAWAL_CHANNELS
from eventapp.models.event import LOTTERY_LOSERS
from eventapp.models.matching import (
    ACCESS_RULES,
    ATTENDANCE_SOURCES,
    INVITATION_REASONS,
    LINK_SCOPES,
    OUTCOME_STATUSES,
)
from eventapp.models.organisation import EVENT_ORG_ROLES, IWATE_MUNICIPALITIES, PROJECT_TYPES
from eventapp.models.outbox import OUTBOX_STATUSES
from eventapp.models.payment import PAYMENT_KINDS, PAYMENT_METHODS
from eventapp.models.registration import CONSENT_LANGUAGES, MAIL_LOCALES
from eventapp.models.staff_mail import STAFF_MAIL_AUDIENCES, STAFF_MAIL_STATUSES
from eventapp.services import organisations, staff_events
from eventapp.services.accounts import create_user
from eventapp.services.errors import ValidationFailed
from eventapp.services.events import create_event
from eventapp.services.people import PREFECTURES
from eventapp.services.privacy import publish_notice
from eventapp.services.registration import register
from eventapp.services.reminders import WAITLIST_CLOSED
from tests.conftest import future, make_event, person_input


def string_columns() -> dict[str, int]:
    """"table.column" → n for every String(n) column (Text has no length and is not listed)."""
    return {f"{table.name}.{column.name}": column.type.length
            for table in db.metadata.sorted_tables for column in table.columns
            if isinstance(column.type, String) and column.type.length}


def email_of_length(n: int) -> str:
    """A valid address of exactly n characters (64-character local part, 63-character labels)."""
    local, tld = "a" * 64, ".jp"
    labels, remaining = [], n - len(local) - 1 - len(tld)
    while remaining > 0:
        take = min(63, remaining)
        if remaining - take == 1:  # a lone dot left over: shorten this label instead
            take -= 2
        labels.append("b" * take)
        remaining -= take + 1  # the label and the dot after it
    address = f"{local}@{'.'.join(labels)}{tld}"
    return address if len(address) == n else address[: n - len(tld)].rstrip(".") + tld


# --- how each user-typed column is entered ---------------------------------------------------------
# A submit(value) that raises ValidationFailed naming `field` (or a field starting with it) when refused.

def _event(**fields) -> None:
    starts = future()
    create_event({"slug": f"len-{next(_n)}", "kind": "fieldwork", "title": "長さの確認", "starts_at": starts,
                  "ends_at": starts + timedelta(hours=3), "capacity": 5, **fields})


def _day(**day) -> None:
    starts = future()
    _event(starts_at=starts, ends_at=starts + timedelta(hours=3),
           days=[{"starts_at": starts, "ends_at": starts + timedelta(hours=3), **day}])


def _question(**question) -> None:
    _event(questions=[{"key": "q1", "kind": "text", "label": "質問", **question}])


def _staff_question(**question) -> None:
    event = make_event(slug=f"lenq-{next(_n)}")
    staff_events.update_questions(event.id, [{"label": "質問", "kind": "text", **question}])


def _staff_day(**day) -> None:
    event = make_event(slug=f"lend-{next(_n)}")
    first = event.days[0]
    staff_events.update_days(event.id, [{"id": first.id, "starts_at": first.starts_at, "ends_at": first.ends_at,
                                         **day}])


def _organisation(**fields) -> None:
    organisations.create_organisation({"name": f"団体{next(_n)}", "municipality": "花巻市",
                                       "project_type": "business", **fields})


def _staff_mail(**fields) -> None:
    from eventapp.services import staff_mail

    event = make_event(slug=f"lenm-{next(_n)}")
    staff_mail.save_draft(event, {"subject": "件名", "body": "本文", "audience": "confirmed", **fields}, user=None)
    db.session.flush()


def _signup(**fields) -> None:
    event = make_event(slug=f"lens-{next(_n)}")
    register(event.id, person_input(**fields), {}, consent=True)


def _payment(note: str = "", receipt_name: str | None = None) -> None:
    from eventapp.services import payments

    event = make_event(slug=f"lenp-{next(_n)}", fee_yen=3000)
    registration = register(event.id, person_input(), {}, consent=True).registration
    payment = payments.record(event.id, registration.id, nonce=f"len-nonce-{next(_n)}", note=note).payment
    if receipt_name is not None:
        payments.set_receipt_name(payment, receipt_name)


_n = iter(range(1, 10**6))
URL = "https://meet.example/"

Submit = tuple[str, Callable[[str], None], Callable[[int], str]]  # (field, submit, value of length n)
text = lambda n: "長" * n  # noqa: E731 (three bytes in UTF-8: varchar counts characters, not bytes)

SERVICES: dict[str, list[Submit]] = {
    "events.title": [("title", lambda v: _event(title=v), text)],
    "events.title_en": [("title_en", lambda v: _event(title_en=v), text)],
    "events.slug": [("slug", lambda v: _event(slug=v), lambda n: "s" * n)],
    "events.venue_name": [("venue_name", lambda v: _event(venue_name=v), text)],
    "events.venue_address": [("venue_address", lambda v: _event(venue_address=v), text)],
    "events.online_url": [("online_url", lambda v: _event(online_url=v), lambda n: URL + "a" * (n - len(URL)))],
    "events.organiser_name": [("organiser_name", lambda v: _event(organiser_name=v), text)],
    "events.organiser_email": [("organiser_email", lambda v: _event(organiser_email=v), email_of_length)],
    "events.organiser_phone": [("organiser_phone", lambda v: _event(organiser_phone=v), lambda n: "0" * n)],
    "event_days.title": [("days", lambda v: _day(title=v), text), ("days", lambda v: _staff_day(title=v), text)],
    "programme_items.title": [
        ("days", lambda v: _day(items=[{"starts_at": time(10), "title": v}]), text),
        ("days", lambda v: _staff_day(items=[{"starts_at": time(10), "title": v}]), text)],
    "programme_items.place": [
        ("days", lambda v: _day(items=[{"starts_at": time(10), "title": "x", "place": v}]), text),
        ("days", lambda v: _staff_day(items=[{"starts_at": time(10), "title": "x", "place": v}]), text)],
    "questions.label": [("questions", lambda v: _question(label=v), text),
                        ("questions", lambda v: _staff_question(label=v), text)],
    "questions.help_text": [("questions", lambda v: _question(help_text=v), text),
                            ("questions", lambda v: _staff_question(help_text=v), text)],
    "questions.key": [("questions", lambda v: _question(key=v), lambda n: "k" * n)],
    "organisations.name": [("name", lambda v: _organisation(name=v), text)],
    "organisations.furigana": [("furigana", lambda v: _organisation(furigana=v), text)],
    "organisations.contact_name": [("contact_name", lambda v: _organisation(contact_name=v), text)],
    "organisations.contact_email": [("contact_email", lambda v: _organisation(contact_email=v), email_of_length)],
    "organisations.contact_phone": [("contact_phone", lambda v: _organisation(contact_phone=v), lambda n: "0" * n)],
    # The attendee as given at sign-up is stored on the registration and (first time) on the person.
    "people.name": [("name", lambda v: _signup(name=v), text)],
    "people.furigana": [("furigana", lambda v: _signup(furigana=v), lambda n: "あ" * n)],
    "people.email": [("email", lambda v: _signup(email=v), email_of_length)],
    "registrations.name": [("name", lambda v: _signup(name=v), text)],
    "registrations.furigana": [("furigana", lambda v: _signup(furigana=v), lambda n: "あ" * n)],
    "users.email": [("email", lambda v: create_user(v, "staff", "correct-horse-battery"), email_of_length)],
    "users.name": [("name", lambda v: create_user(f"u{next(_n)}@example.jp", "staff", "correct-horse-battery", v),
                    text)],
    "staff_mails.subject": [("subject", lambda v: _staff_mail(subject=v), text)],
    "payments.note": [("note", lambda v: _payment(note=v), text)],
    "payments.receipt_name": [("receipt_name", lambda v: _payment(receipt_name=v), text)],
    "privacy_notices.version": [("version", lambda v: publish_notice("目的", "本文", "連絡先", version=v),
                                 lambda n: "v" * n)],
}

# API fields that store into a column: their Length (or services.text validator) must be the column's.
SCHEMA_FIELDS: dict[str, list[tuple[type[Schema], str]]] = {
    "events.title": [(schemas.EventWriteSchema, "title"), (schemas.EventCreateSchema, "title")],
    "events.title_en": [(schemas.EventWriteSchema, "title_en")],
    "events.slug": [(schemas.EventWriteSchema, "slug"), (schemas.EventCreateSchema, "slug")],
    "events.venue_name": [(schemas.EventWriteSchema, "venue_name")],
    "events.venue_address": [(schemas.EventWriteSchema, "venue_address")],
    "events.online_url": [(schemas.EventWriteSchema, "online_url")],
    "events.organiser_name": [(schemas.EventWriteSchema, "organiser_name")],
    "events.organiser_email": [(schemas.EventWriteSchema, "organiser_email")],
    "events.organiser_phone": [(schemas.EventWriteSchema, "organiser_phone")],
    "event_days.title": [(schemas.EventDaySchema, "title")],
    "programme_items.title": [(schemas.ProgrammeItemSchema, "title")],
    "programme_items.place": [(schemas.ProgrammeItemSchema, "place")],
    "questions.label": [(schemas.QuestionSchema, "label")],
    "questions.help_text": [(schemas.QuestionSchema, "help_text")],
    "questions.key": [(schemas.QuestionSchema, "key")],
    "registrations.name": [(schemas.RegistrationCreateSchema, "name"), (checkin_routes.WalkInSchema, "name"),
                           (schemas.CompanionCreateSchema, "name")],
    "registrations.furigana": [(schemas.RegistrationCreateSchema, "furigana"),
                               (checkin_routes.WalkInSchema, "furigana"), (schemas.CompanionCreateSchema, "furigana")],
    "registrations.phone": [(schemas.RegistrationCreateSchema, "phone"), (checkin_routes.WalkInSchema, "phone")],
    "registrations.prefecture": [(schemas.RegistrationCreateSchema, "prefecture")],
    "people.email": [(schemas.RegistrationCreateSchema, "email"), (checkin_routes.WalkInSchema, "email")],
    "checkins.device_id": [(checkin_routes.CheckInCreateSchema, "device_id"), (checkin_routes.BatchSchema, "device_id"),
                           (checkin_routes.WalkInSchema, "device_id")],
    "payments.nonce": [(payment_routes.PaymentCreateSchema, "nonce")],
    "payments.note": [(payment_routes.PaymentCreateSchema, "note")],
    "checkins.nonce": [(checkin_routes.CheckInCreateSchema, "nonce"), (checkin_routes.BatchScanSchema, "nonce"),
                       (checkin_routes.WalkInSchema, "nonce")],
}

# Validation admits only values of a fixed list (or pattern); the longest must fit.
CHOICES: dict[str, tuple[str, ...]] = {
    "events.kind": EVENT_KINDS, "events.status": EVENT_STATUSES, "questions.kind": QUESTION_KINDS,
    "people.prefecture": PREFECTURES, "people.iwate_relation": IWATE_RELATIONS,
    "registrations.prefecture": PREFECTURES, "registrations.iwate_relation": IWATE_RELATIONS,
    "registrations.status": REGISTRATION_STATUSES, "registrations.cancelled_by": ("self", "staff", "event"),
    "registrations.source": ("web", "api", "staff", "walkin"), "checkins.source": CHECKIN_SOURCES,
    "registrations.consent_language": CONSENT_LANGUAGES,
    "registrations.locale": MAIL_LOCALES,
    "events.allocation": ALLOCATIONS, "events.lottery_losers": LOTTERY_LOSERS,
    "payments.kind": PAYMENT_KINDS, "payments.method": PAYMENT_METHODS,
    "organisations.municipality": IWATE_MUNICIPALITIES, "organisations.project_type": PROJECT_TYPES,
    "event_organisations.role": EVENT_ORG_ROLES, "matching_settings.access_rule": ACCESS_RULES,
    "matching_links.scope": LINK_SCOPES, "attendances.source": ATTENDANCE_SOURCES,
    "invitations.reason": INVITATION_REASONS, "outcomes.status": OUTCOME_STATUSES,
    "outcomes.project_type": PROJECT_TYPES, "outbox.status": OUTBOX_STATUSES, "users.role": ROLES,
    "staff_mails.status": STAFF_MAIL_STATUSES, "staff_mails.audience": STAFF_MAIL_AUDIENCES,
    "announcement_consents.status": CONSENT_STATUSES, "announcement_consents.source": CONSENT_SOURCES,
    "announcement_consents.withdrawn_via": WITHDRAWAL_CHANNELS,
    "reminder_sends.code": (*REMINDERS, WAITLIST_CLOSED),
    # A phone number is digits and hyphens, 10–21 characters (services.people._PHONE_RE).
    "people.phone": ("+" + "0" * 20,), "registrations.phone": ("+" + "0" * 20,),
}

# Copied from another column: the source's length must not exceed this one's.
DERIVED: dict[str, str] = {
    "answers.question_label": "questions.label",
    "registrations.consent_version": "privacy_notices.version",
    "outbox.to_addr": "people.email",
    "undeliverable_addresses.email": "outbox.to_addr",
    "audit_log.actor": "users.email",
    # The digits of the phone number (services.text.phone_digits): never longer than the number.
    "people.search_phone": "people.phone",
    "registrations.search_phone": "registrations.phone",
}

# Nobody types these; what writes them and why it fits.
NOT_USER_ENTERED: dict[str, str] = {
    "outbox.subject": "derived from a title; services.mail shortens it with … to the column (test below)",
    "outbox.kind": "a mail template name from the code",
    "undeliverable_addresses.reason": "the SMTP server's reply, cut to the column by services.mail.mark_undeliverable",
    "audit_log.action": "an action word from the code",
    "audit_log.object_type": "an object type from the code",
    "people.calendar_token": "secrets.token_urlsafe(32): 43 characters",
    "announcement_consents.unsubscribe_token": "secrets.token_urlsafe(24): 32 characters",
    "announcement_consents.consent_version": "services.announcements.ANNOUNCEMENT_CONSENT_VERSION, a code constant",
    "registrations.manage_token": "secrets.token_urlsafe: generated",
    "registrations.ticket_code": "generated ticket key",
    "payments.receipt_number": "R<year>-<payment id, 6 digits>: generated by services.payments.record",
    "invitations.token": "secrets.token_urlsafe: generated",
    "event_attendance_states.code": "a generated numeric 出席コード",
    "users.password_hash": "a password hash (argon2/scrypt, well under 300)",
    "api_tokens.token_hash": "sha256 hex digest: 64 characters",
    "events.lottery_seed": "secrets.token_hex(32) in services.lottery.draw: 64 characters",
    "users.totp_secret": "pyotp.random_base32(): 32 characters",
    "recovery_codes.code_hash": "sha256 hex digest: 64 characters",
    "my_page_links.token_hash": "sha256 hex digest of a マイページ sign-in token: 64 characters",
    "rate_limit_counter.key": "Flask-Limiter's key: scope, limit and the client address",
    "idempotency_keys.key": "Idempotency-Key header / form field: longer ones are refused (400) or ignored by "
                            "idempotency.valid_key at the column length (tests/api/test_idempotency.py)",
    "idempotency_keys.scope": "route, its arguments and the client, cut to the column by idempotency._scope",
    "idempotency_keys.request_hash": "sha256 hex digest: 64 characters",
}


def test_every_string_column_is_accounted_for():
    columns = string_columns()
    listed = set(SERVICES) | set(SCHEMA_FIELDS) | set(CHOICES) | set(DERIVED) | set(NOT_USER_ENTERED)
    assert not set(columns) - listed, f"String columns with no validation entry: {sorted(set(columns) - listed)}"
    assert not listed - set(columns), f"entries for columns that do not exist: {sorted(listed - set(columns))}"


@pytest.mark.parametrize("column", sorted(CHOICES))
def test_fixed_choices_fit_their_column(column):
    assert max(len(value) for value in CHOICES[column]) <= string_columns()[column]


@pytest.mark.parametrize("column", sorted(DERIVED))
def test_derived_columns_are_as_long_as_their_source(column):
    columns = string_columns()
    assert columns[DERIVED[column]] <= columns[column]


def _schema_limit(schema: type[Schema], name: str) -> int | None:
    field = schema._declared_fields[name]
    validators = list(field.validators)
    limits = []
    for validator in validators:
        if isinstance(validator, validate.Length) and validator.max is not None:
            limits.append(validator.max)
        elif getattr(validator, "limit", None) is not None:  # services.text.marshmallow_validator
            limits.append(validator.limit)
        elif isinstance(validator, validate.Regexp):
            import re
            match = re.search(r"\{1,(\d+)\}", validator.regex.pattern)
            limits.append(int(match.group(1)) if match else None)
    assert len(limits) == 1, (schema.__name__, name, validators)
    return limits[0]


@pytest.mark.parametrize("column", sorted(SCHEMA_FIELDS))
def test_api_schema_limits_equal_the_columns(column):
    length = string_columns()[column]
    for schema, name in SCHEMA_FIELDS[column]:
        assert _schema_limit(schema, name) == length, (column, schema.__name__, name)


# Staff form inputs (the screens post to the services above; maxlength makes the browser stop there too).
STAFF_FORMS: dict[str, list[str]] = {
    "/staff/events/new": ["events.title", "events.title_en", "events.slug", "events.venue_name", "events.venue_address",
                          "events.online_url", "events.organiser_name", "events.organiser_email",
                          "events.organiser_phone"],
    "/staff/organisations/new": ["organisations.name", "organisations.furigana", "organisations.contact_name",
                                 "organisations.contact_email", "organisations.contact_phone"],
}


def test_staff_form_maxlengths_equal_the_columns(app, client):
    import re

    from tests.staff_support import login, make_user

    with app.app_context():
        login(client, make_user("staff").email)
    columns = string_columns()
    for url, names in STAFF_FORMS.items():
        html = client.get(url).get_data(as_text=True)
        for column in names:
            field = column.split(".", 1)[1]
            tag = re.search(rf'<input[^>]*name="{field}"[^>]*>', html)
            assert tag, (url, field)
            maxlength = re.search(r'maxlength="(\d+)"', tag.group(0))
            assert maxlength and int(maxlength.group(1)) == columns[column], (url, field, tag.group(0))


@pytest.mark.parametrize("column", sorted(SERVICES))
def test_services_accept_the_column_length_and_refuse_one_more(ctx, column):
    length = string_columns()[column]
    for field, submit, value_of in SERVICES[column]:
        longest = value_of(length)
        assert len(longest) == length
        submit(longest)
        db.session.flush()  # PostgreSQL: the longest accepted value is stored, not refused by varchar(n)
        db.session.rollback()
        too_long = value_of(length + 1)
        assert len(too_long) == length + 1
        with pytest.raises(ValidationFailed) as caught:
            submit(too_long)
        db.session.rollback()
        assert any(key.startswith(field) for key in caught.value.fields), (column, caught.value.fields)


# --- derived text: a title as long as its column -----------------------------------------------------

def test_a_300_character_title_signs_up_by_form_api_and_phone_and_cancels(app, client, sent_mail):
    """The pen test's case, through the real routes: every mail's subject is the label plus the title,
    shortened with … to outbox.subject, so nothing overflows on PostgreSQL."""
    from sqlalchemy import select

    from eventapp.models import OutboxMessage, Registration
    from eventapp.services import mail
    from tests.conftest import csrf_token_from
    from tests.staff_support import login, make_user, post_form

    title = "岩" * string_columns()["events.title"]
    with app.app_context():
        event = make_event(title=title, capacity=2,
                           organiser_name="長" * string_columns()["events.organiser_name"],
                           venue_name="会" * string_columns()["events.venue_name"])
        slug, event_id = event.slug, event.id
        staff_email = make_user("staff").email

    # The sign-up form (confirmed), the API (confirmed, now full) and staff taking one by phone (waitlisted).
    page = client.get(f"/events/{slug}/register").get_data(as_text=True)
    form = {"csrf_token": csrf_token_from(page), "name": "岩手 花子", "furigana": "いわて はなこ",
            "email": "form@example.com", "prefecture": "東京都", "iwate_relation": "origin",
            "consent_privacy": "y"}
    response = client.post(f"/events/{slug}/register", data=form)
    assert response.status_code == 303, response.get_data(as_text=True)[:300]
    manage_url = response.headers["Location"].split("?")[0]
    api = client.post(f"/api/v1/events/{event_id}/registrations", json={
        "name": "岩手 太郎", "furigana": "いわて たろう", "email": "api@example.com", "consent_privacy": True})
    assert api.status_code == 201, api.get_json()
    staff = app.test_client()
    login(staff, staff_email)
    phone = post_form(staff, f"/staff/events/{event_id}/participants/new",
                      {"name": "電話 花子", "furigana": "でんわ はなこ", "email": "phone@example.com",
                       "iwate_relation": "none", "notify": "1"})
    assert phone.status_code == 303
    # Self-cancellation on the manage page (and the waitlisted phone sign-up is promoted).
    cancel_page = client.get(f"{manage_url}/cancel").get_data(as_text=True)
    cancelled = client.post(f"{manage_url}/cancel", data={"csrf_token": csrf_token_from(cancel_page)})
    assert cancelled.status_code == 303

    with app.app_context():
        statuses = {r.person.email: r.status for r in db.session.execute(select(Registration)).scalars()}
        assert statuses == {"form@example.com": "cancelled", "api@example.com": "confirmed",
                            "phone@example.com": "confirmed"}
        subjects = db.session.execute(select(OutboxMessage.kind, OutboxMessage.subject)).all()
        kinds = {kind for kind, _ in subjects}
        assert {"registration_confirmed", "registration_waitlisted", "registration_cancelled",
                "registration_promoted"} <= kinds
        for _kind, subject in subjects:
            assert len(subject) == 300 and subject.endswith("…"), subject[:20]
        mail.deliver_due()
        assert db.session.execute(select(OutboxMessage).where(OutboxMessage.status != "sent")).first() is None
    assert all(len(str(m["Subject"])) == 300 for m in sent_mail())
