"""マイページ on a 375 px phone: ask for a link → read it from the mail (.eml) → open it →
confirm → マイページ → edit the answers → cancel, in headless Chromium against a real gunicorn server."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from eventapp.extensions import db
from eventapp.models import Registration
from eventapp.services.registration import answers_by_key
from tests.browser.test_signup_mobile import PHONE_WIDTH, assert_no_horizontal_scroll
from tests.conftest import TEST_SECRET
from tests.factories import future, make_event, make_registration
from tests.live_server import start_server

pytestmark = [pytest.mark.browser, pytest.mark.server]

QUESTIONS = [{"key": "bus", "kind": "yesno", "label": "北上駅からの送迎バスを利用しますか", "required": True},
             {"key": "diet", "kind": "text", "label": "食物アレルギー・食事制限"}]


def shoot(page: Page, artifacts, name: str) -> None:
    page.screenshot(path=str(artifacts / f"mypage-mobile-{name}.png"), full_page=True)


@pytest.fixture(scope="module")
def mail_server(app, database_url, tmp_path_factory):
    """A gunicorn server that writes its mail as .eml files (the shared browser server sends none):
    the sign-in link is read from the mail as sent, as the outbox keeps no copy of it."""
    mail_dir = tmp_path_factory.mktemp("mypage-mail")
    log_path = tmp_path_factory.mktemp("gunicorn") / "mypage-server.log"
    server = start_server(database_url, secret_key=TEST_SECRET, workers=2, log_path=log_path,
                          extra_env={"MAIL_BACKEND": "file", "MAIL_FILE_DIR": str(mail_dir)})
    server.mail_dir = mail_dir
    yield server
    server.stop()


def mailed_link(mail_dir: Path, email: str) -> str:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:  # sent just after the response went out
        for path in sorted(mail_dir.glob("*-my_page_link.eml")):
            message = message_from_bytes(path.read_bytes(), policy=policy.default)
            if message["To"] == email:
                return re.search(r"http://127\.0\.0\.1:\d+/my/[A-Za-z0-9_-]{43}", message.get_content()).group(0)
        time.sleep(0.1)
    raise AssertionError(f"no sign-in mail to {email} in {mail_dir}")


def test_phone_mypage_link_edit_and_cancel(ctx, mail_server, phone: Page, artifacts):
    email = "hanako.mypage@example.com"
    fieldwork = make_event(title="花巻ブドウ収穫フィールドワーク", questions=QUESTIONS, starts_at=future(40))
    seminar = make_event(kind="online_seminar", title="オンライン 地方複業はじめの一歩", starts_at=future(12),
                         capacity=1)
    past = make_event(title="去年の遠野 民泊体験", starts_at=future(-200))
    make_registration(seminar, email="first@example.com")
    registration = make_registration(fieldwork, email=email, name="岩手 花子", answers={"bus": "yes"})
    make_registration(seminar, email=email, name="岩手 太郎")  # full: waitlisted, place 1
    make_registration(past, email=email, name="岩手 花子", now=past.starts_at - timedelta(days=3))

    phone.goto(mail_server.url + "/my")
    expect(phone.get_by_role("heading", level=1)).to_have_text("マイページ")
    phone.get_by_label("メールアドレス").fill(email)
    phone.get_by_role("button", name="リンクをメールで受け取る").click()
    expect(phone.get_by_role("heading", level=1)).to_have_text("メールをご確認ください")
    shoot(phone, artifacts, "1-link-sent")
    assert_no_horizontal_scroll(phone, "link sent")

    phone.goto(mailed_link(mail_server.mail_dir, email))
    expect(phone.get_by_role("button", name="マイページを開く")).to_be_visible()
    shoot(phone, artifacts, "2-confirm")
    phone.get_by_role("button", name="マイページを開く").click()
    expect(phone.get_by_role("heading", level=1)).to_have_text("マイページ")
    cards = phone.locator(".my-entry")
    expect(cards).to_have_count(3)
    expect(cards.nth(0).locator(".status-label")).to_have_text("キャンセル待ち 1番目")
    expect(cards.nth(1)).to_contain_text("花巻ブドウ収穫フィールドワーク")
    expect(phone.get_by_role("heading", name="過去のイベント")).to_be_visible()
    expect(phone.locator(".feed-url")).to_contain_text("/feeds/person/")
    phone.locator(".my-ticket summary").first.click()
    qr = phone.locator(".my-ticket .qr svg").first
    expect(qr).to_be_visible()
    box = qr.bounding_box()
    assert box and box["width"] >= 150 and box["x"] + box["width"] <= PHONE_WIDTH, box
    shoot(phone, artifacts, "3-home")
    assert_no_horizontal_scroll(phone, "マイページ")

    cards.nth(1).get_by_role("link", name="登録内容を変更").click()
    expect(phone.get_by_role("heading", level=1)).to_have_text("登録内容の変更")
    expect(phone.get_by_label("氏名")).to_have_value("岩手 花子")
    phone.get_by_label("いいえ").check()
    phone.get_by_label("食物アレルギー・食事制限(任意)").fill("そばアレルギー")
    shoot(phone, artifacts, "4-edit")
    assert_no_horizontal_scroll(phone, "edit")
    phone.get_by_role("button", name="変更を保存する").click()
    expect(phone.locator(".notice-success")).to_contain_text("登録内容を変更しました。")
    expect(phone.locator(".my-entry").nth(1)).to_contain_text("そばアレルギー")
    db.session.rollback()
    assert answers_by_key(db.session.get(Registration, registration.id)) == {"bus": "no", "diet": "そばアレルギー"}

    phone.locator(".my-entry").nth(1).get_by_role("link", name="キャンセルする").click()
    expect(phone.get_by_role("heading", level=1)).to_have_text("キャンセルの確認")
    shoot(phone, artifacts, "5-cancel")
    assert_no_horizontal_scroll(phone, "cancel")
    phone.get_by_role("button", name="キャンセルを確定する").click()
    expect(phone.locator(".notice-success")).to_contain_text("キャンセルしました")
    expect(phone.locator(".my-entry").nth(1)).to_contain_text("キャンセル済み")
    shoot(phone, artifacts, "6-after-cancel")
    db.session.rollback()
    assert db.session.get(Registration, registration.id).status == "cancelled"

    phone.get_by_role("button", name="ログアウト").click()
    expect(phone.locator(".notice-success")).to_contain_text("ログアウトしました。")
    phone.goto(mail_server.url + "/my/")
    expect(phone.get_by_role("heading", level=1)).to_have_text("マイページ")
    expect(phone.get_by_role("button", name="リンクをメールで受け取る")).to_be_visible()
