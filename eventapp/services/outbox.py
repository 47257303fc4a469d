"""The outbox as staff see it: what was queued, sent and failed (and why), addresses marked
undeliverable, and resending a failed mail once the address is fixed.

Sending itself, and marking an address when the server refuses it, is services/mail.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import joinedload

from ..extensions import db
from ..models import OutboxMessage, Registration, UndeliverableAddress
from ..models.base import utcnow
from . import audit
from .errors import DomainError, NotFound
from .mail import ADDRESS_LIMIT, SCRUB_AFTER_SENDING, normalise_address

PAGE_SIZE = 50
# Filters of the outbox page; "pending" is shown as 送信待ち (queued).
STATUS_FILTERS = ("all", "pending", "sent", "failed")
OUTBOX_FILTERED = STATUS_FILTERS[1:]
STATUS_LABELS = {"pending": "送信待ち", "sent": "送信済み", "failed": "送信失敗"}


@dataclass
class OutboxPage:
    rows: list[OutboxMessage]
    page: int
    has_next: bool
    counts: dict[str, int]
    undeliverable: dict[str, UndeliverableAddress]  # of the rows' addresses


def undeliverable_marks(addresses) -> dict[str, UndeliverableAddress]:
    """The undeliverable marks of these addresses, by normalised address (for badges on staff pages)."""
    wanted = {normalise_address(a) for a in addresses} - {""}
    if not wanted:
        return {}
    rows = db.session.execute(select(UndeliverableAddress).where(UndeliverableAddress.email.in_(wanted))).scalars()
    return {row.email: row for row in rows}


def list_messages(*, status: str = "all", page: int = 1) -> OutboxPage:
    """Newest first, one page of PAGE_SIZE, with the count per status."""
    stmt = select(OutboxMessage)
    if status in OUTBOX_FILTERED:
        stmt = stmt.where(OutboxMessage.status == status)
    page = max(page, 1)
    rows = list(db.session.execute(
        stmt.order_by(OutboxMessage.id.desc()).offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1)
    ).scalars())
    counts = dict(db.session.execute(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)).all())
    shown = rows[:PAGE_SIZE]
    return OutboxPage(rows=shown, page=page, has_next=len(rows) > PAGE_SIZE, counts=counts,
                      undeliverable=undeliverable_marks(m.to_addr for m in shown))


def get_message(message_id: int) -> OutboxMessage:
    message = db.session.execute(
        select(OutboxMessage).where(OutboxMessage.id == message_id)
        .options(joinedload(OutboxMessage.registration).joinedload(Registration.person))
    ).scalar_one_or_none()
    if message is None:
        raise NotFound("message_not_found", "メールが見つかりません。")
    return message


def body_hidden(message: OutboxMessage) -> bool:
    """Bodies that are a secret on their own (a sign-in link) are never shown, sent or not."""
    return message.kind in SCRUB_AFTER_SENDING


def current_address(message: OutboxMessage) -> str:
    """Where the mail would go now: the registration's person's address as it is today (a companion's
    mail goes to the lead's), or the address it was queued for when it belongs to no registration."""
    registration = message.registration
    if registration is None:
        return message.to_addr
    person = registration.person
    if person is not None and person.email:
        return person.email
    lead = registration.lead
    if lead is not None and lead.person is not None and lead.person.email:
        return lead.person.email
    return ""


def resend(message_id: int, *, clear_mark: bool = False) -> OutboxMessage:
    """Queue a failed mail again, to the person's current address (staff fixed it, or confirmed the
    old one works: then `clear_mark` removes its undeliverable mark). The body stays as queued."""
    message = get_message(message_id)
    if message.status != "failed":
        raise DomainError("not_failed", "送信に失敗したメールだけを再送できます。")
    if body_hidden(message):
        raise DomainError("secret_mail", "ログイン用リンクのメールは再送できません。ご本人にもう一度リンクを請求していただいてください。")
    address = current_address(message)
    if not address:
        raise DomainError("no_email", "送信先のメールアドレスがありません(匿名化済み、または未登録)。")
    marked = undeliverable_marks([address]).get(normalise_address(address))
    if marked is not None and not clear_mark:
        raise DomainError("undeliverable",
                          f"{address} は配信不可として記録されています。アドレスを直すか、"
                          "届くことを確認して「配信不可を解除して再送」を選んでください。")
    if marked is not None:
        clear_undeliverable(address)
    old = message.to_addr
    db.session.execute(update(OutboxMessage).where(OutboxMessage.id == message.id, OutboxMessage.status == "failed")
                       .values(status="pending", attempts=0, next_attempt_at=utcnow(), last_error="",
                               to_addr=address[:ADDRESS_LIMIT]))
    audit.record("resend", "outbox", message.id,
                 f"送信に失敗したメール(件名: {message.subject})を {address} に再送" + (f"(元の宛先 {old})" if old != address else ""),
                 {"kind": message.kind, "to_before": old, "to_after": address, "cleared_mark": marked is not None,
                  "registration_id": message.registration_id})
    db.session.expire(message)
    return message


def clear_undeliverable(email: str) -> bool:
    """Remove the undeliverable mark of `email`; False when it had none."""
    row = db.session.execute(select(UndeliverableAddress).where(
        UndeliverableAddress.email == normalise_address(email))).scalar_one_or_none()
    if row is None:
        return False
    audit.record("clear_undeliverable", "undeliverable_address", row.id, f"{row.email} の配信不可の記録を解除",
                 {"email": row.email, "reason": row.reason, "first_failed_at": row.first_failed_at.isoformat(),
                  "last_failed_at": row.last_failed_at.isoformat()})
    db.session.delete(row)
    return True
