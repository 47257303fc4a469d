"""Signing up with somebody else's address gives nothing of theirs (issue 14, "Done when" 1).

A victim has two registrations (one checked in). An attacker signs up for a third event with the
victim's address and another name, through the form or the API. The answer, the manage page, every
mail the attacker's sign-up (and what the attacker then does with it: waiting list, promotion,
cancel) puts in the outbox, with its calendar invites, and every page reachable from all of them
must hold none of the victim's manage tokens, ticket codes, calendar token, name, furigana or
phone; the victim's rows and printed rosters and badges stay exactly as they were.
"""

from __future__ import annotations

import html
import re
from datetime import timedelta
from email import message_from_bytes, policy
from io import BytesIO
from urllib.parse import unquote_plus, urlsplit

import pytest
from icalendar import Calendar
from sqlalchemy import select

from eventapp.extensions import db
from eventapp.models import Answer, CheckIn, Event, OutboxMessage, Person, Registration
from eventapp.models.base import utcnow
from eventapp.services import checkin as checkin_service
from eventapp.services import documents
from eventapp.services.mail import build_email
from tests.conftest import csrf_token_from, future, make_event, make_registration
from tests.pdf_support import flat, pdf_text
from tests.staff_support import make_user

BASE = "http://testserver.local"
VICTIM = {"name": "遠野 紗希", "furigana": "とおの さき", "email": "saki.tono@example.com",
          "phone": "090-4821-7735", "prefecture": "東京都", "iwate_relation": "origin",
          "occupation": "看護師(都内の総合病院)", "skills": "救急対応・地域医療"}
ATTACKER = {"name": "盗見 次郎", "furigana": "ぬすみ じろう", "email": VICTIM["email"], "phone": "080-5550-1234",
            "prefecture": "大阪府", "iwate_relation": "none", "occupation": "会社員", "skills": ""}
LINK = re.compile(r"""(?:href|src|action)\s*=\s*["']([^"']+)["']""")
URL = re.compile(r"https?://[^\s\"'<>]+")


@pytest.fixture
def victim(ctx):
    """Two registrations of the victim for two events; the first one checked in at the door."""
    seminar = make_event(title="遠恋複業セミナー 岩手で複業を始める", kind="onsite_seminar",
                         questions=[{"key": "dietary", "kind": "text", "label": "食事の配慮"}])
    fieldwork = make_event(title="花巻ぶどう収穫フィールドワーク", starts_at=future(days=40))
    first = make_registration(seminar, **VICTIM, answers={"dietary": "そばアレルギー"})
    second = make_registration(fieldwork, **VICTIM)
    make_registration(fieldwork, name="花巻 一郎", furigana="はなまき いちろう")  # somebody else on the roster
    checkin_service.check_in(seminar.id, None, "victim-door-1", registration_id=first.id,
                             user=make_user("checkin"), now=seminar.starts_at + timedelta(minutes=5))
    db.session.commit()
    return {"registrations": [first, second], "events": [seminar, fieldwork]}


def _secrets(victim: dict) -> dict[str, str]:
    regs = victim["registrations"]
    secrets = {"name": VICTIM["name"], "furigana": VICTIM["furigana"], "phone": VICTIM["phone"],
               "calendar token": regs[0].person.calendar_token}
    for n, r in enumerate(regs, start=1):
        secrets[f"manage token {n}"] = r.manage_token
        secrets[f"ticket code {n}"] = r.ticket_code
    assert all(secrets.values())
    return secrets


def _victim_state(victim: dict) -> dict:
    """Everything stored about the victim, and what their events print (fixed print time)."""
    db.session.expire_all()
    ids = [r.id for r in victim["registrations"]]
    person_id = victim["registrations"][0].person_id
    with db.engine.connect() as conn:
        rows = {
            "registrations": conn.execute(select(Registration.__table__).where(Registration.id.in_(ids))
                                          .order_by(Registration.id)).all(),
            "person": conn.execute(select(Person.__table__).where(Person.id == person_id)).all(),
            "answers": conn.execute(select(Answer.__table__).where(Answer.registration_id.in_(ids))
                                    .order_by(Answer.id)).all(),
            "checkins": conn.execute(select(CheckIn.__table__).where(CheckIn.registration_id.in_(ids))
                                     .order_by(CheckIn.id)).all(),
        }
    printed_at = victim["events"][0].starts_at - timedelta(days=1)
    for event in victim["events"]:
        for preset in ("reception", "insurance"):
            rows[f"roster {event.id} {preset}"] = pdf_text(documents.roster_pdf(event, preset, now=printed_at).pdf)
        rows[f"badges {event.id}"] = pdf_text(documents.badges_pdf(event, now=printed_at).pdf)
    return rows


def _mail_texts(message: OutboxMessage) -> list[str]:
    """A queued mail as it would be sent: headers, every part decoded, invites parsed back."""
    email = message_from_bytes(build_email(message).as_bytes(), policy=policy.default)
    texts = [str(email["Subject"]), str(email["To"])]
    for part in email.walk():
        if part.is_multipart():
            continue
        content = part.get_content()
        content = content.decode("utf-8") if isinstance(content, bytes) else content
        texts.append(content)
        if part.get_content_type() == "text/calendar":
            texts.append(_calendar_text(content))
    return texts


def _calendar_text(ics: str) -> str:
    """The unfolded values of every property (URLs and descriptions are folded in the raw file)."""
    cal = Calendar.from_ical(ics)
    values = []
    for component in cal.walk():
        for name, value in component.property_items(recursive=False):
            values.append(f"{name}:{value}")
            values.extend(f"{k}={v}" for k, v in getattr(value, "params", {}).items())
    return "\n".join(values)


def _readable(response) -> str:
    """A fetched page, file, PDF or QR image as text."""
    if response.mimetype == "application/pdf":
        return pdf_text(response.data)
    if response.mimetype == "image/png":
        from PIL import Image
        from pyzbar.pyzbar import decode

        return "\n".join(s.data.decode() for s in decode(Image.open(BytesIO(response.data))))
    text = response.get_data(as_text=True)
    if response.mimetype == "text/calendar":
        text += "\n" + _calendar_text(text)
    return text


def _leaks(text: str, secrets: dict[str, str]) -> list[str]:
    """Secrets found in the text as is, HTML-unescaped, URL-decoded or with spaces removed (PDF cells)."""
    unescaped = html.unescape(text)
    variants = [text, unescaped, unquote_plus(unescaped)]
    found = []
    for label, secret in secrets.items():
        if any(secret in v for v in variants) or flat(secret) in flat(unquote_plus(unescaped)):
            found.append(label)
    return found


def _local_path(url: str) -> str | None:
    url = html.unescape(url).strip()
    if url.startswith(BASE):
        url = url[len(BASE):] or "/"
    if not url.startswith("/") or url.startswith("//"):
        return None  # another site (Google / Outlook calendar links are checked as text above)
    path = urlsplit(url)
    return path.path + (f"?{path.query}" if path.query else "")


def _crawl(client, texts: list[str], secrets: dict[str, str], *, depth: int = 2) -> set[str]:
    """GET every same-site URL named in the texts (and in what they return, `depth` levels deep);
    fail on the first page that shows a secret. Returns the paths visited."""
    seen: set[str] = set()
    frontier = {p for t in texts for u in (*LINK.findall(t), *URL.findall(html.unescape(t)))
                if (p := _local_path(u))}
    for _ in range(depth):
        found: set[str] = set()
        for path in sorted(frontier - seen):
            seen.add(path)
            if path.startswith("/staff"):
                continue  # staff pages need a staff login; the attacker has none
            response = client.get(path)
            text = _readable(response)
            assert not _leaks(text, secrets), f"{path} shows the victim's {_leaks(text, secrets)}"
            if response.mimetype == "text/html" or response.mimetype == "text/calendar":
                found |= {p for u in (*LINK.findall(text), *URL.findall(html.unescape(text)))
                          if (p := _local_path(u))}
        frontier = found
    return seen


def _outbox_since(last_id: int) -> list[OutboxMessage]:
    db.session.expire_all()
    return db.session.execute(select(OutboxMessage).where(OutboxMessage.id > last_id)
                              .order_by(OutboxMessage.id)).scalars().all()


def _last_outbox_id() -> int:
    return db.session.execute(select(OutboxMessage.id).order_by(OutboxMessage.id.desc()).limit(1)).scalar() or 0


def _sign_up(client, event, channel: str) -> tuple[str, list[str]]:
    """The attacker's sign-up; returns (their manage token, the texts of the answer and manage page)."""
    if channel == "api":
        response = client.post(f"/api/v1/events/{event.id}/registrations",
                               json={**ATTACKER, "consent_privacy": True, "answers": {}})
        assert response.status_code == 201, response.get_json()
        body = response.get_data(as_text=True)
        token = response.get_json()["registration"]["manage_token"]
        assert response.get_json()["registration"]["attendee"]["name"] == ATTACKER["name"]
        page = client.get(f"/r/{token}")
    else:
        form = client.get(f"/events/{event.slug}/register").get_data(as_text=True)
        response = client.post(f"/events/{event.slug}/register", data={
            **ATTACKER, "csrf_token": csrf_token_from(form), "consent_privacy": "y"})
        assert response.status_code == 303, response.get_data(as_text=True)[:500]
        body = response.headers["Location"] + "\n" + response.get_data(as_text=True)
        token = re.search(r"/r/([A-Za-z0-9_-]+)", response.headers["Location"]).group(1)
        page = client.get(response.headers["Location"])
    assert page.status_code == 200
    page_html = page.get_data(as_text=True)
    assert ATTACKER["name"] in page_html  # the page shows the attacker's own sign-up
    return token, [body, page_html]


@pytest.mark.parametrize("channel,full", [("form", False), ("api", False), ("form", True), ("api", True)],
                         ids=["form", "api", "form-waitlisted", "api-waitlisted"])
def test_signing_up_with_a_victims_address_reveals_and_changes_nothing_of_theirs(
        app, client, victim, channel, full):
    secrets = _secrets(victim)
    before = _victim_state(victim)
    assert VICTIM["name"].replace(" ", "") in flat(before[f"roster {victim['events'][0].id} reception"])
    event = make_event(title="釜石マッチング準備セミナー", kind="onsite_seminar", capacity=1 if full else 20,
                       starts_at=future(days=50))
    filler = make_registration(event, name="釜石 三郎", furigana="かまいし さぶろう") if full else None
    last_id = _last_outbox_id()

    token, texts = _sign_up(client, event, channel)
    mails = _outbox_since(last_id)
    assert [m.kind for m in mails] == ["registration_waitlisted" if full else "registration_confirmed"]
    if full:
        # The seat frees up: the attacker is promoted (a promotion mail with the invite).
        from eventapp.services.registration import cancel
        cancel(filler.id, by="staff")
        db.session.commit()
    # The attacker cancels their own registration from the manage page (a cancel mail).
    cancel_page = client.get(f"/r/{token}/cancel").get_data(as_text=True)
    texts.append(cancel_page)
    done = client.post(f"/r/{token}/cancel", data={"csrf_token": csrf_token_from(cancel_page)})
    assert done.status_code == 303
    texts.append(client.get(f"/r/{token}").get_data(as_text=True))

    mails = [m for m in _outbox_since(last_id) if m.registration_id != (filler.id if filler else None)]
    kinds = [m.kind for m in mails]
    assert kinds == (["registration_waitlisted", "registration_promoted", "registration_cancelled"] if full
                     else ["registration_confirmed", "registration_cancelled"])
    for message in mails:
        mail_texts = _mail_texts(message)
        assert ATTACKER["name"] in "\n".join(mail_texts)  # greets the registration's own attendee
        for text in mail_texts:
            assert not _leaks(text, secrets), f"{message.kind} mail shows the victim's {_leaks(text, secrets)}"
        texts.extend(mail_texts)
    assert any("invite.ics" in t or "BEGIN:VCALENDAR" in t for t in texts)  # the invites were looked at

    for text in texts:
        assert not _leaks(text, secrets), f"the victim's {_leaks(text, secrets)} shown to the attacker"
    # Before the cancel the attacker's own pages were reachable; crawl them again on a fresh registration.
    visited = _crawl(client, texts, secrets)
    assert f"/r/{token}" in visited and f"/r/{token}/cancel" in visited

    assert _victim_state(victim) == before


def test_the_attackers_confirmed_pages_and_files_show_only_their_registration(app, client, victim):
    """The confirmed registration's every page and file (ticket PNG/PDF, invite .ics, calendar links)."""
    secrets = _secrets(victim)
    before = _victim_state(victim)
    event = make_event(title="盛岡オンライン説明会", kind="online_seminar", online_url="https://zoom.example.jp/j/1",
                       starts_at=future(days=20))
    last_id = _last_outbox_id()
    token, texts = _sign_up(client, event, "form")
    for message in _outbox_since(last_id):
        texts.extend(_mail_texts(message))
    visited = _crawl(client, texts, secrets, depth=3)
    assert {f"/r/{token}", f"/r/{token}/invite.ics", f"/r/{token}/cancel"} <= visited
    assert not {f"/r/{token}/ticket.png", f"/r/{token}/ticket.pdf"} & visited  # online: no QR ticket
    # An onsite event's sign-up adds the ticket files (QR image, 受付票 PDF).
    onsite = make_event(title="盛岡会場説明会", kind="onsite_seminar", starts_at=future(days=21))
    last_id = _last_outbox_id()
    onsite_token, onsite_texts = _sign_up(client, onsite, "form")
    for message in _outbox_since(last_id):
        onsite_texts.extend(_mail_texts(message))
    onsite_visited = _crawl(client, onsite_texts, secrets, depth=3)
    assert {f"/r/{onsite_token}/ticket.png", f"/r/{onsite_token}/ticket.pdf"} <= onsite_visited
    # After the seminar the manage page adds the attendance code and the survey (the matching extras).
    seminar = db.session.get(Event, event.id)
    seminar.starts_at, seminar.ends_at = utcnow() - timedelta(hours=3), utcnow() - timedelta(hours=1)
    db.session.commit()
    page = client.get(f"/r/{token}").get_data(as_text=True)
    assert f"/r/{token}/attendance" in page and f"/r/{token}/survey" in page
    visited |= _crawl(client, [page], secrets)
    assert f"/r/{token}/survey" in visited
    assert not any(p.startswith("/feeds/person/") for p in visited)
    assert _victim_state(victim) == before
