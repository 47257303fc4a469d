"""A mail sender killed with SIGKILL in the middle of a batch: the mails it had claimed go out from the next
sender within seconds (its lease is short and was only renewed while it lived), and two senders that are
both alive never send a mail twice, however slow the SMTP server is."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import delete, select

from eventapp.database import write_intent
from eventapp.extensions import db
from eventapp.models import OutboxMessage
from eventapp.services import mail
from tests.conftest import TEST_SECRET
from tests.factories import make_event, make_registration
from tests.live_server import PROJECT_ROOT
from tests.services.test_mail import Recorder, closed_port

pytestmark = pytest.mark.server

MAILS = 24
SEND_S = 0.25  # the SMTP server takes this long per mail: a batch lasts ~6 s, three leases
LEASE_S = 2.0


class SlowRecorder(Recorder):
    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        await asyncio.sleep(SEND_S)
        return await super().handle_DATA(server, session, envelope)


def _queue_mails() -> list[str]:
    registration = make_registration(make_event(title="送信者停止試験"))
    with write_intent():
        db.session.execute(delete(OutboxMessage))  # the sign-up's own confirmation: only ours are counted
        addresses = []
        for n in range(MAILS):
            address = f"lease{n}@example.com"
            mail.queue("registration_promoted", address, "registration_promoted",
                       {"registration": registration, "event": registration.event, "person": registration.person},
                       registration=registration)
            addresses.append(address)
        db.session.commit()
    return addresses


def _sender(database_url: str, port: int) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": database_url, "SECRET_KEY": TEST_SECRET, "MAIL_BACKEND": "smtp",
           "MAIL_SERVER": "127.0.0.1", "MAIL_PORT": str(port), "MAIL_USE_TLS": "0", "MAIL_USERNAME": "",
           "MAIL_LEASE_S": str(LEASE_S), "MAIL_RUSH_RATE": "0"}
    env.pop("TEST_DATABASE_URL", None)
    return subprocess.Popen([str(Path(sys.executable).parent / "flask"), "--app", "eventapp", "send-mail", "--watch",
                             "--interval", "0.2"], cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _statuses() -> Counter:
    db.session.rollback()  # a fresh snapshot: the senders write from other processes
    return Counter(db.session.scalars(select(OutboxMessage.status)))


def _wait(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


@pytest.fixture
def slow_smtp():
    recorder = SlowRecorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=closed_port())
    controller.start()
    yield controller.port, recorder
    controller.stop()


def _stop(*processes: subprocess.Popen) -> None:
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)


def test_a_killed_senders_claimed_mails_go_out_from_the_next_sender_within_seconds(ctx, database_url, slow_smtp):
    port, recorder = slow_smtp
    addresses = _queue_mails()
    first = _sender(database_url, port)
    second = None
    try:
        assert _wait(lambda: len(recorder.messages) >= 3, 30), "the first sender sent nothing"
        first.send_signal(signal.SIGKILL)  # mid-batch: it has claimed all of them
        first.wait(timeout=10)
        killed_at = time.monotonic()
        assert _statuses()["pending"] > MAILS // 2, "the batch was not in flight"
        second = _sender(database_url, port)
        assert _wait(lambda: _statuses() == Counter(sent=MAILS), 60), _statuses()
        took = time.monotonic() - killed_at
    finally:
        _stop(first, *([second] if second else []))
    # The lease, a batch's sending time and a sender process's start (slow on a busy machine): seconds, not
    # the five minutes of the old lease.
    assert took < 40, took
    received = Counter(recipients[0] for _, recipients, _ in recorder.messages)
    assert set(received) == set(addresses)
    # Only what went out since the dead sender's last heartbeat can have been sent twice.
    assert sum(received.values()) - MAILS <= LEASE_S / 3 / SEND_S + 2, received


def test_two_live_senders_never_send_a_mail_twice_even_when_a_batch_outlasts_the_lease(ctx, database_url,
                                                                                     slow_smtp):
    port, recorder = slow_smtp
    addresses = _queue_mails()
    senders = [_sender(database_url, port) for _ in range(2)]
    try:
        assert _wait(lambda: _statuses() == Counter(sent=MAILS), 60), _statuses()
        time.sleep(LEASE_S * 1.5)  # a lease that ran out would show now as a second delivery
    finally:
        _stop(*senders)
    received = Counter(recipients[0] for _, recipients, _ in recorder.messages)
    assert received == Counter({address: 1 for address in addresses}), received
