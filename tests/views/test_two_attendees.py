"""One address, several attendees (issue 14, "Done when" 2): a parent signs up for a seminar, their
child with the same address for the grape harvest, and staff take a phone sign-up for the
grandmother with that address too. Each event's roster PDF, badges, CSV export and check-in (scan,
roster search, list) shows that registration's own attendee, never the address's other ones."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from eventapp.extensions import db
from eventapp.models import Person, Registration
from eventapp.services.accounts import create_token
from tests.conftest import JST, csrf_token_from, make_event
from tests.pdf_support import flat, pdf_text
from tests.staff_support import login, make_user, post_form

EMAIL = "kitakami.family@example.com"
ATTENDEES = {
    "seminar": {"name": "北上 美咲", "furigana": "きたかみ みさき", "phone": "090-3141-5926"},
    "fieldwork": {"name": "北上 健太", "furigana": "きたかみ けんた", "phone": "080-2718-2818"},
    "phone": {"name": "北上 トメ", "furigana": "きたかみ とめ", "phone": "0197-22-1234"},
}


@pytest.fixture
def family(app, client):
    """The three events and sign-ups; returns event ids and a check-in API token."""
    with app.app_context():
        # Within a few hours: sign-up is still open and so is the check-in window.
        soon = datetime.now(JST).replace(second=0, microsecond=0) + timedelta(hours=3)
        events = {
            "seminar": make_event(title="遠恋複業セミナー", kind="onsite_seminar", starts_at=soon),
            "fieldwork": make_event(title="花巻ぶどう収穫フィールドワーク", starts_at=soon + timedelta(minutes=30)),
            "phone": make_event(title="遠野どぶろく仕込み体験", starts_at=soon + timedelta(hours=1)),
        }
        ids = {key: e.id for key, e in events.items()}
        slugs = {key: e.slug for key, e in events.items()}
        staff_email = make_user("staff").email
        token = create_token(staff_email)
        db.session.commit()
    for key in ("seminar", "fieldwork"):  # through the public form, one after the other
        form = client.get(f"/events/{slugs[key]}/register").get_data(as_text=True)
        response = client.post(f"/events/{slugs[key]}/register", data={
            **ATTENDEES[key], "email": EMAIL, "prefecture": "岩手県", "iwate_relation": "origin",
            "consent_privacy": "y", "csrf_token": csrf_token_from(form)})
        assert response.status_code == 303, response.get_data(as_text=True)[:500]
    login(client, staff_email)
    response = post_form(client, f"/staff/events/{ids['phone']}/participants/new",
                         {**ATTENDEES["phone"], "email": EMAIL, "iwate_relation": "origin"})
    assert response.status_code == 303, response.get_data(as_text=True)[:800]
    # The confirmation staff see names the attendee they entered (and uses up the flash message).
    assert f"{ATTENDEES['phone']['name']} 様を登録しました" in client.get(response.headers["Location"]).get_data(as_text=True)
    with app.app_context():
        regs = db.session.execute(select(Registration).order_by(Registration.id)).scalars().all()
        assert len({r.person_id for r in regs}) == 1  # one address, one person
        assert [r.name for r in regs] == [ATTENDEES[k]["name"] for k in ("seminar", "fieldwork", "phone")]
        # The person keeps the first sign-up's details: nobody proved owning the address since.
        assert db.session.execute(select(Person.name)).scalar_one() == ATTENDEES["seminar"]["name"]
        codes = {key: r.ticket_code for key, r in zip(("seminar", "fieldwork", "phone"), regs, strict=True)}
    return {"ids": ids, "codes": codes, "token": token}


def _others(key: str) -> list[str]:
    return [a["name"] for k, a in ATTENDEES.items() if k != key]


@pytest.mark.parametrize("key", list(ATTENDEES))
def test_each_event_prints_and_exports_its_own_attendee(app, client, family, key):
    event_id, own = family["ids"][key], ATTENDEES[key]
    documents = {
        "reception roster": pdf_text(client.get(f"/staff/events/{event_id}/roster.pdf").data),
        "insurance roster": pdf_text(client.get(f"/staff/events/{event_id}/roster.pdf?preset=insurance").data),
        "badges": pdf_text(client.get(f"/staff/events/{event_id}/badges.pdf").data),
    }
    for label, text in documents.items():
        assert flat(own["name"]) in flat(text), label
        assert flat(own["furigana"]) in flat(text), label
        assert not any(flat(name) in flat(text) for name in _others(key)), label
    assert flat(own["phone"]) in flat(documents["insurance roster"])

    export = post_form(client, f"/staff/events/{event_id}/export", {"preset": "all", "format": "csv"})
    assert export.status_code == 200
    csv_text = export.data.decode("utf-8-sig")
    row = next(line for line in csv_text.splitlines()[1:] if line)
    assert row.split(",")[1:4] == [own["name"], own["furigana"], EMAIL]
    assert own["phone"] in row and not any(name in csv_text for name in _others(key))

    participants = client.get(f"/staff/events/{event_id}/participants").get_data(as_text=True)
    assert own["name"] in participants and not any(name in participants for name in _others(key))


@pytest.mark.parametrize("key", list(ATTENDEES))
def test_check_in_shows_the_registrations_own_attendee(app, client, family, key):
    event_id, own = family["ids"][key], ATTENDEES[key]
    headers = {"Authorization": f"Bearer {family['token']}"}
    # The roster the door devices search (by name, furigana or phone digits) offline.
    roster = client.get(f"/api/v1/events/{event_id}/checkins/roster", headers=headers).get_json()
    entries = roster["registrations"]
    assert [(e["name"], e["furigana"]) for e in entries] == [(own["name"], own["furigana"])]
    digits = re.sub(r"\D", "", own["phone"])
    assert [e["name"] for e in entries if digits[-4:] in e["phone_digits"]] == [own["name"]]

    scan = client.post(f"/api/v1/events/{event_id}/checkins", json={"code": family["codes"][key],
                                                                   "nonce": f"family-{key}-1"}, headers=headers)
    assert scan.status_code == 200, scan.get_json()
    assert scan.get_json()["registration"]["name"] == own["name"]
    assert scan.get_json()["registration"]["furigana"] == own["furigana"]

    listing = client.get(f"/checkin/events/{event_id}/list").get_data(as_text=True)
    assert own["name"] in listing and not any(name in listing for name in _others(key))


def test_staff_find_the_address_by_any_attendee_and_see_each_one(app, client, family):
    found = client.get("/staff/people?q=とめ").get_data(as_text=True)
    assert ATTENDEES["seminar"]["name"] in found  # the contact (first sign-up) …
    assert ATTENDEES["phone"]["name"] in found and ATTENDEES["fieldwork"]["name"] in found  # … and its attendees
    person_id = re.search(r'href="/staff/people/(\d+)"', found).group(1)
    history = client.get(f"/staff/people/{person_id}").get_data(as_text=True)
    assert all(a["name"] in history and a["furigana"] in history for a in ATTENDEES.values())
    with app.app_context():
        reg_id = db.session.execute(select(Registration.id).where(
            Registration.event_id == family["ids"]["fieldwork"])).scalar_one()
    detail = client.get(f"/staff/registrations/{reg_id}").get_data(as_text=True)
    assert ATTENDEES["fieldwork"]["phone"] in detail and ATTENDEES["fieldwork"]["name"] in detail
    assert ATTENDEES["seminar"]["phone"] not in detail
