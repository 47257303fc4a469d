"""A participant on a 375 px phone: catalogue → event → sign-up (with a consent mistake first) →
QR ticket → cancel, in Debian's headless Chromium against a real gunicorn server."""

from __future__ import annotations

from datetime import date, timedelta
from urllib.parse import urlparse

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from eventapp.demo import onsen
from eventapp.extensions import db
from eventapp.models import Registration
from tests.factories import make_event

pytestmark = [pytest.mark.browser, pytest.mark.server]

PHONE_WIDTH = 375
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
# Names the elements that stick out, so a failure says what to fix.
WIDEST_ELEMENTS = """(limit) => [...document.querySelectorAll('body *')]
  .filter(el => el.getBoundingClientRect().right > limit)
  .slice(0, 5).map(el => `${el.tagName.toLowerCase()}.${el.className} → ${Math.round(el.getBoundingClientRect().right)}px`)"""


def assert_no_horizontal_scroll(page: Page, where: str) -> None:
    width = page.evaluate("Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)")
    wide = page.evaluate(WIDEST_ELEMENTS, PHONE_WIDTH) if width > PHONE_WIDTH else []
    assert width <= PHONE_WIDTH, f"{where}: the page is {width}px wide on a {PHONE_WIDTH}px screen: {wide}"


def shoot(page: Page, artifacts, name: str) -> None:
    # Taken before the width check, so a failing layout leaves a picture to look at.
    page.screenshot(path=str(artifacts / f"signup-mobile-{name}.png"), full_page=True)


def test_phone_signup_shows_qr_ticket_and_cancels(ctx, browser_server, phone: Page, artifacts):
    day = date.today() + timedelta(days=45)
    event = make_event(**onsen(day, "browser-onsen", capacity=25))
    requested: list[str] = []
    phone.on("request", lambda request: requested.append(request.url))

    phone.goto(browser_server.url + "/")
    card_link = phone.get_by_role("link", name=event.title)
    expect(card_link).to_be_visible()
    expect(phone.locator(".event-card").filter(has=card_link)).to_contain_text("残り25席")
    shoot(phone, artifacts, "1-catalogue")
    assert_no_horizontal_scroll(phone, "catalogue")

    card_link.click()
    expect(phone.get_by_role("heading", level=1)).to_have_text(event.title)
    expect(phone.locator(".facts")).to_contain_text("夏油温泉観光ホテル")
    shoot(phone, artifacts, "2-event")
    assert_no_horizontal_scroll(phone, "event page")

    phone.get_by_role("link", name="申し込む").click()
    phone.get_by_label("氏名").fill("岩手 花子")
    phone.get_by_label("ふりがな").fill("イワテ ハナコ")  # katakana is accepted and stored as hiragana
    phone.get_by_label("メールアドレス").fill("hanako.browser@example.com")
    phone.get_by_label("お住まいの都道府県").select_option("東京都")
    phone.get_by_label("はい").check()  # 北上駅からの送迎バス
    phone.get_by_label("相部屋可(同性)").check()
    phone.get_by_label("食物アレルギー・食事制限").fill("えびアレルギー")
    # Submitting without consent keeps the answers and explains what is missing, in Japanese.
    phone.get_by_role("button", name="申し込む").click()
    expect(phone.locator(".field.has-error")).to_contain_text("個人情報の取扱いに同意してください。")
    expect(phone.get_by_label("氏名")).to_have_value("岩手 花子")
    shoot(phone, artifacts, "3-form-error")
    assert_no_horizontal_scroll(phone, "sign-up form with an error")

    phone.get_by_label("上記の個人情報の取扱いに同意します").check()
    phone.get_by_role("button", name="申し込む").click()
    expect(phone.locator(".status-label")).to_have_text("参加確定")
    expect(phone.locator(".notice-success")).to_contain_text("hanako.browser@example.com")
    qr = phone.locator(".qr svg")
    expect(qr).to_be_visible()
    box = qr.bounding_box()
    assert box and box["width"] >= 150 and box["x"] + box["width"] <= PHONE_WIDTH, box  # scannable, on screen
    expect(phone.locator(".facts")).to_contain_text("いわて はなこ")
    expect(phone.locator(".facts")).to_contain_text("えびアレルギー")
    shoot(phone, artifacts, "4-ticket")
    assert_no_horizontal_scroll(phone, "my registration")

    db.session.rollback()
    registration = db.session.execute(select(Registration)).scalar_one()
    assert registration.status == "confirmed"
    expect(phone.locator(".ticket-code")).to_have_text(registration.ticket_code)

    phone.get_by_role("link", name="キャンセルする").click()
    expect(phone.get_by_role("heading", level=1)).to_have_text("キャンセルの確認")
    shoot(phone, artifacts, "5-cancel-confirm")
    assert_no_horizontal_scroll(phone, "cancel confirmation")
    phone.get_by_role("button", name="キャンセルを確定する").click()
    expect(phone.locator(".status-label")).to_have_text("キャンセル済み")
    expect(phone.locator(".qr")).to_have_count(0)
    shoot(phone, artifacts, "6-cancelled")
    assert_no_horizontal_scroll(phone, "after cancelling")

    db.session.rollback()
    assert db.session.get(Registration, registration.id).status == "cancelled"
    # Everything (styles, QR, fonts) came from the app itself: no third-party requests.
    assert requested, "no requests were recorded"
    foreign = [url for url in requested
               if urlparse(url).scheme not in ("data", "blob") and urlparse(url).hostname not in LOCAL_HOSTS]
    assert foreign == []
