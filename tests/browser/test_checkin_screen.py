"""The check-in screen in Debian's headless Chromium against a real gunicorn server: a handheld
scanner (typed code + Enter), the camera (a fake camera showing a real ticket QR), offline
check-ins that sync with their original times, and two devices scanning one ticket at once."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import pytest
import segno
from PIL import Image
from playwright.sync_api import Browser, BrowserContext, Page, expect
from sqlalchemy import select

from eventapp.extensions import db
from eventapp.models import CheckIn
from eventapp.models.base import utcnow
from eventapp.services.accounts import create_user
from tests.browser.conftest import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS
from tests.factories import make_checkin_event, make_registration

pytestmark = [pytest.mark.browser, pytest.mark.server]
PASSWORD = "password-123"


@pytest.fixture
def desk(ctx):
    """A check-in user and an event with three confirmed participants (one with a dietary note)."""
    users = []
    for n, name in enumerate(("田中", "佐藤")):
        user, _ = create_user(f"desk{n}@example.jp", "checkin", PASSWORD, name)
        users.append(user.email)
    db.session.commit()
    # A long title, as real ones are: the phone screen must cut it, not scroll sideways.
    event = make_checkin_event(capacity=3, questions=[{"key": "dietary", "kind": "text", "label": "食事の配慮"}],
                       title="地域と温泉を楽しみながら考える 遠恋複業フィールドワーク「夏油温泉で鬼剣舞とグループワーク」")
    regs = [
        make_registration(event, name="岩手 花子", furigana="いわて はなこ", answers={"dietary": "えび・かにアレルギー"}),
        make_registration(event, name="盛岡 太郎", furigana="もりおか たろう", phone="090-1234-5678"),
        make_registration(event, name="遠野 次郎", furigana="とおの じろう"),
    ]
    return {"event_id": event.id, "day_id": event.days[0].id, "codes": [r.ticket_code for r in regs],
            "ids": [r.id for r in regs], "users": users}


def open_screen(context: BrowserContext, server_url: str, desk: dict, user: int = 0) -> Page:
    page = context.new_page()
    page.goto(f"{server_url}/staff/login?next=/checkin/events/{desk['event_id']}")
    page.locator("input[name=email]").fill(desk["users"][user])
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("form button[type=submit]").click()
    expect(page.locator("#checkin-app")).to_have_attribute("data-ready", "1")
    return page


def new_context(browser: Browser, **extra) -> BrowserContext:
    return browser.new_context(viewport={"width": 390, "height": 844}, locale="ja-JP", timezone_id="Asia/Tokyo",
                               is_mobile=True, has_touch=True, **extra)


def scan(page: Page, code: str) -> None:
    """What a keyboard-wedge scanner does: type the code into whatever has focus, then Enter."""
    page.keyboard.type(code, delay=5)
    page.keyboard.press("Enter")


def active_checkins(event_id: int) -> list[CheckIn]:
    db.session.rollback()  # see the server's commits
    return db.session.execute(
        select(CheckIn).where(CheckIn.undone_at.is_(None), CheckIn.duplicate_of_id.is_(None))
        .order_by(CheckIn.checked_in_at)).scalars().all()


def test_handheld_scanner_types_code_and_enter(desk, browser_server, browser):
    context = new_context(browser)
    page = open_screen(context, browser_server.url, desk)
    expect(page.locator("#scan-input")).to_be_focused()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the check-in screen is {width}px wide on a 390px phone"
    scan(page, desk["codes"][0])
    result = page.locator("#result")
    expect(result).to_have_attribute("data-state", "ok")
    expect(page.locator("#result-title")).to_have_text("受付完了")
    expect(page.locator("#result-name")).to_have_text("岩手 花子")
    expect(page.locator("#result-notes")).to_contain_text("えび・かにアレルギー")
    expect(page.locator("#count-checked")).to_have_text("1")
    # The input keeps the focus, so the next scan needs no tap; a second scan is amber with the time and who.
    expect(page.locator("#scan-input")).to_be_focused()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the check-in screen is {width}px wide on a 390px phone"
    scan(page, desk["codes"][0])
    expect(result).to_have_attribute("data-state", "warn")
    expect(page.locator("#result-title")).to_contain_text("受付済み")
    expect(page.locator("#result-title")).to_contain_text("(田中)")
    forged = desk["codes"][1][:-3] + "AAA"
    scan(page, forged)
    expect(result).to_have_attribute("data-state", "error")
    expect(page.locator("#result-detail")).to_contain_text("無効")
    # Manual search by phone digits, one tap to check in.
    page.locator("#search-input").fill("5678")
    page.locator("#search-results li", has_text="盛岡 太郎").get_by_role("button", name="受付").click()
    expect(page.locator("#result-name")).to_have_text("盛岡 太郎")
    expect(result).to_have_attribute("data-state", "ok")
    # Undo the last one.
    page.locator("#undo-last").click()
    expect(page.locator("#result-title")).to_have_text("取り消しました")
    rows = active_checkins(desk["event_id"])
    assert [r.registration_id for r in rows] == [desk["ids"][0]]
    context.close()


def test_full_width_code_typed_with_the_ime_checks_in_on_a_375px_phone(desk, browser_server, browser):
    """Issue 15 item 2: 「Ｅ１１－７ＯＮＳ…」 typed with the IME on is the ticket, not a forgery;
    text that is no code says so and stays visible."""
    context = browser.new_context(viewport={"width": 375, "height": 812}, locale="ja-JP", timezone_id="Asia/Tokyo",
                                  is_mobile=True, has_touch=True)
    page = open_screen(context, browser_server.url, desk)
    typed = "".join("－" if ch == "-" else chr(ord(ch) + 0xFEE0) for ch in desk["codes"][0])
    assert typed.startswith("Ｅ") and "－" in typed
    field = page.locator("#scan-input")
    field.fill(typed)
    field.press("Enter")
    result = page.locator("#result")
    expect(result).to_have_attribute("data-state", "ok")
    expect(page.locator("#result-name")).to_have_text("岩手 花子")
    expect(page.locator("#result-read")).to_have_text("")
    assert [r.registration_id for r in active_checkins(desk["event_id"])] == [desk["ids"][0]]
    field.fill("ＨＥＬＬＯ－１２３")
    field.press("Enter")
    expect(result).to_have_attribute("data-state", "error")
    expect(page.locator("#result-title")).to_have_text("チケットではありません")
    expect(page.locator("#result-detail")).to_have_text("チケットのQRコードではありません。")
    expect(page.locator("#result-read")).to_contain_text("ＨＥＬＬＯ－１２３")
    expect(page.locator("#result-detail")).not_to_contain_text("偽造")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"the check-in screen is {width}px wide on a 375px phone"
    context.close()


def test_walk_in_past_capacity_with_a_warning(desk, browser_server, browser):
    context = new_context(browser)
    page = open_screen(context, browser_server.url, desk)
    expect(page.locator("#count-confirmed")).to_have_text("3")
    page.locator("#walkin-open").click()
    expect(page.locator("#walkin-warning")).to_be_visible()
    expect(page.locator("#walkin-warning")).to_contain_text("定員(3名)に達しています")
    expect(page.locator("#walkin-send-mail")).not_to_be_checked()  # no mail to a typed address unless ticked
    page.locator("#walkin-name").fill("当日 参加")
    page.locator("#walkin-furigana").fill("トウジツ サンカ")
    page.locator("#walkin-email").fill("not-an-email")
    page.locator("#walkin-form button[type=submit]").click()
    expect(page.locator("#walkin-errors")).to_contain_text("メールアドレス")
    page.locator("#walkin-email").fill("walkin@example.com")
    page.locator("#walkin-form button[type=submit]").click()
    expect(page.locator("#result-title")).to_have_text("受付完了")
    expect(page.locator("#result-name")).to_have_text("当日 参加")
    expect(page.locator("#result-detail")).to_contain_text("定員を超えています")
    expect(page.locator("#walkin-form")).to_be_hidden()
    expect(page.locator("#count-confirmed")).to_have_text("4", timeout=10_000)
    rows = active_checkins(desk["event_id"])
    assert len(rows) == 1 and rows[0].source == "walkin" and rows[0].registration.furigana == "とうじつ さんか"
    # Someone at the door without an email address is registered too (no confirmation mail then).
    page.locator("#walkin-open").click()
    page.locator("#walkin-name").fill("当日 二郎")
    page.locator("#walkin-furigana").fill("とうじつ じろう")
    page.locator("#walkin-form button[type=submit]").click()
    expect(page.locator("#result-name")).to_have_text("当日 二郎")
    expect(page.locator("#count-confirmed")).to_have_text("5", timeout=10_000)
    rows = active_checkins(desk["event_id"])
    assert sorted(r.registration.person.email or "" for r in rows) == ["", "walkin@example.com"]
    assert outbox_to("walkin@example.com") == []
    # Ticked: the confirmation mail goes out.
    page.locator("#walkin-open").click()
    page.locator("#walkin-name").fill("当日 三郎")
    page.locator("#walkin-furigana").fill("とうじつ さぶろう")
    page.locator("#walkin-email").fill("walkin-mail@example.com")
    page.locator("#walkin-send-mail").check()
    page.locator("#walkin-form button[type=submit]").click()
    expect(page.locator("#result-name")).to_have_text("当日 三郎")
    assert outbox_to("walkin-mail@example.com") == ["registration_confirmed"]
    context.close()


def test_walk_in_with_required_questions_left_empty_then_undone_with_its_registration(desk, browser_server,
                                                                                     browser):
    """Issue 15 item 1: the walk-in form shows the event's questions; required ones may stay empty;
    undoing the walk-in's check-in can cancel its registration too."""
    from eventapp.models import Registration

    event = make_checkin_event(questions=[
        {"key": "bus", "kind": "yesno", "label": "送迎バスを利用しますか", "required": True},
        {"key": "dietary", "kind": "text", "label": "食事の配慮", "required": True}])
    make_registration(event, answers={"bus": "no", "dietary": "なし"})
    context = new_context(browser)
    page = open_screen(context, browser_server.url, {**desk, "event_id": event.id})
    page.locator("#walkin-open").click()
    form = page.locator("#walkin-form")
    expect(form.get_by_label("送迎バスを利用しますか")).to_be_visible()
    expect(form.get_by_label("食事の配慮")).to_be_visible()
    page.locator("#walkin-name").fill("当日 花子")
    page.locator("#walkin-furigana").fill("とうじつ はなこ")
    form.get_by_label("送迎バスを利用しますか").select_option("yes")
    page.locator("#walkin-form button[type=submit]").click()
    expect(page.locator("#result-title")).to_have_text("受付完了")
    expect(page.locator("#result-name")).to_have_text("当日 花子")
    rows = active_checkins(event.id)
    assert len(rows) == 1 and rows[0].source == "walkin"
    registration_id = rows[0].registration_id
    assert [(a.question.key, a.value) for a in rows[0].registration.answers] == [("bus", "yes")]
    # Registered by mistake: one button takes back the check-in and the walk-in registration.
    expect(page.locator("#undo-walkin")).to_be_visible()
    page.locator("#undo-walkin").click()
    expect(page.locator("#result-title")).to_have_text("取り消しました")
    expect(page.locator("#result-detail")).to_have_text("受付と当日参加の登録を取り消しました。")
    expect(page.locator("#undo-walkin")).to_be_hidden()
    assert active_checkins(event.id) == []
    db.session.rollback()
    assert db.session.get(Registration, registration_id).status == "cancelled"
    context.close()


def test_door_roster_on_a_375px_phone_is_readable_rows(desk, browser_server, browser):
    """Issue 15 item 4: ~30 people on a 375 px phone: one readable row each (no name squeezed to a
    character per line), counters and search on top, a 受付 button per row; screenshot for a look."""
    event = make_checkin_event(capacity=40, questions=[{"key": "dietary", "kind": "text", "label": "食事の配慮"}])
    surnames = ["佐々木", "高橋", "伊藤", "千葉", "菊池", "小野寺", "及川", "阿部", "菅原", "藤原"]
    for n in range(30):
        make_registration(event, name=f"{surnames[n % 10]} 花子{n}", furigana="ささき はなこ" + "あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほ"[n],
                          answers={"dietary": "えび・かにアレルギー、乳製品も少し控えています" if n % 4 == 0 else ""})
    context = browser.new_context(viewport={"width": 375, "height": 812}, locale="ja-JP", timezone_id="Asia/Tokyo",
                                  is_mobile=True, has_touch=True)
    page = open_screen(context, browser_server.url, {**desk, "event_id": event.id})
    page.goto(f"{browser_server.url}/checkin/events/{event.id}/list")
    expect(page.locator("#roster-counters")).to_contain_text("0")
    expect(page.locator("#roster-counters")).to_contain_text("30")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"the roster is {width}px wide on a 375px phone"
    rows = page.locator("tr.roster-row")
    expect(rows).to_have_count(30)
    char = page.evaluate("parseFloat(getComputedStyle(document.querySelector('.r-name')).fontSize)")
    for i in range(30):
        name_box = rows.nth(i).locator(".r-name").bounding_box()
        row_box = rows.nth(i).bounding_box()
        assert name_box["width"] >= 6 * char, (i, name_box)
        assert name_box["height"] < 2 * char * 1.6, (i, name_box)  # one line, not a character per line
        assert row_box["height"] < 110, (i, row_box)
    height = page.evaluate("document.documentElement.scrollHeight")
    assert height < 30 * 110 + 600, f"the roster of 30 is {height}px tall"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "checkin-roster-375.png"), full_page=False)
    # Search narrows the list; the row's 受付 button checks the person in.
    page.locator("#roster-q").fill("花子7")
    page.locator("#roster-q").press("Enter")
    expect(rows).to_have_count(1)
    rows.first.get_by_role("button", name="受付").click()
    expect(page.locator("tr.roster-row.is-in")).to_have_count(1)
    expect(page.locator("#roster-counters")).to_contain_text("1")
    assert [r.registration.name for r in active_checkins(event.id)] == ["阿部 花子7"]
    context.close()


def outbox_to(address: str) -> list[str]:
    from eventapp.models import OutboxMessage

    db.session.rollback()  # see the server's commits
    return list(db.session.execute(select(OutboxMessage.kind).where(OutboxMessage.to_addr == address)).scalars())


def test_offline_check_ins_sync_with_original_times(desk, browser_server, browser):
    context = new_context(browser)
    page = open_screen(context, browser_server.url, desk)
    expect(page.locator("#checkin-app")).to_have_attribute("data-offline-ready", "1")
    context.set_offline(True)
    expect(page.locator("#net-badge")).to_have_text("オフライン")
    times = []
    for code in desk["codes"]:
        before = utcnow()
        scan(page, code)
        expect(page.locator("#result-title")).to_have_text("受付完了")
        expect(page.locator("#result")).to_have_class("result result-ok result-pending")
        times.append((before, utcnow()))
        page.wait_for_timeout(1100)  # distinct scan times, so the test can tell them apart
    # The same ticket again while offline: the cached roster knows it is already in.
    scan(page, desk["codes"][0])
    expect(page.locator("#result")).to_have_attribute("data-state", "warn")
    expect(page.locator("#pending-count")).to_have_text("3")
    assert active_checkins(desk["event_id"]) == []
    # Reopening the screen without a connection: the service worker serves the page, IndexedDB the queue.
    page.reload()
    expect(page.locator("#checkin-app")).to_have_attribute("data-ready", "1")
    expect(page.locator("#net-badge")).to_have_text("オフライン")
    expect(page.locator("#pending-count")).to_have_text("3")

    reconnected_at = utcnow()
    context.set_offline(False)
    expect(page.locator("#net-badge")).to_have_text("オンライン")
    expect(page.locator("#pending-count")).to_have_text("0", timeout=20_000)
    rows = active_checkins(desk["event_id"])
    assert len(rows) == 3
    assert [r.registration_id for r in rows] == desk["ids"]
    for row, (before, after) in zip(rows, times, strict=True):
        assert before - timedelta(seconds=1) <= row.checked_in_at <= after + timedelta(seconds=1)
        # Queued, not sent at scan time: recorded after every offline scan. (Not "after reconnecting":
        # after the offline reload, Chromium's offline emulation lets the service worker's fetches
        # through, so a poll can succeed and the queue upload early; a real dead network cannot.)
        assert row.checked_in_at < reconnected_at and row.recorded_at >= times[-1][1]
        assert row.source == "offline"
    context.close()


def test_offline_text_that_is_no_ticket_is_not_called_a_forgery(desk, browser_server, browser):
    """Offline, the screen checks codes itself (issue 15 item 2): a URL or a stray word is 「チケットではありません」
    with the read text shown, a well-formed code with a wrong signature is the forgery alarm, and neither
    is queued."""
    context = new_context(browser)
    page = open_screen(context, browser_server.url, desk)
    expect(page.locator("#checkin-app")).to_have_attribute("data-offline-ready", "1")
    context.set_offline(True)
    expect(page.locator("#net-badge")).to_have_text("オフライン")
    scan(page, "https://example.jp/r/abc")
    expect(page.locator("#checkin-app")).to_have_attribute("data-last-error", "not_a_ticket")
    expect(page.locator("#result-title")).to_have_text("チケットではありません")
    expect(page.locator("#result-detail")).to_have_text("チケットのQRコードではありません。")
    expect(page.locator("#result-read")).to_contain_text("https://example.jp/r/abc")
    forged = desk["codes"][0][:-1] + ("A" if desk["codes"][0][-1] != "A" else "B")
    scan(page, forged)
    expect(page.locator("#checkin-app")).to_have_attribute("data-last-error", "invalid_signature")
    expect(page.locator("#result-title")).to_have_text("無効なコード")
    expect(page.locator("#pending-count")).to_have_text("0")
    context.close()


def test_two_devices_scan_the_same_ticket_at_once(desk, browser_server, browser):
    contexts = [new_context(browser), new_context(browser)]
    pages = [open_screen(c, browser_server.url, desk, user=i) for i, c in enumerate(contexts)]
    code = desk["codes"][2]
    for page in pages:
        page.locator("#scan-input").fill(code)
    # Both submit at the same wall-clock moment (the contexts share the machine's clock).
    start = pages[0].evaluate("Date.now() + 700")
    for page in pages:
        page.evaluate("""(at) => setTimeout(() => document.getElementById('scan-form').requestSubmit(),
                                             Math.max(0, at - Date.now()))""", start)
    for page in pages:
        expect(page.locator("#result")).not_to_have_attribute("data-state", "idle")
    states = sorted(p.locator("#result").get_attribute("data-state") for p in pages)
    assert states == ["ok", "warn"]
    assert len(active_checkins(desk["event_id"])) == 1
    for c in contexts:
        c.close()


def test_two_offline_devices_admit_one_ticket_first_scan_wins(desk, browser_server, browser):
    contexts = [new_context(browser), new_context(browser)]
    pages = [open_screen(c, browser_server.url, desk, user=i) for i, c in enumerate(contexts)]
    for context in contexts:
        context.set_offline(True)
    code = desk["codes"][0]
    for page in pages:  # device 0 scans first, device 1 a moment later
        expect(page.locator("#net-badge")).to_have_text("オフライン")
        scan(page, code)
        expect(page.locator("#result")).to_have_attribute("data-state", "ok")
        page.wait_for_timeout(1100)
    # The later device reconnects first; the earlier scan still wins when it arrives.
    for page, context in zip(reversed(pages), reversed(contexts), strict=True):
        context.set_offline(False)
        expect(page.locator("#pending-count")).to_have_text("0", timeout=20_000)
    expect(pages[0].locator("#sync-notice")).to_contain_text("他の端末でも受付されていました")
    rows = active_checkins(desk["event_id"])
    assert len(rows) == 1 and rows[0].by_user.name == "田中"
    db.session.rollback()
    all_rows = db.session.execute(select(CheckIn)).scalars().all()
    assert len(all_rows) == 2 and sum(1 for r in all_rows if r.duplicate_of_id == rows[0].id) == 1
    for page in pages:
        expect(page.locator("#count-duplicates")).to_contain_text("重複記録 1 件", timeout=10_000)
    pages[1].goto(f"{browser_server.url}/checkin/events/{desk['event_id']}/list")
    expect(pages[1].locator(".dup-list")).to_contain_text("岩手 花子")
    expect(pages[1].locator("tr.is-in")).to_contain_text("田中")
    for context in contexts:
        context.close()


def ticket_y4m(code: str, path: Path, width: int = 640, height: int = 480, frames: int = 10) -> Path:
    """A YUV4MPEG2 (4:2:0) video of a real ticket QR on white, for Chromium's fake camera."""
    png = io.BytesIO()
    segno.make(code, error="m").save(png, kind="png", scale=8, border=4)
    qr = Image.open(io.BytesIO(png.getvalue())).convert("L")
    side = min(height - 40, qr.width)
    qr = qr.resize((side, side), Image.NEAREST)
    frame = Image.new("L", (width, height), 255)
    frame.paste(qr, ((width - side) // 2, (height - side) // 2))
    luma = frame.tobytes()
    chroma = bytes([128]) * ((width // 2) * (height // 2))
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode("ascii"))
        for _ in range(frames):
            out.write(b"FRAME\n" + luma + chroma + chroma)
    return path


def test_camera_reads_a_real_ticket_qr(desk, browser_server, browser, tmp_path):
    video = ticket_y4m(desk["codes"][1], tmp_path / "ticket.y4m")
    args = CHROMIUM_ARGS + ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                            f"--use-file-for-fake-video-capture={video}"]
    # A second Chromium of the same Playwright: the camera flags apply to a whole browser process.
    camera_browser = browser.browser_type.launch(executable_path=str(CHROMIUM), args=args)
    try:
        context = new_context(camera_browser, permissions=["camera"])
        page = open_screen(context, browser_server.url, desk)
        page.locator("#camera-toggle").click()
        expect(page.locator("#result-title")).to_have_text("受付完了", timeout=20_000)
        expect(page.locator("#result-name")).to_have_text("盛岡 太郎")
        # Headless Linux Chromium has no BarcodeDetector: this is the jsQR path phones without it use.
        assert page.locator("#checkin-app").get_attribute("data-decoder") in ("jsQR", "BarcodeDetector")
        page.locator("#camera-toggle").click()
        context.close()
    finally:
        camera_browser.close()
    assert [r.registration_id for r in active_checkins(desk["event_id"])] == [desk["ids"][1]]
