"""Staff mail (issue 16 item 2) against a real SMTP server: the preview is what is sent, a test goes
only to the staff member, a scheduled mail goes out once even with two passes racing, a cancelled one
never, and placeholders staff mistype are named, never a 500."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from eventapp.extensions import db
from eventapp.models import AuditEntry, CheckIn, OutboxMessage, StaffMail
from eventapp.models.base import utcnow
from eventapp.services import mail, scheduled
from eventapp.services import participants as participants_service
from eventapp.services import staff_mail as service
from eventapp.services.errors import DomainError, ValidationFailed
from tests.factories import future, make_checkin_event, make_event, make_registration
from tests.services.test_mail import mail_config, smtp_server  # noqa: F401 (fixtures)
from tests.staff_support import make_user

ZOOM = "https://zoom.example.com/j/123456789"


def staff_messages() -> list[OutboxMessage]:
    return list(db.session.execute(select(OutboxMessage).where(OutboxMessage.kind.like("staff_message%"))
                                   .order_by(OutboxMessage.id)).scalars())


def clear_outbox() -> None:
    """The sign-ups' own confirmations are not what these tests look at."""
    db.session.query(OutboxMessage).delete()
    db.session.commit()


@pytest.fixture
def smtp(mail_config, smtp_server):  # noqa: F811
    port, recorder = smtp_server
    mail_config.update(MAIL_BACKEND="smtp", MAIL_SERVER="127.0.0.1", MAIL_PORT=port, MAIL_USE_TLS=False,
                       MAIL_USERNAME="")
    return recorder


def draft(event, user, **overrides):
    data = {"subject": "{event_title}の集合場所", "audience": "confirmed",
            "body": "{name} さん、集合は北上駅です。\n確認: {manage_url}\n{{波括弧}}はそのまま。", **overrides}
    staff_mail = service.save_draft(event, data, user=user)
    db.session.commit()
    return staff_mail


def text_of(message) -> str:
    """The plain-text body as the recipient reads it (SMTP carries it with CRLF line ends)."""
    return message.get_body(("plain",)).get_content().replace("\r\n", "\n")


def by_recipient(recorder) -> dict:
    return {to: message for _, [to], message in recorder.messages}


def test_preview_is_exactly_what_each_recipient_gets(ctx, smtp):
    user = make_user("staff")
    event = make_event(title="花巻ぶどう収穫")
    first = make_registration(event, name="岩手 一郎", email="ichiro@example.com")
    second = make_registration(event, name="盛岡 花子", email="hanako@example.com")
    clear_outbox()
    staff_mail = draft(event, user)

    people, chosen, rendered = service.preview(staff_mail)
    assert [r.id for r in people] == [first.id, second.id] and chosen.id == first.id  # the first by default
    _, chosen, rendered = service.preview(staff_mail, second.id)  # the selector's choice
    assert chosen.id == second.id
    assert rendered.subject == "花巻ぶどう収穫の集合場所"
    assert "盛岡 花子 さん、集合は北上駅です。" in rendered.body
    assert f"確認: http://testserver.local/r/{second.manage_token}" in rendered.body
    assert "{波括弧}はそのまま。" in rendered.body

    assert service.send_now(staff_mail.id, user=user, confirmed=True) == 2
    db.session.commit()
    assert mail.deliver_due() == (2, 0)
    sent = by_recipient(smtp)
    assert set(sent) == {"ichiro@example.com", "hanako@example.com"}
    assert sent["hanako@example.com"]["Subject"] == rendered.subject
    assert text_of(sent["hanako@example.com"]) == rendered.body
    assert "岩手 一郎 さん" in text_of(sent["ichiro@example.com"])

    db.session.expire_all()
    row = db.session.get(StaffMail, staff_mail.id)
    assert (row.status, row.recipient_count) == ("sent", 2) and row.sent_at is not None
    entries = db.session.execute(select(AuditEntry).where(AuditEntry.object_type == "staff_mail",
                                                          AuditEntry.object_id == staff_mail.id)).scalars().all()
    assert [e.details["recipients"] for e in entries] == [[first.id, second.id]]
    assert entries[0].user_id == user.id
    with pytest.raises(DomainError):  # a second click on 送信 sends nothing more
        service.send_now(staff_mail.id, user=user, confirmed=True)
    assert len(staff_messages()) == 2


def test_test_send_goes_only_to_the_staff_member(ctx, smtp):
    user = make_user("staff", email="jimukyoku@example.jp")
    event = make_event(title="遠野フィールドワーク")
    make_registration(event, email="one@example.com")
    second = make_registration(event, name="遠野 次郎", email="two@example.com")
    clear_outbox()
    staff_mail = draft(event, user)
    _, _, rendered = service.preview(staff_mail, second.id)

    service.send_test(staff_mail.id, user=user, registration_id=second.id)
    db.session.commit()
    assert mail.deliver_due() == (1, 0)
    [(_, rcpt, message)] = smtp.messages
    assert rcpt == ["jimukyoku@example.jp"] and message["To"] == "jimukyoku@example.jp"
    assert message["Subject"] == "【テスト】" + rendered.subject
    assert text_of(message) == rendered.body  # the previewed recipient's text
    assert db.session.get(StaffMail, staff_mail.id).status == "draft"  # still to be confirmed
    assert [m.registration_id for m in staff_messages()] == [None]


def test_scheduled_mail_goes_out_once_with_two_passes_racing(app, ctx):
    user = make_user("staff")
    event = make_event()
    people = [make_registration(event, email=f"race{i}@example.com") for i in range(3)]
    clear_outbox()
    staff_mail = draft(event, user)
    now = utcnow()
    with pytest.raises(ValidationFailed) as caught:
        service.schedule(staff_mail.id, now - timedelta(minutes=1), user=user, confirmed=True, now=now)
    assert "scheduled_at" in caught.value.fields
    service.schedule(staff_mail.id, now + timedelta(hours=1), user=user, confirmed=True, now=now)
    db.session.commit()
    assert dict(scheduled.run_scheduled(now + timedelta(minutes=59)))["staff_mail"] == 0  # not yet due

    results: list[dict] = []
    barrier = threading.Barrier(2)

    def run_pass() -> None:
        with app.app_context():
            barrier.wait()
            results.append(scheduled.run_scheduled(now + timedelta(hours=2)))
            db.session.remove()

    threads = [threading.Thread(target=run_pass) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(r["staff_mail"] for r in results) == [0, 3]
    assert scheduled.run_scheduled(now + timedelta(hours=3))["staff_mail"] == 0  # and not again later
    db.session.expire_all()
    assert sorted(m.registration_id for m in staff_messages()) == sorted(r.id for r in people)
    row = db.session.get(StaffMail, staff_mail.id)
    assert (row.status, row.recipient_count) == ("sent", 3)
    sent_entries = [e for e in db.session.execute(select(AuditEntry).where(AuditEntry.object_type == "staff_mail"))
                    .scalars() if "recipients" in e.details]
    assert len(sent_entries) == 1 and sent_entries[0].actor.startswith("system")


def test_cancelled_scheduled_mail_is_never_sent(ctx):
    user = make_user("staff")
    event = make_event()
    make_registration(event)
    clear_outbox()
    staff_mail = draft(event, user)
    now = utcnow()
    service.schedule(staff_mail.id, now + timedelta(minutes=10), user=user, confirmed=True, now=now)
    db.session.commit()
    service.cancel(staff_mail.id, user=user, event_id=event.id)
    db.session.commit()
    assert service.send_due_staff_mails(now + timedelta(hours=1)) == 0
    db.session.commit()
    assert staff_messages() == []
    assert db.session.get(StaffMail, staff_mail.id).status == "cancelled"
    with pytest.raises(DomainError):  # nor can it be sent now, or cancelled again
        service.send_now(staff_mail.id, user=user, confirmed=True)
    with pytest.raises(DomainError):
        service.cancel(staff_mail.id, user=user)


def test_a_sent_mail_cannot_be_cancelled(ctx):
    user = make_user("staff")
    event = make_event()
    make_registration(event)
    staff_mail = draft(event, user)
    service.send_now(staff_mail.id, user=user, confirmed=True)
    db.session.commit()
    with pytest.raises(DomainError) as caught:
        service.cancel(staff_mail.id, user=user)
    assert caught.value.code == "staff_mail_not_cancellable"


@pytest.mark.parametrize(("body", "named"), [
    ("{nmae} 様", "{nmae}"),
    ("{name} と {event} と {nmae}", "{event}、{nmae}"),
    ("{name.__class__}", "{name.__class__}"),
    ("{name:>999999999}", "{name:>999999999}"),
    ("{name!r}", "{name!r}"),
    ("{0}", "{0}"),
])
def test_unknown_placeholders_are_named(ctx, body, named):
    user = make_user("staff")
    event = make_event()
    with pytest.raises(ValidationFailed) as caught:
        service.save_draft(event, {"subject": "件名", "body": body, "audience": "confirmed"}, user=user)
    assert f"使えない差し込み項目があります: {named}。" in caught.value.fields["body"]


def test_unbalanced_braces_and_other_mistakes_are_validation_errors(ctx):
    user = make_user("staff")
    event = make_event()
    with pytest.raises(ValidationFailed) as caught:
        service.save_draft(event, {"subject": "{title", "body": "}", "audience": "everyone",
                                   "attachments": ["passport"]}, user=user)
    fields = caught.value.fields
    assert set(fields) == {"subject", "body", "audience", "attachments"}
    assert "「{{」" in fields["subject"] and "「{{」" in fields["body"]
    with pytest.raises(ValidationFailed) as caught:
        service.save_draft(event, {"subject": "件名\r\nBcc: x@y", "body": "本文", "audience": "all"}, user=user)
    assert "subject" in caught.value.fields


def test_join_url_only_for_confirmed_people_of_an_online_seminar(ctx):
    user = make_user("staff")
    start = future(days=20, hour=19)
    seminar = make_event(kind="online_seminar", title="オンライン説明会", starts_at=start,
                         ends_at=start + timedelta(hours=1), online_url=ZOOM, venue_name="", venue_address="",
                         capacity=1)
    confirmed = make_registration(seminar)
    waiting = make_registration(seminar)
    staff_mail = draft(seminar, user, audience="all", body="参加URL: [{join_url}]")
    assert "参加URL: [https://zoom.example.com/j/123456789]" in service.render_for(staff_mail, confirmed).body
    assert "参加URL: []" in service.render_for(staff_mail, waiting).body
    fieldwork = make_event()
    other = draft(fieldwork, user, body="参加URL: [{join_url}]")
    assert "参加URL: []" in service.render_for(other, make_registration(fieldwork)).body


def test_audiences(ctx):
    user = make_user("staff")
    event = make_checkin_event(capacity=2)
    here = make_registration(event)
    away = make_registration(event)
    waiting = make_registration(event)
    gone = make_registration(event)
    participants_service.cancel_on_behalf(gone.id)
    db.session.commit()
    # A check-in as the door records it (the scan service itself is tested in test_checkin.py).
    db.session.add(CheckIn(registration_id=here.id, event_day_id=event.days[0].id, checked_in_at=utcnow(),
                           nonce="staff-mail-audience", by_user_id=user.id))
    db.session.commit()
    ids = {audience: [r.id for r in service.recipients(event.id, audience)] for audience in service.AUDIENCE_LABELS}
    assert ids["confirmed"] == [here.id, away.id]
    assert ids["waitlisted"] == [waiting.id]
    assert ids["all"] == [here.id, away.id, waiting.id]
    assert ids["checked_in"] == [here.id]


def test_documents_are_attached_as_real_pdfs_drawn_at_sending_time(ctx, smtp):
    user = make_user("staff")
    event = make_event(title="しおり添付テスト")
    registration = make_registration(event, email="pdf@example.com")
    leaving = make_registration(event, email="leaving@example.com")
    clear_outbox()
    staff_mail = draft(event, user, attachments=["programme", "ticket"])
    service.send_now(staff_mail.id, user=user, confirmed=True)
    db.session.commit()
    # The outbox holds references, not one copy of each PDF per recipient.
    assert staff_messages()[0].attachments == [{"document": "programme", "event_id": event.id},
                                               {"document": "ticket", "registration_id": registration.id}]
    participants_service.cancel_on_behalf(leaving.id)  # cancelled before the mail went out: no ticket
    db.session.commit()
    assert mail.deliver_due()[1] == 0
    sent = {to: m for _, [to], m in smtp.messages if "集合場所" in m["Subject"]}  # not the cancellation mail
    files = {part.get_filename(): part for part in sent["pdf@example.com"].iter_attachments()}
    assert set(files) == {f"{event.slug}-programme.pdf", f"ticket-{event.slug}.pdf"}
    for part in files.values():
        assert part.get_content_type() == "application/pdf"
        assert part.get_content().startswith(b"%PDF-")
    assert [p.get_filename() for p in sent["leaving@example.com"].iter_attachments()] == [
        f"{event.slug}-programme.pdf"]


def test_online_seminars_offer_no_ticket(ctx):
    user = make_user("staff")
    start = future(days=20, hour=19)
    seminar = make_event(kind="online_seminar", starts_at=start, ends_at=start + timedelta(hours=1),
                         online_url=ZOOM, venue_name="", venue_address="")
    with pytest.raises(ValidationFailed) as caught:
        service.save_draft(seminar, {"subject": "件名", "body": "本文", "audience": "confirmed",
                                     "attachments": ["ticket"]}, user=user)
    assert "受付票" in caught.value.fields["attachments"]


def test_cron_send_mail_sends_a_due_scheduled_mail(app, ctx, sent_mail):
    user = make_user("staff")
    event = make_event(title="予約送信の確認")
    make_registration(event, email="cron@example.com")
    clear_outbox()
    staff_mail = draft(event, user)
    now = utcnow()
    service.schedule(staff_mail.id, now + timedelta(seconds=1), user=user, confirmed=True, now=now)
    db.session.commit()
    db.session.execute(update(StaffMail).where(StaffMail.id == staff_mail.id)
                       .values(scheduled_at=now - timedelta(seconds=1)))  # its time has come
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["send-mail"])
    assert result.exit_code == 0 and "queued 1 scheduled, sent 1" in result.output, result.output
    [message] = sent_mail()
    assert message["To"] == "cron@example.com" and message["Subject"] == "予約送信の確認の集合場所"
    assert "queued 0 scheduled, sent 0" in app.test_cli_runner().invoke(args=["send-mail"]).output
