"""Bounces over real SMTP (aiosmtpd): a 5xx at RCPT marks the address undeliverable and fails the mail at
once, a 4xx keeps the backoff, later mail to a marked address is not attempted; the staff outbox page
shows the reason, and a failed mail is resent once the address is fixed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from eventapp.extensions import db
from eventapp.models import AuditEntry, OutboxMessage, UndeliverableAddress
from eventapp.models.base import utcnow
from eventapp.services import mail
from eventapp.services import participants as participants_service
from tests.conftest import make_event, make_registration
from tests.services.test_mail import Recorder, closed_port
from tests.staff_support import login, make_user, post_form

GONE = "nosuch@example.com"  # 550 at RCPT
BUSY = "later@example.com"  # 451 at RCPT
SPAMMY = "spammy@example.com"  # 554 5.7.1 after DATA: this message refused, the mailbox is fine
DISABLED = "disabled@example.com"  # 550 5.1.1 after DATA: the mailbox is bad


class Bouncer(Recorder):
    """Refuses GONE permanently and BUSY for now; counts every RCPT it is offered."""

    def __init__(self) -> None:
        super().__init__()
        self.rcpts: list[str] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 (aiosmtpd's hook)
        self.rcpts.append(address)
        if address.lower() == GONE:
            return "550 5.1.1 No such user"
        if address.lower() == BUSY:
            return "451 4.3.0 try later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook)
        if envelope.rcpt_tos == [SPAMMY]:
            return "554 5.7.1 Message rejected as spam"
        if envelope.rcpt_tos == [DISABLED]:
            return "550 5.1.1 Mailbox disabled"
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture(autouse=True)
def _catch_up_due():
    mail._last_catch_up = 0.0


@pytest.fixture
def bouncer(app):
    handler = Bouncer()
    controller = Controller(handler, hostname="127.0.0.1", port=closed_port())
    controller.start()
    saved = {k: v for k, v in app.config.items() if k.startswith("MAIL_")}
    app.config.update(MAIL_BACKEND="smtp", MAIL_SERVER="127.0.0.1", MAIL_PORT=controller.port, MAIL_USE_TLS=False,
                      MAIL_USERNAME="")
    try:
        yield handler
    finally:
        app.config.update(saved)
        controller.stop()


def outbox() -> list[OutboxMessage]:
    db.session.expire_all()
    return list(db.session.execute(select(OutboxMessage).order_by(OutboxMessage.id)).scalars())


def marks() -> dict[str, UndeliverableAddress]:
    return {row.email: row for row in db.session.execute(select(UndeliverableAddress)).scalars()}


def test_permanent_refusal_marks_the_address_and_fails_at_once_while_the_batch_goes_on(ctx, bouncer):
    event = make_event(title="バウンス")
    registration = make_registration(event, email=GONE)
    make_registration(event, email="fine@example.com")
    participants_service.resend_confirmation(registration.id)  # a second mail to it in the same batch
    db.session.commit()

    assert mail.deliver_due() == (1, 2)
    gone, fine, again = outbox()
    assert gone.status == "failed" and gone.attempts == 1, "no retries after a 5xx"
    assert "550 5.1.1 No such user" in gone.last_error
    assert again.status == "failed" and again.last_error.startswith("undeliverable address")
    assert fine.status == "sent"
    assert [to for _, [to], _ in bouncer.messages] == ["fine@example.com"]
    assert len(set(bouncer.peers)) == 1, "the refusal did not cost the connection"
    mark = marks()[GONE]
    assert "550 5.1.1" in mark.reason and mark.first_failed_at == mark.last_failed_at
    # a day later nothing is retried
    assert mail.deliver_due(now=utcnow() + timedelta(days=1)) == (0, 0)
    assert bouncer.rcpts.count(GONE) == 1


def test_transient_refusal_keeps_the_backoff_and_marks_nothing(ctx, bouncer):
    make_registration(make_event(title="一時エラー"), email=BUSY)
    assert mail.deliver_due() == (0, 1)
    [message] = outbox()
    assert message.status == "pending" and message.attempts == 1 and "451" in message.last_error
    assert message.next_attempt_at > utcnow() + timedelta(minutes=1)
    assert mail.deliver_due() == (0, 0), "not due before its backoff"
    assert mail.deliver_due(now=message.next_attempt_at + timedelta(seconds=1)) == (0, 1)
    [message] = outbox()
    assert message.status == "pending" and message.attempts == 2
    assert marks() == {}


def test_a_refusal_after_data_fails_the_mail_and_marks_only_a_bad_mailbox(ctx, bouncer):
    event = make_event(title="DATA")
    make_registration(event, email=SPAMMY)
    make_registration(event, email=DISABLED)
    assert mail.deliver_due() == (0, 2)
    by_addr = {m.to_addr: m for m in outbox()}
    assert {m.status for m in by_addr.values()} == {"failed"}
    assert "554 5.7.1" in by_addr[SPAMMY].last_error and "550 5.1.1" in by_addr[DISABLED].last_error
    assert set(marks()) == {DISABLED}


def test_later_mail_to_a_marked_address_is_failed_without_being_attempted(ctx, bouncer):
    registration = make_registration(make_event(title="二通目"), email=GONE)
    mail.deliver_due()
    assert bouncer.rcpts == [GONE]

    participants_service.resend_confirmation(registration.id)
    db.session.commit()
    assert mail.deliver_due() == (0, 1)
    assert bouncer.rcpts == [GONE], "the server was not asked again"
    second = outbox()[-1]
    assert second.status == "failed" and second.attempts == 1
    assert second.last_error.startswith("undeliverable address")


def test_after_response_delivery_skips_a_marked_address(app, client, bouncer):
    with app.app_context():
        event = make_event(title="画面から")
        slug = event.slug
        db.session.add(UndeliverableAddress(email=GONE, reason="550 5.1.1 No such user"))
        db.session.commit()
    from tests.services.test_mail import _sign_up_through_the_page
    _sign_up_through_the_page(client, slug, GONE.upper())  # stored lower-cased, like the mark
    with app.app_context():
        [message] = outbox()
        assert message.status == "failed" and message.last_error.startswith("undeliverable address")
    assert bouncer.rcpts == []


@pytest.fixture
def staff_client(app, client):
    with app.app_context():
        email = make_user("staff").email
    login(client, email)
    return client


def _bounced(app, bouncer) -> tuple[int, int, int, int]:
    """A registration whose confirmation bounced: (event id, registration id, person id, message id)."""
    with app.app_context():
        event = make_event(title="オンラインセミナー「地方複業のはじめかた」")
        registration = make_registration(event, email=GONE, name="宛先 誤記")
        mail.deliver_due()
        [message] = outbox()
        assert message.status == "failed"
        return event.id, registration.id, registration.person_id, message.id


def test_staff_see_failed_mail_with_its_reason_and_the_undeliverable_badge(app, staff_client, bouncer):
    event_id, _registration_id, person_id, message_id = _bounced(app, bouncer)
    with app.app_context():
        make_registration(db.session.get(OutboxMessage, message_id).registration.event, email="ok@example.com")
        mail.deliver_due()

    page = staff_client.get("/staff/outbox?status=failed").get_data(as_text=True)
    assert GONE in page and "550 5.1.1 No such user" in page and "配信不可" in page
    assert "ok@example.com" not in page, "the filter shows failed mail only"
    everything = staff_client.get("/staff/outbox").get_data(as_text=True)
    assert everything.index("ok@example.com") < everything.index(GONE), "newest first"
    assert GONE not in staff_client.get("/staff/outbox?status=sent").get_data(as_text=True)
    detail = staff_client.get(f"/staff/outbox/{message_id}").get_data(as_text=True)
    assert "宛先 誤記 様" in detail and "再送" in detail

    participants = staff_client.get(f"/staff/events/{event_id}/participants").get_data(as_text=True)
    assert participants.count("配信不可</span>") == 1  # the bounced address only, not ok@example.com
    person = staff_client.get(f"/staff/people/{person_id}").get_data(as_text=True)
    assert "配信不可</span>" in person and "550 5.1.1" in person


def test_the_outbox_page_is_paginated_newest_first(app, staff_client, monkeypatch):
    from eventapp.services import outbox as outbox_service
    monkeypatch.setattr(outbox_service, "PAGE_SIZE", 2)
    with app.app_context():
        event = make_event(title="ページ送り")
        for n in range(3):
            make_registration(event, email=f"page{n}@example.com")
    first = staff_client.get("/staff/outbox").get_data(as_text=True)
    assert "page2@example.com" in first and "page1@example.com" in first and "page0@example.com" not in first
    assert "古いメール" in first
    second = staff_client.get("/staff/outbox?page=2").get_data(as_text=True)
    assert "page0@example.com" in second and "page2@example.com" not in second and "新しいメール" in second


def test_a_sign_in_link_body_is_never_shown(app, staff_client):
    with app.app_context():
        message = mail.queue("my_page_link", "someone@example.com", "my_page_link",
                             {"link": "http://testserver.local/my/secret-token-xyz", "minutes": 30,
                              "expires_at": utcnow()})
        db.session.commit()
        message_id = message.id
    detail = staff_client.get(f"/staff/outbox/{message_id}").get_data(as_text=True)
    assert "secret-token-xyz" not in detail and "本文は表示しません" in detail


def test_resend_after_fixing_the_address_goes_to_the_new_address(app, staff_client, bouncer):
    _event_id, _registration_id, person_id, message_id = _bounced(app, bouncer)
    with app.app_context():  # what a merge into the right address, or a correction, leaves: the person's new address
        from eventapp.models import Person
        db.session.get(Person, person_id).email = "fixed@example.com"
        db.session.commit()

    response = post_form(staff_client, f"/staff/outbox/{message_id}/resend", token_from=f"/staff/outbox/{message_id}")
    assert response.status_code == 303
    with app.app_context():
        [message] = outbox()
        assert (message.status, message.attempts, message.to_addr, message.last_error) == \
            ("pending", 0, "fixed@example.com", "")
        assert mail.deliver_due() == (1, 0)
        assert [to for _, [to], _ in bouncer.messages] == ["fixed@example.com"]
        [entry] = db.session.execute(select(AuditEntry).where(AuditEntry.action == "resend")).scalars()
        assert entry.object_type == "outbox" and entry.details["to_before"] == GONE
        assert GONE in marks(), "the old address stays marked"


def test_resend_to_a_still_marked_address_needs_the_mark_cleared(app, staff_client, bouncer):
    _event_id, _registration_id, person_id, message_id = _bounced(app, bouncer)
    url = f"/staff/outbox/{message_id}"
    page = post_form(staff_client, f"{url}/resend", token_from=url, follow_redirects=True).get_data(as_text=True)
    assert "配信不可として記録されています" in page
    with app.app_context():
        assert outbox()[0].status == "failed" and GONE in marks()

    post_form(staff_client, f"{url}/resend", {"clear_mark": "yes"}, token_from=url)
    with app.app_context():
        message = outbox()[0]
        assert message.status == "pending" and message.attempts == 0
        assert marks() == {}
        actions = set(db.session.execute(select(AuditEntry.action)).scalars())
        assert {"resend", "clear_undeliverable"} <= actions


def test_staff_clear_the_mark_from_the_person_page(app, staff_client, bouncer):
    _event_id, _registration_id, person_id, _message_id = _bounced(app, bouncer)
    response = post_form(staff_client, "/staff/undeliverable/clear",
                         {"email": GONE, "back": f"/staff/people/{person_id}"}, token_from=f"/staff/people/{person_id}")
    assert response.status_code == 303 and response.location.endswith(f"/staff/people/{person_id}")
    with app.app_context():
        assert marks() == {}
        [entry] = db.session.execute(select(AuditEntry).where(AuditEntry.action == "clear_undeliverable")).scalars()
        assert entry.details["email"] == GONE and "550" in entry.details["reason"]
    assert "配信不可</span>" not in staff_client.get(f"/staff/people/{person_id}").get_data(as_text=True)


def test_the_audit_log_links_a_resend_to_its_mail(app, client, bouncer):
    _event_id, _registration_id, _person_id, message_id = _bounced(app, bouncer)
    with app.app_context():
        email = make_user("admin").email
    login(client, email)
    post_form(client, f"/staff/outbox/{message_id}/resend", {"clear_mark": "yes"}, token_from=f"/staff/outbox/{message_id}")
    page = client.get("/staff/audit?object_type=outbox").get_data(as_text=True)
    assert f'href="/staff/outbox/{message_id}"' in page and GONE in page
