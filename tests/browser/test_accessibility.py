"""JIS X 8341-3 (WCAG 2.1 AA) in a real browser: axe-core run over the participant pages, the check-in
screen and the main staff pages on a 375 px phone and a 1366 px laptop; keyboard-only sign-up; errors
summarised, focused and linked to their fields; 320 px width without sideways scrolling."""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from eventapp.database import write_intent
from eventapp.extensions import db
from eventapp.models import MyPageLink
from eventapp.models.base import utcnow
from eventapp.services.mypage import hash_token
from tests.factories import make_checkin_event, make_event, make_registration
from tests.staff_support import PASSWORD, make_user

pytestmark = [pytest.mark.browser, pytest.mark.server]

AXE = Path(__file__).resolve().parents[2] / "static" / "vendor" / "axe.min.js"
WCAG_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
VIEWPORTS = {"phone": {"width": 375, "height": 812}, "laptop": {"width": 1366, "height": 900}}


def axe_violations(page: Page, base_url: str) -> list[str]:
    """axe-core's WCAG 2.0/2.1 A and AA violations on the page as it is now, one line per rule."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(url=f"{base_url}/static/vendor/axe.min.js")  # same origin: allowed by the CSP
    result = page.evaluate("""async (tags) => (await axe.run(document, {runOnly: {type: 'tag', values: tags}}))
        .violations.map(v => `${v.id} (${v.impact}): ${v.help} — ` + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', '))""",
                           WCAG_AA)
    return result


@pytest.fixture(params=list(VIEWPORTS))
def viewport(request, browser: Browser):
    context = browser.new_context(viewport=VIEWPORTS[request.param], locale="ja-JP", timezone_id="Asia/Tokyo",
                                  is_mobile=request.param == "phone", has_touch=request.param == "phone")
    yield request.param, context
    context.close()


@pytest.fixture
def scene(ctx):
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: `make vendor` copies it from the axe-core npm package")
    # The server may still be sending the previous test's mail: on SQLite, take the write lock at BEGIN (and
    # wait for it) rather than fail to upgrade a read transaction with "database is locked".
    with write_intent():
        event = make_event(title="夏油温泉 鬼剣舞と地域ワークショップ 1泊2日", capacity=25, max_companions=2,
                           summary="北上市の夏油温泉に泊まり、鬼剣舞を見学してワークショップに参加します。")
        registration = make_registration(event)
        token = secrets.token_urlsafe(32)
        db.session.add(MyPageLink(token_hash=hash_token(token), person_id=registration.person_id,
                                  created_at=utcnow(), expires_at=utcnow() + timedelta(minutes=30)))
        admin = make_user("admin", name="事務局 花子")
        door = make_checkin_event(title="岩手・花巻でブドウ収穫体験フィールドワーク")  # held tomorrow: door open
        make_registration(door)
        db.session.commit()
    return {"event": event, "registration": registration, "my_token": token, "admin": admin, "door": door}


def test_participant_pages_have_no_wcag_aa_violations(scene, browser_server, viewport):
    name, context = viewport
    page = context.new_page()
    base, event, registration = browser_server.url, scene["event"], scene["registration"]
    found: dict[str, list[str]] = {}

    def check(label: str) -> None:
        found[f"{name} {label} ({page.url})"] = axe_violations(page, base)

    for label, path in [("catalogue", "/"), ("event", f"/events/{event.slug}"),
                        ("sign-up", f"/events/{event.slug}/register"), ("privacy", "/privacy"),
                        ("manage", f"/r/{registration.manage_token}"),
                        ("cancel", f"/r/{registration.manage_token}/cancel"), ("my page request", "/my"),
                        ("catalogue in English", "/?lang=en")]:
        page.goto(base + path)
        check(label)
    page.goto(f"{base}/events/{event.slug}/register?lang=ja")
    page.get_by_role("button", name="申し込む").click()  # everything empty: the page with errors
    expect(page.locator("#error-summary")).to_be_visible()
    check("sign-up with errors")
    page.goto(f"{base}/my/{scene['my_token']}")
    check("my page sign-in")
    page.get_by_role("button", name="マイページを開く").click()
    expect(page).to_have_url(f"{base}/my/")
    check("my page")
    assert all(not v for v in found.values()), "\n".join(f"{k}: {v}" for k, v in found.items() if v)


def test_check_in_screen_and_staff_pages_have_no_wcag_aa_violations(scene, browser_server, viewport):
    name, context = viewport
    page = context.new_page()
    base, event = browser_server.url, scene["event"]
    page.goto(f"{base}/staff/login?next=/staff/")
    found = {f"{name} login": axe_violations(page, base)}
    page.get_by_label("メールアドレス").fill(scene["admin"].email)
    page.get_by_label("パスワード").fill(PASSWORD)
    page.get_by_role("button", name="ログイン").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("ダッシュボード")
    for label, path in [("dashboard", "/staff/"), ("events", "/staff/events"), ("event", f"/staff/events/{event.id}"),
                        ("event form", f"/staff/events/{event.id}/edit"),
                        ("participants", f"/staff/events/{event.id}/participants"),
                        ("person", f"/staff/people/{scene['registration'].person_id}"),
                        ("check-in", f"/checkin/events/{scene['door'].id}"),
                        ("door roster", f"/checkin/events/{scene['door'].id}/list")]:
        page.goto(base + path)
        found[f"{name} {label}"] = axe_violations(page, base)
    # The check-in screen announces each result to screen readers.
    page.goto(f"{base}/checkin/events/{scene['door'].id}")
    assert page.locator("#result").get_attribute("aria-live") == "assertive"
    assert all(not v for v in found.values()), "\n".join(f"{k}: {v}" for k, v in found.items() if v)


def test_sign_up_errors_are_summarised_focused_and_linked(scene, browser_server, phone: Page, artifacts):
    event = scene["event"]
    phone.goto(f"{browser_server.url}/events/{event.slug}/register")
    phone.locator("#name").fill("岩手 花子")
    phone.get_by_role("button", name="申し込む").click()
    summary = phone.locator("#error-summary")
    expect(summary).to_be_visible()
    assert phone.evaluate("document.activeElement.id") == "error-summary"  # focus moved there
    phone.screenshot(path=str(artifacts / "a11y-signup-errors.png"))
    links = summary.get_by_role("link")
    texts = links.all_inner_texts()
    assert any(t.startswith("ふりがな") for t in texts) and any("個人情報" in t for t in texts), texts
    assert not any(t.startswith("氏名") for t in texts)  # filled in: no error
    summary.get_by_role("link", name="ふりがな", exact=False).first.click()
    assert phone.evaluate("document.activeElement.name") == "furigana"
    furigana = phone.locator("#furigana")
    assert furigana.get_attribute("aria-invalid") == "true"
    # Described by its message (not only red): the bar beside the field and the ⚠ before its message.
    described = furigana.get_attribute("aria-describedby").split()
    assert any(phone.locator(f"#{i}").inner_text().startswith("⚠") for i in described)
    bar = phone.locator(".field.has-error").first.evaluate("el => getComputedStyle(el).borderLeftWidth")
    assert bar == "4px"
    # The 必須 badge beside the consent box stays on one line.
    badge = phone.locator(".checkbox .req").first.bounding_box()
    assert badge["width"] > badge["height"], badge


def test_keyboard_only_sign_up(scene, browser_server, phone: Page):
    event = scene["event"]
    phone.goto(f"{browser_server.url}/events/{event.slug}/register")
    phone.keyboard.press("Tab")
    assert phone.evaluate("document.activeElement.className") == "skip-link"  # first stop: skip to content
    outline = phone.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"  # visible focus
    phone.keyboard.press("Enter")
    order: list[str] = []
    values = {"name": "岩手 次郎", "furigana": "いわて じろう", "email": "keyboard@example.com"}
    for _ in range(80):
        phone.keyboard.press("Tab")
        active = phone.evaluate("[document.activeElement.name || '', document.activeElement.type || '', "
                                "document.activeElement.tagName]")
        field, kind, tag = active
        order.append(field or tag)
        if field in values:
            phone.keyboard.type(values.pop(field))
        elif field == "consent_privacy":
            phone.keyboard.press("Space")
        elif tag == "BUTTON":
            break
    assert order.index("name") < order.index("furigana") < order.index("email") < order.index("consent_privacy")
    assert not values, f"not reached by Tab: {values}"
    phone.keyboard.press("Enter")
    expect(phone.get_by_text("参加確定")).to_be_visible()
    # The ticket's QR image has a text alternative: the ticket code.
    code = phone.locator(".ticket-code code").inner_text()
    assert code and code in phone.locator(".qr[role=img]").get_attribute("aria-label")


def test_pages_reflow_at_320_px(scene, browser_server, browser: Browser):
    # WCAG 1.4.10: 320 CSS px (a 1280 px window at 400 %) without sideways scrolling.
    context = browser.new_context(viewport={"width": 320, "height": 640}, locale="ja-JP")
    page = context.new_page()
    event, registration = scene["event"], scene["registration"]
    try:
        for path in ["/", f"/events/{event.slug}", f"/events/{event.slug}/register",
                     f"/r/{registration.manage_token}", "/privacy"]:
            page.goto(browser_server.url + path)
            width = page.evaluate("Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)")
            assert width <= 320, f"{path} is {width}px wide at 320px"
    finally:
        context.close()
