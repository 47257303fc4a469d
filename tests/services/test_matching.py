"""Matching sessions: access rules, attendance, invitations, preferences, timetable, outcomes, surveys."""

from __future__ import annotations

from datetime import date, timedelta
from itertools import count

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from eventapp.extensions import db
from eventapp.models import Invitation, OutboxMessage, Preference, SurveyResponse
from eventapp.services import attendance, matching, organisations, surveys
from eventapp.services.checkin import check_in
from eventapp.services.errors import DomainError, ValidationFailed
from eventapp.services.registration import SignupRequest, register, sign_up
from tests.conftest import jst, make_event, make_registration, person_input

_nonce = count(1)

# A fixed calendar: fieldwork in October 2030 (FY2030), the matching session in December 2030.
FIELDWORK_AT = jst(2030, 10, 19, 9)
MATCHING_AT = jst(2030, 12, 7, 14)
BEFORE_FIELDWORK = FIELDWORK_AT - timedelta(days=10)


def make_org(name: str = "かんたはうす運営組合", **kw):
    org = organisations.create_organisation({"name": name, "municipality": kw.pop("municipality", "花巻市"),
                                             "project_type": kw.pop("project_type", "fan_community"),
                                             "challenges": "地域産ぶどうの販路拡大とブランド化", **kw})
    db.session.commit()
    return org


def attend(registration, *, online: bool = False):
    """Onsite: a real check-in scan during the event; online: the 出席コード typed during the seminar."""
    event = registration.event
    if online:
        code = attendance.new_attendance_code(event.id)
        attendance.enter_code(registration, code, now=event.starts_at + timedelta(minutes=30))
    else:
        check_in(event.id, registration.ticket_code, f"nonce{next(_nonce):08d}", now=event.starts_at + timedelta(hours=1))
    db.session.commit()


@pytest.fixture
def setup(ctx):
    fieldwork = make_event(kind="fieldwork", starts_at=FIELDWORK_AT, slug="fw")
    session = make_event(kind="matching_session", starts_at=MATCHING_AT, ends_at=MATCHING_AT + timedelta(hours=3),
                         slug="ms", title="遠恋複業マッチング会", fee_yen=0)
    attendee = make_registration(fieldwork, email="attendee@example.com", now=BEFORE_FIELDWORK)
    no_show = make_registration(fieldwork, email="noshow@example.com", now=BEFORE_FIELDWORK)
    attend(attendee)
    return fieldwork, session, attendee, no_show


def configure(session, rule: str, links=(("event", None),), fieldwork=None, **kw):
    links = [(scope, fieldwork.id if scope == "event" else None) for scope, _ in links]
    matching.configure(session.id, access_rule=rule, links=links, **kw)
    db.session.commit()


def test_open_session_accepts_anybody(setup):
    fieldwork, session, _, _ = setup
    configure(session, "open", links=[], fieldwork=fieldwork)
    result = register(session.id, person_input(email="new@example.com"), {}, consent=True,
                      now=MATCHING_AT - timedelta(days=5))
    assert result.registration.status == "confirmed"


def test_attendees_only_admits_checked_in_attendee_and_refuses_others_clearly(setup):
    fieldwork, session, attendee, no_show = setup
    configure(session, "attendees_only", fieldwork=fieldwork)
    now = MATCHING_AT - timedelta(days=5)
    ok = register(session.id, person_input(email="attendee@example.com"), {}, consent=True, now=now)
    assert ok.registration.person_id == attendee.person_id
    for email in ("noshow@example.com", "stranger@example.com"):
        with pytest.raises(DomainError) as err:
            register(session.id, person_input(email=email), {}, consent=True, now=now)
        assert err.value.code == "not_eligible"
        assert "参加された方のみ" in err.value.message


def test_undone_check_in_does_not_count(setup):
    fieldwork, session, attendee, _ = setup
    from eventapp.models import CheckIn
    from eventapp.services.checkin import undo
    row = db.session.execute(select(CheckIn).where(CheckIn.registration_id == attendee.id)).scalar_one()
    from tests.staff_support import make_user
    undo(fieldwork.id, row.id, user=make_user("staff"), now=FIELDWORK_AT + timedelta(hours=2))
    db.session.commit()
    configure(session, "attendees_only", fieldwork=fieldwork)
    assert not matching.eligibility(session, "attendee@example.com", MATCHING_AT).allowed


def test_online_attendance_code_counts_and_wrong_code_is_refused(ctx):
    seminar = make_event(kind="online_seminar", starts_at=jst(2030, 8, 25, 19), slug="sem", online_url="https://x.test/")
    session = make_event(kind="matching_session", starts_at=MATCHING_AT, slug="ms2")
    reg = make_registration(seminar, email="online@example.com", now=jst(2030, 8, 1))
    code = attendance.new_attendance_code(seminar.id)
    with pytest.raises(DomainError) as err:
        attendance.enter_code(reg, "000000" if code != "000000" else "111111", now=seminar.starts_at + timedelta(minutes=5))
    assert "出席コードが正しくありません" in err.value.message
    with pytest.raises(DomainError) as err:
        attendance.enter_code(reg, code, now=seminar.starts_at - timedelta(minutes=5))
    assert err.value.code == "too_early"
    # Full-width digits as typed on a Japanese keyboard are accepted.
    wide = code.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    attendance.enter_code(reg, wide, now=seminar.starts_at + timedelta(minutes=30))
    db.session.commit()
    matching.configure(session.id, access_rule="attendees_only", links=[("fy_seminar", None)])
    db.session.commit()
    assert matching.eligibility(session, "online@example.com", MATCHING_AT).reason == "attendee"


def test_priority_attendees_first_then_everybody(setup):
    fieldwork, session, _, _ = setup
    attendees_from, others_from = jst(2030, 11, 1, 10), jst(2030, 11, 15, 10)
    configure(session, "priority", fieldwork=fieldwork, attendees_from=attendees_from, others_from=others_from)
    early = matching.eligibility(session, "attendee@example.com", attendees_from - timedelta(minutes=1))
    assert not early.allowed and "先行受付は" in early.message
    assert matching.eligibility(session, "attendee@example.com", attendees_from).allowed
    waiting = matching.eligibility(session, "stranger@example.com", others_from - timedelta(minutes=1))
    assert not waiting.allowed and "一般受付は2030年11月15日(金) 10:00から" in waiting.message
    assert matching.eligibility(session, "stranger@example.com", others_from).allowed


def test_priority_needs_dates_in_order(setup):
    fieldwork, session, _, _ = setup
    with pytest.raises(ValidationFailed) as err:
        matching.configure(session.id, access_rule="priority", links=[("event", fieldwork.id)],
                           attendees_from=jst(2030, 11, 15), others_from=jst(2030, 11, 1))
    assert "others_from" in err.value.fields
    with pytest.raises(ValidationFailed) as err:
        matching.configure(session.id, access_rule="attendees_only", links=[])
    assert "links" in err.value.fields


def test_staff_override_for_one_person(setup):
    fieldwork, session, _, no_show = setup
    configure(session, "attendees_only", fieldwork=fieldwork)
    assert not matching.eligibility(session, "noshow@example.com", MATCHING_AT).allowed
    matching.grant_override(session.id, "NoShow@Example.com")
    db.session.commit()
    assert matching.eligibility(session, "noshow@example.com", MATCHING_AT).reason == "override"
    assert not matching.eligibility(session, "stranger@example.com", MATCHING_AT).allowed
    with pytest.raises(ValidationFailed):
        matching.grant_override(session.id, "unknown@example.com")


def test_same_fiscal_year_scope_stops_at_31_march_jst(ctx):
    # Fieldwork on 31 March 23:30 JST belongs to FY2030; a session in April 2031 (FY2031) does not count it.
    march = make_event(kind="fieldwork", starts_at=jst(2031, 3, 31, 23, 30), ends_at=jst(2031, 4, 1, 1), slug="fw-mar")
    make_event(kind="fieldwork", starts_at=jst(2031, 4, 1, 0, 0), slug="fw-apr")
    session = make_event(kind="matching_session", starts_at=jst(2031, 4, 20, 14), slug="ms-apr")
    matching.configure(session.id, access_rule="attendees_only", links=[("fy_fieldwork", None)])
    db.session.commit()
    assert [e.slug for e in matching.linked_events(session)] == ["fw-apr"]
    assert march not in matching.linked_events(session)


def test_finalising_attendance_invites_attendees_once(setup, sent_mail):
    fieldwork, session, attendee, _ = setup
    configure(session, "attendees_only", fieldwork=fieldwork)
    invited = matching.finalise_attendance_and_invite(fieldwork.id, now=FIELDWORK_AT + timedelta(days=1))
    db.session.commit()
    assert [i.person_id for i in invited] == [attendee.person_id]
    mails = db.session.execute(select(OutboxMessage).where(OutboxMessage.kind == "matching_invitation")).scalars().all()
    assert len(mails) == 1 and mails[0].to_addr == "attendee@example.com"
    assert mails[0].subject == "【ご招待】遠恋複業マッチング会"
    assert f"/invite/{invited[0].token}" in mails[0].body
    assert attendance.is_final(fieldwork.id)
    # Pressing the button again (e.g. after a late staff marking) invites only the new attendees.
    again = matching.finalise_attendance_and_invite(fieldwork.id, now=FIELDWORK_AT + timedelta(days=2))
    assert again == []
    assert db.session.execute(select(Invitation)).scalars().all() == invited


def test_invitation_greets_the_attendee_who_came_not_the_addresss_first_sign_up(setup):
    fieldwork, session, _, _ = setup
    configure(session, "attendees_only", fieldwork=fieldwork)
    make_registration(make_event(slug="earlier"), email="family@example.com", name="岩手 一郎", furigana="いわて いちろう")
    daughter = make_registration(fieldwork, email="family@example.com", name="岩手 さくら", furigana="いわて さくら",
                                 now=BEFORE_FIELDWORK)
    attend(daughter)
    [invitation] = [i for i in matching.finalise_attendance_and_invite(fieldwork.id, now=FIELDWORK_AT + timedelta(days=1))
                    if i.person_id == daughter.person_id]
    db.session.commit()
    # The invitation's sign-up form is pre-filled with her, too.
    assert (matching.invited_attendee(invitation)["name"], matching.invited_attendee(invitation)["furigana"]) == (
        "岩手 さくら", "いわて さくら")
    mail = db.session.execute(select(OutboxMessage).where(OutboxMessage.kind == "matching_invitation",
                                                          OutboxMessage.to_addr == "family@example.com")).scalar_one()
    assert mail.body.startswith("岩手 さくら 様") and "岩手 一郎" not in mail.body


def test_finalising_before_the_event_is_refused(setup):
    fieldwork, _, _, _ = setup
    with pytest.raises(DomainError) as err:
        matching.finalise_attendance_and_invite(fieldwork.id, now=FIELDWORK_AT - timedelta(days=1))
    assert err.value.code == "not_started"


def test_preferences_are_saved_in_rank_order_and_validated(setup):
    fieldwork, session, _, _ = setup
    a, b, c = make_org(), make_org("さともり株式会社", municipality="大槌町", project_type="business"), make_org("他の団体")
    for org in (a, b):
        organisations.link_event(session.id, org.id)
    db.session.commit()
    now = MATCHING_AT - timedelta(days=3)
    with pytest.raises(ValidationFailed) as err:
        sign_up(session.id, SignupRequest(person_input(), consent=True, preferences=[a.id, a.id], now=now))
    assert "同じ団体" in err.value.fields["preferences"]
    db.session.rollback()
    with pytest.raises(ValidationFailed) as err:
        sign_up(session.id, SignupRequest(person_input(), consent=True, preferences=[c.id], now=now))
    assert "一覧から" in err.value.fields["preferences"]
    db.session.rollback()
    result = sign_up(session.id, SignupRequest(person_input(), consent=True, preferences=[str(b.id), "", str(a.id)], now=now))
    db.session.commit()
    prefs = matching.preferences_of(result.registration.id)
    assert [(p.organisation_id, p.rank) for p in prefs] == [(b.id, 1), (a.id, 2)]
    # The database refuses two preferences with the same rank whatever the code does.
    db.session.add(Preference(registration_id=result.registration.id, organisation_id=c.id, rank=1))
    with pytest.raises(IntegrityError):
        db.session.flush()
    db.session.rollback()


def test_generated_timetable_has_no_clashes_and_edits_are_checked(setup):
    fieldwork, session, _, _ = setup
    orgs = [make_org(f"団体{i}") for i in range(3)]
    for org in orgs:
        organisations.link_event(session.id, org.id)
    matching.configure(session.id, access_rule="open", rounds=3, links=[])
    db.session.commit()
    regs = []
    for i in range(4):
        res = sign_up(session.id, SignupRequest(person_input(), consent=True, preferences=[orgs[(i + j) % 3].id for j in range(3)],
                                                 now=MATCHING_AT - timedelta(days=2)))
        regs.append(res.registration)
    db.session.commit()
    slots = matching.generate_timetable(session.id)
    db.session.commit()
    pairs = {(s.registration_id, s.round) for s in slots}
    assert len(pairs) == len(slots)  # nobody twice in a round
    assert len({(s.organisation_id, s.round) for s in slots}) == len(slots)  # no organisation twice in a round
    # Everybody gets their first choice (each organisation has room for 3 over 3 rounds).
    for reg in regs:
        first = matching.preferences_of(reg.id)[0].organisation_id
        assert any(s.registration_id == reg.id and s.organisation_id == first for s in slots)
    # Moving someone onto an organisation already busy in that round is refused.
    busy = next(s for s in slots if s.registration_id != regs[0].id and s.round == 1)
    mine = next((s for s in slots if s.registration_id == regs[0].id and s.round == 1), None)
    if mine is None or mine.organisation_id != busy.organisation_id:
        with pytest.raises(DomainError) as err:
            matching.set_slot(session.id, regs[0].id, 1, busy.organisation_id)
        assert "上限1人" in err.value.message or "重複" in err.value.message
    db.session.rollback()
    # Clearing a cell is always fine.
    matching.set_slot(session.id, regs[0].id, 1, None)
    db.session.commit()
    assert not any(s.registration_id == regs[0].id and s.round == 1 for s in matching.saved_timetable(session.id))


def test_outcome_moves_through_the_stages(setup):
    _, session, attendee, _ = setup
    org = make_org()
    outcome = matching.record_outcome(attendee.person_id, org.id, status="met", matching_event_id=session.id)
    assert outcome.status_label == "面談済み"
    with pytest.raises(ValidationFailed) as err:
        matching.record_outcome(attendee.person_id, org.id, status="matched")
    assert "matched_on" in err.value.fields
    outcome = matching.record_outcome(attendee.person_id, org.id, status="matched", matched_on=date(2031, 1, 10),
                                      description="地域産ワインの認知拡大とファン獲得を両立するコミュニティ形成")
    db.session.commit()
    assert outcome.project_type == "fan_community"  # from the organisation
    assert outcome.is_match and outcome.matching_event_id == session.id
    outcome = matching.record_outcome(attendee.person_id, org.id, status="ongoing", matched_on=date(2031, 1, 10))
    assert outcome.description.startswith("地域産ワイン")  # kept when not retyped
    stages = [s.stage for s in matching.person_journey(attendee.person_id)]
    assert stages == ["fieldwork", "match"]


def test_survey_after_the_event_only_and_results(setup):
    fieldwork, _, attendee, no_show = setup
    with pytest.raises(DomainError):
        surveys.submit(attendee, {"satisfaction": "5", "would_join_again": "yes"}, now=FIELDWORK_AT)
    after = fieldwork.ends_at + timedelta(hours=1)
    with pytest.raises(ValidationFailed) as err:
        surveys.submit(attendee, {"satisfaction": "6"}, now=after)
    assert set(err.value.fields) == {"satisfaction", "would_join_again"}
    surveys.submit(attendee, {"satisfaction": "４", "would_join_again": "yes", "comment": "楽しかった"}, now=after)
    surveys.submit(no_show, {"satisfaction": "2", "would_join_again": "no"}, now=after)
    db.session.commit()
    assert surveys.send_requests(fieldwork.id, now=after) == 1  # only the attendee is asked
    assert surveys.send_requests(fieldwork.id, now=after) == 0  # …once
    result = surveys.results(fieldwork.id)
    assert result.average == 3.0 and result.distribution[4] == 1 and result.would_join_again == 1
    db.session.add(SurveyResponse(registration_id=attendee.id, satisfaction=0, would_join_again=True))
    with pytest.raises(IntegrityError):
        db.session.flush()
    db.session.rollback()


def test_cron_sends_survey_requests_once_for_recently_ended_events(setup, app):
    fieldwork, _, attendee, _ = setup
    assert surveys.send_due(now=fieldwork.ends_at + timedelta(days=4)) == 0  # too long ago
    # The cron command runs against today's date: the 2030 fieldwork has not ended yet.
    result = app.test_cli_runner().invoke(args=["matching", "send-surveys", "--days", "7"])
    assert result.exit_code == 0, result.output
    assert "survey requests queued: 0" in result.output
    assert surveys.send_due(now=fieldwork.ends_at + timedelta(hours=2)) == 1
    db.session.commit()
    assert surveys.send_due(now=fieldwork.ends_at + timedelta(hours=3)) == 0
    mail = db.session.execute(select(OutboxMessage).where(OutboxMessage.kind == "survey_request")).scalar_one()
    assert mail.to_addr == "attendee@example.com" and f"/r/{attendee.manage_token}/survey" in mail.body
