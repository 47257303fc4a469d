"""Fees: status derivation, nonce idempotency (also two threads at once), waive/refund, audit, totals."""

from __future__ import annotations

import csv
import io
import threading

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from eventapp.extensions import db
from eventapp.models import AuditEntry, Payment
from eventapp.services import payments as service
from eventapp.services.accounts import create_user
from eventapp.services.errors import DomainError, NotFound, ValidationFailed
from tests.factories import make_event, make_registration


def _user(role: str = "checkin"):
    user, _ = create_user(f"door-{role}@example.jp", role, "password-123", "受付 太郎")
    db.session.commit()
    return user


def _rows() -> int:
    return db.session.execute(select(func.count()).select_from(Payment)).scalar_one()


def test_status_is_derived_from_the_newest_row(ctx):
    event = make_event(fee_yen=15000)
    free = make_event(fee_yen=0)
    paid, waived, unpaid = (make_registration(event) for _ in range(3))
    free_reg = make_registration(free)
    user = _user()
    first = service.record(event.id, paid.id, method="cash", nonce="pay-000001", user=user)
    service.record(event.id, waived.id, kind="waiver", nonce="waive-00001", user=user)
    db.session.commit()
    assert first.created and first.payment.amount_yen == 15000  # the event's fee by default
    assert first.payment.receipt_number.startswith("R20") and first.payment.receipt_name == paid.name
    assert service.statuses_for([paid.id, waived.id, unpaid.id, free_reg.id]) == {
        paid.id: "paid", waived.id: "waived", unpaid.id: "unpaid", free_reg.id: "none"}
    service.record(event.id, paid.id, kind="refund", nonce="refund-0001", user=user)
    db.session.commit()
    assert service.status_of(paid) == "refunded"
    assert service.receipt_payment(paid) is None  # no receipt once refunded
    sums = service.totals(event)
    assert (sums.paid_yen, sums.refunded_yen, sums.net_yen) == (15000, 15000, 0)
    assert sums.counts == {"unpaid": 1, "paid": 0, "waived": 1, "refunded": 1}


def test_same_nonce_gives_the_same_payment_and_no_second_row(ctx):
    event = make_event(fee_yen=15000)
    reg = make_registration(event)
    first = service.record(event.id, reg.id, nonce="door-nonce-1")
    db.session.commit()
    again = service.record(event.id, reg.id, nonce="door-nonce-1", amount_yen=99)
    db.session.commit()
    assert not again.created and again.payment.id == first.payment.id and again.payment.amount_yen == 15000
    assert _rows() == 1
    other = make_registration(event)
    with pytest.raises(DomainError) as exc:
        service.record(event.id, other.id, nonce="door-nonce-1")
    assert exc.value.code == "nonce_reused"


def test_second_payment_with_another_nonce_is_refused(ctx):
    event = make_event(fee_yen=3000)
    reg = make_registration(event)
    service.record(event.id, reg.id, nonce="first-nonce")
    db.session.commit()
    with pytest.raises(DomainError) as exc:
        service.record(event.id, reg.id, nonce="second-nonce", method="bank_transfer")
    assert exc.value.code == "already_paid"
    assert _rows() == 1


def test_validation_and_refusals(ctx):
    event = make_event(fee_yen=3000)
    free = make_event(fee_yen=0)
    reg = make_registration(event)
    with pytest.raises(ValidationFailed) as exc:
        service.record(event.id, reg.id, nonce="short")
    assert "nonce" in exc.value.fields
    with pytest.raises(ValidationFailed) as exc:
        service.record(event.id, reg.id, nonce="valid-nonce", method="paypal")
    assert "method" in exc.value.fields
    with pytest.raises(ValidationFailed) as exc:
        service.record(event.id, reg.id, nonce="valid-nonce", amount_yen=-1)
    assert "amount_yen" in exc.value.fields
    with pytest.raises(DomainError) as exc:
        service.record(event.id, reg.id, kind="refund", nonce="valid-nonce")
    assert exc.value.code == "not_paid"
    with pytest.raises(NotFound):
        service.record(free.id, reg.id, nonce="valid-nonce")  # not this event's registration
    free_reg = make_registration(free)
    with pytest.raises(DomainError) as exc:
        service.record(free.id, free_reg.id, nonce="valid-nonce")
    assert exc.value.code == "free_event"
    assert _rows() == 0


def test_database_refuses_negative_amounts_and_unknown_methods(ctx):
    from sqlalchemy.exc import IntegrityError

    from eventapp.models.base import utcnow
    event = make_event(fee_yen=3000)
    reg = make_registration(event)
    for bad in ({"amount_yen": -5}, {"method": "bitcoin"}, {"kind": "refund", "receipt_number": "R1"}):
        values = {"registration_id": reg.id, "amount_yen": 10, "paid_at": utcnow(), "nonce": "db-nonce-1", **bad}
        db.session.add(Payment(**values))
        with pytest.raises(IntegrityError):
            db.session.flush()
        db.session.rollback()


def test_refund_and_pay_again_and_audit(ctx):
    event = make_event(fee_yen=5000)
    reg = make_registration(event)
    staff = _user("staff")
    service.record(event.id, reg.id, nonce="pay-nonce-1", method="bank_transfer", user=staff)
    service.record(event.id, reg.id, kind="refund", nonce="refund-nonce", user=staff)
    again = service.record(event.id, reg.id, nonce="pay-nonce-2", amount_yen=4000, user=staff)
    db.session.commit()
    assert service.status_of(reg) == "paid" and service.receipt_payment(reg).id == again.payment.id
    entries = db.session.execute(select(AuditEntry).where(AuditEntry.object_type == "registration",
                                                          AuditEntry.object_id == reg.id)
                                 .order_by(AuditEntry.id)).scalars().all()
    actions = [e.action for e in entries if e.action.startswith("payment")]
    assert actions == ["payment", "payment_refund", "payment"]
    assert all(e.user_id == staff.id for e in entries if e.action.startswith("payment"))
    assert entries[-1].details["amount_yen"] == 4000 and "銀行振込" in entries[0].summary


def test_receipt_name_and_reissue(ctx):
    event = make_event(fee_yen=5000)
    reg = make_registration(event)
    payment = service.record(event.id, reg.id, nonce="pay-nonce-9").payment
    service.set_receipt_name(payment, "株式会社いわて", user=None)
    service.reissue(payment)
    db.session.commit()
    assert payment.receipt_name == "株式会社いわて" and payment.receipt_reissued_count == 1
    with pytest.raises(ValidationFailed):
        service.set_receipt_name(payment, "a\nb")
    with pytest.raises(ValidationFailed):
        service.set_receipt_name(payment, "x" * 101)


def test_two_threads_racing_with_one_nonce_make_one_row(app):
    with app.app_context():
        event = make_event(fee_yen=15000)
        reg = make_registration(event)
        event_id, reg_id = event.id, reg.id
    barrier = threading.Barrier(2)
    ids: list[int] = []
    errors: list[Exception] = []

    def door(nonce: str) -> None:
        from eventapp.database import write_intent
        with app.app_context(), write_intent():
            barrier.wait()
            try:
                ids.append(service.record(event_id, reg_id, nonce=nonce).payment.id)
                db.session.commit()
            except DomainError as exc:
                db.session.rollback()
                errors.append(exc)
            finally:
                db.session.remove()

    for nonces in (("race-nonce-1", "race-nonce-1"), ("race-nonce-2", "race-nonce-3")):
        ids.clear()
        errors.clear()
        threads = [threading.Thread(target=door, args=(n,)) for n in nonces]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if nonces[0] == nonces[1]:
            assert len(ids) == 2 and ids[0] == ids[1] and not errors
        else:  # already paid by the first: another nonce cannot pay twice
            assert not ids and [e.code for e in errors] == ["already_paid", "already_paid"]
    with app.app_context():
        assert _rows() == 1


def test_export_has_totals_in_csv_and_xlsx(ctx):
    event = make_event(fee_yen=15000)
    a, b = make_registration(event), make_registration(event)
    service.record(event.id, a.id, nonce="export-a-1")
    service.record(event.id, b.id, nonce="export-b-1", method="bank_transfer")
    service.record(event.id, b.id, kind="refund", nonce="export-b-2", amount_yen=5000)
    db.session.commit()
    content, mimetype, filename = service.export(event, "csv")
    assert content.startswith("\ufeff".encode()) and filename.endswith("-payments.csv")
    rows = list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))
    assert rows[0][:3] == ["No.", "日時", "種類"]
    assert [r[6] for r in rows[1:]] == ["15000", "15000", "-5000", "25000"]
    assert rows[-1][2] == "合計(支払−返金)"
    xlsx, _, _ = service.export(event, "xlsx")
    sheet = load_workbook(io.BytesIO(xlsx)).active
    assert sheet.cell(row=sheet.max_row, column=7).value == 25000


def test_confirmation_and_reminder_mails_state_the_fee_and_how_to_pay(app, ctx):
    from eventapp.models import OutboxMessage
    from eventapp.services import mail

    app.config["PAYMENT_INSTRUCTIONS"] = "振込先: いわて銀行 本店 普通 1234567"
    try:
        event = make_event(fee_yen=15000)
        reg = make_registration(event)
        free_reg = make_registration(make_event(fee_yen=0))
        bodies = {m.registration_id: m.body for m in db.session.execute(select(OutboxMessage)).scalars()}
        assert "■ 参加費" in bodies[reg.id] and "15,000円" in bodies[reg.id]
        assert "いわて銀行 本店 普通 1234567" in bodies[reg.id]
        assert "参加費" not in bodies[free_reg.id]
        service.record(event.id, reg.id, nonce="mail-nonce-1")
        db.session.commit()
        reminder = mail.queue_registration_mail("reminder", reg, starts_at=event.starts_at, meeting_at=None)
        db.session.commit()
    finally:
        app.config["PAYMENT_INSTRUCTIONS"] = ""
    assert "お支払いを確認しました" in reminder.body and "いわて銀行" not in reminder.body
