"""Staff input where it enters (issue 21 items 6 and 12): single-line fields refuse control characters
(CR/LF included) on the staff screens, in the API and in the services alike; e-mail fields must be
addresses; the join URL is http(s) only everywhere; question labels in CSV/XLSX headers get the
formula guard."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from openpyxl import load_workbook

from eventapp.extensions import db
from eventapp.models import Event
from eventapp.services import exports, organisations, staff_events, staff_mail
from eventapp.services.accounts import create_user
from eventapp.services.errors import ValidationFailed
from eventapp.services.events import create_event
from tests.api.test_api import NEW_EVENT, auth, tokens  # noqa: F401 (fixture)
from tests.conftest import future, make_event, make_registration
from tests.staff_support import login, make_user, post_form

CRLF_VALUES = ["org\r\nBcc: x@y", "a\nb", "a\rb", "tab\there", "nul\x00", "bell\x07", "del\x7f", "c1\x85x",
               "line\u2028sep", "bidi\u202eevil"]
SINGLE_LINE_EVENT_FIELDS = ["title", "venue_name", "venue_address", "organiser_name", "organiser_phone"]
BAD_URLS = ["javascript:alert(1)", "JAVASCRIPT:alert(1)", " javascript:alert(1)", "data:text/html,<script>",
            "vbscript:x", "//evil.example/", "https://", "ftp://files.example/x", "https://a b.example/"]


def event_data(**overrides) -> dict:
    starts = future()
    return {"slug": "input-test", "kind": "fieldwork", "title": "普通のタイトル", "starts_at": starts,
            "ends_at": starts + timedelta(hours=2), "capacity": 10, **overrides}


@pytest.fixture
def staff_client(app, client):
    with app.app_context():
        login(client, make_user("staff").email)
    return client


# --- services ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("field", SINGLE_LINE_EVENT_FIELDS)
@pytest.mark.parametrize("value", CRLF_VALUES)
def test_event_services_refuse_control_characters_in_single_line_fields(ctx, field, value):
    with pytest.raises(ValidationFailed) as caught:
        create_event(event_data(**{field: value}))
    assert field in caught.value.fields


def test_multiline_fields_keep_line_breaks_but_refuse_other_controls(ctx):
    event = create_event(event_data(summary="一行目\r\n二行目\n\tインデント"))
    assert event.summary == "一行目\n二行目\n\tインデント"
    with pytest.raises(ValidationFailed) as caught:
        create_event(event_data(slug="other", summary="a\x00b", description="a\x1bb"))
    assert {"summary", "description"} <= set(caught.value.fields)


@pytest.mark.parametrize("email", ["org@example.jp\r\nBcc: x@y", "not-an-address", "a@b", "org@example.jp x",
                                   "<org@example.jp>", "a" * 250 + "@example.jp"])
def test_organiser_email_must_be_one_address(ctx, email):
    with pytest.raises(ValidationFailed) as caught:
        create_event(event_data(organiser_email=email))
    assert "organiser_email" in caught.value.fields


def test_organiser_email_is_normalised(ctx):
    assert create_event(event_data(organiser_email=" Enren@Example.JP ")).organiser_email == "enren@example.jp"
    assert create_event(event_data(slug="none", organiser_email="")).organiser_email == ""


@pytest.mark.parametrize("url", BAD_URLS)
def test_join_url_is_http_or_https_only_in_the_services(ctx, url):
    with pytest.raises(ValidationFailed) as caught:
        create_event(event_data(kind="online_seminar", online_url=url))
    assert "online_url" in caught.value.fields


def test_programme_questions_organisations_users_and_messages_refuse_line_breaks(ctx):
    event = make_event()
    with pytest.raises(ValidationFailed) as caught:
        staff_events.update_questions(event.id, [{"label": "質問\r\n<b>", "kind": "text"}])
    assert "questions.0" in caught.value.fields
    with pytest.raises(ValidationFailed) as caught:
        staff_events.update_questions(event.id, [{"label": "選んでください", "kind": "choice",
                                                  "choices": ["A\nB", "C"]}])
    assert "questions.0" in caught.value.fields
    with pytest.raises(ValidationFailed) as caught:
        create_event(event_data(questions=[{"key": "q", "kind": "text", "label": "a\rb"}]))
    assert "questions.0" in caught.value.fields
    day = event.days[0]
    with pytest.raises(ValidationFailed) as caught:
        staff_events.update_days(event.id, [{"id": day.id, "starts_at": day.starts_at, "ends_at": day.ends_at,
                                             "title": "1日目\r\nX"}])
    assert "days.0" in caught.value.fields
    for field in ("name", "furigana", "contact_name", "contact_phone", "contact_email"):
        with pytest.raises(ValidationFailed) as caught:
            organisations.create_organisation({"name": "団体", "municipality": "花巻市",
                                               "project_type": "business", field: "x\r\nBcc: y@z"})
        assert field in caught.value.fields
    with pytest.raises(ValidationFailed) as caught:
        create_user("user@example.jp", "staff", "correct-horse-battery", "名前\r\nBcc: x@y")
    assert "name" in caught.value.fields
    make_registration(event)
    with pytest.raises(ValidationFailed) as caught:
        staff_mail.save_draft(event, {"audience": "all", "subject": "件名\r\nBcc: x@y", "body": "本文"}, user=None)
    assert "subject" in caught.value.fields
    db.session.rollback()


# --- staff screens ----------------------------------------------------------------------------------

def _staff_form(**overrides) -> dict:
    return {"title": "陸前高田 オンラインセミナー", "kind": "online_seminar", "slug": "rikuzentakata-online",
            "starts_at": "2030-05-10T19:00", "ends_at": "2030-05-10T20:00", "capacity": "50", "fee_yen": "0",
            **overrides}


@pytest.mark.parametrize("url", ["javascript:alert(document.cookie)", "data:text/html,x"])
def test_the_staff_form_refuses_a_javascript_join_url(ctx, staff_client, url):
    response = post_form(staff_client, "/staff/events/new", _staff_form(online_url=url),
                         token_from="/staff/events/new")
    assert response.status_code == 422
    assert "http:// または https://" in response.get_data(as_text=True)
    assert db.session.query(Event).count() == 0


def test_the_staff_form_refuses_line_breaks_and_bad_addresses(ctx, staff_client):
    response = post_form(staff_client, "/staff/events/new",
                         _staff_form(organiser_email="org@example.jp\r\nBcc: x@y", venue_name="会場\r\n2行目"),
                         token_from="/staff/events/new")
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "改行や制御文字は使えません。" in html
    assert db.session.query(Event).count() == 0
    ok = post_form(staff_client, "/staff/events/new", _staff_form(online_url="https://meet.example/abc"))
    assert ok.status_code == 303
    assert db.session.query(Event).one().online_url == "https://meet.example/abc"


# --- API --------------------------------------------------------------------------------------------

def test_the_api_refuses_the_same_values(app, client, tokens):  # noqa: F811 (fixture)
    headers = auth(tokens["staff"])
    cases = {"venue_name": "会場\r\nBcc: x@y", "organiser_name": "a\tb", "organiser_email": "org@example.jp\r\nx",
             "online_url": "javascript:alert(1)", "title": "題\n名"}
    for field, value in cases.items():
        response = client.post("/api/v1/events", json=dict(NEW_EVENT, **{field: value}), headers=headers)
        assert response.status_code == 422, (field, response.get_json())
        assert field in response.get_json()["error"]["fields"], field
    # An address the services accept but marshmallow's own Email field would not be asked about.
    bad_address = client.post("/api/v1/events", json=dict(NEW_EVENT, organiser_email="a@b"), headers=headers)
    assert "organiser_email" in bad_address.get_json()["error"]["fields"]
    question = {"key": "q1", "kind": "text", "label": "質問\r\nBcc: x@y"}
    response = client.post("/api/v1/events", json=dict(NEW_EVENT, questions=[question]), headers=headers)
    assert response.status_code == 422 and "questions.0.label" in response.get_json()["error"]["fields"]
    assert client.post("/api/v1/events", json=NEW_EVENT, headers=headers).status_code == 201


# --- exports ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("label", ['=HYPERLINK("http://evil","x")', "+1+1", "-2+3", "@SUM(A1)"])
def test_question_labels_in_export_headers_are_neutralised(ctx, label):
    event = make_event(questions=[{"key": "bus", "kind": "yesno", "label": label}])
    make_registration(event, answers={"bus": "yes"})
    for preset in ("all", "reception"):
        content, _, _ = exports.export(event, preset, "csv")
        header = next(csv.reader(io.StringIO(content.decode("utf-8-sig"), newline="")))
        assert "'" + label in header, (preset, header)
        assert label not in header
        content, _, _ = exports.export(event, preset, "xlsx")
        sheet = load_workbook(io.BytesIO(content)).active
        # XLSX: a text cell, shown as written (no apostrophe: issue 15, item 15)
        cells = [cell for cell in sheet[1] if cell.value == label]
        assert cells and all(cell.data_type == "s" for cell in cells), preset
