"""The outbox: Japanese mails written as .eml in development, retried over real SMTP, and the CLI."""

from __future__ import annotations

import re
import socket
import threading
import time
from datetime import timedelta
from email import message_from_bytes, policy

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select, update

from eventapp.database import write_intent
from eventapp.extensions import db
from eventapp.models import OutboxMessage, Registration
from eventapp.models.base import utcnow
from eventapp.services import mail
from eventapp.services import registration as registration_service
from tests.factories import jst, make_event, make_registration
from tests.views.test_public import english_catalog  # noqa: F401 (fixture)


def outbox(kind: str | None = None) -> list[OutboxMessage]:
    stmt = select(OutboxMessage).order_by(OutboxMessage.id)
    if kind:
        stmt = stmt.where(OutboxMessage.kind == kind)
    return list(db.session.execute(stmt).scalars())


def closed_port() -> int:
    """A localhost port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Recorder:
    """aiosmtpd handler that keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list = []
        self.peers: list = []  # the client address of each message's connection

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        self.peers.append(session.peer)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos),
                              message_from_bytes(envelope.original_content, policy=policy.default)))
        return "250 OK"


@pytest.fixture(autouse=True)
def _catch_up_due():
    """Each test starts with this process's catch-up throttle expired: a page test that sent mail just
    before would otherwise make the after-response catch-up skip here, depending on test order."""
    mail._last_catch_up = 0.0


@pytest.fixture
def smtp_server():
    recorder = Recorder()
    # aiosmtpd 1.4 cannot bind port 0 (it connects to itself to check it started), so pick a free one.
    controller = Controller(recorder, hostname="127.0.0.1", port=closed_port())
    controller.start()
    try:
        yield controller.port, recorder
    finally:
        controller.stop()


@pytest.fixture
def mail_config(app):
    """Change mail settings for one test and put them back afterwards (the app is shared)."""
    saved = {k: v for k, v in app.config.items() if k.startswith("MAIL_")}
    yield app.config
    app.config.update(saved)


def test_confirmation_is_written_as_eml_with_japanese_subject_body_and_manage_link(ctx, sent_mail):
    event = make_event(title="地域と温泉を楽しみながら考える 遠恋複業フィールドワーク", venue_name="夏油温泉観光ホテル")
    registration = make_registration(event, name="岩手 花子", email="hanako@example.com")
    token = registration.manage_token

    assert mail.deliver_due() == (1, 0)
    messages = sent_mail()
    assert len(messages) == 1
    message = messages[0]
    assert message["To"] == "hanako@example.com"
    assert message["Subject"] == "【参加確定】地域と温泉を楽しみながら考える 遠恋複業フィールドワーク"
    assert "遠恋複業課" in message["From"]
    assert message["Reply-To"] == "enren@example.jp"  # the organiser, not the no-reply sender
    body = message.get_body(("plain",)).get_content()
    assert message.get_body(("plain",)).get_content_charset() == "utf-8"
    assert body.startswith("岩手 花子 様")
    assert "参加が確定しました" in body and "夏油温泉観光ホテル" in body
    assert f"http://testserver.local/r/{token}" in body
    assert re.search(r"日時: \d{4}年\d{1,2}月\d{1,2}日\([月火水木金土日]\) \d\d:\d\d 〜 \d\d:\d\d", body)
    assert outbox()[0].status == "sent" and outbox()[0].sent_at is not None
    # sending again finds nothing due: each message goes out once
    assert mail.deliver_due() == (0, 0)
    assert len(sent_mail()) == 1


def test_waitlist_promotion_and_cancellation_mails(ctx, sent_mail):
    event = make_event(capacity=1, title="ブドウ収穫体験")
    first = make_registration(event, email="first@example.com")
    second = make_registration(event, email="second@example.com")
    registration_service.cancel(first.id)
    db.session.commit()

    mail.deliver_due()
    by_subject = {m["Subject"]: m for m in sent_mail()}
    assert set(by_subject) == {
        "【参加確定】ブドウ収穫体験", "【キャンセル待ち受付】ブドウ収穫体験", "【キャンセル完了】ブドウ収穫体験",
        "【参加確定】キャンセル待ちから繰り上げになりました: ブドウ収穫体験",
    }
    waitlisted = by_subject["【キャンセル待ち受付】ブドウ収穫体験"].get_body(("plain",)).get_content()
    assert "キャンセル待ち(1番目)" in waitlisted
    promoted = by_subject["【参加確定】キャンセル待ちから繰り上げになりました: ブドウ収穫体験"]
    assert promoted["To"] == "second@example.com"
    assert second.manage_token in promoted.get_body(("plain",)).get_content()


def test_online_seminar_confirmation_contains_join_url_but_waitlist_mail_does_not(ctx, sent_mail):
    event = make_event(kind="online_seminar", capacity=1, online_url="https://meet.example.jp/room-7")
    make_registration(event)
    make_registration(event)
    mail.deliver_due()
    bodies = {m["Subject"].split("】")[0]: m.get_body(("plain",)).get_content() for m in sent_mail()}
    assert "https://meet.example.jp/room-7" in bodies["【参加確定"]
    assert "room-7" not in bodies["【キャンセル待ち受付"]


def test_a_japanese_sign_up_gets_japanese_mail_even_when_staff_act_from_an_english_page(app, sent_mail):
    with app.app_context():
        event = make_event(title="英語ページからの操作", starts_at=jst(2031, 11, 8, 13), ends_at=jst(2031, 11, 9, 12))
        registration = make_registration(event, email="ja@example.com")
        assert registration.locale == "ja"
        registration_id = registration.id
    with app.test_request_context("/?lang=en"):
        from flask_babel import get_locale
        assert str(get_locale()) == "en"
        registration_service.cancel(registration_id, by="staff")  # e.g. staff browsing in English
        db.session.commit()
        assert str(get_locale()) == "en"  # the page itself stays English
    with app.app_context():
        mail.deliver_due()
    cancelled = next(m for m in sent_mail() if "キャンセル" in m["Subject"])
    assert cancelled["Subject"] == "【キャンセル完了】英語ページからの操作"
    body = cancelled.get_body(("plain",)).get_content()
    assert "日時: 2031年11月8日(土) 13:00 〜 11月9日(日) 12:00" in body and "Dear" not in body


@pytest.mark.usefixtures("english_catalog")
def test_an_english_sign_up_gets_its_mails_in_english(app, client, sent_mail):
    from tests.factories import csrf_token_from
    with app.app_context():
        event = make_event(kind="online_seminar", title="オンラインセミナー「地方複業のはじめかた」",
                           starts_at=jst(2031, 11, 8, 13), ends_at=jst(2031, 11, 8, 14), organiser_phone="0197-00-0000")
        slug = event.slug
    html = client.get(f"/events/{slug}/register?lang=en").get_data(as_text=True)
    response = client.post(f"/events/{slug}/register?lang=en", data={
        "csrf_token": csrf_token_from(html), "name": "Hanako Iwate", "furigana": "いわて はなこ",
        "email": "en@example.com", "consent_privacy": "y"})
    assert response.status_code == 303
    response.close()  # the after-response delivery
    with app.app_context():
        registration = db.session.execute(select(Registration)).scalar_one()
        assert registration.locale == "en"
        token = registration.manage_token
        registration_service.cancel(registration.id, by="staff")  # queued outside any English page
        db.session.commit()
        mail.deliver_due()
    confirmed, cancelled = sent_mail()
    assert confirmed["Subject"] == "[Confirmed] オンラインセミナー「地方複業のはじめかた」"
    body = confirmed.get_body(("plain",)).get_content()
    assert body.startswith("Dear Hanako Iwate,")
    assert "Thank you for signing up for “オンラインセミナー「地方複業のはじめかた」”. Your place is confirmed." in body
    assert "When: Sat 8 Nov 2031 13:00 – 14:00" in body and "Venue: online" in body
    assert f"/r/{token}?lang=en" in body  # the page opens in English too
    assert "6-digit attendance code" in body and "Phone: 0197-00-0000" in body
    assert "This mail was sent from a no-reply address." in body
    assert not re.search(r"[ぁ-んァ-ヶ]", body.replace("オンラインセミナー「地方複業のはじめかた」", "")
                         .replace("いわて", "")), "no Japanese left but the title"
    assert cancelled["Subject"] == "[Cancelled] オンラインセミナー「地方複業のはじめかた」"
    assert "(Cancelled by the organisers.)" in cancelled.get_body(("plain",)).get_content()


def test_api_sign_ups_are_japanese_unless_a_locale_is_given(app, client):
    with app.app_context():
        event_id = make_event(title="API").id
    body = {"name": "岩手 太郎", "furigana": "いわて たろう", "consent_privacy": True}
    default = client.post(f"/api/v1/events/{event_id}/registrations?lang=en", json={**body, "email": "a@example.com"})
    english = client.post(f"/api/v1/events/{event_id}/registrations", json={**body, "email": "b@example.com",
                                                                         "locale": "en"})
    refused = client.post(f"/api/v1/events/{event_id}/registrations", json={**body, "email": "c@example.com",
                                                                         "locale": "fr"})
    assert (default.status_code, english.status_code, refused.status_code) == (201, 201, 422)
    with app.app_context():
        locales = dict(db.session.execute(select(Registration.id, Registration.locale)).all())
        assert locales == {default.get_json()["registration"]["id"]: "ja", english.get_json()["registration"]["id"]: "en"}
        subjects = {m.to_addr: m.subject for m in outbox()}
    assert subjects == {"a@example.com": "【参加確定】API", "b@example.com": "[Confirmed] API"}


def test_the_database_refuses_an_unknown_locale(ctx):
    from sqlalchemy.exc import IntegrityError
    registration = make_registration(make_event())
    with pytest.raises(IntegrityError):
        db.session.execute(update(Registration).where(Registration.id == registration.id).values(locale="fr"))
        db.session.flush()
    db.session.rollback()


def test_titles_with_their_own_quotes_are_not_quoted_inside_quotes(ctx):
    event = make_event(title="オンラインセミナー「地方複業のはじめかた」")
    registration = make_registration(event)
    [message] = outbox()
    assert message.subject == "【参加確定】オンラインセミナー「地方複業のはじめかた」"
    assert "「オンラインセミナー『地方複業のはじめかた』」へのお申し込みを受け付け" in message.body
    assert "「「" not in message.body and "」」" not in message.body
    # a subject that quotes the title itself (staff mail) gets 『』 inside
    subject, _body = mail.render("staff_message", {"subject": f"「{event.title}」のご案内", "body": "本文",
                                                   "event": event, "registration": registration})
    assert subject == "「オンラインセミナー『地方複業のはじめかた』」のご案内"


def test_translated_mail_texts_are_all_in_the_catalogue():
    from babel.messages.extract import extract_from_dir
    from babel.messages.pofile import read_po

    from tests.views.test_public import PROJECT_ROOT
    with (PROJECT_ROOT / "translations/en/LC_MESSAGES/messages.po").open("rb") as f:
        translated = {(m.context, m.id) for m in read_po(f, locale="en") if m.id and m.string}
    found = {(context, msg) for _file, _line, msg, _comments, context in extract_from_dir(
        str(PROJECT_ROOT), [("templates/mail/**.txt", "jinja2")],
        keywords={"_": None, "pgettext": ((1, "c"), 2)})}
    assert len(found) > 50 and found <= translated, sorted(found - translated)


def test_a_backlog_goes_out_over_one_smtp_connection(app, ctx, mail_config, smtp_server):
    port, recorder = smtp_server
    mail_config.update(MAIL_BACKEND="smtp", MAIL_SERVER="127.0.0.1", MAIL_PORT=port, MAIL_USE_TLS=False,
                       MAIL_USERNAME="")
    event = make_event(title="まとめて送信")
    emails = [make_registration(event, email=f"batch{i}@example.com").person.email for i in range(5)]
    assert mail.deliver_due() == (5, 0)
    assert sorted(to for _, [to], _ in recorder.messages) == sorted(emails)
    assert len(set(recorder.peers)) == 1, "one connection for the whole batch"
    db.session.expire_all()
    assert {(m.status, m.attempts) for m in outbox()} == {("sent", 1)}
    assert mail.deliver_due() == (0, 0)


def test_failed_smtp_send_keeps_registration_and_retries_later(app, ctx, mail_config, smtp_server):
    mail_config.update(MAIL_BACKEND="smtp", MAIL_SERVER="127.0.0.1", MAIL_PORT=closed_port(),
                       MAIL_USE_TLS=False, MAIL_USERNAME="")
    event = make_event(title="マッチング会")
    registration = make_registration(event, email="retry@example.com")

    assert mail.deliver_due() == (0, 1)
    db.session.expire_all()
    # the registration was committed before sending, so a mail failure cannot undo it
    assert db.session.get(Registration, registration.id).status == "confirmed"
    [message] = outbox()
    assert message.status == "pending" and message.attempts == 1
    assert "ConnectionRefused" in message.last_error or "Errno" in message.last_error
    assert message.next_attempt_at > utcnow()
    # not due yet: nothing is attempted
    assert mail.deliver_due() == (0, 0)

    port, recorder = smtp_server
    mail_config["MAIL_PORT"] = port
    assert mail.deliver_due(now=message.next_attempt_at + timedelta(seconds=1)) == (1, 0)
    db.session.expire_all()
    [message] = outbox()
    assert message.status == "sent" and message.attempts == 2 and message.last_error == ""
    [(sender, recipients, received)] = recorder.messages
    assert recipients == ["retry@example.com"] and "noreply@example.jp" in sender
    assert received["Subject"] == "【参加確定】マッチング会"
    assert registration.manage_token in received.get_body(("plain",)).get_content()


def _sign_up_through_the_page(client, slug: str, email: str) -> None:
    from tests.factories import csrf_token_from
    html = client.get(f"/events/{slug}/register").get_data(as_text=True)
    response = client.post(f"/events/{slug}/register", data={
        "csrf_token": csrf_token_from(html), "name": "岩手 花子", "furigana": "いわて はなこ", "email": email,
        "consent_privacy": "y"})
    assert response.status_code == 303
    response.close()  # what a WSGI server does once the response is sent: the after-response delivery runs


def test_after_response_delivery_tries_only_its_own_mail_while_smtp_is_down(app, client, mail_config, sent_mail):
    with app.app_context():
        event = make_event(title="バックログ")
        slug = event.slug
        backlog = [make_registration(event).id for _ in range(3)]  # queued, never delivered
    mail_config.update(MAIL_BACKEND="smtp", MAIL_SERVER="127.0.0.1", MAIL_PORT=closed_port(), MAIL_USE_TLS=False)
    _sign_up_through_the_page(client, slug, "down@example.com")
    with app.app_context():
        attempts = {m.to_addr: m.attempts for m in outbox()}
        assert attempts.pop("down@example.com") == 1
        assert set(attempts.values()) == {0}, "the backlog is left to cron while the server is down"
        assert len(backlog) == len(attempts)

    mail_config.update(MAIL_BACKEND="file")
    _sign_up_through_the_page(client, slug, "up@example.com")
    with app.app_context():
        status = {m.to_addr: m.status for m in outbox()}
    # its own mail and the due backlog went out; the failed one waits for its backoff
    assert status.pop("down@example.com") == "pending"
    assert set(status.values()) == {"sent"} and len(sent_mail()) == 4


def test_sender_mode_leaves_mail_to_the_watching_sender_process(app, client, mail_config, sent_mail):
    """MAIL_DELIVERY=sender: the web request only queues; `send-mail --watch` sends it moments later."""
    with app.app_context():
        slug = make_event(title="送信プロセス").slug
    mail_config.update(MAIL_DELIVERY="sender")
    _sign_up_through_the_page(client, slug, "sender@example.com")
    with app.app_context():
        assert [m.status for m in outbox()] == ["pending"]
    assert sent_mail() == []

    stop = threading.Event()
    sent: list[int] = []

    def sender() -> None:
        with app.app_context():
            sent.append(mail.watch(interval_s=0.05, stop=stop))

    thread = threading.Thread(target=sender)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not sent_mail() and time.monotonic() < deadline:
            time.sleep(0.05)
        _sign_up_through_the_page(client, slug, "second@example.com")  # queued while it watches
        while len(sent_mail()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert sent == [2]
    assert sorted(str(m["To"]) for m in sent_mail()) == ["second@example.com", "sender@example.com"]
    with app.app_context():
        assert {m.status for m in outbox()} == {"sent"}


def test_message_is_marked_failed_after_max_attempts(app, ctx, mail_config):
    mail_config.update(MAIL_BACKEND="smtp", MAIL_SERVER="127.0.0.1", MAIL_PORT=closed_port(),
                       MAIL_USE_TLS=False, MAIL_MAX_ATTEMPTS=2)
    make_registration(make_event())
    now = utcnow()
    assert mail.deliver_due(now=now) == (0, 1)
    assert mail.deliver_due(now=now + timedelta(hours=1)) == (0, 1)
    db.session.expire_all()
    [message] = outbox()
    assert message.status == "failed" and message.attempts == 2
    assert mail.deliver_due(now=now + timedelta(days=1)) == (0, 0)


def test_send_mail_cli_delivers_due_messages(app, mail_config, sent_mail):
    with app.app_context():
        event = make_event(title="CLIテスト")
        make_registration(event)
        make_registration(event)
    result = app.test_cli_runner().invoke(args=["send-mail"])
    assert result.exit_code == 0, result.output
    assert "sent 2, failed 0" in result.output
    assert sorted(m["Subject"] for m in sent_mail()) == ["【参加確定】CLIテスト"] * 2
    again = app.test_cli_runner().invoke(args=["send-mail"])
    assert "sent 0, failed 0" in again.output


def _queue(n: int) -> None:
    """Queue n more mails (the same registration's promotion mail: what is queued does not matter)."""
    db.session.rollback()
    with write_intent():  # SQLite: the write lock from BEGIN on, as in a request that writes
        registration = db.session.execute(select(Registration).order_by(Registration.id)).scalars().first()
        if registration is None:
            registration = make_registration(make_event(title="混雑"))
        for _ in range(n):
            mail.queue_registration_mail("registration_promoted", registration)
        db.session.commit()


def test_queue_returns_the_inserted_message(ctx):
    registration = make_registration(make_event(title="キュー"))
    db.session.commit()
    message = mail.queue_registration_mail("registration_promoted", registration)
    db.session.commit()
    stored = db.session.get(OutboxMessage, message.id)
    assert (stored.kind, stored.to_addr, stored.subject, stored.registration_id, stored.status) == (
        message.kind, message.to_addr, message.subject, registration.id, "pending")
    assert stored.body == message.body and "キュー" in stored.body


def test_rush_detector_holds_mail_back_while_mail_is_queued_fast_for_at_most_its_limit(ctx):
    rush = mail.RushDetector(rate=5, max_defer_s=10)
    assert rush.defer(now=100.0) is False  # a first look has nothing to compare with
    _queue(2)
    assert rush.defer(now=100.2) is True  # 2 mails in 0.2 s: 10 per second
    _queue(1)
    assert rush.defer(now=101.2) is False  # 1 in a second: the rush is over
    held = []
    for second in range(1, 12):  # a new rush from 102.0: 6 mails a second
        _queue(6)
        held.append(rush.defer(now=101.2 + 0.8 + second - 1))
    # Held back for 10 seconds (102.0 … 111.0 are within), then mail goes although the rush goes on.
    assert held == [True] * 10 + [False]
    assert mail.RushDetector(rate=0, max_defer_s=10).defer(now=0.0) is False  # 0: never held


def test_watching_sender_waits_for_the_end_of_a_rush(app, mail_config, sent_mail):
    """While mail is queued faster than MAIL_RUSH_RATE the sender sends nothing; then it all goes."""
    # A low threshold: 4 mails every 0.1 s stays a rush even on a machine so busy that queueing takes a while.
    mail_config.update(MAIL_DELIVERY="sender", MAIL_RUSH_RATE=2, MAIL_RUSH_MAX_DEFER_S=60)
    stop = threading.Event()
    sent: list[int] = []

    def sender() -> None:
        with app.app_context():
            sent.append(mail.watch(interval_s=0.2, stop=stop))

    with app.app_context():
        _queue(1)  # the registration's own confirmation and this one
    thread = threading.Thread(target=sender)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while len(sent_mail()) < 2 and time.monotonic() < deadline:  # before the rush: sent at once
            time.sleep(0.02)
        assert len(sent_mail()) == 2
        with app.app_context():
            for _ in range(10):  # 4 mails every 0.1 s: 40 per second for a second
                _queue(4)
                time.sleep(0.1)
            # Held back: at most the first 4, should they have landed between a look at the rate
            # (before the rush) and that round's delivery; without the hold, all but the last few.
            assert len(sent_mail()) <= 2 + 4
        while len(sent_mail()) < 42 and time.monotonic() < deadline:  # after the rush: all of it
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert len(sent_mail()) == 42 and sent == [42]


def test_heartbeat_renews_only_its_own_claims_and_marks_what_went_out(app, ctx, mail_config):
    mail_config["MAIL_LEASE_S"] = 30
    _queue(3)
    first, second, third = db.session.scalars(select(OutboxMessage.id).order_by(OutboxMessage.id).limit(3)).all()
    db.session.rollback()
    long_ago = utcnow() - timedelta(minutes=10)
    with write_intent():
        db.session.execute(update(OutboxMessage).values(attempts=1, next_attempt_at=long_ago))
        # The third one's lease ran out and another sender claimed it (attempts moved on): not ours any more.
        db.session.execute(update(OutboxMessage).where(OutboxMessage.id == third).values(attempts=2))
        db.session.commit()
    heartbeat = mail._Heartbeat({first: 1, second: 1, third: 1})
    heartbeat.sent.append(first)
    heartbeat.beat()
    rows = {m.id: m for m in outbox()}
    assert rows[first].status == "sent" and rows[first].sent_at is not None
    assert rows[second].status == "pending" and rows[second].next_attempt_at > utcnow() + timedelta(seconds=25)
    assert rows[third].status == "pending" and rows[third].next_attempt_at == long_ago


def test_a_message_removed_after_its_claim_is_skipped_without_an_error(ctx, sent_mail):
    # A worker sends its request's mail after the response; a purge (or a test's clean-up) may remove
    # the row between the claim and the read: nothing is sent and nothing raises.
    from sqlalchemy import delete, event

    message = mail.queue_registration_mail("registration_promoted", make_registration(make_event(title="消えた")))
    db.session.commit()
    message_id = message.id

    removed = []

    def remove_once(session):
        if not removed:
            removed.append(message_id)
            with db.engine.begin() as conn:
                conn.execute(delete(OutboxMessage).where(OutboxMessage.id == message_id))

    event.listen(db.session, "after_commit", remove_once)
    try:
        assert mail._deliver_one(message_id, utcnow()) == "skipped"
    finally:
        event.remove(db.session, "after_commit", remove_once)
    assert removed == [message_id]
    assert sent_mail() == [] and db.session.get(OutboxMessage, message_id) is None


@pytest.mark.usefixtures("english_catalog")
def test_an_english_registration_is_told_of_a_move_and_a_cancellation_in_english(ctx, sent_mail):
    from eventapp.services import events as event_service
    from eventapp.services import staff_events
    event = make_event(title="花巻", starts_at=jst(2031, 11, 8, 13), ends_at=jst(2031, 11, 8, 17))
    registration = make_registration(event, email="en2@example.com")
    db.session.execute(update(Registration).where(Registration.id == registration.id).values(locale="en"))
    db.session.commit()
    event_service.update_event(event.id, {"starts_at": jst(2031, 11, 9, 13), "ends_at": jst(2031, 11, 9, 17)})
    db.session.commit()
    staff_events.cancel_event(event.id, reason="台風のため")
    db.session.commit()
    mail.deliver_due()
    subjects = [m["Subject"] for m in sent_mail()]
    assert subjects == ["【参加確定】花巻", "[Changed] 花巻", "[Event cancelled] 花巻"]
    moved = sent_mail()[1].get_body(("plain",)).get_content()
    assert "The date and time of “花巻”, which you signed up for, changed." in moved
    assert "When: Sun 9 Nov 2031 13:00 – 17:00" in moved
    cancelled = sent_mail()[2].get_body(("plain",)).get_content()
    assert "We are very sorry to tell you that “花巻” has been cancelled." in cancelled and "台風のため" in cancelled


def test_english_mails_show_the_events_english_title(ctx):
    event = make_event(title="花巻ぶどう収穫フィールドワーク", title_en="Grape harvest in Hanamaki")
    registration = make_registration(event)
    registration.locale = "en"
    message = mail.queue_registration_mail("registration_promoted", registration)
    db.session.commit()
    assert "Grape harvest in Hanamaki" in message.subject and "Grape harvest in Hanamaki" in message.body
    assert "花巻ぶどう収穫" not in message.subject
    registration.locale = "ja"
    japanese = mail.queue_registration_mail("registration_promoted", registration)
    assert "花巻ぶどう収穫フィールドワーク" in japanese.subject and "Grape harvest" not in japanese.body
