"""Staff in Debian's headless Chromium against a real gunicorn server: log in, create and publish an
event, watch a participant sign up in a second window, export the CSV; screenshots at laptop
(1280 px) and tablet (820 px) widths go to test-artifacts/."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from eventapp.extensions import db
from eventapp.models import Registration
from tests.staff_support import PASSWORD, make_user

pytestmark = [pytest.mark.browser, pytest.mark.server]

WIDTHS = {"laptop": 1280, "tablet": 820}


def page_width(page: Page) -> int:
    return page.evaluate("Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)")


def shoot(page: Page, artifacts, name: str) -> None:
    page.screenshot(path=str(artifacts / f"staff-{name}.png"), full_page=True)


@pytest.fixture
def laptop(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 860}, locale="ja-JP", timezone_id="Asia/Tokyo",
                                  accept_downloads=True)
    yield context.new_page()
    context.close()


def test_staff_creates_event_sees_signup_and_exports_csv(ctx, browser, browser_server, laptop: Page, artifacts):
    admin = make_user("admin", name="事務局 太郎")
    db.session.commit()
    staff = laptop
    base = browser_server.url

    staff.goto(base + "/staff/")
    expect(staff).to_have_url(f"{base}/staff/login?next=/staff/")
    staff.get_by_label("メールアドレス").fill(admin.email)
    staff.get_by_label("パスワード").fill(PASSWORD)
    staff.get_by_role("button", name="ログイン").click()
    expect(staff.get_by_role("heading", level=1)).to_have_text("ダッシュボード")

    staff.get_by_role("link", name="＋ イベントを作成").click()
    day = date.today() + timedelta(days=40)
    staff.get_by_label("タイトル").fill("花巻ぶどう収穫フィールドワーク")
    staff.get_by_label("種類").select_option("fieldwork")
    staff.get_by_label("URL名").fill("hanamaki-grape-browser")
    staff.get_by_label("開始日時").fill(f"{day.isoformat()}T10:00")
    staff.get_by_label("終了日時").fill(f"{day.isoformat()}T09:00")  # a mistake first
    staff.get_by_role("spinbutton", name="定員").fill("12")
    staff.get_by_label("会場名").fill("かんたはうす")
    staff.get_by_role("button", name="作成する(非公開)").click()
    expect(staff.locator(".notice-error")).to_contain_text("終了日時は開始日時より後にしてください。")
    expect(staff.get_by_label("タイトル")).to_have_value("花巻ぶどう収穫フィールドワーク")
    shoot(staff, artifacts, "laptop-event-form-error")
    staff.get_by_label("終了日時").fill(f"{day.isoformat()}T16:00")
    # A reminder time of their own: the custom choice follows (calendar alarms and reminder mails alike).
    staff.locator("#f-calendar_alarms").get_by_label("1時間前").check()
    expect(staff.locator("#f-alarm_mode-custom")).to_be_checked()
    expect(staff.locator("#f-reminder_mode-custom")).not_to_be_checked()
    staff.locator("#f-reminders").get_by_label("2日前").check()
    expect(staff.locator("#f-reminder_mode-custom")).to_be_checked()
    staff.get_by_role("button", name="作成する(非公開)").click()
    expect(staff.locator(".notice-success")).to_contain_text("イベントを作成しました")

    staff.get_by_role("link", name="申込時の設問(0問)").click()
    staff.get_by_label("設問文").fill("北上駅からの送迎バスを利用しますか")
    staff.get_by_label("種類", exact=True).select_option("yesno")
    staff.get_by_label("記号名(任意・半角英数字)").fill("bus")
    staff.get_by_role("button", name="保存する").click()
    expect(staff.locator(".notice-success")).to_contain_text("設問を保存しました")
    staff.get_by_role("link", name="← 花巻ぶどう収穫フィールドワーク").click()
    staff.get_by_role("button", name="公開する").click()
    expect(staff.locator(".notice-success")).to_contain_text("公開しました")
    event_url = staff.url

    # A participant signs up on the public page in a second window.
    public_context = browser.new_context(viewport={"width": 390, "height": 844}, locale="ja-JP")
    participant = public_context.new_page()
    participant.goto(base + "/events/hanamaki-grape-browser/register")
    participant.get_by_label("氏名").fill("岩手 花子")
    participant.get_by_label("ふりがな").fill("いわて はなこ")
    participant.get_by_label("メールアドレス").fill("hanako.staff-test@example.com")
    participant.get_by_label("はい").check()
    participant.get_by_label("上記の個人情報の取扱いに同意します").check()
    participant.get_by_role("button", name="申し込む").click()
    expect(participant.locator(".status-label")).to_have_text("参加確定")
    public_context.close()

    staff.goto(event_url)
    expect(staff.locator(".stats")).to_contain_text("1 / 12")
    staff.get_by_role("link", name="参加者一覧").click()
    expect(staff.locator("table.participants")).to_contain_text("岩手 花子")
    expect(staff.locator("table.participants")).to_contain_text("はい")

    staff.goto(event_url)
    staff.get_by_label("項目").select_option("all")
    with staff.expect_download() as info:
        staff.get_by_role("button", name="CSV(Excel用)").click()
    download = info.value
    assert download.suggested_filename == "hanamaki-grape-browser-all.csv"
    raw = Path(download.path()).read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf"), "Japanese Excel needs the UTF-8 BOM"
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[1][1:3] == ["岩手 花子", "いわて はなこ"]
    assert "北上駅からの送迎バスを利用しますか" in rows[0] and "はい" in rows[1]

    db.session.rollback()
    registration = db.session.execute(select(Registration)).scalar_one()
    assert registration.event.calendar_alarms == ["1h"]
    assert registration.event.reminders == ["2d"]
    # Look at the main screens on a laptop and on a tablet; nothing may stick out sideways.
    pages = {"dashboard": "/staff/", "event": event_url.removeprefix(base), "participants":
             event_url.removeprefix(base) + "/participants", "edit": event_url.removeprefix(base) + "/edit",
             "programme": event_url.removeprefix(base) + "/programme",
             "questions": event_url.removeprefix(base) + "/questions", "users": "/staff/users",
             "audit": "/staff/audit", "registration": f"/staff/registrations/{registration.id}",
             "person": f"/staff/people/{registration.person_id}", "search": "/staff/people?q=いわて",
             "duplicate": event_url.removeprefix(base) + "/duplicate", "privacy": "/staff/privacy"}
    for label, width in WIDTHS.items():
        staff.set_viewport_size({"width": width, "height": 1000})
        for name, path in pages.items():
            staff.goto(base + path)
            shoot(staff, artifacts, f"{label}-{name}")
            assert page_width(staff) <= width, f"{name} is wider than a {width}px screen"
    staff.goto(base + "/staff/audit")
    expect(staff.locator("table.audit")).to_contain_text("全項目をCSVで出力(1名)")
