"""The check-in result on a phone: answers as people read them, 重要 ones (allergies) boxed."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from eventapp.extensions import db
from eventapp.services.accounts import create_user
from tests.browser.test_checkin_screen import PASSWORD, new_context, scan
from tests.conftest import future
from tests.factories import make_event, make_registration

pytestmark = [pytest.mark.browser, pytest.mark.server]


def test_result_marks_the_dietary_answer_and_shows_hai(ctx, browser_server, browser):
    create_user("desk-answers@example.jp", "checkin", PASSWORD, "田中")
    # Tomorrow: inside the default check-in window (from 00:00 the day before) and still open for
    # sign-ups whatever the time of day the test runs.
    event = make_event(starts_at=future(1, hour=13), questions=[
        {"key": "dietary", "kind": "text", "label": "食事の配慮"},
        {"key": "bus", "kind": "yesno", "label": "送迎バス"}])
    reg = make_registration(event, name="北上 三郎", furigana="きたかみ さぶろう",
                            answers={"dietary": "そばアレルギー", "bus": "yes"})
    db.session.commit()
    context = new_context(browser)
    page = context.new_page()
    page.goto(f"{browser_server.url}/staff/login?next=/checkin/events/{event.id}")
    page.locator("input[name=email]").fill("desk-answers@example.jp")
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("form button[type=submit]").click()
    expect(page.locator("#checkin-app")).to_have_attribute("data-ready", "1")
    scan(page, reg.ticket_code)
    expect(page.locator("#result")).to_have_attribute("data-state", "ok")
    important = page.locator("#result-notes li.note-important")
    expect(important).to_have_count(1)
    expect(important).to_have_text("⚠ 重要 食事の配慮: そばアレルギー")
    expect(page.locator("#result-notes li:not(.note-important)")).to_have_text("送迎バス: はい")
    # Boxed in red on the green result: it stands out, it is not just more bold text.
    assert important.evaluate("e => getComputedStyle(e).borderTopStyle") == "solid"
    context.close()
