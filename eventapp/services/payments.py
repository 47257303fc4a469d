"""Fees (参加費): record payments, waivers and refunds; payment status; receipts (領収書); exports.

A registration's status is the kind of its newest payments row (`payment` → paid, `waiver` →
waived, `refund` → refunded), no row → unpaid, and `none` for a free event: one indexed lookup
(payments.registration_id, id) in SQL, for one registration or a whole list.

A recorded payment is idempotent per client nonce: the row is inserted with `ON CONFLICT DO
NOTHING` and a repeated nonce answers with the row it made (the door's offline queue retries).
Writes for one event are serialised by the event's row lock, so two devices that record the same
registration at once with different nonces cannot both make it paid.
Services never commit; the request does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from sqlalchemy import bindparam, func, select

from ..database import column_values, insert_or_skip
from ..extensions import db
from ..formatting import JST, format_yen
from ..models import PAYMENT_METHODS, Event, Payment, Registration, User
from ..models.base import utcnow
from ..models.payment import STATUS_BY_KIND
from . import audit, text
from .capacity import lock_event
from .errors import DomainError, NotFound, ValidationFailed

NONCE_RE = re.compile(r"^[A-Za-z0-9_.:-]{8,64}$")
MAX_AMOUNT = 10_000_000  # the events' fee limit (api/schemas.py EventWrite.fee_yen)
METHOD_LABELS = {"cash": "当日現金", "bank_transfer": "銀行振込", "other": "その他"}
STATUS_LABELS = {"none": "無料", "unpaid": "未払い", "paid": "支払済み", "waived": "免除", "refunded": "返金済み"}
KIND_LABELS = {"payment": "支払", "waiver": "免除", "refund": "返金"}
# 印紙税法: a receipt for 50,000円 or more paid in cash needs a revenue stamp (収入印紙).
STAMP_THRESHOLD = 50_000
INVOICE_NUMBER_RE = re.compile(r"^T\d{13}$")

_INSERT_PAYMENT = insert_or_skip(Payment.__table__, conflict="nonce", returning=["id"])
_BY_NONCE = select(Payment).where(Payment.nonce == bindparam("nonce"))


def _all(stmt) -> list:
    return db.session.execute(stmt).all()


def _newest_kind(registration_id):
    """The kind of a registration's newest row, as a correlated scalar subquery (NULL: none)."""
    return (select(Payment.kind).where(Payment.registration_id == registration_id)
            .order_by(Payment.id.desc()).limit(1).scalar_subquery())


def status_for_kind(kind: str | None, fee_yen: int) -> str:
    if kind is None:
        return "unpaid" if fee_yen > 0 else "none"
    return STATUS_BY_KIND[kind]


def statuses_for(registration_ids: list[int]) -> dict[int, str]:
    """Payment status of many registrations in one query."""
    if not registration_ids:
        return {}
    rows = _all(select(Registration.id, Event.fee_yen, _newest_kind(Registration.id))
                      .join(Event, Event.id == Registration.event_id)
                      .where(Registration.id.in_(registration_ids)))
    return {rid: status_for_kind(kind, fee) for rid, fee, kind in rows}


def statuses_for_event(event: Event) -> dict[int, str]:
    """Payment status of every registration of an event (rosters, lists) in one query."""
    rows = _all(select(Registration.id, _newest_kind(Registration.id))
                      .where(Registration.event_id == event.id))
    return {rid: status_for_kind(kind, event.fee_yen) for rid, kind in rows}


def status_of(registration: Registration) -> str:
    return statuses_for([registration.id])[registration.id]


# Built once: the door runs it on every scan (the fee and the newest row in one statement).
_FEE_AND_KIND = select(Event.fee_yen, select(Payment.kind).where(Payment.registration_id == bindparam("rid"))
                       .order_by(Payment.id.desc()).limit(1).scalar_subquery()).where(Event.id == bindparam("eid"))


def fee_and_status(event_id: int, registration_id: int) -> tuple[int, str]:
    """(fee_yen, payment status) for the check-in result."""
    fee, kind = db.session.execute(_FEE_AND_KIND, {"rid": registration_id, "eid": event_id}).one()
    return fee, status_for_kind(kind, fee)


def newest(registration_id: int) -> Payment | None:
    return db.session.execute(select(Payment).where(Payment.registration_id == registration_id)
                              .order_by(Payment.id.desc()).limit(1)).scalar_one_or_none()


def receipt_payment(registration: Registration) -> Payment | None:
    """The payment a receipt is for: the newest row, while it is a payment (not refunded)."""
    row = newest(registration.id)
    return row if row is not None and row.kind == "payment" else None


def _check_nonce(nonce: object) -> str:
    nonce = str(nonce or "").strip()
    if not NONCE_RE.match(nonce):
        raise ValidationFailed({"nonce": "nonce は 8〜64 文字の英数字で指定してください。"})
    return nonce


def _check_amount(amount: object) -> int:
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 <= amount <= MAX_AMOUNT:
        raise ValidationFailed({"amount_yen": f"金額は0〜{MAX_AMOUNT:,}の整数(円)で入力してください。"})
    return amount


@dataclass
class Recorded:
    payment: Payment
    created: bool


def record(event_id: int, registration_id: int, *, kind: str = "payment", method: str = "cash",
           amount_yen: int | None = None, nonce: str, user: User | None = None, note: str = "",
           paid_at: datetime | None = None, now: datetime | None = None) -> Recorded:
    """Record a payment, waiver (免除) or refund (返金) for a registration of the event.

    `amount_yen` defaults to the event's fee (a refund: to the amount paid). The same nonce again
    gives the row it made (`created` False), whatever else the retry says."""
    now = now or utcnow()
    nonce = _check_nonce(nonce)
    if kind not in STATUS_BY_KIND:
        raise ValidationFailed({"kind": "種類が正しくありません。"})
    if method not in PAYMENT_METHODS:
        raise ValidationFailed({"method": "支払方法は cash / bank_transfer / other から選んでください。"})
    errors: dict[str, str] = {}
    note = text.check(errors, "note", note, limit=text.column_limit(Payment.note))
    if errors:
        raise ValidationFailed(errors)
    event = lock_event(event_id)  # one writer per event: the status read below stays true
    existing = db.session.execute(_BY_NONCE, {"nonce": nonce}).scalar_one_or_none()
    if existing is not None:
        return Recorded(_replay(existing, registration_id), False)
    registration = db.session.get(Registration, registration_id)
    if registration is None or registration.event_id != event.id:
        raise NotFound("registration_not_found", "この申込は見つかりません。")
    if event.fee_yen <= 0:
        raise DomainError("free_event", "このイベントは参加費がありません。")
    last = newest(registration.id)
    status = status_for_kind(last.kind if last else None, event.fee_yen)
    if kind == "refund":
        if status != "paid":
            raise DomainError("not_paid", "支払済みの申込だけ返金できます。")
        amount = last.amount_yen if amount_yen is None else _check_amount(amount_yen)
    else:
        if status in ("paid", "waived"):
            raise DomainError("already_paid", f"この申込は既に{STATUS_LABELS[status]}です。")
        if registration.status == "cancelled":
            raise DomainError("cancelled", "このお申し込みはキャンセル済みです。")
        amount = 0 if kind == "waiver" else (event.fee_yen if amount_yen is None else _check_amount(amount_yen))
    values = column_values(Payment.__table__, {
        "registration_id": registration.id, "kind": kind, "method": method, "amount_yen": amount,
        "paid_at": paid_at or now, "recorded_at": now, "recorded_by_id": user.id if user else None,
        "nonce": nonce, "note": note, "receipt_name": registration.name if kind == "payment" else "",
        "receipt_reissued_count": 0})
    new_id = db.session.execute(_INSERT_PAYMENT, values).scalar_one_or_none()
    if new_id is None:  # a request with the same nonce got in first (it held no lock: SQLite)
        winner = db.session.execute(_BY_NONCE, {"nonce": nonce}).scalar_one()
        return Recorded(_replay(winner, registration_id), False)
    payment = db.session.get(Payment, new_id)
    if kind == "payment":
        payment.receipt_number = f"R{now.astimezone(JST).year}-{new_id:06d}"
    db.session.flush()
    action = {"payment": "payment", "waiver": "payment_waive", "refund": "payment_refund"}[kind]
    audit.record(action, "registration", registration.id,
                 f"{registration.name}: {KIND_LABELS[kind]} {format_yen(amount)}({METHOD_LABELS[method]})",
                 {"payment_id": new_id, "event_id": event.id, "kind": kind, "method": method,
                  "amount_yen": amount, "nonce": nonce}, user=user)
    return Recorded(payment, True)


def _replay(existing: Payment, registration_id: int) -> Payment:
    if existing.registration_id != registration_id:
        raise DomainError("nonce_reused", "この nonce は別の申込に使われています。")
    return existing


def set_receipt_name(payment: Payment, name: object, *, user: User | None = None) -> Payment:
    """Change the receipt's 宛名 (e.g. a company name); the participant or staff."""
    errors: dict[str, str] = {}
    value = text.check(errors, "receipt_name", name, limit=text.column_limit(Payment.receipt_name))
    if not value:
        errors.setdefault("receipt_name", "宛名を入力してください。")
    if errors:
        raise ValidationFailed(errors)
    if value != payment.receipt_name:
        old, payment.receipt_name = payment.receipt_name, value
        audit.record("receipt_name", "registration", payment.registration_id,
                     f"領収書の宛名を変更: {old} → {value}", {"payment_id": payment.id}, user=user)
    return payment


def reissue(payment: Payment, *, user: User | None = None) -> Payment:
    """Staff issue the receipt again (lost, or the 宛名 changed): the PDF is marked 「再発行」."""
    if payment.kind != "payment" or payment.receipt_number is None:
        raise DomainError("no_receipt", "この記録には領収書がありません。")
    payment.receipt_reissued_count += 1
    audit.record("receipt_reissue", "registration", payment.registration_id,
                 f"領収書 {payment.receipt_number} を再発行({payment.receipt_reissued_count}回目)",
                 {"payment_id": payment.id}, user=user)
    return payment


def invoice_registration_number() -> str:
    """The configured 適格請求書発行事業者登録番号 (T + 13 digits), or ""; a malformed one is an error
    that staff see at once rather than a wrong number on every receipt."""
    value = (current_app.config.get("INVOICE_REGISTRATION_NUMBER") or "").strip()
    if value and not INVOICE_NUMBER_RE.match(value):
        raise DomainError("invalid_registration_number",
                          "INVOICE_REGISTRATION_NUMBER は T と13桁の数字で設定してください。", status=500)
    return value


def needs_stamp(payment: Payment) -> bool:
    return payment.method == "cash" and payment.amount_yen >= STAMP_THRESHOLD


def purpose(event: Event) -> str:
    """但し書き."""
    return f"{event.title}参加費として"


# --------------------------------------------------------------------------- lists and exports


@dataclass(frozen=True)
class Totals:
    paid_yen: int
    refunded_yen: int
    counts: dict[str, int]

    @property
    def net_yen(self) -> int:
        return self.paid_yen - self.refunded_yen


def event_payments(event_id: int) -> list[Payment]:
    return list(db.session.execute(
        select(Payment).join(Registration).where(Registration.event_id == event_id)
        .order_by(Payment.paid_at, Payment.id)).scalars().all())


def status_counts(event: Event) -> dict[str, int]:
    """Confirmed registrations by payment status (the staff event page)."""
    if event.fee_yen <= 0:
        return {}
    kinds = (select(_newest_kind(Registration.id).label("kind"))
             .where(Registration.event_id == event.id, Registration.status == "confirmed").subquery())
    rows = _all(select(kinds.c.kind, func.count()).group_by(kinds.c.kind))
    counts = dict.fromkeys(("unpaid", "paid", "waived", "refunded"), 0)
    for kind, n in rows:
        counts[status_for_kind(kind, event.fee_yen)] += n
    return counts


def totals(event: Event) -> Totals:
    sums = dict(_all(select(Payment.kind, func.coalesce(func.sum(Payment.amount_yen), 0))
                           .join(Registration).where(Registration.event_id == event.id)
                           .group_by(Payment.kind)))
    return Totals(paid_yen=int(sums.get("payment", 0)), refunded_yen=int(sums.get("refund", 0)),
                  counts=status_counts(event))


EXPORT_HEADER = ["No.", "日時", "種類", "氏名", "ふりがな", "支払方法", "金額(円)", "領収書番号", "宛名",
                 "記録者", "メモ"]


def export_table(event: Event) -> tuple[list[str], list[list[object]]]:
    rows: list[list[object]] = []
    for n, p in enumerate(event_payments(event.id), start=1):
        sign = -1 if p.kind == "refund" else 1
        rows.append([n, p.paid_at, KIND_LABELS[p.kind], p.registration.name, p.registration.furigana,
                     METHOD_LABELS[p.method], sign * p.amount_yen, p.receipt_number or "", p.receipt_name,
                     p.recorded_by_name, p.note])
    sums = totals(event)
    rows.append(["", None, "合計(支払−返金)", "", "", "", sums.net_yen, "", "", "", ""])
    return EXPORT_HEADER, rows


def export(event: Event, fmt: str) -> tuple[bytes, str, str]:
    """The event's payments with totals as CSV (BOM) or XLSX; audit-logged."""
    from . import exports

    if fmt not in ("csv", "xlsx"):
        raise ValidationFailed({"format": "CSVかExcelを選んでください。"})
    header, rows = export_table(event)
    filename = f"{event.slug}-payments.{fmt}"
    if fmt == "csv":
        content, mimetype = exports.to_csv(header, rows), "text/csv; charset=utf-8"
    else:
        content = exports.to_xlsx(header, rows, "参加費")
        mimetype = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    audit.record("export", "event", event.id, f"{event.title}: 参加費一覧を{fmt.upper()}で出力({len(rows) - 1}件)",
                 {"preset": "payments", "format": fmt, "rows": len(rows) - 1})
    return content, mimetype, filename
