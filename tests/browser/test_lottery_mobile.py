"""抽選 on a 375 px phone: the event page says it is a lottery, the sign-up is an application with the
result date, the draw runs (the service, as the scheduled pass would), and the winner's manage page
then shows the QR ticket."""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from eventapp.extensions import db
from eventapp.formatting import JST
from eventapp.models import Registration
from eventapp.services import lottery
from tests.browser.test_signup_mobile import assert_no_horizontal_scroll
from tests.factories import future, make_event

pytestmark = [pytest.mark.browser, pytest.mark.server]


def test_phone_applies_for_a_lottery_and_the_winner_sees_the_ticket(ctx, browser_server, phone: Page, artifacts):
    starts = future(40)
    event = make_event(slug="browser-lottery", title="ぶどう収穫フィールドワーク(抽選)", capacity=1,
                       allocation="lottery", lottery_draw_at=starts - timedelta(days=14), starts_at=starts,
                       ends_at=starts + timedelta(hours=5))
    draw_day = event.lottery_draw_at.astimezone(JST)
    date_text = f"{draw_day.month}月{draw_day.day}日"

    phone.goto(f"{browser_server.url}/events/{event.slug}")
    expect(phone.locator(".facts")).to_contain_text(f"抽選結果は{date_text}")
    phone.get_by_role("link", name="抽選に申し込む").click()
    expect(phone.locator("#lottery-notice")).to_contain_text(date_text)
    phone.get_by_label("氏名").fill("岩手 花子")
    phone.get_by_label("ふりがな").fill("いわて はなこ")
    phone.get_by_label("メールアドレス").fill("hanako.lottery@example.com")
    phone.get_by_label("お住まいの都道府県").select_option("東京都")
    phone.get_by_label("上記の個人情報の取扱いに同意します").check()
    phone.get_by_role("button", name="抽選に申し込む").click()
    expect(phone.locator(".status-label")).to_have_text("抽選応募中")
    expect(phone.locator(".status-card")).to_contain_text(f"抽選結果は{date_text}")
    expect(phone.locator(".qr svg")).to_have_count(0)  # no ticket before the draw
    phone.screenshot(path=str(artifacts / "lottery-mobile-1-applied.png"), full_page=True)
    assert_no_horizontal_scroll(phone, "manage page, applied")
    manage_url = phone.url.split("?")[0]

    db.session.rollback()
    result = lottery.draw(event.id)
    db.session.commit()
    assert result.won == 1
    status = db.session.execute(select(Registration.status).where(Registration.event_id == event.id)).scalar_one()
    assert status == "confirmed"

    phone.goto(manage_url)
    expect(phone.locator(".status-label")).to_have_text("参加確定")
    qr = phone.locator(".qr svg")
    expect(qr).to_be_visible()
    box = qr.bounding_box()
    assert box and box["x"] + box["width"] <= 375, box
    phone.screenshot(path=str(artifacts / "lottery-mobile-2-won.png"), full_page=True)
    assert_no_horizontal_scroll(phone, "manage page, won")
