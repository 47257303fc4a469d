"""Announcements with opt-in (特定電子メール法): consent only from the mailbox, audience filters,
sender identification, RFC 8058 one-click unsubscribe over a real SMTP server, and transactional
mail unaffected by unsubscribing."""

from __future__ import annotations

import re
import secrets
from datetime import timedelta

import pytest
from sqlalchemy import select

from eventapp.extensions import db
from eventapp.models import AnnouncementConsent, Attendance, AuditEntry, CheckIn, OutboxMessage, Person
from eventapp.models.base import utcnow
from eventapp.services import announcements, mail
from eventapp.services import registration as registration_service
from eventapp.services.errors import DomainError, NotFound
from tests.factories import jst, make_event, make_registration, person_input
from tests.services import test_mail

CONFIRM_RE = re.compile(r"http://testserver\.local/announcements/confirm/([A-Za-z0-9_.-]+)")


def outbox(kind: str) -> list[OutboxMessage]:
    return list(db.session.execute(select(OutboxMessage).where(OutboxMessage.kind == kind)
                                   .order_by(OutboxMessage.id)).scalars())


def consent_of(email: str) -> AnnouncementConsent | None:
    return db.session.execute(select(AnnouncementConsent).join(Person).where(Person.email == email)
                              ).scalar_one_or_none()


def sign_up(event, *, opt_in: bool, **person):
    result = registration_service.sign_up(event.id, registration_service.SignupRequest(
        person=person_input(**person), consent=True, announcements_opt_in=opt_in))
    db.session.commit()
    return result.registration


def confirm_token(email: str) -> str:
    body = outbox(announcements.OPT_IN_MAIL)[-1].body
    assert outbox(announcements.OPT_IN_MAIL)[-1].to_addr == email
    return CONFIRM_RE.search(body).group(1)


def subscribe(email: str, **person) -> Person:
    """A person with a verified opt-in (as マイページ records it)."""
    registration = make_registration(make_event(), email=email, **person)
    announcements.set_from_mypage(registration.person, True)
    db.session.commit()
    return registration.person


def test_opt_in_is_off_by_default_and_a_sign_up_records_no_consent(ctx):
    assert registration_service.SignupRequest(person={}).announcements_opt_in is False
    event = make_event()
    sign_up(event, opt_in=False, email="plain@example.com")
    assert consent_of("plain@example.com") is None and outbox(announcements.OPT_IN_MAIL) == []

    # Ticked: still no consent, only a confirmation link mailed to the address.
    sign_up(event, opt_in=True, email="ticked@example.com")
    assert consent_of("ticked@example.com") is None
    assert [m.to_addr for m in outbox(announcements.OPT_IN_MAIL)] == ["ticked@example.com"]
    assert announcements.audience(make_event(), announcements.AudienceFilter()) == []


def test_confirming_the_mailed_link_records_version_time_and_source(ctx):
    registration = sign_up(make_event(), opt_in=True, email="hanako@example.com")
    token = confirm_token("hanako@example.com")
    person, registration_id = announcements.check_opt_in_token(token)
    assert person.email == "hanako@example.com" and registration_id == registration.id
    before = utcnow()
    announcements.confirm_opt_in(token)
    db.session.commit()
    consent = consent_of("hanako@example.com")
    assert consent.status == "active" and consent.source == "signup"
    assert consent.consent_version == announcements.ANNOUNCEMENT_CONSENT_VERSION == "2026-12"
    assert consent.consented_at >= before - timedelta(seconds=1) and consent.registration_id == registration.id
    assert len(consent.unsubscribe_token) >= 32
    assert db.session.execute(select(AuditEntry.action).where(AuditEntry.object_id == person.id,
                                                              AuditEntry.object_type == "person")
                              ).scalars().all() == ["announcement_consent"]
    # Signed: a changed token is refused.
    with pytest.raises(NotFound):
        announcements.check_opt_in_token(token[:-2] + ("AA" if not token.endswith("AA") else "BB"))


def test_an_unverified_sign_up_cannot_opt_someone_else_in_or_back_in(ctx):
    # The owner opted in once, then unsubscribed.
    owner = subscribe("victim@example.com")
    token = consent_of("victim@example.com").unsubscribe_token
    announcements.unsubscribe(token)
    db.session.commit()
    # A stranger signs up with the owner's address and ticks the box: the consent stays withdrawn, and
    # the confirmation link goes to the owner's mailbox, not to the stranger's page.
    stranger = sign_up(make_event(), opt_in=True, email="victim@example.com", name="他人 三郎")
    assert stranger.person_id == owner.id
    assert consent_of("victim@example.com").status == "withdrawn"
    assert outbox(announcements.OPT_IN_MAIL)[-1].to_addr == "victim@example.com"
    # Another sign-up ticking the box the same day: no second confirmation mail (no inbox flooding).
    sign_up(make_event(), opt_in=True, email="victim@example.com", name="他人 三郎")
    assert [m.to_addr for m in outbox(announcements.OPT_IN_MAIL)] == ["victim@example.com"]
    # A brand-new address signed up by someone else: nothing recorded either.
    sign_up(make_event(), opt_in=True, email="never-asked@example.com")
    assert consent_of("never-asked@example.com") is None
    assert announcements.audience(make_event(), announcements.AudienceFilter()) == []


def test_a_confirmation_link_stops_working_when_the_address_changed_hands(ctx):
    sign_up(make_event(), opt_in=True, email="old@example.com")
    token = confirm_token("old@example.com")
    person = db.session.execute(select(Person).where(Person.email == "old@example.com")).scalar_one()
    person.email = "new@example.com"  # e.g. a staff correction or a merge
    db.session.commit()
    with pytest.raises(NotFound):
        announcements.confirm_opt_in(token)
    assert consent_of("new@example.com") is None


def _attend(event, email: str, *, how: str = "checkin", **person):
    registration = registration_service.register(event.id, person_input(email=email, **person), {}, consent=True,
                                                 staff_override=True).registration
    if how == "checkin":
        db.session.add(CheckIn(registration_id=registration.id, event_day_id=event.days[0].id,
                               checked_in_at=event.starts_at, nonce=secrets.token_hex(8), source="manual"))
    elif how == "code":
        db.session.add(Attendance(registration_id=registration.id, source="code"))
    db.session.commit()
    return registration


def test_audience_filters_by_attendance_kind_fiscal_year_and_prefecture(ctx):
    fieldwork_2025 = make_event(kind="fieldwork", starts_at=jst(2025, 9, 6, 9))
    fieldwork_2024 = make_event(kind="fieldwork", starts_at=jst(2025, 3, 1, 9))  # 2024年度
    seminar = make_event(kind="online_seminar", starts_at=jst(2025, 10, 1, 19), venue_name="")
    for email, pref in (("a@example.com", "東京都"), ("b@example.com", "東京都"), ("c@example.com", "神奈川県"),
                        ("d@example.com", "東京都"), ("e@example.com", "東京都")):
        subscribe(email, prefecture=pref)
    _attend(fieldwork_2025, "a@example.com")                 # attended fieldwork (checked in) 2025
    _attend(fieldwork_2025, "b@example.com", how="none")     # registered, never checked in
    _attend(seminar, "c@example.com", how="code")            # attended an online seminar (出席コード)
    _attend(fieldwork_2024, "d@example.com")                 # attended fieldwork in 2024年度
    _attend(fieldwork_2025, "nobody@example.com")            # attended, but never opted in
    target = make_event(title="次のフィールドワーク")
    make_registration(target, email="e@example.com")         # already signed up for the announced event

    def emails(**kw) -> list[str]:
        return sorted(p.email for p in announcements.audience(target, announcements.AudienceFilter(**kw)))

    assert emails() == ["a@example.com", "b@example.com", "c@example.com", "d@example.com"]
    assert emails(attended=("fieldwork",)) == ["a@example.com", "d@example.com"]
    assert emails(attended=("fieldwork",), fiscal_year=2025) == ["a@example.com"]
    assert emails(attended=("fieldwork",), fiscal_year=2024) == ["d@example.com"]
    assert emails(attended=("seminar",)) == ["c@example.com"]
    assert emails(attended=("seminar", "fieldwork"), prefecture="神奈川県") == ["c@example.com"]
    assert emails(fiscal_year=2025) == ["a@example.com", "c@example.com"]
    assert emails(attended=("matching",)) == []
    with pytest.raises(DomainError):
        announcements.parse_filter({"attended": ["bogus"]})
    assert announcements.parse_filter({"attended": ["seminar"], "fiscal_year": "2025", "prefecture": "東京都"}) == \
        announcements.AudienceFilter(("seminar",), "東京都", 2025)


smtp_server = test_mail.smtp_server  # the real SMTP server (aiosmtpd) and mail settings fixtures
mail_config = test_mail.mail_config


@pytest.fixture
def sender_config(app):
    """Change the sender identification for one test and put it back afterwards (the app is shared)."""
    keys = ("ORGANISER_NAME", "ORGANISER_ADDRESS", "ORGANISER_CONTACT", "ANNOUNCEMENT_UNSUBSCRIBE_MAILTO")
    saved = {k: app.config[k] for k in keys}
    yield app.config
    app.config.update(saved)


def test_announcement_over_smtp_identifies_the_sender_and_has_rfc8058_headers(ctx, smtp_server, mail_config,
                                                                              sender_config):
    port, recorder = smtp_server
    mail_config.update(MAIL_BACKEND="smtp", MAIL_SERVER="127.0.0.1", MAIL_PORT=port, MAIL_USE_TLS=False,
                       MAIL_USERNAME="")
    sender_config.update(ORGANISER_ADDRESS="〒020-8570 岩手県盛岡市内丸10-1", ORGANISER_CONTACT="019-629-0000",
                         ANNOUNCEMENT_UNSUBSCRIBE_MAILTO="unsubscribe@example.jp")
    subscribe("hanako@example.com", name="岩手 花子")
    mail.deliver_due()
    recorder.messages.clear()
    event = make_event(title="冬の遠野フィールドワーク")
    assert announcements.announce(event.id, announcements.AudienceFilter(), "今年もやります。", expected=1) == 1
    db.session.commit()
    assert mail.deliver_due() == (1, 0)
    (_from, rcpt, message), = recorder.messages
    assert rcpt == ["hanako@example.com"]
    token = consent_of("hanako@example.com").unsubscribe_token
    url = f"http://testserver.local/announcements/unsubscribe/{token}"
    assert message["List-Unsubscribe"] == f"<{url}>, <mailto:unsubscribe@example.jp?subject=unsubscribe%20{token}>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert re.fullmatch(r"<[^<>\s]+>(, <[^<>\s]+>)*", message["List-Unsubscribe"])
    body = message.get_content()
    assert message["Subject"] == "【イベントのお知らせ】冬の遠野フィールドワーク"
    assert "岩手 花子 様" in body and "今年もやります。" in body and url in body
    assert "〒020-8570 岩手県盛岡市内丸10-1" in body and "019-629-0000" in body and "岩手県 遠恋複業課 事務局" in body
    entry = db.session.execute(select(AuditEntry).where(AuditEntry.action == "announce")).scalar_one()
    assert entry.details["recipients"] == 1 and entry.details["person_ids"] == [consent_of("hanako@example.com").person_id]


def test_announce_refuses_a_changed_count_a_draft_and_missing_sender_details(ctx, sender_config):
    subscribe("a@example.com")
    event = make_event()
    with pytest.raises(DomainError) as exc:
        announcements.announce(event.id, announcements.AudienceFilter(), "", expected=2)
    assert exc.value.code == "audience_changed"
    draft = make_event(status="draft")
    with pytest.raises(DomainError) as exc:
        announcements.announce(draft.id, announcements.AudienceFilter(), "", expected=1)
    assert exc.value.code == "event_not_announceable"
    sender_config["ORGANISER_ADDRESS"] = ""
    with pytest.raises(DomainError) as exc:
        announcements.announce(event.id, announcements.AudienceFilter(), "", expected=1)
    assert exc.value.code == "sender_not_configured"
    assert outbox(announcements.ANNOUNCEMENT_MAIL) == []


def test_unsubscribing_stops_queued_announcements_but_not_confirmations(ctx, smtp_server, mail_config):
    port, recorder = smtp_server
    mail_config.update(MAIL_BACKEND="smtp", MAIL_SERVER="127.0.0.1", MAIL_PORT=port, MAIL_USE_TLS=False,
                       MAIL_USERNAME="")
    subscribe("hanako@example.com")
    subscribe("taro@example.com")
    mail.deliver_due()
    recorder.messages.clear()
    event = make_event()
    announcements.announce(event.id, announcements.AudienceFilter(), "", expected=2)
    db.session.commit()
    # Hanako unsubscribes after the mails were queued, before they are sent.
    announcements.unsubscribe(consent_of("hanako@example.com").unsubscribe_token, via="one_click")
    db.session.commit()
    assert mail.deliver_due() == (1, 1)
    assert [rcpt for _f, rcpt, _m in recorder.messages] == [["taro@example.com"]]
    held = [m for m in outbox(announcements.ANNOUNCEMENT_MAIL) if m.to_addr == "hanako@example.com"]
    assert held[0].status == "failed" and held[0].last_error == "Suppressed: unsubscribed"  # final, no retry
    # Transactional mail still reaches her: a sign-up's confirmation.
    recorder.messages.clear()
    make_registration(make_event(title="冬のセミナー"), email="hanako@example.com")
    assert mail.deliver_due() == (1, 0)
    assert recorder.messages[0][1] == ["hanako@example.com"]
    assert recorder.messages[0][2]["Subject"].startswith("【参加確定】")
    assert "List-Unsubscribe" not in recorder.messages[0][2]
    # And she is in no later audience.
    assert [p.email for p in announcements.audience(make_event(), announcements.AudienceFilter())] == \
        ["taro@example.com"]


def test_mypage_choice_applies_at_once_and_renewal_keeps_the_unsubscribe_token(ctx):
    person = subscribe("hanako@example.com")
    token = consent_of("hanako@example.com").unsubscribe_token
    announcements.set_from_mypage(person, False)
    db.session.commit()
    consent = consent_of("hanako@example.com")
    assert consent.status == "withdrawn" and consent.withdrawn_via == "mypage" and consent.withdrawn_at
    announcements.set_from_mypage(person, True)
    db.session.commit()
    consent = consent_of("hanako@example.com")
    assert consent.status == "active" and consent.source == "mypage" and consent.withdrawn_at is None
    assert consent.unsubscribe_token == token
    # Unsubscribing twice is harmless; an unknown token is a 404.
    announcements.unsubscribe(token)
    announcements.unsubscribe(token)
    db.session.commit()
    assert consent_of("hanako@example.com").status == "withdrawn"
    with pytest.raises(NotFound):
        announcements.unsubscribe("x" * 32)


def test_merged_or_anonymised_people_get_no_announcements(ctx):
    from eventapp.services.participants import merge_people
    from eventapp.services.privacy import anonymise_person

    keep = make_registration(make_event(), email="keep@example.com").person
    merged = subscribe("typo@example.com")
    gone = subscribe("gone@example.com")
    merge_people(keep.id, merged.id)
    anonymise_person(gone.id)
    db.session.commit()
    # The consent was given for the merged address, which no longer exists: it goes with it.
    assert db.session.execute(select(AnnouncementConsent)).scalars().all() == [consent_of_id(gone.id)]
    assert consent_of("keep@example.com") is None
    assert announcements.audience(make_event(), announcements.AudienceFilter()) == []


def consent_of_id(person_id: int) -> AnnouncementConsent | None:
    return db.session.execute(select(AnnouncementConsent).where(AnnouncementConsent.person_id == person_id)
                              ).scalar_one_or_none()


def test_two_confirmations_at_once_record_one_consent(ctx, monkeypatch):
    person = subscribe("hanako@example.com")
    first = consent_of("hanako@example.com")
    real = announcements.consent_for
    stale = [True]  # the second click read before the first one's row was committed

    def consent_for(p):
        return None if stale and stale.pop() else real(p)

    monkeypatch.setattr(announcements, "consent_for", consent_for)
    assert announcements.set_from_mypage(person, True).id == first.id
    assert not stale  # the stale read did happen
    db.session.commit()
    assert db.session.execute(select(AnnouncementConsent)).scalars().all() == [first]
