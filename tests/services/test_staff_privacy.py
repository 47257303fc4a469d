"""Anonymisation on request, retention purge (CLI), and versioned privacy notices."""

from __future__ import annotations

from datetime import timedelta

from eventapp.extensions import db
from eventapp.models import Answer, AuditEntry, Person, Registration
from eventapp.models.base import utcnow
from eventapp.services import privacy
from eventapp.services.capacity import counts_for
from tests.conftest import make_event, make_registration


def test_anonymise_wipes_personal_data_but_keeps_counts(ctx):
    event = make_event(questions=[{"key": "dietary", "kind": "text", "label": "食事"}])
    registration = make_registration(event, name="岩手 太郎", phone="090-1234-5678", occupation="エンジニア",
                                     answers={"dietary": "そばアレルギー"})
    registration.staff_note = "駅まで送迎"
    email = registration.person.email
    db.session.commit()
    privacy.anonymise_person(registration.person_id)
    db.session.commit()
    db.session.expire_all()
    person = db.session.get(Person, registration.person_id)
    assert (person.name, person.furigana, person.email, person.phone, person.occupation) == (
        "匿名", "とくめい", None, "", "")
    assert person.anonymised_at is not None
    assert [a.value for a in db.session.query(Answer)] == [""]
    wiped = db.session.get(Registration, registration.id)
    assert wiped.staff_note == ""
    # The registration's own copy of the attendee goes too; prefecture and relation stay for statistics.
    assert (wiped.name, wiped.furigana, wiped.phone, wiped.occupation, wiped.skills) == ("匿名", "とくめい", "", "", "")
    assert wiped.prefecture == person.prefecture == "東京都"
    assert counts_for(event.id).confirmed == 1  # statistics stay
    assert db.session.query(AuditEntry).filter_by(action="anonymise").one().object_id == person.id
    # The address is free again: the same person can sign up anew later.
    again = make_registration(make_event(), email=email)
    assert again.person_id != person.id


def test_purge_expired_only_touches_people_whose_events_all_ended_long_ago(ctx, app):
    old = make_event(title="昔のイベント")
    recent = make_event(title="最近のイベント")
    only_old = make_registration(old, email="old@example.com")
    both = make_registration(old, email="both@example.com")
    make_registration(recent, email="both@example.com")
    long_ago = utcnow() - timedelta(days=400)
    old.starts_at, old.ends_at = long_ago, long_ago + timedelta(hours=3)
    db.session.commit()

    assert privacy.expired_people(365) == [only_old.person_id]
    result = app.test_cli_runner().invoke(args=["purge-expired"])
    assert result.exit_code == 0, result.output
    assert "anonymised 1 people (retention 365 days)" in result.output
    db.session.expire_all()
    assert db.session.get(Person, only_old.person_id).email is None
    assert db.session.get(Person, both.person_id).email == "both@example.com"
    # Safe to run again (cron): nothing new to do.
    again = app.test_cli_runner().invoke(args=["purge-expired"])
    assert "anonymised 0 people" in again.output
    assert "anonymised 0 people (retention 0 days)" in app.test_cli_runner().invoke(
        args=["purge-expired", "--days", "0"]).output  # "both" has an event still to come


def test_new_notice_version_is_recorded_by_new_registrations(ctx):
    event = make_event()
    before = make_registration(event)
    notice = privacy.publish_notice("利用目的(改定)", "本文", "窓口", version="2026-04")
    db.session.commit()
    assert privacy.current_notice().version == "2026-04"
    after = make_registration(event)
    assert before.consent_version != "2026-04" and after.consent_version == "2026-04"
    second = privacy.publish_notice("再改定", "本文", "窓口", version="2026-04")
    assert second.version == "2026-04-2" and notice.id != second.id
