"""Done-means path in Debian's headless Chromium against gunicorn: a fieldwork attendee opens the
invitation link and signs up with ranked organisations, a non-attendee is refused with a clear
message, staff generate the timetable, record a match, and the yearly report counts it."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from eventapp.extensions import db
from eventapp.models import Invitation, OutboxMessage, TimetableSlot
from eventapp.models.base import utcnow
from eventapp.services import matching, organisations
from eventapp.services.fiscal import fiscal_year
from tests.conftest import future, make_event, make_registration
from tests.services.test_matching import attend, make_org
from tests.staff_support import PASSWORD, make_user

pytestmark = [pytest.mark.browser, pytest.mark.server]


@pytest.fixture
def desktop(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="ja-JP", timezone_id="Asia/Tokyo")
    page = context.new_page()
    yield page
    context.close()


def test_invitation_signup_timetable_outcome_report(ctx, browser_server, phone: Page, desktop: Page):
    base = browser_server.url
    now = utcnow()
    fieldwork = make_event(kind="fieldwork", starts_at=now - timedelta(days=3), slug="fw-browser")
    session = make_event(kind="matching_session", starts_at=future(25), slug="ms-browser", fee_yen=0,
                         title="遠恋複業マッチング会")
    kanta, satomori = make_org(), make_org("さともり株式会社", municipality="大槌町", project_type="business")
    for org in (kanta, satomori):
        organisations.link_event(session.id, org.id)
    attendee = make_registration(fieldwork, email="attendee@example.com", name="佐藤 花子",
                                 now=now - timedelta(days=10))
    make_registration(fieldwork, email="noshow@example.com", now=now - timedelta(days=10))
    attend(attendee)
    matching.configure(session.id, access_rule="attendees_only", links=[("event", fieldwork.id)], rounds=2)
    staff = make_user("staff")
    db.session.commit()

    # Staff: log in and press 「出席を確定して招待メールを送る」.
    desktop.goto(base + "/staff/login")
    desktop.fill("#email", staff.email)
    desktop.fill("#password", PASSWORD)
    desktop.get_by_role("button", name="ログイン").click()
    desktop.goto(base + f"/staff/attendance/{fieldwork.id}")
    desktop.get_by_role("button", name="出席を確定して招待メールを送る").click()
    expect(desktop.locator(".notice-success")).to_contain_text("招待メールを1件")
    db.session.rollback()  # end the test's read transaction so the server's writes are visible
    body = db.session.execute(select(OutboxMessage.body).where(OutboxMessage.kind == "matching_invitation")).scalar_one()
    link = re.search(r"https?://\S+(/invite/\S+)", body).group(1)
    assert db.session.execute(select(Invitation.person_id)).scalar_one() == attendee.person_id

    # A non-attendee is told why, in Japanese.
    phone.goto(base + f"/events/{session.slug}/register")
    phone.fill("#name", "鈴木 一郎")
    phone.fill("#furigana", "すずき いちろう")
    phone.fill("#email", "noshow@example.com")
    phone.select_option("#pref_1", str(kanta.id))
    phone.check("#consent_privacy")
    phone.get_by_role("button", name=re.compile("申し込む")).click()
    expect(phone.locator("#form-error")).to_contain_text("参加された方のみお申し込みいただけます")

    # The attendee's personal link: pre-filled form, ranked organisations.
    phone.goto(base + link)
    expect(phone.locator("#email")).to_have_value("attendee@example.com")
    phone.select_option("#pref_1", str(satomori.id))
    phone.select_option("#pref_2", str(kanta.id))
    phone.check("#consent_privacy")
    phone.get_by_role("button", name=re.compile("申し込む")).click()
    expect(phone.locator(".status-label")).to_contain_text("参加確定")

    # Staff: generate the timetable; the attendee meets both organisations in different rounds.
    desktop.goto(base + f"/staff/matching/{session.id}/timetable")
    desktop.get_by_role("button", name="自動で作成").click()
    expect(desktop.locator(".notice-success")).to_contain_text("タイムテーブルを作成しました")
    db.session.rollback()  # end the test's read transaction so the server's writes are visible
    slots = db.session.execute(select(TimetableSlot)).scalars().all()
    assert sorted(s.round for s in slots) == [1, 2]
    assert {s.organisation_id for s in slots} == {kanta.id, satomori.id}

    # Staff: record the match; the report for this 年度 shows it.
    year = fiscal_year(now)
    desktop.goto(base + f"/staff/reports?year={year}")
    expect(desktop.locator("#matches-total")).to_have_text("0")
    desktop.goto(base + f"/staff/matching/{session.id}/outcomes")
    desktop.select_option("#f-org", str(kanta.id))
    desktop.select_option("#f-status", "matched")
    desktop.fill("#f-date", now.date().isoformat())
    desktop.fill("#f-desc", "地域産ワインの認知拡大とファン獲得を両立するコミュニティ形成")
    desktop.get_by_role("button", name="記録する").click()
    expect(desktop.locator("table.list")).to_contain_text("マッチング成立")
    desktop.goto(base + f"/staff/reports?year={year}")
    expect(desktop.locator("#matches-total")).to_have_text("1")
    expect(desktop.locator("svg.chart").first).to_be_visible()
