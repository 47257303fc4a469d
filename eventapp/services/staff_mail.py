"""Staff mail that cannot go wrong: compose → preview for a real recipient → test to oneself → confirm
with the count → send now or at a time (issue 16 item 2).

A mail is a `staff_mails` row. It is a draft while staff look at it; sending moves it from `draft`
(send now) or `scheduled` (the scheduled pass, `send_due_staff_mails`) to `sent` with one conditional
UPDATE and, in the same transaction, queues one outbox message per recipient and writes the audit
entry with the recipients' registration ids. Only the transaction whose UPDATE changed the row
queues anything, so a double click, two `send-mail` processes or a cancel racing the pass send a
mail at most once.

The text staff write may use placeholders `{name}`, `{event_title}`, `{manage_url}` and
`{join_url}`; a literal brace is written `{{` or `}}`. The preview and the mail go through the same
`render_for`, so what staff preview is what that recipient gets.
"""

from __future__ import annotations

import base64
import string
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists, or_, select, update
from sqlalchemy.orm import selectinload

from ..database import write_intent
from ..extensions import db
from ..models import Attendance, CheckIn, Event, OutboxMessage, Person, Registration, StaffMail, User
from ..models.base import utcnow
from ..models.staff_mail import STAFF_MAIL_ATTACHMENTS, STAFF_MAIL_AUDIENCES
from ..urls import external_url
from . import audit, mail, text
from .errors import DomainError, NotFound, ValidationFailed

PLACEHOLDERS = ("name", "event_title", "manage_url", "join_url")
AUDIENCE_LABELS = {"confirmed": "参加確定の方", "waitlisted": "キャンセル待ちの方",
                   "all": "参加確定とキャンセル待ちの方(キャンセル済みを除く全員)", "checked_in": "受付・出席済みの方"}
ATTACHMENT_LABELS = {"programme": "しおり(プログラムPDF)", "ticket": "受付票(各自のQRコード入りPDF)"}
STATUS_LABELS = {"draft": "下書き", "scheduled": "送信予約", "sent": "送信済み", "cancelled": "取り消し"}
SUBJECT_LIMIT = text.column_limit(StaffMail.subject)
BODY_LIMIT = 10000
TEST_PREFIX = "【テスト】"
_formatter = string.Formatter()


@dataclass(frozen=True)
class Rendered:
    """One recipient's mail as it is queued."""

    subject: str
    body: str


def placeholder_problem(value: str) -> str | None:
    """What is wrong with the placeholders of `value` (Japanese, names the unknown ones), or None.

    Only bare names from PLACEHOLDERS are allowed: no attribute or index access (`{name.__class__}`),
    conversions or format specs (`{name:>999999999}`), so filling never raises and never reaches
    anything but the strings given."""
    try:
        fields = [(name, spec, conversion) for _, name, spec, conversion in _formatter.parse(value)
                  if name is not None]
    except ValueError:
        return "「{」または「}」の対応が取れていません。文字として書くときは「{{」「}}」と書いてください。"
    unknown = []
    for name, spec, conversion in fields:
        label = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
        if (name not in PLACEHOLDERS or spec or conversion) and label not in unknown:
            unknown.append(label)
    if unknown:
        return (f"使えない差し込み項目があります: {'、'.join(unknown)}。"
                f"使えるのは {'、'.join('{' + p + '}' for p in PLACEHOLDERS)} です"
                "(「{」を文字として書くときは「{{」)。")
    return None


def fill(value: str, values: dict[str, str]) -> str:
    """`value` with its placeholders replaced (checked by placeholder_problem first)."""
    return value.format_map({name: values.get(name, "") for name in PLACEHOLDERS})


def placeholder_values(registration: Registration) -> dict[str, str]:
    from .calendar import join_url_for

    event = registration.event
    return {"name": registration.name, "event_title": event.title,
            "manage_url": external_url("public.manage", token=registration.manage_token),
            # Only for a confirmed registration of a live online seminar, once the URL is revealed.
            "join_url": join_url_for(registration) if event.is_online else ""}


def validate(event: Event, data: dict) -> dict:
    """The composed mail's fields, cleaned; ValidationFailed lists every problem."""
    errors: dict[str, str] = {}
    # The subject becomes a mail header: one line, no control characters (services.text).
    subject = text.check(errors, "subject", data.get("subject", ""), limit=SUBJECT_LIMIT)
    body = text.check(errors, "body", data.get("body", ""), limit=BODY_LIMIT, multiline=True)
    audience = data.get("audience", "")
    if audience not in STAFF_MAIL_AUDIENCES:
        errors["audience"] = "送信先を選んでください。"
    if not subject and "subject" not in errors:
        errors["subject"] = f"件名を{SUBJECT_LIMIT}文字以内で入力してください。"
    if not body and "body" not in errors:
        errors["body"] = f"本文を入力してください({BODY_LIMIT}文字以内)。"
    for field, value in (("subject", subject), ("body", body)):
        if field not in errors and (problem := placeholder_problem(value)):
            errors[field] = problem
    attachments = data.get("attachments") or []
    if any(a not in STAFF_MAIL_ATTACHMENTS for a in attachments):
        errors["attachments"] = "添付できる書類を選んでください。"
    elif "ticket" in attachments and not event.has_qr_ticket:
        errors["attachments"] = "オンラインのイベントには受付票がありません。"
    if errors:
        raise ValidationFailed(errors)
    return {"subject": subject, "body": body, "audience": audience,
            "attachments": [a for a in STAFF_MAIL_ATTACHMENTS if a in attachments]}


def get_mail(mail_id: int, event_id: int | None = None) -> StaffMail:
    staff_mail = db.session.get(StaffMail, mail_id)
    if staff_mail is None or (event_id is not None and staff_mail.event_id != event_id):
        raise NotFound("staff_mail_not_found", "メールが見つかりません。")
    return staff_mail


def _draft(mail_id: int, event_id: int | None = None) -> StaffMail:
    staff_mail = get_mail(mail_id, event_id)
    if staff_mail.status != "draft":
        raise DomainError("staff_mail_not_draft", "このメールは送信済みか予約済みのため、変更や送信はできません。")
    return staff_mail


def save_draft(event: Event, data: dict, *, user: User | None, mail_id: int | None = None) -> StaffMail:
    """Create the draft (or change it, when `mail_id` is a draft of this event)."""
    values = validate(event, data)
    if mail_id is None:
        staff_mail = StaffMail(event_id=event.id, created_by_id=user.id if user else None, status="draft", **values)
        db.session.add(staff_mail)
    else:
        staff_mail = _draft(mail_id, event.id)
        for key, value in values.items():
            setattr(staff_mail, key, value)
    db.session.flush()
    return staff_mail


def recipients(event_id: int, audience: str) -> list[Registration]:
    """The registrations the mail goes to now, oldest first. Companions without an address of their own
    are left out: their lead's mail reaches the same mailbox."""
    stmt = (select(Registration).join(Person)
            .where(Registration.event_id == event_id, Person.email.is_not(None), Person.email != ""))
    if audience == "checked_in":
        checked_in = exists().where(CheckIn.registration_id == Registration.id, CheckIn.undone_at.is_(None))
        attended = exists().where(Attendance.registration_id == Registration.id)
        stmt = stmt.where(Registration.status == "confirmed", or_(checked_in, attended))
    else:
        statuses = {"all": ("confirmed", "waitlisted")}.get(audience, (audience,))
        stmt = stmt.where(Registration.status.in_(statuses))
    return list(db.session.execute(stmt.options(selectinload(Registration.person)).order_by(Registration.id))
                .scalars().all())


def _context(staff_mail: StaffMail, registration: Registration, *, subject_prefix: str = "") -> dict:
    values = placeholder_values(registration)
    return {"subject": subject_prefix + fill(staff_mail.subject, values), "body": fill(staff_mail.body, values),
            "event": registration.event, "person": registration.person, "registration": registration}


def render_for(staff_mail: StaffMail, registration: Registration) -> Rendered:
    """The mail `registration` gets: the preview shows this, and sending queues this."""
    subject, body = mail.render("staff_message", _context(staff_mail, registration))
    return Rendered(subject, body)


def preview(staff_mail: StaffMail, registration_id: int | None = None) -> tuple[list[Registration],
                                                                                Registration | None, Rendered | None]:
    """(recipients now, the one previewed, their mail): the first recipient unless another is chosen."""
    people = recipients(staff_mail.event_id, staff_mail.audience)
    chosen = next((r for r in people if r.id == registration_id), people[0] if people else None)
    return people, chosen, render_for(staff_mail, chosen) if chosen else None


def _attachments(staff_mail: StaffMail, registration: Registration) -> list[dict]:
    """The documents chosen, as references the sender draws when it sends (document_attachment): a
    sending transaction renders nothing (a ticket takes ~0.3 s, and on SQLite the transaction holds the
    write lock), the outbox keeps no copies of the PDF per recipient, and the PDFs show the event as it
    is when the mail goes out."""
    refs: list[dict] = []
    if "programme" in staff_mail.attachments:
        refs.append({"document": "programme", "event_id": staff_mail.event_id})
    if "ticket" in staff_mail.attachments and registration.status == "confirmed" and staff_mail.event.has_qr_ticket:
        refs.append({"document": "ticket", "registration_id": registration.id})
    return refs


def document_attachment(ref: dict) -> dict | None:
    """A {"document": …} reference of an outbox message as the attachment to send (base64 PDF), or None
    when it no longer applies: the event or registration is gone, or the registration is no longer confirmed."""
    from . import documents, pdf_cache

    kind = ref.get("document")
    if kind == "programme":
        event = db.session.get(Event, ref.get("event_id"))
        if event is None:
            return None
        # The しおり of the event's current version, rendered once and shared with the public download.
        name, data = f"{event.slug}-programme.pdf", pdf_cache.programme(event).read()
    elif kind == "ticket":
        registration = db.session.get(Registration, ref.get("registration_id"))
        if registration is None or registration.status != "confirmed" or not registration.event.has_qr_ticket:
            return None
        name, data = f"ticket-{registration.event.slug}.pdf", documents.ticket_pdf(registration).pdf
    else:
        return None
    return {"filename": name, "content_type": "application/pdf", "content_transfer": "base64",
            "content": base64.b64encode(data).decode("ascii")}


def send_test(mail_id: int, *, user: User, registration_id: int | None = None) -> OutboxMessage:
    """The previewed mail, to the logged-in staff member only, marked 【テスト】 in the subject."""
    staff_mail = _draft(mail_id)
    to_addr = mail._address(user.email)
    if not to_addr:
        raise DomainError("no_email", "ログイン中のアカウントにメールアドレスがありません。")
    _, chosen, _ = preview(staff_mail, registration_id)
    if chosen is None:
        raise DomainError("no_recipients", "送信先に該当する方がいないため、テスト送信できません。")
    # No registration on the row: a test is not mail to that participant (their history, bounces).
    message = mail.queue("staff_message_test", to_addr, "staff_message",
                         _context(staff_mail, chosen, subject_prefix=TEST_PREFIX),
                         attachments=_attachments(staff_mail, chosen))
    audit.record("test_message", "staff_mail", staff_mail.id,
                 f"{staff_mail.event.title}: 「{staff_mail.subject}」を{to_addr}にテスト送信({chosen.name}様の内容)",
                 {"event_id": staff_mail.event_id, "test": True, "to": to_addr, "preview_registration": chosen.id},
                 user=user)
    return message


def _claim(mail_id: int, from_status: str, now: datetime, *, due: bool = False) -> bool:
    """Move the mail to `sent` if it is still `from_status` (and due): True for the one caller that did."""
    stmt = update(StaffMail).where(StaffMail.id == mail_id, StaffMail.status == from_status)
    if due:
        stmt = stmt.where(StaffMail.scheduled_at <= now)
    return db.session.execute(stmt.values(status="sent", sent_at=now)
                              .execution_options(synchronize_session=False)).rowcount == 1


def _dispatch(staff_mail: StaffMail, *, user: User | None, actor: str | None = None) -> int:
    """Queue one outbox message per recipient and write the audit entry (after a successful claim)."""
    people = recipients(staff_mail.event_id, staff_mail.audience)
    for registration in people:
        mail.queue("staff_message", registration.person.email, "staff_message", _context(staff_mail, registration),
                   registration=registration, attachments=_attachments(staff_mail, registration))
    db.session.execute(update(StaffMail).where(StaffMail.id == staff_mail.id)
                       .values(recipient_count=len(people)).execution_options(synchronize_session=False))
    db.session.refresh(staff_mail)
    when = "予約送信" if staff_mail.scheduled_at else "送信"
    audit.record("message", "staff_mail", staff_mail.id,
                 f"{staff_mail.event.title}: 「{staff_mail.subject}」を{len(people)}名に{when}",
                 {"event_id": staff_mail.event_id, "audience": staff_mail.audience, "subject": staff_mail.subject,
                  "recipients": [r.id for r in people], "attachments": staff_mail.attachments,
                  "created_by": staff_mail.created_by_id},
                 user=user, actor=actor)
    return len(people)


def send_now(mail_id: int, *, user: User, confirmed: bool, now: datetime | None = None) -> int:
    """Send a draft at once (the confirm box ticked). Returns the number of recipients."""
    staff_mail = _draft(mail_id)
    if not confirmed:
        raise ValidationFailed({"confirm": "送信先と人数を確認して、チェックを入れてください。"})
    if not _claim(staff_mail.id, "draft", now or utcnow()):
        raise DomainError("staff_mail_not_draft", "このメールは既に送信済みか予約済みです。")
    return _dispatch(staff_mail, user=user)


def schedule(mail_id: int, scheduled_at: datetime | None, *, user: User, confirmed: bool,
             now: datetime | None = None) -> StaffMail:
    """Schedule a draft for a time in the future (sent by the scheduled pass)."""
    staff_mail = _draft(mail_id)
    now = now or utcnow()
    errors = {}
    if not confirmed:
        errors["confirm"] = "送信先と人数を確認して、チェックを入れてください。"
    if scheduled_at is None:
        errors["scheduled_at"] = "送信日時を入力してください。"
    elif scheduled_at <= now:
        errors["scheduled_at"] = "送信日時は現在より後にしてください。"
    if errors:
        raise ValidationFailed(errors)
    claimed = db.session.execute(
        update(StaffMail).where(StaffMail.id == staff_mail.id, StaffMail.status == "draft")
        .values(status="scheduled", scheduled_at=scheduled_at).execution_options(synchronize_session=False)).rowcount
    if not claimed:
        raise DomainError("staff_mail_not_draft", "このメールは既に送信済みか予約済みです。")
    db.session.refresh(staff_mail)
    audit.record("schedule", "staff_mail", staff_mail.id,
                 f"{staff_mail.event.title}: 「{staff_mail.subject}」の送信を予約", {
                     "event_id": staff_mail.event_id, "audience": staff_mail.audience,
                     "scheduled_at": scheduled_at.isoformat(),
                     "recipients_now": len(recipients(staff_mail.event_id, staff_mail.audience))}, user=user)
    return staff_mail


def cancel(mail_id: int, *, user: User, event_id: int | None = None) -> StaffMail:
    """Withdraw a scheduled mail (or discard a draft). Too late once the pass has sent it."""
    staff_mail = get_mail(mail_id, event_id)
    claimed = db.session.execute(
        update(StaffMail).where(StaffMail.id == staff_mail.id, StaffMail.status.in_(("draft", "scheduled")))
        .values(status="cancelled", cancelled_at=utcnow()).execution_options(synchronize_session=False)).rowcount
    if not claimed:
        raise DomainError("staff_mail_not_cancellable", "このメールは既に送信済みのため、取り消せません。")
    db.session.refresh(staff_mail)
    audit.record("cancel", "staff_mail", staff_mail.id, f"{staff_mail.event.title}: 「{staff_mail.subject}」を取り消し",
                 {"event_id": staff_mail.event_id}, user=user)
    return staff_mail


def send_due_staff_mails(now: datetime) -> int:
    """Scheduled pass: send every scheduled mail whose time has come. Returns the mails queued."""
    with write_intent():  # SQLite: BEGIN IMMEDIATE, so two passes take turns instead of failing to upgrade
        return _send_due(now)


def _send_due(now: datetime) -> int:
    due = db.session.execute(select(StaffMail.id).where(StaffMail.status == "scheduled",
                                                        StaffMail.scheduled_at <= now)
                             .order_by(StaffMail.scheduled_at, StaffMail.id)).scalars().all()
    queued = 0
    for mail_id in due:
        if _claim(mail_id, "scheduled", now, due=True):
            queued += _dispatch(get_mail(mail_id), user=None, actor="system(予約送信)")
    return queued


def mails_for_event(event_id: int) -> list[StaffMail]:
    """The event's staff mails, newest first (drafts, scheduled, sent and cancelled)."""
    return list(db.session.execute(select(StaffMail).where(StaffMail.event_id == event_id)
                                   .order_by(StaffMail.created_at.desc(), StaffMail.id.desc())).scalars().all())
