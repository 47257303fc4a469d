"""A lead signs up with two companions on a 375 px phone (no JavaScript needed for the companion
fields), sees the group on the manage page and cancels only their own seat."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from eventapp.extensions import db
from eventapp.models import Registration
from tests.browser.test_signup_mobile import assert_no_horizontal_scroll
from tests.factories import make_event

pytestmark = [pytest.mark.browser, pytest.mark.server]


def shoot(page: Page, artifacts, name: str) -> None:
    page.screenshot(path=str(artifacts / f"companions-mobile-{name}.png"), full_page=True)


def test_phone_signup_with_companions_shows_the_group_and_cancels_only_the_lead(ctx, browser_server, phone: Page,
                                                                                artifacts):
    event = make_event(capacity=10, max_companions=3, slug="family-grape", questions=[
        {"key": "gloves", "kind": "choice", "label": "軍手のサイズ", "choices": ["S", "M", "L"], "required": True}])
    phone.goto(f"{browser_server.url}/events/{event.slug}/register")
    form = phone.locator("form.signup-form")
    form.locator("#name").fill("岩手 花子")
    form.locator("#furigana").fill("いわて はなこ")
    form.locator("#email").fill("family.browser@example.com")
    form.locator("input[name=q_gloves][value=M]").check()
    companions = phone.locator("details.companion")
    expect(companions).to_have_count(3)
    shoot(phone, artifacts, "1-form-closed")
    assert_no_horizontal_scroll(phone, "sign-up form with companion slots")
    for slot, (name, kana, size) in enumerate((("岩手 太郎", "いわて たろう", "L"), ("岩手 ゆい", "イワテ ユイ", "S"))):
        companions.nth(slot).locator("summary").click()
        companions.nth(slot).get_by_label("氏名").fill(name)
        companions.nth(slot).get_by_label("ふりがな").fill(kana)
        companions.nth(slot).locator(f"input[value={size}]").check()
    phone.get_by_label("上記の個人情報の取扱いに同意します").check()
    shoot(phone, artifacts, "2-form-filled")
    assert_no_horizontal_scroll(phone, "sign-up form with two companions")
    phone.get_by_role("button", name="申し込む").click()

    expect(phone.locator(".status-label")).to_have_text("参加確定")
    group = phone.locator("section.companions")
    expect(group).to_contain_text("岩手 太郎")
    expect(group).to_contain_text("岩手 ゆい")
    shoot(phone, artifacts, "3-manage")
    assert_no_horizontal_scroll(phone, "manage page with companions")

    # A companion's own page: its own QR ticket.
    group.get_by_role("link").first.click()
    expect(phone.locator(".qr svg")).to_be_visible()
    expect(phone.locator(".facts")).to_contain_text("岩手 太郎")
    shoot(phone, artifacts, "4-companion-ticket")
    phone.go_back()

    phone.get_by_role("link", name="キャンセルする").click()
    shoot(phone, artifacts, "5-cancel-choice")
    assert_no_horizontal_scroll(phone, "cancel choice")
    phone.get_by_role("button", name="自分だけキャンセル(同行者は参加)").click()
    expect(phone.locator(".status-label")).to_have_text("キャンセル済み")

    db.session.rollback()
    rows = db.session.execute(select(Registration.name, Registration.status).order_by(Registration.id)).all()
    assert [tuple(r) for r in rows] == [("岩手 花子", "cancelled"), ("岩手 太郎", "confirmed"),
                                        ("岩手 ゆい", "confirmed")]
