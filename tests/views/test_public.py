"""Participant pages through the test client: catalogue, event page, sign-up (with CSRF), my registration,
cancellation, the privacy page and the language switch."""

from __future__ import annotations

import io
import re
from datetime import time, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image
from pyzbar.pyzbar import decode as decode_qr
from sqlalchemy import select

from eventapp.extensions import db
from eventapp.models import Registration
from eventapp.models.base import utcnow
from tests.factories import csrf_token_from, future, jst, make_event, make_registration

PROJECT_ROOT = Path(__file__).resolve().parents[2]
FIELDWORK_START = jst(2031, 11, 8, 13)  # a Saturday, far enough ahead to stay "upcoming"
FIELDWORK_END = jst(2031, 11, 9, 12)


class Page(HTMLParser):
    """Just enough of the DOM for assertions: elements with attributes, label texts, visible text."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict]] = []
        self.label_stack: list[dict] = []
        self.labels: list[dict] = []  # {"for": id or None, "controls": [ids of wrapped inputs]}
        self.fieldset_depth = 0
        self.legend_seen: list[bool] = []
        self.text_parts: list[str] = []
        self._skip = 0
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attributes = {k: (v if v is not None else "") for k, v in attrs}
        attributes["_in_fieldset_with_legend"] = bool(self.legend_seen and self.legend_seen[-1])
        self.elements.append((tag, attributes))
        if tag == "label":
            label = {"for": attributes.get("for"), "controls": []}
            self.labels.append(label)
            self.label_stack.append(label)
        elif tag in ("input", "select", "textarea") and self.label_stack:
            self.label_stack[-1]["controls"].append(attributes.get("id"))
        elif tag == "fieldset":
            self.legend_seen.append(False)
        elif tag == "legend" and self.legend_seen:
            self.legend_seen[-1] = True
        elif tag in ("script", "style", "svg"):
            self._skip += 1

    def handle_endtag(self, tag):
        if tag == "label" and self.label_stack:
            self.label_stack.pop()
        elif tag == "fieldset" and self.legend_seen:
            self.legend_seen.pop()
        elif tag in ("script", "style", "svg") and self._skip:
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip:
            self.text_parts.append(data)

    @property
    def text(self) -> str:
        return re.sub(r"\s+", " ", " ".join(self.text_parts))

    def find_all(self, tag: str, **attrs) -> list[dict]:
        return [a for t, a in self.elements if t == tag and all(a.get(k) == v for k, v in attrs.items())]


def signup_form_data(html: str, **overrides) -> dict:
    data = {
        "csrf_token": csrf_token_from(html), "name": "岩手 花子", "furigana": "いわて はなこ",
        "email": "hanako@example.com", "phone": "090-1234-5678", "prefecture": "東京都",
        "iwate_relation": "origin", "occupation": "会社員", "skills": "Webマーケティング", "consent_privacy": "y",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def sign_up(client, slug: str, **overrides):
    form = client.get(f"/events/{slug}/register")
    assert form.status_code == 200
    response = client.post(f"/events/{slug}/register", data=signup_form_data(form.get_data(as_text=True), **overrides))
    response.get_data()
    response.close()  # as a WSGI server does: runs the after-response mail delivery
    return response


def token_from_redirect(response) -> str:
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    match = re.search(r"/r/([A-Za-z0-9_-]+)\?new=1$", response.headers["Location"])
    assert match, response.headers["Location"]
    return match.group(1)


def registration_by_token(app, token: str) -> dict:
    with app.app_context():
        r = db.session.execute(select(Registration).where(Registration.manage_token == token)).scalar_one()
        return {"id": r.id, "status": r.status, "ticket_code": r.ticket_code, "email": r.person.email}


def create_event(app, **overrides) -> str:
    with app.app_context():
        return make_event(**overrides).slug


def fill(app, slug: str, n: int) -> list[str]:
    """Sign up n people through the service; returns their manage tokens."""
    from eventapp.models import Event
    with app.app_context():
        event = db.session.execute(select(Event).where(Event.slug == slug)).scalar_one()
        return [make_registration(event).manage_token for _ in range(n)]


# --- catalogue -------------------------------------------------------------------------------------

def test_catalogue_lists_upcoming_first_with_jst_dates_and_availability(app, client):
    open_slug = create_event(app, title="温泉フィールドワーク", starts_at=FIELDWORK_START, ends_at=FIELDWORK_END,
                             capacity=5)
    fill(app, open_slug, 2)
    full_slug = create_event(app, title="満席のセミナー", kind="onsite_seminar", starts_at=future(days=10),
                             capacity=1)
    fill(app, full_slug, 1)
    create_event(app, title="締切済みのマッチング会", kind="matching_session", starts_at=future(days=20),
                 registration_closes_at=utcnow() - timedelta(hours=1))
    create_event(app, title="昨年のブドウ収穫", starts_at=jst(2025, 10, 19, 9), ends_at=jst(2025, 10, 19, 15))
    create_event(app, title="下書きのイベント", status="draft")

    response = client.get("/")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    text = Page(html).text

    # upcoming in date order, then the past section
    positions = [html.index(t) for t in ("満席のセミナー", "締切済みのマッチング会", "温泉フィールドワーク",
                                         "これまでのイベント", "昨年のブドウ収穫")]
    assert positions == sorted(positions)
    assert "下書きのイベント" not in html
    assert "2031年11月8日(土) 13:00 〜 11月9日(日) 12:00" in text
    assert "残り3席" in text
    assert "満席 — キャンセル待ちで申し込めます" in text
    assert "受付終了" in text


def test_catalogue_filters_by_kind(app, client):
    create_event(app, title="オンラインで学ぶ地方複業", kind="online_seminar", online_url="https://meet.example/x")
    create_event(app, title="花巻フィールドワーク", kind="fieldwork")

    html = client.get("/?kind=online_seminar").get_data(as_text=True)
    assert "オンラインで学ぶ地方複業" in html and "花巻フィールドワーク" not in html
    current = [a["href"] for a in Page(html).find_all("a") if a.get("aria-current") == "page"]
    assert current == ["/?kind=online_seminar"]
    # an unknown kind is ignored rather than an error
    unfiltered = client.get("/?kind=nonsense")
    assert unfiltered.status_code == 200
    assert "花巻フィールドワーク" in unfiltered.get_data(as_text=True)


def test_event_page_shows_dates_programme_venue_fee_and_availability(app, client):
    slug = create_event(
        app, title="地域と温泉を楽しみながら考える 遠恋複業フィールドワーク", starts_at=FIELDWORK_START,
        ends_at=FIELDWORK_END, venue_name="夏油温泉観光ホテル", venue_address="岩手県北上市和賀町岩崎新田",
        access="北上駅から送迎バス", fee_yen=5000, capacity=3,
        days=[{"starts_at": FIELDWORK_START, "ends_at": jst(2031, 11, 8, 21),
               "items": [{"starts_at": time(13, 30), "title": "事業継承ストーリー"},
                         {"starts_at": time(15, 0), "title": "伝統芸能「鬼剣舞」学びの時間"}]},
              {"starts_at": jst(2031, 11, 9, 8), "ends_at": FIELDWORK_END,
               "items": [{"starts_at": time(9, 0), "title": "地域課題に取り組むグループワーク"}]}],
    )
    text = Page(client.get(f"/events/{slug}").get_data(as_text=True)).text
    for expected in ("2031年11月8日(土) 13:00 〜 11月9日(日) 12:00", "事業継承ストーリー", "鬼剣舞",
                     "地域課題に取り組むグループワーク", "夏油温泉観光ホテル", "岩手県北上市", "5,000円",
                     "残り3席", "北上駅から送迎バス", "申し込む"):
        assert expected in text, expected
    assert "2日目" in text


def test_online_join_url_is_not_on_the_public_event_page(app, client):
    slug = create_event(app, kind="online_seminar", online_url="https://meet.example.jp/secret-room")
    html = client.get(f"/events/{slug}").get_data(as_text=True)
    assert "secret-room" not in html
    assert "オンライン" in html


def test_draft_and_unknown_events_are_404(app, client):
    slug = create_event(app, status="draft")
    assert client.get(f"/events/{slug}").status_code == 404
    missing = client.get("/events/no-such-event")
    assert missing.status_code == 404
    assert "ページが見つかりません" in missing.get_data(as_text=True)


# --- sign-up ------------------------------------------------------------------------------------------

def test_signup_confirmed_then_waitlisted_through_the_form(app, client, sent_mail):
    slug = create_event(app, capacity=1, title="ブドウ収穫体験")

    first = sign_up(client, slug, email="first@example.com")
    token = token_from_redirect(first)
    page = client.get(f"/r/{token}?new=1")
    text = Page(page.get_data(as_text=True)).text
    assert "参加が確定しました" in text and "参加確定" in text
    assert "first@example.com" in text
    saved = registration_by_token(app, token)
    assert saved["status"] == "confirmed" and saved["email"] == "first@example.com"
    assert saved["ticket_code"] in text

    # the event is full now: the form says so, and the next person is waitlisted at position 1
    form_html = client.get(f"/events/{slug}/register").get_data(as_text=True)
    assert "現在満席です" in form_html and "キャンセル待ちで申し込む" in form_html
    second = token_from_redirect(sign_up(client, slug, email="second@example.com"))
    text = Page(client.get(f"/r/{second}?new=1").get_data(as_text=True)).text
    assert "キャンセル待ちとして受け付けました" in text
    assert "キャンセル待ち 1番目" in text
    assert registration_by_token(app, second)["status"] == "waitlisted"

    # both confirmation mails went out after the responses (file backend)
    subjects = sorted(m["Subject"] for m in sent_mail())
    assert subjects == ["【キャンセル待ち受付】ブドウ収穫体験", "【参加確定】ブドウ収穫体験"]


def test_signup_answers_event_questions(app, client):
    slug = create_event(app, questions=[
        {"key": "bus", "kind": "yesno", "label": "北上駅からの送迎バスを利用しますか", "required": True},
        {"key": "diet", "kind": "text", "label": "食事制限"},
        {"key": "room", "kind": "choice", "label": "お部屋", "choices": ["相部屋", "個室"], "required": True},
    ])
    form_html = client.get(f"/events/{slug}/register").get_data(as_text=True)
    assert "北上駅からの送迎バスを利用しますか" in form_html and "食事制限(任意)" in form_html
    token = token_from_redirect(sign_up(client, slug, q_bus="yes", q_diet="えび・かに", q_room="個室"))
    text = Page(client.get(f"/r/{token}").get_data(as_text=True)).text
    assert "北上駅からの送迎バスを利用しますか はい" in text
    assert "えび・かに" in text and "個室" in text
    # The same answer in English: Yes, never the stored "yes".
    english = Page(client.get(f"/r/{token}?lang=en").get_data(as_text=True)).text
    assert "北上駅からの送迎バスを利用しますか Yes" in english and " yes" not in english


def test_invalid_signup_shows_japanese_errors_per_field(app, client):
    slug = create_event(app, questions=[{"key": "bus", "kind": "yesno", "label": "送迎バス", "required": True}])
    response = sign_up(client, slug, name="", furigana="Hanako", email="not-an-email", phone="abc",
                       consent_privacy=None)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    page = Page(html)
    errors = {p["id"]: None for p in page.find_all("p", **{"class": "error"})}
    assert set(errors) == {"name-error", "furigana-error", "email-error", "phone-error", "q_bus-error",
                           "consent_privacy-error"}
    text = page.text
    for message in ("氏名を入力してください", "ひらがな", "メールアドレスの形式が正しくありません",
                    "電話番号は数字とハイフン", "「送迎バス」に回答してください", "個人情報の取扱いに同意してください",
                    "入力内容を確認してください"):
        assert message in text, message
    # what the person typed is kept, and the invalid inputs are marked for screen readers
    assert page.find_all("input", id="furigana")[0]["value"] == "Hanako"
    email = page.find_all("input", id="email")[0]
    assert email["aria-invalid"] == "true"
    assert email["aria-describedby"].split() == ["email-hint", "email-error"]
    assert page.find_all("input", id="consent_privacy")[0]["aria-describedby"] == "consent_privacy-error"
    assert any(f.get("aria-describedby") == "q_bus-error" for f in page.find_all("fieldset"))
    with app.app_context():
        assert db.session.execute(select(Registration)).first() is None


def test_duplicate_signup_gets_a_clear_message(app, client):
    slug = create_event(app)
    token_from_redirect(sign_up(client, slug, email="dup@example.com"))
    again = sign_up(client, slug, email="DUP@example.com")
    assert again.status_code == 422
    html = again.get_data(as_text=True)
    # Says no more than "look in that mailbox" (the manage link goes there, never onto this page).
    assert "このメールアドレスでのお申し込みを確認するためのリンクをメールでお送りしました。" in html
    assert "管理リンクをメールで再送" in html


def test_closed_registration_refuses_with_a_message(app, client):
    slug = create_event(app, registration_closes_at=utcnow() - timedelta(minutes=5))
    form = client.get(f"/events/{slug}/register")
    html = form.get_data(as_text=True)
    assert "申し込み受付は終了しました" in html
    assert "<form method=\"post\"" not in html
    # posting anyway (e.g. a form left open in a tab) is refused, nothing is stored
    post = client.post(f"/events/{slug}/register", data=signup_form_data(form_from_open_event(app, client)))
    assert post.status_code == 422
    assert "申し込み受付は終了しました" in post.get_data(as_text=True)
    with app.app_context():
        assert db.session.execute(select(Registration)).first() is None


def form_from_open_event(app, client) -> str:
    """A page with this session's CSRF token (a closed event's page renders no form to take it from)."""
    return client.get(f"/events/{create_event(app)}/register").get_data(as_text=True)


def test_cancelled_event_refuses_signups(app, client):
    slug = create_event(app, status="cancelled")
    assert "このイベントは中止になりました" in client.get(f"/events/{slug}").get_data(as_text=True)
    post = client.post(f"/events/{slug}/register", data=signup_form_data(form_from_open_event(app, client)))
    assert post.status_code == 422
    assert "このイベントは中止になりました" in post.get_data(as_text=True)


def test_post_without_csrf_token_is_refused_politely(app, client):
    slug = create_event(app)
    response = client.post(f"/events/{slug}/register", data={"name": "x"})
    assert response.status_code == 400
    assert "ページの有効期限が切れました" in response.get_data(as_text=True)


# --- my registration ------------------------------------------------------------------------------------

def test_manage_page_qr_ticket_decodes_to_the_ticket_code(app, client):
    slug = create_event(app)
    token = token_from_redirect(sign_up(client, slug))
    code = registration_by_token(app, token)["ticket_code"]
    page = client.get(f"/r/{token}")
    assert page.headers["Cache-Control"] == "no-store" and page.headers["Referrer-Policy"] == "no-referrer"
    assert "<svg" in page.get_data(as_text=True)

    png = client.get(f"/r/{token}/ticket.png")
    assert png.status_code == 200 and png.mimetype == "image/png"
    decoded = decode_qr(Image.open(io.BytesIO(png.data)))
    assert [d.data.decode("ascii") for d in decoded] == [code]


def test_waitlisted_registration_has_no_ticket_and_no_join_url(app, client):
    slug = create_event(app, kind="online_seminar", capacity=1, online_url="https://meet.example.jp/room-42")
    confirmed = token_from_redirect(sign_up(client, slug, email="a@example.com"))
    waiting = token_from_redirect(sign_up(client, slug, email="b@example.com"))

    confirmed_html = client.get(f"/r/{confirmed}").get_data(as_text=True)
    assert "https://meet.example.jp/room-42" in confirmed_html
    assert "受付用QRコード" not in confirmed_html and "出席コード" in confirmed_html  # online: no QR ticket

    waiting_html = client.get(f"/r/{waiting}").get_data(as_text=True)
    assert "room-42" not in waiting_html
    assert "<svg" not in waiting_html and "ticket.png" not in waiting_html
    assert "キャンセル待ち 1番目" in Page(waiting_html).text
    assert client.get(f"/r/{waiting}/ticket.png").status_code == 404


def test_join_url_only_for_online_seminars(app, client):
    # an onsite event with a URL filled in by mistake must not show it as a join link
    slug = create_event(app, kind="fieldwork", online_url="https://meet.example.jp/not-for-fieldwork")
    token = token_from_redirect(sign_up(client, slug))
    assert "not-for-fieldwork" not in client.get(f"/r/{token}").get_data(as_text=True)


def test_cancel_confirm_page_then_post_cancels_and_promotes(app, client):
    slug = create_event(app, capacity=1)
    first = token_from_redirect(sign_up(client, slug, email="first@example.com"))
    second = token_from_redirect(sign_up(client, slug, email="second@example.com"))

    confirm = client.get(f"/r/{first}/cancel")
    assert confirm.status_code == 200
    html = confirm.get_data(as_text=True)
    assert "キャンセルを確定する" in html
    assert registration_by_token(app, first)["status"] == "confirmed"  # GET alone changes nothing

    done = client.post(f"/r/{first}/cancel", data={"csrf_token": csrf_token_from(html)})
    assert done.status_code == 303 and done.headers["Location"].endswith(f"/r/{first}")
    text = Page(client.get(f"/r/{first}").get_data(as_text=True)).text
    assert "キャンセルしました" in text and "キャンセル済み" in text
    assert "キャンセルする" not in text
    assert registration_by_token(app, first)["status"] == "cancelled"
    # the waitlisted person got the seat
    assert registration_by_token(app, second)["status"] == "confirmed"
    assert "参加確定" in Page(client.get(f"/r/{second}").get_data(as_text=True)).text

    # cancelling again shows that it is already cancelled instead of an error
    again = client.get(f"/r/{first}/cancel")
    assert again.status_code == 200 and "既にキャンセルされています" in again.get_data(as_text=True)


def test_cancel_after_deadline_is_refused_with_message(app, client):
    slug = create_event(app, cancellation_deadline=utcnow() + timedelta(hours=1))
    token = token_from_redirect(sign_up(client, slug))
    with app.app_context():
        from eventapp.models import Event
        event = db.session.execute(select(Event).where(Event.slug == slug)).scalar_one()
        event.cancellation_deadline = utcnow() - timedelta(minutes=1)
        db.session.commit()
    manage_text = Page(client.get(f"/r/{token}").get_data(as_text=True)).text
    assert "キャンセルの受付期限を過ぎています" in manage_text
    html = client.get(f"/r/{token}/cancel").get_data(as_text=True)
    done = client.post(f"/r/{token}/cancel", data={"csrf_token": csrf_token_from(html)}, follow_redirects=True)
    assert "キャンセルの受付期限を過ぎています" in done.get_data(as_text=True)
    assert registration_by_token(app, token)["status"] == "confirmed"


@pytest.mark.parametrize("path", ["/r/{t}", "/r/{t}/cancel", "/r/{t}/ticket.png"])
def test_unknown_manage_tokens_are_404(app, client, path):
    for token in ("unknown-token-1234567890", "x" * 200):
        response = client.get(path.format(t=token))
        assert response.status_code == 404
        assert "お申し込みが見つかりません" in response.get_data(as_text=True)


def test_privacy_page_shows_purpose_and_contact(client):
    response = client.get("/privacy")
    assert response.status_code == 200
    text = Page(response.get_data(as_text=True)).text
    assert "利用目的" in text and "本イベントの運営" in text and "info@example.jp" in text


# --- mobile and accessibility basics -------------------------------------------------------------------

def assert_accessible(html: str) -> None:
    page = Page(html)
    assert page.find_all("html")[0].get("lang") in ("ja", "en")
    assert any(m.get("name") == "viewport" and "width=device-width" in m.get("content", "")
               for m in page.find_all("meta"))
    assert page.find_all("title")
    labelled = {label["for"] for label in page.labels if label["for"]}
    labelled |= {c for label in page.labels for c in label["controls"] if c}
    for tag in ("input", "select", "textarea"):
        for control in page.find_all(tag):
            if control.get("type") in ("hidden", "submit"):
                continue
            assert control.get("id") in labelled, f"{tag} {control.get('name')} has no label"
            if control.get("type") == "radio":
                assert control["_in_fieldset_with_legend"], f"radio {control.get('name')} is not in a fieldset"
    images = page.find_all("img")
    assert all(img.get("alt") is not None for img in images)
    # no third-party requests: every script, stylesheet and image is served by the app
    for tag, attr in (("script", "src"), ("link", "href"), ("img", "src")):
        for element in page.find_all(tag):
            if tag == "link" and element.get("rel") in ("canonical", "alternate"):
                continue  # names the page's own address for crawlers; nothing is fetched
            assert not element.get(attr, "").startswith(("http:", "https:", "//")), element


def test_pages_have_labels_viewport_and_lang(app, client):
    slug = create_event(app, questions=[
        {"key": "bus", "kind": "yesno", "label": "送迎バス", "required": True},
        {"key": "room", "kind": "choice", "label": "お部屋", "choices": ["相部屋", "個室"]},
        {"key": "diet", "kind": "text", "label": "食事制限"},
    ])
    token = token_from_redirect(sign_up(client, slug, q_bus="no"))
    for path in ("/", f"/events/{slug}", f"/events/{slug}/register", f"/r/{token}", f"/r/{token}/cancel",
                 "/privacy", "/no-such-page"):
        assert_accessible(client.get(path).get_data(as_text=True))
    invalid = sign_up(client, slug, email="bad", q_bus=None)
    assert_accessible(invalid.get_data(as_text=True))
    assert Page(client.get("/").get_data(as_text=True)).find_all("html")[0]["lang"] == "ja"
    assert 'class="skip-link"' in client.get("/").get_data(as_text=True)


@pytest.fixture
def english_catalog() -> None:
    """Compile the English catalogue if it is missing or older than the .po (`make translations` does the same)."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    po = PROJECT_ROOT / "translations/en/LC_MESSAGES/messages.po"
    mo = po.with_suffix(".mo")
    if not mo.exists() or mo.stat().st_mtime < po.stat().st_mtime:
        with po.open("rb") as f:
            catalog = read_po(f, locale="en")
        with mo.open("wb") as f:
            write_mo(f, catalog)


def _luminance(hex_colour: str) -> float:
    digits = hex_colour.lstrip("#")
    digits = "".join(d * 2 for d in digits) if len(digits) == 3 else digits
    channels = [int(digits[i:i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_text_colours_meet_wcag_aa_contrast():
    """The colour pairs the stylesheet uses for text reach 4.5:1 (WCAG AA for normal text)."""
    css = (PROJECT_ROOT / "static/css/app.css").read_text()
    colours = dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-fA-F]{6}|#[0-9a-fA-F]{3})\b", css))
    pairs = [("ink", "bg"), ("ink", "card"), ("muted", "card"), ("muted", "bg"), ("brand", "card"),
             ("brand-dark", "card"), ("ok", "ok-bg"), ("warn", "warn-bg"), ("err", "err-bg"), ("err", "card")]
    for fg, bg in pairs:
        assert contrast(colours[fg], colours[bg]) >= 4.5, (fg, bg, round(contrast(colours[fg], colours[bg]), 2))
    for fg, bg in [("#ffffff", colours["brand"]), ("#ffffff", colours["err"]), ("#3d4655", "#eceff3"),
                   (colours["brand-dark"], "#e8f1f8")]:
        assert contrast(fg, bg) >= 4.5, (fg, bg)


# --- language ------------------------------------------------------------------------------------------------

def test_english_catalogue_is_complete_and_placeholders_match():
    from babel.messages.pofile import read_po

    with (PROJECT_ROOT / "translations/en/LC_MESSAGES/messages.po").open("rb") as f:
        catalog = read_po(f, locale="en")
    messages = [m for m in catalog if m.id]
    assert messages
    for message in messages:
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        assert all(strings), f"untranslated: {message.id!r}"
        assert "fuzzy" not in message.flags, f"fuzzy: {message.id!r}"
    problems = [(m.id, [str(e) for e in errors]) for m, errors in catalog.check()]
    assert problems == []


def test_participant_page_texts_are_all_in_the_catalogue():
    """Every `_()` text of the participant pages, form labels and formatting helpers has a translation."""
    from babel.messages.extract import extract_from_dir
    from babel.messages.pofile import read_po

    with (PROJECT_ROOT / "translations/en/LC_MESSAGES/messages.po").open("rb") as f:
        translated = {m.id if isinstance(m.id, str) else m.id[0] for m in read_po(f, locale="en") if m.id}
    method_map = [("templates/public/**.html", "jinja2"), ("templates/mypage/**.html", "jinja2"),
                  ("templates/base.html", "jinja2"), ("eventapp/services/mypage.py", "python"),
                  ("eventapp/public/**.py", "python"), ("eventapp/formatting.py", "python")]
    keywords = {"_": None, "_l": None, "gettext": None, "ngettext": (1, 2)}
    found = {msg if isinstance(msg, str) else msg[0]
             for _file, _line, msg, _comments, _context in extract_from_dir(
                 str(PROJECT_ROOT), method_map, keywords=keywords)}
    assert found and found <= translated, sorted(found - translated)


def test_default_language_is_japanese(app, client):
    create_event(app, kind="online_seminar", title="地方複業のはじめかた", starts_at=FIELDWORK_START,
                 ends_at=FIELDWORK_START + timedelta(hours=1))
    html = client.get("/").get_data(as_text=True)
    assert '<html lang="ja">' in html and "開催予定" in html and "オンラインセミナー" in html
    assert "2031年11月8日(土) 13:00 〜 14:00" in html


def test_lang_switch_shows_english_and_is_remembered(app, client, english_catalog):
    slug = create_event(app, kind="online_seminar", title="地方複業のはじめかた", starts_at=FIELDWORK_START,
                        ends_at=FIELDWORK_START + timedelta(hours=1), capacity=3)
    response = client.get("/?lang=en")
    html = response.get_data(as_text=True)
    assert '<html lang="en">' in html
    assert "Upcoming events" in html and "Online seminar" in html and "3 seats left" in html
    assert "Sat 8 Nov 2031 13:00 – 14:00" in html
    assert "開催予定" not in html
    cookie = client.get_cookie("lang")
    assert cookie is not None and cookie.value == "en"

    # the cookie keeps English on the next pages, including the form labels and errors' frame
    form_html = client.get(f"/events/{slug}/register").get_data(as_text=True)
    assert "Full name" in form_html and "Email address" in form_html and "I agree" in form_html
    back = client.get("/?lang=ja").get_data(as_text=True)
    assert "開催予定" in back and client.get_cookie("lang").value == "ja"
