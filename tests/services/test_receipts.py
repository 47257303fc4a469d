"""領収書 PDF: 宛名, 金額, 但し書き, receipt number, issuer and 登録番号, 再発行, the 収入印紙 note; the
participant's /r/<token>/receipt.pdf (404 until paid)."""

from __future__ import annotations

import pytest

from eventapp.extensions import db
from eventapp.services import documents
from eventapp.services import payments as service
from eventapp.services.errors import DomainError
from tests.factories import make_event, make_registration
from tests.pdf_support import flat, pdf_fonts, pdf_text, save_artifact


def _paid(fee: int, method: str = "cash", **event_overrides):
    event = make_event(fee_yen=fee, title="岩手・花巻でブドウ収穫体験フィールドワーク", **event_overrides)
    reg = make_registration(event, name="岩手 花子")
    payment = service.record(event.id, reg.id, method=method, nonce=f"receipt-{fee}-{method}").payment
    db.session.commit()
    return reg, payment


def test_receipt_has_name_amount_purpose_number_and_issuer(app, ctx):
    saved = {key: app.config[key] for key in ("ORGANISER_ADDRESS", "INVOICE_REGISTRATION_NUMBER")}
    app.config.update(ORGANISER_ADDRESS="岩手県盛岡市内丸10-1", INVOICE_REGISTRATION_NUMBER="T1234567890123")
    try:
        reg, payment = _paid(15000)
        service.set_receipt_name(payment, "株式会社いわて商事")
        db.session.commit()
        result = documents.receipt_pdf(payment)
    finally:
        app.config.update(saved)  # the other tests see the configuration they started with
    save_artifact(result.pdf, "receipt")
    text = flat(pdf_text(result.pdf))
    for expected in ("領収書", "株式会社いわて商事様", "15,000", "但し岩手・花巻でブドウ収穫体験フィールドワーク参加費として",
                     payment.receipt_number, "岩手県遠恋複業課事務局", "岩手県盛岡市内丸10-1", "登録番号T1234567890123",
                     "当日現金", "発行日"):
        assert flat(expected) in text, expected
    assert "再発行" not in text and "収入印紙" not in text  # under 50,000円
    assert "IPAexGothic" in pdf_fonts(result.pdf)
    assert result.pages == 1


def test_reissue_is_marked_and_stamp_note_only_for_cash_of_50000_or_more(ctx):
    _, big_cash = _paid(50000)
    _, big_transfer = _paid(50000, method="bank_transfer")
    _, small_cash = _paid(49999)
    assert "収入印紙" in pdf_text(documents.receipt_pdf(big_cash).pdf)
    assert "収入印紙" not in pdf_text(documents.receipt_pdf(big_transfer).pdf)
    assert "収入印紙" not in pdf_text(documents.receipt_pdf(small_cash).pdf)
    service.reissue(small_cash)
    db.session.commit()
    text = pdf_text(documents.receipt_pdf(small_cash).pdf)
    assert "再発行" in text and "49,999" in flat(text)


def test_malformed_registration_number_is_refused(app, ctx):
    _, payment = _paid(3000)
    app.config["INVOICE_REGISTRATION_NUMBER"] = "T123"
    try:
        with pytest.raises(DomainError) as exc:
            documents.receipt_pdf(payment)
    finally:
        app.config["INVOICE_REGISTRATION_NUMBER"] = ""
    assert exc.value.code == "invalid_registration_number"


def test_participant_gets_the_receipt_once_paid(app, client):
    with app.app_context():
        event = make_event(fee_yen=15000)
        reg = make_registration(event)
        token, event_id, reg_id = reg.manage_token, event.id, reg.id
    assert client.get(f"/r/{token}/receipt.pdf").status_code == 404
    with app.app_context():
        service.record(event_id, reg_id, nonce="receipt-web-1")
        db.session.commit()
    response = client.get(f"/r/{token}/receipt.pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert "private" in response.headers["Cache-Control"]
    assert "15,000" in pdf_text(response.data)
    with app.app_context():
        service.record(event_id, reg_id, kind="refund", nonce="receipt-web-2")
        db.session.commit()
    assert client.get(f"/r/{token}/receipt.pdf").status_code == 404


def test_participant_sees_the_fee_and_sets_the_receipt_name(app, client):
    import re

    with app.app_context():
        event = make_event(fee_yen=15000)
        reg = make_registration(event)
        token, event_id, reg_id = reg.manage_token, event.id, reg.id
    page = client.get(f"/r/{token}").get_data(as_text=True)
    assert "15,000円" in page and "未払い" in page and "receipt.pdf" not in page
    with app.app_context():
        service.record(event_id, reg_id, nonce="manage-nonce-1")
        db.session.commit()
    page = client.get(f"/r/{token}").get_data(as_text=True)
    assert "お支払い済み" in page and f"/r/{token}/receipt.pdf" in page
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = client.post(f"/r/{token}/receipt-name", data={"receipt_name": "株式会社いわて", "csrf_token": csrf})
    assert response.status_code == 303
    assert "株式会社いわて" in pdf_text(client.get(f"/r/{token}/receipt.pdf").data)
    english = client.get(f"/r/{token}?lang=en").get_data(as_text=True)
    assert "Receipt (PDF" in english
