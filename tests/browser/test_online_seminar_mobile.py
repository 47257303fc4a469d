"""An online seminar's manage page on a 375 px phone: the join URL (once revealed) and the 出席コード
explanation, no QR ticket or 受付票 link, in headless Chromium against a real gunicorn server."""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import Page, expect

from eventapp.models.base import utcnow
from tests.browser.test_signup_mobile import assert_no_horizontal_scroll
from tests.factories import future, make_event, make_registration

pytestmark = [pytest.mark.browser, pytest.mark.server]

ZOOM = "https://zoom.example.jp/j/8642097531?pwd=aVeryLongPasswordThatMustWrapOnAPhone"


def test_phone_online_manage_page_has_join_url_and_no_ticket(ctx, browser_server, phone: Page, artifacts):
    start = future(days=12, hour=19)
    seminar = {"kind": "online_seminar", "title": "オンライン移住相談会(岩手で複業)", "starts_at": start,
               "ends_at": start + timedelta(hours=2), "online_url": ZOOM, "venue_name": "", "venue_address": ""}
    # Two seminars, one revealing its URL later and one that already has (the server owns the database).
    registration = make_registration(make_event(**seminar, online_url_reveal_at=future(days=11, hour=12)))
    revealed = make_registration(make_event(**seminar, online_url_reveal_at=utcnow() - timedelta(minutes=1)))

    phone.goto(f"{browser_server.url}/r/{registration.manage_token}")
    join = phone.locator("#join-url")
    expect(join).to_contain_text("参加URLは")
    expect(join).to_contain_text("12:00からこのページでお知らせします")
    expect(join).not_to_contain_text("zoom.example.jp")
    phone.screenshot(path=str(artifacts / "online-mobile-1-before-reveal.png"), full_page=True)
    assert_no_horizontal_scroll(phone, "online manage page before the reveal")

    phone.goto(f"{browser_server.url}/r/{revealed.manage_token}")
    expect(phone.get_by_role("link", name="オンラインで参加する")).to_have_attribute("href", ZOOM)
    expect(join).to_contain_text("出席コード")
    expect(phone.get_by_text("受付用QRコード")).to_have_count(0)
    expect(phone.locator(".qr svg, .ticket")).to_have_count(0)
    expect(phone.get_by_role("link", name="受付票(PDF)を印刷する")).to_have_count(0)
    phone.screenshot(path=str(artifacts / "online-mobile-2-revealed.png"), full_page=True)
    assert_no_horizontal_scroll(phone, "online manage page after the reveal")
