"""参加者にメール in Debian's headless Chromium against a real gunicorn server: compose with placeholders,
preview for another recipient, send a test to oneself, confirm with the count, send; screenshots of the
steps go to test-artifacts/."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from eventapp.extensions import db
from eventapp.models import OutboxMessage, StaffMail
from tests.browser.test_staff_backoffice import laptop, page_width, shoot  # noqa: F401 (fixture)
from tests.factories import make_event, make_registration
from tests.staff_support import PASSWORD, make_user

pytestmark = [pytest.mark.browser, pytest.mark.server]


def test_compose_preview_test_confirm_send(ctx, browser_server, laptop: Page, artifacts):  # noqa: F811
    staff_user = make_user("staff", name="事務局 花子", email="mail-browser@example.jp")
    event = make_event(title="花巻ぶどう収穫フィールドワーク")
    make_registration(event, name="岩手 一郎", email="ichiro.browser@example.com")
    make_registration(event, name="盛岡 花子", email="hanako.browser@example.com")
    db.session.commit()
    page, base = laptop, browser_server.url

    page.goto(f"{base}/staff/events/{event.id}")
    page.get_by_label("メールアドレス").fill(staff_user.email)
    page.get_by_label("パスワード").fill(PASSWORD)
    page.get_by_role("button", name="ログイン").click()
    page.get_by_role("link", name="参加者にメール").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("参加者にメールを送る")

    page.get_by_label("参加確定の方(2名)").check()
    page.get_by_label("件名").fill("{event_title} 集合場所のお知らせ")
    page.get_by_label("本文").fill("{name} 様\n集合は北上駅 {nmae} です。")  # a typo first
    page.get_by_role("button", name="プレビューへ進む(まだ送信されません)").click()
    expect(page.locator(".notice-error")).to_contain_text("使えない差し込み項目があります: {nmae}")
    page.get_by_label("本文").fill("{name} 様\n集合は北上駅です。{{長靴}}をお持ちください。")
    page.get_by_role("button", name="プレビューへ進む(まだ送信されません)").click()

    preview = page.locator(".mail-preview")
    expect(preview).to_contain_text("花巻ぶどう収穫フィールドワーク 集合場所のお知らせ")
    expect(preview.locator(".preview-body")).to_contain_text("岩手 一郎 様")
    expect(preview.locator(".preview-body")).to_contain_text("{長靴}をお持ちください。")
    page.get_by_label("プレビューする方").select_option(label="盛岡 花子(hanako.browser@example.com)")
    page.get_by_role("button", name="この方で表示").click()
    expect(preview.locator(".preview-body")).to_contain_text("盛岡 花子 様")
    shoot(page, artifacts, "mail-preview")
    assert page_width(page) <= 1280

    page.get_by_role("button", name=f"自分にテスト送信({staff_user.email})").click()
    expect(page.locator(".notice-success")).to_contain_text(f"{staff_user.email} にテストメールを送信しました")
    db.session.rollback()
    assert [(m.kind, m.to_addr) for m in db.session.execute(
        select(OutboxMessage).where(OutboxMessage.kind.like("staff_message%"))).scalars()] == [
        ("staff_message_test", staff_user.email)]
    test_mail = db.session.execute(select(OutboxMessage).where(OutboxMessage.kind == "staff_message_test")).scalar_one()
    assert test_mail.subject.startswith("【テスト】") and "盛岡 花子 様" in test_mail.body

    page.get_by_role("link", name="送信の確認へ進む").click()
    expect(page.locator(".recipient-count")).to_contain_text("2名に送信します")
    page.get_by_role("button", name="送信する").click()  # the box not ticked: nothing goes out
    expect(page.locator(".notice-error")).to_contain_text("チェックを入れてください")
    page.get_by_label("送信先・人数・内容を確認しました(2名)").check()
    shoot(page, artifacts, "mail-confirm")
    page.get_by_role("button", name="送信する").click()
    expect(page.locator(".notice-success")).to_contain_text("2名にメールを送信しました")
    expect(page.locator("table.staff-mails")).to_contain_text("送信済み")

    db.session.rollback()
    staff_mail = db.session.execute(select(StaffMail)).scalar_one()
    assert (staff_mail.status, staff_mail.recipient_count) == ("sent", 2)
    sent = db.session.execute(select(OutboxMessage).where(OutboxMessage.kind == "staff_message")).scalars().all()
    assert sorted(m.to_addr for m in sent) == ["hanako.browser@example.com", "ichiro.browser@example.com"]
    # The mail pages fit a tablet too.
    page.set_viewport_size({"width": 820, "height": 1000})
    for name, path in {"mail-list": f"/staff/events/{event.id}/mails",
                       "mail-sent": f"/staff/events/{event.id}/mails/{staff_mail.id}",
                       "mail-compose": f"/staff/events/{event.id}/message"}.items():
        page.goto(base + path)
        shoot(page, artifacts, f"tablet-{name}")
        assert page_width(page) <= 820, f"{name} is wider than a 820px screen"
