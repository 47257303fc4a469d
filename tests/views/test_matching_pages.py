"""Matching and report pages in the browser's shoes: the whole path from a fieldwork attendee's
invitation to a recorded match that shows up in the yearly report."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from eventapp.extensions import db
from eventapp.models import (
    Invitation,
    Organisation,
    OutboxMessage,
    Outcome,
    Preference,
    Registration,
    TimetableSlot,
)
from eventapp.models.base import utcnow
from eventapp.services import attendance, organisations
from eventapp.services.fiscal import fiscal_year
from tests.conftest import csrf_token_from, future, make_event, make_registration
from tests.services.test_matching import attend, make_org
from tests.staff_support import login, make_user, post_form


@pytest.fixture
def staff_client(app, client):
    with app.app_context():
        user = make_user("staff")
        login(client, user.email)
    return client


def signup_data(html: str, email: str, **extra) -> dict:
    return {"csrf_token": csrf_token_from(html), "name": "岩手 花子", "furigana": "いわて はなこ", "email": email,
            "prefecture": "東京都", "iwate_relation": "origin", "consent_privacy": "y", **extra}


@pytest.fixture
def scene(ctx):
    """A fieldwork that took place (one attendee, one no-show) and an upcoming matching session."""
    now = utcnow()
    fieldwork = make_event(kind="fieldwork", starts_at=now - timedelta(days=3), slug="fw-past",
                           title="花巻ぶどう収穫フィールドワーク")
    session = make_event(kind="matching_session", starts_at=future(20), slug="ms-next", title="遠恋複業マッチング会",
                         fee_yen=0)
    orgs = [make_org(), make_org("さともり株式会社", municipality="大槌町", project_type="business")]
    for org in orgs:
        organisations.link_event(session.id, org.id)
    organisations.link_event(fieldwork.id, orgs[0].id)
    attendee = make_registration(fieldwork, email="attendee@example.com", now=now - timedelta(days=10))
    make_registration(fieldwork, email="noshow@example.com", now=now - timedelta(days=10))
    attend(attendee)
    db.session.commit()
    return fieldwork, session, orgs


def test_staff_pages_render_and_need_login(scene, client, staff_client):
    fieldwork, session, orgs = scene
    urls = ["/staff/organisations", "/staff/organisations/new", f"/staff/organisations/{orgs[0].id}", "/staff/matching",
            f"/staff/matching/{session.id}", f"/staff/matching/{session.id}/timetable",
            f"/staff/matching/{session.id}/timetable/print", f"/staff/matching/{session.id}/outcomes",
            f"/staff/attendance/{fieldwork.id}", "/staff/reports", "/staff/people/1/journey"]
    for url in urls:
        response = staff_client.get(url)
        assert response.status_code == 200, url


def test_staff_pages_need_login_and_the_staff_role(app, client):
    # No app context held open here: each request then has its own `g` (and login state).
    assert client.get("/staff/reports").status_code == 302
    with app.app_context():
        email = make_user("checkin").email
    login(client, email)
    assert client.get("/staff/organisations").status_code == 403
    assert client.get("/staff/reports/2025.csv").status_code == 403


def test_organisation_form_validates_in_japanese(ctx, staff_client):
    response = post_form(staff_client, "/staff/organisations/new", {"name": "", "municipality": "東京都千代田区",
                                                                    "project_type": "x"})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "団体名を入力してください" in html and "岩手県の市町村" in html
    response = post_form(staff_client, "/staff/organisations/new", {
        "name": "夏油古民家カフェ kobiru", "municipality": "北上市", "project_type": "fan_community",
        "challenges": "地域資源の発信力の弱さ、集客面での苦戦"})
    assert response.status_code == 303
    org = db.session.execute(select(Organisation)).scalar_one()
    assert org.municipality == "北上市" and org.project_type_label == "ファンコミュニティ型"


def test_event_page_shows_host_organisations_and_challenges(scene, client):
    fieldwork, _, _ = scene
    html = client.get(f"/events/{fieldwork.slug}").get_data(as_text=True)
    assert "参加する受入企業・団体" in html
    assert "かんたはうす運営組合" in html and "地域産ぶどうの販路拡大とブランド化" in html


def test_from_invitation_to_match_in_the_report(scene, client, staff_client):
    fieldwork, session, orgs = scene
    # Staff: attendees only, linked to the fieldwork.
    response = post_form(staff_client, f"/staff/matching/{session.id}", {
        "access_rule": "attendees_only", "linked_event_id": str(fieldwork.id), "rounds": "2",
        "minutes_per_round": "15", "org_capacity_per_round": "1"}, token_from=f"/staff/matching/{session.id}")
    assert response.status_code == 303
    # Staff: 「出席を確定して招待メールを送る」
    response = post_form(staff_client, f"/staff/attendance/{fieldwork.id}", {"action": "finalise"},
                         token_from=f"/staff/attendance/{fieldwork.id}")
    assert response.status_code == 303
    db.session.expire_all()
    invitation = db.session.execute(select(Invitation)).scalar_one()
    mail = db.session.execute(select(OutboxMessage).where(OutboxMessage.kind == "matching_invitation")).scalar_one()
    assert mail.to_addr == "attendee@example.com"
    link = re.search(r"http://testserver\.local(/invite/\S+)", mail.body).group(1)
    assert link == f"/invite/{invitation.token}"

    # A non-attendee is refused with a clear message, not a generic error.
    page = client.get(f"/events/{session.slug}/register").get_data(as_text=True)
    assert "参加された方のみお申し込みいただけます" in page  # said up front, before anyone types
    response = client.post(f"/events/{session.slug}/register",
                           data=signup_data(page, "noshow@example.com", pref_1=str(orgs[0].id)))
    assert response.status_code == 422
    assert "対象のフィールドワーク・セミナーに参加された方のみ" in response.get_data(as_text=True)

    # The attendee follows the personal link: the form is pre-filled and asks for ranked organisations.
    response = client.get(link)
    assert response.status_code == 303
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert 'value="attendee@example.com"' in page and "第1希望" in page and "さともり株式会社" in page
    response = client.post(f"/events/{session.slug}/register", data=signup_data(
        page, "attendee@example.com", pref_1=str(orgs[1].id), pref_2=str(orgs[0].id)))
    assert response.status_code == 303, response.get_data(as_text=True)
    db.session.expire_all()
    reg = db.session.execute(select(Registration).where(Registration.event_id == session.id)).scalar_one()
    ranks = db.session.execute(select(Preference.organisation_id).where(Preference.registration_id == reg.id)
                               .order_by(Preference.rank)).scalars().all()
    assert ranks == [orgs[1].id, orgs[0].id]

    # Staff: preference matrix and a timetable without clashes.
    html = staff_client.get(f"/staff/matching/{session.id}/timetable").get_data(as_text=True)
    assert "第1希望の人数" in html
    response = post_form(staff_client, f"/staff/matching/{session.id}/timetable", {"action": "generate"},
                         token_from=f"/staff/matching/{session.id}/timetable")
    assert response.status_code == 303
    db.session.expire_all()
    slots = db.session.execute(select(TimetableSlot).order_by(TimetableSlot.round)).scalars().all()
    assert [(s.round, s.organisation_id) for s in slots] in ([(1, orgs[1].id), (2, orgs[0].id)],
                                                              [(1, orgs[0].id), (2, orgs[1].id)])
    printable = staff_client.get(f"/staff/matching/{session.id}/timetable/print").get_data(as_text=True)
    assert "さともり株式会社" in printable and "css/timetable-print.css" in printable
    # The print layout is a static stylesheet (the CSP allows no inline styles).
    assert "@page" in staff_client.get("/static/css/timetable-print.css").get_data(as_text=True)

    # Staff: record the match; the yearly report counts it.
    year = fiscal_year(utcnow())
    before = staff_client.get(f"/staff/reports?year={year}").get_data(as_text=True)
    assert re.search(r'id="matches-total">0<', before)
    response = post_form(staff_client, f"/staff/matching/{session.id}/outcomes", {
        "person_id": str(reg.person_id), "organisation_id": str(orgs[0].id), "status": "matched",
        "matched_on": utcnow().date().isoformat(), "description": "地域産ワインの認知拡大とファン獲得を両立するコミュニティ形成"},
        token_from=f"/staff/matching/{session.id}/outcomes")
    assert response.status_code == 303
    db.session.expire_all()
    assert db.session.execute(select(Outcome)).scalar_one().project_type == "fan_community"
    after = staff_client.get(f"/staff/reports?year={year}").get_data(as_text=True)
    assert re.search(r'id="matches-total">1<', after)
    assert "<svg" in after
    csv_response = staff_client.get(f"/staff/reports/{year}.csv")
    assert csv_response.data.startswith(b"\xef\xbb\xbf")
    assert "マッチング成立(合計),1" in csv_response.data.decode("utf-8-sig")
    journey = staff_client.get(f"/staff/people/{reg.person_id}/journey").get_data(as_text=True)
    assert "花巻ぶどう収穫フィールドワーク" in journey and "マッチング成立" in journey


def test_matching_outcome_requires_a_date(scene, staff_client):
    _, session, orgs = scene
    person_id = db.session.execute(select(Registration.person_id)).scalars().first()
    response = post_form(staff_client, f"/staff/matching/{session.id}/outcomes", {
        "person_id": str(person_id), "organisation_id": str(orgs[0].id), "status": "matched"},
        token_from=f"/staff/matching/{session.id}/outcomes")
    assert response.status_code == 422
    assert "マッチング成立日を入力してください" in response.get_data(as_text=True)


def test_attendance_code_on_the_manage_page_and_survey(ctx, client):
    now = utcnow()
    seminar = make_event(kind="online_seminar", starts_at=now - timedelta(minutes=30), ends_at=now + timedelta(hours=1),
                         slug="sem-now", online_url="https://meet.example/x")
    reg = make_registration(seminar, email="online@example.com", now=now - timedelta(days=2))
    code = attendance.new_attendance_code(seminar.id)
    db.session.commit()
    page = client.get(f"/r/{reg.manage_token}").get_data(as_text=True)
    assert "出席コード" in page
    token = csrf_token_from(page)
    response = client.post(f"/r/{reg.manage_token}/attendance", data={"csrf_token": token, "code": "999999x"})
    assert "出席コードが正しくありません" in client.get(response.headers["Location"]).get_data(as_text=True)
    client.post(f"/r/{reg.manage_token}/attendance", data={"csrf_token": token, "code": code})
    db.session.expire_all()
    assert reg.id in attendance.attended_registration_ids(seminar.id)
    # The survey opens only after the seminar ends.
    survey = client.get(f"/r/{reg.manage_token}/survey").get_data(as_text=True)
    assert "イベント終了後" in survey


def test_timetable_and_report_as_pdf(scene, staff_client):
    from io import BytesIO

    from pypdf import PdfReader

    _, session, orgs = scene
    from eventapp.services import matching
    reg = make_registration(session, email="pdf@example.com")
    matching.set_preferences(reg, [orgs[0].id, orgs[1].id])
    matching.generate_timetable(session.id)
    db.session.commit()
    response = staff_client.get(f"/staff/matching/{session.id}/timetable.pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    text = "".join(page.extract_text() for page in PdfReader(BytesIO(response.data)).pages)
    assert "かんたはうす運営組合" in text and "第2ラウンド" in text
    year = fiscal_year(utcnow())
    response = staff_client.get(f"/staff/reports/{year}.pdf")
    text = "".join(page.extract_text() for page in PdfReader(BytesIO(response.data)).pages)
    assert f"{year}年度 事業報告" in text and "累計マッチング成立数" in text
