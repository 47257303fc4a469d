"""SMTP server down, through the real gunicorn server: sign-ups still succeed, their mail waits in
the outbox, and `flask send-mail` (cron) delivers it once the server is back."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from aiosmtpd.controller import Controller
from sqlalchemy import select, update

from eventapp.extensions import db
from eventapp.models import OutboxMessage, Registration
from eventapp.models.base import utcnow
from tests.conftest import TEST_SECRET
from tests.factories import make_event
from tests.faults.support import signup_body
from tests.live_server import PROJECT_ROOT, server_errors, start_server
from tests.services.test_mail import Recorder, closed_port

pytestmark = pytest.mark.server


def _smtp_env(port: int) -> dict:
    return {"MAIL_BACKEND": "smtp", "MAIL_SERVER": "127.0.0.1", "MAIL_PORT": str(port), "MAIL_USE_TLS": "0",
            "MAIL_USERNAME": "", "SIGNUP_RATE_LIMIT": "1000000/minute"}


def _outbox() -> list[OutboxMessage]:
    db.session.rollback()  # a fresh snapshot: the server writes from other processes
    return list(db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def test_signups_succeed_while_smtp_is_down_and_mail_goes_out_later(ctx, database_url, tmp_path):
    event = make_event(capacity=1, title="メール障害試験")
    server = start_server(database_url, secret_key=TEST_SECRET, workers=1, log_path=tmp_path / "gunicorn.log",
                          extra_env=_smtp_env(closed_port()))
    try:
        responses = [requests.post(f"{server.url}/api/v1/events/{event.id}/registrations",
                                   json=signup_body(n, "smtpdown"), timeout=30) for n in range(2)]
        assert [r.status_code for r in responses] == [201, 201], [r.text for r in responses]
        assert [r.json()["registration"]["status"] for r in responses] == ["confirmed", "waitlisted"]
        # The worker tries each request's own mail once after the response; wait for those attempts.
        for _ in range(100):
            if all(m.attempts >= 1 for m in _outbox()):
                break
            time.sleep(0.1)
    finally:
        server.stop()

    messages = _outbox()
    assert [(m.to_addr, m.status, m.attempts) for m in messages] == [
        ("smtpdown0@example.com", "pending", 1), ("smtpdown1@example.com", "pending", 1)]
    assert all(m.last_error and m.next_attempt_at > utcnow() for m in messages)
    assert db.session.scalar(select(Registration.status).where(
        Registration.manage_token == responses[0].json()["registration"]["manage_token"])) == "confirmed"
    assert server_errors(server) == [], "a mail failure is not an application error"

    recorder = Recorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=closed_port())
    controller.start()
    try:
        # The backoff time has passed (instead of waiting two minutes for it).
        db.session.execute(update(OutboxMessage).values(next_attempt_at=utcnow()))
        db.session.commit()
        env = {**os.environ, "DATABASE_URL": database_url, "SECRET_KEY": TEST_SECRET,
               **_smtp_env(controller.port)}
        env.pop("TEST_DATABASE_URL", None)
        result = subprocess.run([str(Path(sys.executable).parent / "flask"), "--app", "eventapp", "send-mail"],
                                cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60)
    finally:
        controller.stop()

    assert result.returncode == 0, result.stderr
    assert "sent 2, failed 0" in result.stdout
    assert [(m.status, m.attempts, m.last_error) for m in _outbox()] == [("sent", 2, ""), ("sent", 2, "")]
    received = {recipients[0]: message for _, recipients, message in recorder.messages}
    assert set(received) == {"smtpdown0@example.com", "smtpdown1@example.com"}
    assert received["smtpdown0@example.com"]["Subject"] == "【参加確定】メール障害試験"
    manage_token = responses[0].json()["registration"]["manage_token"]
    assert manage_token in received["smtpdown0@example.com"].get_body(("plain",)).get_content()


def test_sender_process_sends_what_web_workers_queue_and_stops_on_sigterm(ctx, database_url, tmp_path):
    """MAIL_DELIVERY=sender: gunicorn only queues; `flask send-mail --watch` (its own process, as a
    service would run it) delivers within moments and exits cleanly on SIGTERM."""
    event = make_event(title="送信プロセス試験")
    recorder = Recorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=closed_port())
    controller.start()
    env_extra = {**_smtp_env(controller.port), "MAIL_DELIVERY": "sender"}
    server = start_server(database_url, secret_key=TEST_SECRET, workers=1, log_path=tmp_path / "gunicorn.log",
                          extra_env=env_extra)
    sender = None
    try:
        response = requests.post(f"{server.url}/api/v1/events/{event.id}/registrations",
                                 json=signup_body(0, "sender"), timeout=30)
        assert response.status_code == 201, response.text
        time.sleep(0.5)
        assert [m.status for m in _outbox()] == ["pending"], "the web worker does not send in sender mode"
        assert recorder.messages == []

        sender = subprocess.Popen([str(Path(sys.executable).parent / "flask"), "--app", "eventapp", "send-mail",
                                   "--watch", "--interval", "0.2"], cwd=PROJECT_ROOT, env=server.env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        second = requests.post(f"{server.url}/api/v1/events/{event.id}/registrations",
                               json=signup_body(1, "sender"), timeout=30)
        assert second.status_code == 201, second.text
        deadline = time.monotonic() + 30
        while len(recorder.messages) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        sender.terminate()  # SIGTERM, as systemd stops a service
        out, err = sender.communicate(timeout=30)
    finally:
        if sender is not None and sender.poll() is None:
            sender.kill()
        server.stop()
        controller.stop()
    assert sender.returncode == 0, err
    assert "stopped after sending 2" in out
    assert sorted(recipients[0] for _, recipients, _ in recorder.messages) == [
        "sender0@example.com", "sender1@example.com"]
    assert [m.status for m in _outbox()] == ["sent", "sent"]
