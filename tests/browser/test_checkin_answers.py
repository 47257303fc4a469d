"""The check-in result on a phone: answers as people read them, 重要 ones (allergies) boxed."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from eventapp.extensions import db
from eventapp.models import Event, Question
from tests.browser.test_checkin_screen import desk, new_context, open_screen, scan  # noqa: F401 (desk: fixture)
from tests.factories import make_registration

pytestmark = [pytest.mark.browser, pytest.mark.server]


def test_result_marks_the_dietary_answer_and_shows_hai(desk, browser_server, browser):  # noqa: F811
    event_id = desk["event_id"]
    event = db.session.get(Event, event_id)
    event.capacity = 10  # the fixture's event is full
    db.session.add(Question(event_id=event_id, key="bus", kind="yesno", label="送迎バス", position=5))
    db.session.commit()
    reg = make_registration(event, name="北上 三郎", furigana="きたかみ さぶろう",
                            answers={"dietary": "そばアレルギー", "bus": "yes"})
    context = new_context(browser)
    page = open_screen(context, browser_server.url, desk)
    scan(page, reg.ticket_code)
    expect(page.locator("#result")).to_have_attribute("data-state", "ok")
    important = page.locator("#result-notes li.note-important")
    expect(important).to_have_count(1)
    expect(important).to_have_text("⚠ 重要 食事の配慮: そばアレルギー")
    expect(page.locator("#result-notes li:not(.note-important)")).to_have_text("送迎バス: はい")
    # Boxed in red on the green result: it stands out, it is not just more bold text.
    assert important.evaluate("e => getComputedStyle(e).borderTopStyle") == "solid"
    page.screenshot(path="test-artifacts/checkin-important.png")
    context.close()
