"""Staff-written text reaches participants' pages as text, never as markup (pen test issue 21, item 4:
an optional question's label with `<meta http-equiv=refresh>` redirected every visitor of the sign-up
page). Every participant page is rendered with hostile labels, choices, event texts, organisation
texts and privacy notice, and no tag of them may appear unescaped."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from flask import render_template

from eventapp.extensions import db
from eventapp.models import Answer, Organisation
from eventapp.models.base import utcnow
from eventapp.services import organisations
from eventapp.services.privacy import publish_notice
from tests.conftest import csrf_token_from, future, make_event, make_registration
from tests.services.test_matching import make_org

META = '<meta http-equiv="refresh" content="0;url=https://evil.example/">'


def hostile(where: str) -> str:
    return f'{META}<h1>{where}</h1>'


# An unescaped tag of ours: `<meta http-equiv` anywhere, or `<h1>` directly followed by a marker.
_RAW = re.compile(r"<meta\s+http-equiv|<h1>[a-z_]+</h1>", re.IGNORECASE)


def assert_escaped(html: str, *markers: str) -> None:
    raw = _RAW.findall(html)
    assert not raw, raw
    for marker in markers:  # the hostile text is on the page (as text), so the check above could fail
        assert f"&lt;h1&gt;{marker}&lt;/h1&gt;" in html, marker


@pytest.fixture
def scene(ctx):
    questions = [
        {"key": "optional_text", "kind": "text", "label": hostile("optional_label"), "required": False,
         "help_text": hostile("help_text")},
        {"key": "required_text", "kind": "text", "label": hostile("required_label"), "required": True},
        {"key": "pick", "kind": "choice", "label": hostile("choice_label"), "required": False,
         "choices": [hostile("choice_value"), "普通の選択肢"]},
        {"key": "yn", "kind": "yesno", "label": hostile("yesno_label"), "required": False},
    ]
    texts = {field: hostile(field) for field in (
        "title", "summary", "description", "venue_name", "venue_address", "meeting_point", "access",
        "what_to_bring", "organiser_name")}
    now = utcnow()
    fieldwork = make_event(slug="hostile-fw", questions=questions, **texts)
    past = make_event(slug="hostile-past", kind="matching_session", starts_at=now - timedelta(days=3),
                      fee_yen=0, **texts)
    session = make_event(slug="hostile-ms", kind="matching_session", starts_at=future(20), fee_yen=0,
                         questions=questions, **texts)
    org = make_org("普通の団体")
    # Stored as it is (staff screens may be old or the row imported): the page must still escape it.
    org_row = db.session.get(Organisation, org.id)
    org_row.name, org_row.description = hostile("org_name"), hostile("org_description")
    org_row.challenges, org_row.furigana = hostile("org_challenges"), hostile("org_furigana")
    for event in (fieldwork, session, past):
        organisations.link_event(event.id, org.id)
    db.session.commit()
    registration = make_registration(fieldwork, answers={
        "optional_text": hostile("answer"), "required_text": "ふつう", "pick": hostile("choice_value")})
    past_registration = make_registration(past, now=now - timedelta(days=10))
    # Answers keep the label they were given under; write it hostile too.
    for answer in db.session.query(Answer).filter_by(registration_id=registration.id):
        answer.question_label = hostile("answer_label")
    publish_notice(hostile("notice_purpose"), hostile("notice_body"), hostile("notice_contact"))
    db.session.commit()
    return {"fieldwork": fieldwork, "session": session, "registration": registration,
            "past_registration": past_registration}


def test_every_participant_page_escapes_staff_written_text(scene, client):
    fieldwork, session = scene["fieldwork"], scene["session"]
    token = scene["registration"].manage_token
    event_markers = ("title", "summary", "venue_name")
    pages = {
        "/": ("title",),
        f"/events/{fieldwork.slug}": (*event_markers, "description", "meeting_point", "access",
                                      "what_to_bring", "org_name"),
        f"/events/{fieldwork.slug}/register": ("title", "optional_label", "required_label", "choice_label",
                                               "choice_value", "yesno_label", "help_text", "notice_body"),
        f"/events/{session.slug}": ("title", "org_name", "org_challenges"),
        f"/events/{session.slug}/register": ("title", "optional_label", "org_name"),
        f"/r/{token}": ("title", "answer"),
        f"/r/{token}/cancel": ("title",),
        "/privacy": ("notice_purpose", "notice_body", "notice_contact"),
        f"/r/{scene['past_registration'].manage_token}/survey": ("title",),
    }
    for url, markers in pages.items():
        response = client.get(url)
        assert response.status_code == 200, url
        assert_escaped(response.get_data(as_text=True), *markers)
    # A failed sign-up shows the form again with the service's messages: still escaped.
    form = client.get(f"/events/{fieldwork.slug}/register").get_data(as_text=True)
    failed = client.post(f"/events/{fieldwork.slug}/register", data={"csrf_token": csrf_token_from(form)})
    assert failed.status_code == 422
    assert_escaped(failed.get_data(as_text=True), "optional_label", "choice_value")


def test_printed_documents_escape_staff_written_text(scene, app):
    registration = scene["registration"]
    event = registration.event
    with app.test_request_context():
        ticket = render_template("pdf/ticket.html", registration=registration, event=event,
                                 person=registration.person, qr="", manage_url="", organiser=event.organiser_name,
                                 printed_at="")
        programme = render_template("pdf/programme.html", event=event, event_url="", qr="",
                                    organiser=event.organiser_name, printed_at="")
    assert_escaped(ticket, "title")
    assert_escaped(programme, "title", "summary")
