"""The door collects fees: the check-in result shows 「参加費 15,000円 未払い」, one tap records 当日現金
支払済み; offline, the payment is queued with its nonce and recorded once when the device reconnects."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from eventapp.extensions import db
from eventapp.models import Payment
from eventapp.services.accounts import create_user
from tests.browser.test_checkin_screen import PASSWORD, new_context, open_screen, scan
from tests.factories import make_checkin_event, make_registration
from tests.pdf_support import flat, pdf_text

pytestmark = [pytest.mark.browser, pytest.mark.server]


@pytest.fixture
def desk(ctx):
    user, _ = create_user("fees-desk@example.jp", "checkin", PASSWORD, "田中")
    db.session.commit()
    event = make_checkin_event(capacity=5, fee_yen=15000, title="夏油温泉フィールドワーク")
    regs = [make_registration(event, name="岩手 花子", furigana="いわて はなこ"),
            make_registration(event, name="盛岡 太郎", furigana="もりおか たろう")]
    free = make_checkin_event(capacity=5, fee_yen=0)
    return {"event_id": event.id, "codes": [r.ticket_code for r in regs], "ids": [r.id for r in regs],
            "tokens": [r.manage_token for r in regs],
            "users": [user.email], "free_id": free.id, "free_code": make_registration(free).ticket_code}


def payments() -> list[Payment]:
    db.session.rollback()  # see the server's commits
    return db.session.execute(select(Payment).order_by(Payment.id)).scalars().all()


def test_check_in_shows_unpaid_and_one_tap_records_cash(desk, browser_server, browser):
    context = new_context(browser)
    page = open_screen(context, browser_server.url, desk)
    scan(page, desk["codes"][0])
    expect(page.locator("#result-title")).to_have_text("受付完了")
    expect(page.locator("#fee-line")).to_have_text("参加費 15,000円 未払い")
    button = page.locator("#fee-pay")
    expect(button).to_be_visible()
    button.tap()
    expect(page.locator("#fee-line")).to_have_text("参加費 15,000円 支払済み")
    expect(button).to_be_hidden()
    (payment,) = payments()
    assert (payment.registration_id, payment.method, payment.amount_yen, payment.kind) == (
        desk["ids"][0], "cash", 15000, "payment")
    assert payment.recorded_by.email == "fees-desk@example.jp"
    # The participant's 領収書 is there now (the door can print it for them).
    receipt = page.request.get(f"{browser_server.url}/r/{desk['tokens'][0]}/receipt.pdf")
    assert receipt.status == 200
    text = flat(pdf_text(receipt.body()))
    for expected in ("領収書", "岩手花子様", "¥15,000-", "但し夏油温泉フィールドワーク参加費として",
                     payment.receipt_number, "当日現金"):
        assert expected in text, expected
    assert "収入印紙" not in text
    # Scanned again: the door sees it is paid and offers nothing to tap.
    scan(page, desk["codes"][0])
    expect(page.locator("#fee-line")).to_have_text("参加費 15,000円 支払済み")
    expect(button).to_be_hidden()
    context.close()


def test_offline_payment_is_queued_and_recorded_once(desk, browser_server, browser):
    context = new_context(browser)
    page = open_screen(context, browser_server.url, desk)
    expect(page.locator("#checkin-app")).to_have_attribute("data-offline-ready", "1")
    context.set_offline(True)
    expect(page.locator("#net-badge")).to_have_text("オフライン")
    scan(page, desk["codes"][1])
    expect(page.locator("#result-title")).to_have_text("受付完了")
    expect(page.locator("#fee-line")).to_have_text("参加費 15,000円 未払い")
    page.locator("#fee-pay").tap()
    expect(page.locator("#fee-line")).to_have_text("参加費 15,000円 支払済み(未送信)")
    expect(page.locator("#pending-count")).to_have_text("2")  # the check-in and the payment
    assert payments() == []
    context.set_offline(False)
    expect(page.locator("#net-badge")).to_have_text("オンライン")
    expect(page.locator("#pending-count")).to_have_text("0", timeout=20_000)
    page.wait_for_timeout(500)
    (payment,) = payments()
    assert payment.registration_id == desk["ids"][1] and payment.amount_yen == 15000
    context.close()


def test_free_event_shows_no_fee(desk, browser_server, browser):
    context = new_context(browser)
    page = context.new_page()
    page.goto(f"{browser_server.url}/staff/login?next=/checkin/events/{desk['free_id']}")
    page.locator("input[name=email]").fill(desk["users"][0])
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("form button[type=submit]").click()
    expect(page.locator("#checkin-app")).to_have_attribute("data-ready", "1")
    scan(page, desk["free_code"])
    expect(page.locator("#result-title")).to_have_text("受付完了")
    expect(page.locator("#result-fee")).to_be_hidden()
    context.close()
