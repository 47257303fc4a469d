"""Staff corrections: editing one registration's attendee and answers (audited before/after), and
merging two person records without losing registrations, check-ins, matching rows or survey answers."""

from __future__ import annotations

import secrets

import pytest
from sqlalchemy import func, select

from eventapp.extensions import db
from eventapp.models import (
    Answer,
    Attendance,
    AuditEntry,
    CheckIn,
    Invitation,
    Outcome,
    Person,
    Preference,
    Registration,
    SurveyResponse,
    TimetableSlot,
)
from eventapp.services import organisations
from eventapp.services import participants as service
from eventapp.services.checkin import check_in
from eventapp.services.errors import DomainError, ValidationFailed
from eventapp.services.people import validate_person
from eventapp.services.registration import apply_attendee_changes, cancel, validate_answers
from tests.factories import make_checkin_event, make_event, make_registration
from tests.staff_support import make_user

QUESTIONS = [{"key": "bus", "kind": "yesno", "label": "送迎バス", "required": True},
             {"key": "diet", "kind": "text", "label": "食事の配慮"},
             {"key": "size", "kind": "choice", "label": "Tシャツ", "choices": ["M", "L"]}]


def _edit_input(registration: Registration, **changes) -> dict:
    values = dict(registration.attendee)
    values.update(changes)
    return values


def test_edit_changes_this_registration_only_and_audits_before_after(ctx):
    event, other_event = make_event(questions=QUESTIONS), make_event()
    reg = make_registration(event, email="family@example.jp", name="岩手 一郎", furigana="いわて いちろう",
                            answers={"bus": "yes", "diet": "なし"})
    sibling = make_registration(other_event, email="family@example.jp", name="岩手 二郎", furigana="いわて じろう")
    staff = make_user("staff")
    changes = service.update_registration_details(
        reg.id, _edit_input(reg, name="岩手 一朗", phone="090-1234-5678"),
        {"bus": "no", "diet": "", "size": "L"}, staff_user=staff)
    db.session.commit()
    assert changes == {
        "name": {"before": "岩手 一郎", "after": "岩手 一朗"},
        "phone": {"before": "", "after": "090-1234-5678"},
        "answers.bus": {"before": "yes", "after": "no"},
        "answers.diet": {"before": "なし", "after": ""},
        "answers.size": {"before": "", "after": "L"},
    }
    db.session.expire_all()
    reg = db.session.get(Registration, reg.id)
    assert (reg.name, reg.phone) == ("岩手 一朗", "090-1234-5678")
    assert {a.question.key: a.value for a in reg.answers} == {"bus": "no", "size": "L"}  # emptied: no row
    # The other registration of the address and the person (contact identity) are untouched.
    assert db.session.get(Registration, sibling.id).name == "岩手 二郎"
    assert db.session.get(Person, reg.person_id).email == "family@example.jp"
    entry = db.session.execute(select(AuditEntry).where(AuditEntry.action == "update",
                                                        AuditEntry.object_type == "registration")).scalar_one()
    assert entry.object_id == reg.id and entry.user_id == staff.id and entry.actor == staff.email
    assert entry.details["changes"]["name"] == {"before": "岩手 一郎", "after": "岩手 一朗"}
    assert entry.details["changes"]["answers.bus"] == {"before": "yes", "after": "no"}
    assert "氏名" in entry.summary and "送迎バス" in entry.summary


def test_edit_without_changes_writes_no_audit_entry(ctx):
    event = make_event(questions=QUESTIONS)
    reg = make_registration(event, answers={"bus": "yes"})
    assert service.update_registration_details(reg.id, _edit_input(reg), {"bus": "はい"}) == {}
    db.session.commit()
    assert db.session.execute(select(func.count()).select_from(AuditEntry)).scalar_one() == 0


def test_edit_validation_errors_change_nothing(ctx):
    event = make_event(questions=QUESTIONS)
    reg = make_registration(event, name="岩手 花子", answers={"bus": "yes"})
    with pytest.raises(ValidationFailed) as caught:
        service.update_registration_details(
            reg.id, _edit_input(reg, name="", furigana="Iwate", phone="abc", prefecture="火星", name_extra="x"),
            {"bus": "maybe", "size": "XXL", "diet": "x" * 2001})
    assert set(caught.value.fields) == {"name", "furigana", "phone", "prefecture", "answers.bus", "answers.size",
                                        "answers.diet"}
    db.session.rollback()
    assert db.session.get(Registration, reg.id).name == "岩手 花子"
    # Control characters are stripped like at sign-up; a required answer may be left empty by staff.
    changes = service.update_registration_details(reg.id, _edit_input(reg, name="岩手\x00 花子\u202e"), {"bus": ""})
    assert "name" not in changes and changes["answers.bus"] == {"before": "yes", "after": ""}


def test_edit_ignores_an_email_given_and_leaves_the_person(ctx):
    event = make_event()
    reg = make_registration(event, email="keep@example.jp")
    service.update_registration_details(reg.id, {**_edit_input(reg), "email": "attacker@example.com"}, {})
    db.session.commit()
    assert db.session.get(Person, reg.person_id).email == "keep@example.jp"


def test_an_anonymised_persons_registration_is_not_edited(ctx):
    from eventapp.services.privacy import anonymise_person

    reg = make_registration(make_event())
    anonymise_person(reg.person_id, reason="テスト")
    db.session.commit()
    with pytest.raises(DomainError) as caught:
        service.update_registration_details(reg.id, _edit_input(reg, name="復元 太郎"), {})
    assert caught.value.code == "anonymised"


def test_apply_attendee_changes_is_the_shared_primitive(ctx):
    event = make_event(questions=QUESTIONS)
    reg = make_registration(event, answers={"bus": "yes"})
    data = validate_person({**reg.attendee, "skills": "写真撮影"}, email_required=False)
    answers, errors = validate_answers(event, {"bus": "yes"})
    assert errors == {}
    assert apply_attendee_changes(reg, data, answers) == {"skills": {"before": "", "after": "写真撮影"}}
    assert apply_attendee_changes(reg, data, answers) == {}


# ---------------------------------------------------------------- merge


def _org(name: str):
    org = organisations.create_organisation({"name": name, "municipality": "花巻市", "project_type": "fan_community",
                                             "challenges": "販路拡大"})
    db.session.commit()
    return org


def _count(model, **where) -> int:
    stmt = select(func.count()).select_from(model)
    for key, value in where.items():
        stmt = stmt.where(getattr(model, key) == value)
    return db.session.execute(stmt).scalar_one()


def test_merge_moves_everything_and_deletes_the_merged_person(ctx):
    fieldwork = make_checkin_event(questions=QUESTIONS)
    seminar = make_event(kind="online_seminar")
    matching = make_event(kind="matching_session", fee_yen=0)
    kept = make_registration(seminar, email="hanako@example.jp", name="岩手 花子")
    typo_fw = make_registration(fieldwork, email="hanako@exmple.jp", name="岩手 花子", answers={"bus": "yes"})
    typo_ms = make_registration(matching, email="hanako@exmple.jp", name="岩手 はなこ")
    cancel(make_registration(seminar, email="hanako@exmple.jp").id, by="staff")  # a cancelled duplicate is fine
    db.session.commit()
    keep, merge = kept.person, typo_fw.person
    org_a, org_b = _org("かんたはうす運営組合"), _org("さともり株式会社")
    user = make_user("staff")
    check_in(fieldwork.id, None, "merge-nonce-1", registration_id=typo_fw.id, user=user)
    db.session.add_all([
        Attendance(registration_id=typo_fw.id, source="staff"),
        SurveyResponse(registration_id=typo_fw.id, satisfaction=5, would_join_again=True, comment="楽しかった"),
        Preference(registration_id=typo_ms.id, organisation_id=org_a.id, rank=1),
        TimetableSlot(event_id=matching.id, round=1, registration_id=typo_ms.id, organisation_id=org_a.id),
        Invitation(matching_event_id=matching.id, person_id=merge.id, token=secrets.token_urlsafe(16)),
        Outcome(person_id=merge.id, organisation_id=org_b.id, matching_event_id=matching.id, status="met"),
    ])
    db.session.commit()
    keep_id, merge_id = keep.id, merge.id
    moved = {typo_fw.id, typo_ms.id}

    preview = service.merge_preview(keep_id, "HANAKO@exmple.jp")
    assert preview.merge.id == merge_id and not preview.blocked
    assert moved <= {r.id for r in preview.registrations}
    db.session.rollback()

    plan = service.merge_people(keep_id, merge_id, staff_user=user)
    db.session.commit()
    db.session.expire_all()
    assert len(plan.registrations) == 3
    assert db.session.get(Person, merge_id) is None
    assert _count(Registration, person_id=keep_id) == 4 and _count(Registration, person_id=merge_id) == 0
    for rid in moved:  # the attendee as given stays as given
        assert db.session.get(Registration, rid).person_id == keep_id
    assert db.session.get(Registration, typo_ms.id).name == "岩手 はなこ"
    assert _count(CheckIn, registration_id=typo_fw.id) == 1
    assert _count(Attendance, registration_id=typo_fw.id) == 1
    assert _count(SurveyResponse, registration_id=typo_fw.id) == 1
    assert _count(Preference, registration_id=typo_ms.id) == 1
    assert _count(TimetableSlot, registration_id=typo_ms.id) == 1
    assert _count(Answer, registration_id=typo_fw.id) == 1
    assert _count(Invitation, person_id=keep_id) == 1 and _count(Outcome, person_id=keep_id) == 1
    entry = db.session.execute(select(AuditEntry).where(AuditEntry.action == "merge")).scalar_one()
    assert (entry.object_type, entry.object_id, entry.user_id) == ("person", keep_id, user.id)
    assert entry.details["merged_person_id"] == merge_id and entry.details["merged_email"] == "hanako@exmple.jp"
    assert set(entry.details["registrations"]) >= moved
    _, history, attended = service.person_history(keep_id)
    assert {r.id for r in history} >= moved and attended[typo_fw.id] == 1


def test_merge_drops_a_duplicate_invitation_and_keeps_the_kept_one(ctx):
    matching = make_event(kind="matching_session", fee_yen=0)
    keep = make_registration(make_event(), email="a@example.jp").person
    merge = make_registration(make_event(), email="a2@example.jp").person
    kept_token = secrets.token_urlsafe(16)
    db.session.add_all([Invitation(matching_event_id=matching.id, person_id=keep.id, token=kept_token),
                        Invitation(matching_event_id=matching.id, person_id=merge.id, token=secrets.token_urlsafe(16))])
    db.session.commit()
    plan = service.merge_people(keep.id, merge.id)
    db.session.commit()
    assert len(plan.duplicate_invitations) == 1
    assert db.session.execute(select(Invitation.token)).scalars().all() == [kept_token]


def test_merge_refuses_two_active_registrations_for_one_event(ctx):
    event = make_event(title="夏油温泉フィールドワーク")
    a = make_registration(event, email="taro@example.jp")
    b = make_registration(event, email="taro@exampel.jp")
    plan = service.merge_preview(a.person_id, "taro@exampel.jp")
    assert plan.blocked and [e.id for e in plan.conflicts] == [event.id]
    db.session.rollback()
    with pytest.raises(DomainError) as caught:
        service.merge_people(a.person_id, b.person_id)
    assert caught.value.code == "merge_conflict" and "「夏油温泉フィールドワーク」" in caught.value.message
    db.session.rollback()
    assert db.session.get(Person, b.person_id) is not None
    assert db.session.get(Registration, b.id).person_id == b.person_id
    # Once one of them is cancelled, the merge goes through.
    cancel(b.id, by="staff")
    db.session.commit()
    service.merge_people(a.person_id, b.person_id)
    db.session.commit()
    assert db.session.get(Registration, b.id).person_id == a.person_id


def test_merge_refuses_outcomes_with_the_same_organisation(ctx):
    org = _org("かんたはうす運営組合")
    keep = make_registration(make_event(), email="k@example.jp").person
    merge = make_registration(make_event(), email="m@example.jp").person
    db.session.add_all([Outcome(person_id=keep.id, organisation_id=org.id, status="met"),
                        Outcome(person_id=merge.id, organisation_id=org.id, status="met")])
    db.session.commit()
    with pytest.raises(DomainError) as caught:
        service.merge_people(keep.id, merge.id)
    assert caught.value.code == "merge_conflict" and "かんたはうす運営組合" in caught.value.message


def test_merge_refuses_itself_unknown_and_anonymised(ctx):
    from eventapp.services.privacy import anonymise_person

    keep = make_registration(make_event(), email="k@example.jp").person
    other = make_registration(make_event(), email="o@example.jp").person
    with pytest.raises(DomainError) as caught:
        service.merge_people(keep.id, keep.id)
    assert caught.value.code == "merge_same_person"
    with pytest.raises(DomainError) as caught:
        service.merge_preview(keep.id, "nobody@example.jp")
    assert caught.value.code == "person_not_found"
    with pytest.raises(DomainError) as caught:
        service.merge_preview(keep.id, "not an address")
    assert caught.value.code == "person_not_found"
    anonymise_person(other.id, reason="テスト")
    db.session.commit()
    with pytest.raises(DomainError) as caught:
        service.merge_people(keep.id, other.id)
    assert caught.value.code == "merge_anonymised"


def test_search_by_email_finds_the_person(ctx):
    reg = make_registration(make_event(), email="Search.Me@Example.jp")
    assert [p.id for p in service.search_people("search.me@example").hits] == [reg.person_id]


def test_merge_locks_both_people_until_it_commits(ctx):
    """On PostgreSQL the merge holds both people's rows (SELECT … FOR UPDATE): another transaction
    that wants either row waits (NOWAIT: fails at once) until the merge has committed. (FOR NO KEY
    UPDATE: not blocked by the key-share locks that the registrations' foreign keys take anyway.)"""
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    if db.engine.dialect.name != "postgresql":
        pytest.skip("row locks are PostgreSQL's; on SQLite the request holds the database's write lock")
    keep = make_registration(make_event(), email="lock-k@example.jp").person_id
    merge = make_registration(make_event(), email="lock-m@example.jp").person_id
    service.merge_people(keep, merge)
    with db.engine.connect() as other:
        for person_id in (keep, merge):
            with pytest.raises(OperationalError, match="could not obtain lock"):
                other.execute(text("SELECT id FROM people WHERE id = :id FOR NO KEY UPDATE NOWAIT"), {"id": person_id})
            other.rollback()
    db.session.commit()
    with db.engine.connect() as other:
        assert other.execute(text("SELECT id FROM people WHERE id = :id FOR UPDATE NOWAIT"),
                             {"id": keep}).scalar_one() == keep
        other.rollback()
