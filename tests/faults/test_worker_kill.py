"""gunicorn workers killed with SIGKILL at random moments during a burst of sign-ups: no half-written
registration, no lost seat, no oversell (SQLite or PostgreSQL, whichever the run uses); a client whose
answer was lost retries with its Idempotency-Key and gets its original registration, never a 409."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select

from eventapp.extensions import db
from eventapp.models import Answer, OutboxMessage, Person, Registration
from eventapp.services.registration import waitlist_position
from tests.conftest import TEST_SECRET
from tests.factories import make_event
from tests.faults.support import migrated_app, scratch_database_url, signup_body
from tests.live_server import start_server

pytestmark = pytest.mark.server

CAPACITY = 10
BURST_S = 4.0  # killing lasts this long; sign-ups go on a little longer
KILL_EVERY_S = 0.1
# Only workers this old are killed: a worker that is still starting serves no sign-up. With --preload a
# new worker is a fork of the loaded app and serves almost at once.
BOOTED_AFTER_S = 0.3
QUESTIONS = [{"key": "bus", "kind": "yesno", "label": "送迎バスを利用しますか", "required": True},
             {"key": "note", "kind": "text", "label": "ひとこと", "required": True}]


def _worker_pids(master_pid: int) -> set[int]:
    try:
        children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    except OSError:
        return set()
    return {int(pid) for pid in children if not _is_zombie(int(pid))}


def _is_zombie(pid: int) -> bool:
    """A killed worker stays listed as a child until the arbiter reaps it; it serves nothing."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # gone already
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def _kill_workers_until(stop: threading.Event, master_pid: int, killed: list[int]) -> None:
    first_seen: dict[int, float] = {}
    rng = random.Random()
    while not stop.wait(KILL_EVERY_S):
        now = time.monotonic()
        pids = _worker_pids(master_pid)
        for pid in pids:
            first_seen.setdefault(pid, now)
        booted = [pid for pid in pids if now - first_seen[pid] >= BOOTED_AFTER_S]
        if booted:
            victim = rng.choice(booted)
            try:
                os.kill(victim, signal.SIGKILL)
                killed.append(victim)
            except ProcessLookupError:
                pass


def test_killed_workers_leave_no_half_written_registration_and_no_lost_seat(tmp_path):
    with scratch_database_url(tmp_path) as url:
        app = migrated_app(url)
        with app.app_context():
            event = make_event(capacity=CAPACITY, title="強制終了試験", questions=QUESTIONS)
            event_id = event.id
            question_ids = {q.id for q in event.questions}
            db.engine.dispose()
        server = start_server(url, secret_key=TEST_SECRET, workers=4, log_path=tmp_path / "gunicorn.log",
                              extra_env={"SIGNUP_RATE_LIMIT": "1000000/minute", "GUNICORN_CMD_ARGS": "--preload"})
        created: dict[str, str] = {}  # manage token → status told to the client
        emails: dict[str, str] = {}  # e-mail → manage token told to the client
        outcomes: Counter = Counter()
        retries: Counter = Counter()  # what retries after a lost connection were answered
        counter = iter(range(10**6))
        lock = threading.Lock()
        stop_signups, stop_kills = threading.Event(), threading.Event()
        killed: list[int] = []

        def sign_up_until_stopped() -> None:
            while not stop_signups.is_set():
                with lock:
                    n = next(counter)
                body = {**signup_body(n, "kill"), "answers": {"bus": "yes", "note": f"よろしく{n}"}}
                headers = {"Idempotency-Key": f"kill-{n}-{uuid.uuid4()}"}
                lost = 0
                for _ in range(20):
                    try:
                        # A fresh connection each time: a killed worker takes its keep-alive socket with it.
                        response = requests.post(f"{server.url}/api/v1/events/{event_id}/registrations",
                                                 json=body, headers=headers, timeout=60)
                    except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
                        # The worker died (before or while answering): committed or not, unknown, so the
                        # client retries with the same key.
                        outcomes["connection lost"] += 1
                        lost += 1
                        continue
                    break
                else:
                    continue
                outcomes[response.status_code] += 1
                if lost:
                    retries["replayed" if response.headers.get("Idempotent-Replayed") else response.status_code] += 1
                if response.status_code == 201:
                    registration = response.json()["registration"]
                    created[registration["manage_token"]] = registration["status"]
                    emails[body["email"]] = registration["manage_token"]

        signers = [threading.Thread(target=sign_up_until_stopped) for _ in range(8)]
        killer = threading.Thread(target=_kill_workers_until, args=(stop_kills, server.process.pid, killed))
        try:
            for thread in signers:
                thread.start()
            killer.start()
            time.sleep(BURST_S)
            stop_kills.set()
            killer.join()
            # Sign-ups go on on the respawned workers until the event is over-subscribed, so a lost seat
            # (a confirmed place freed by a dead worker but never filled) would show.
            deadline = time.monotonic() + 30
            while outcomes[201] < CAPACITY + 10 and time.monotonic() < deadline:
                time.sleep(0.1)
            stop_signups.set()
            for thread in signers:
                thread.join(timeout=90)
        finally:
            stop_kills.set()
            stop_signups.set()
            server.stop()

        assert len(killed) >= 5, f"only {len(killed)} workers were killed"
        assert outcomes[201] >= CAPACITY + 10, outcomes
        assert outcomes["connection lost"] >= 1, "no kill hit a request in flight"
        assert set(outcomes) <= {201, "connection lost"}, outcomes  # the rest never saw a 5xx, nor a 409
        assert sum(retries.values()) >= 1, "no client had to retry"
        assert set(retries) <= {201, "replayed"}, retries
        print("retries after a lost connection:", dict(retries))  # shown with -s

        with app.app_context():
            rows = db.session.execute(
                select(Registration).where(Registration.event_id == event_id).order_by(Registration.id)
            ).scalars().all()
            by_token = {r.manage_token: r for r in rows}
            # Every sign-up a client was told about is there, with the status it was told.
            assert {token: by_token[token].status for token in created if token in by_token} == created
            assert set(created) <= set(by_token)
            # Every client saw its own registration, also those who retried after a lost answer.
            people = {r.manage_token: db.session.get(Person, r.person_id).email for r in rows}
            assert {people[token]: token for token in emails.values()} == emails
            # One registration per client: no retry made a second one.
            assert len(rows) == len(set(people.values()))

            # No half-written registration: person, answers, ticket and its mail all came with it.
            for registration in rows:
                person = db.session.get(Person, registration.person_id)
                assert person is not None and person.email.startswith("kill") and person.name
                answers = db.session.scalars(select(Answer).where(Answer.registration_id == registration.id)).all()
                assert {a.question_id for a in answers} == question_ids
                assert {a.value for a in answers if a.question_label == "送迎バスを利用しますか"} == {"yes"}
                assert registration.manage_token and registration.ticket_code
                mails = db.session.scalar(select(func.count()).select_from(OutboxMessage)
                                          .where(OutboxMessage.registration_id == registration.id))
                assert mails == 1
            assert db.session.scalar(select(func.count()).select_from(OutboxMessage)
                                     .where(OutboxMessage.registration_id.is_(None))) == 0

            statuses = Counter(r.status for r in rows)
            active = statuses["confirmed"] + statuses["waitlisted"]
            assert statuses["confirmed"] <= CAPACITY  # no oversell
            assert statuses["confirmed"] == min(CAPACITY, active)  # no lost seat
            assert statuses["cancelled"] == 0
            waiting = sorted((r for r in rows if r.status == "waitlisted"), key=lambda r: (r.waitlisted_at, r.id))
            assert len(waiting) >= 10
            # Seats were filled first, then the queue (nobody cancelled), and its places are 1..n.
            last_seat_taken = max(r.confirmed_at for r in rows if r.status == "confirmed")
            assert all(r.waitlisted_at >= last_seat_taken for r in waiting)
            assert [waitlist_position(r) for r in waiting] == list(range(1, len(waiting) + 1))
            db.session.remove()
            db.engine.dispose()


def test_a_client_whose_answer_was_lost_gets_its_registration_from_a_new_worker(tmp_path):
    """Deterministic: the first answer never reaches the client (it hangs up), every worker is killed after
    the commit, and the retry, served by a fresh worker, gets the stored original (not 409)."""
    with scratch_database_url(tmp_path) as url:
        app = migrated_app(url)
        with app.app_context():
            event_id = make_event(capacity=CAPACITY, title="応答消失試験", questions=QUESTIONS).id
            db.engine.dispose()
        server = start_server(url, secret_key=TEST_SECRET, workers=2, log_path=tmp_path / "gunicorn.log",
                              extra_env={"SIGNUP_RATE_LIMIT": "1000000/minute", "GUNICORN_CMD_ARGS": "--preload"})
        body = {**signup_body(1, "lost"), "answers": {"bus": "yes", "note": "よろしく"}}
        key = str(uuid.uuid4())
        try:
            payload = json.dumps(body).encode()
            host, port = server.url.removeprefix("http://").split(":")
            with socket.create_connection((host, int(port)), timeout=30) as conn:
                conn.sendall(f"POST /api/v1/events/{event_id}/registrations HTTP/1.1\r\nHost: {host}\r\n"
                             f"Content-Type: application/json\r\nIdempotency-Key: {key}\r\n"
                             f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode() + payload)
                # The client hangs up without reading: its answer is lost.
            with app.app_context():
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and not db.session.scalar(
                        select(func.count()).select_from(Registration).where(Registration.event_id == event_id)):
                    db.session.rollback()
                    time.sleep(0.05)
                db.session.remove()
            old_workers = _worker_pids(server.process.pid)
            for pid in old_workers:
                os.kill(pid, signal.SIGKILL)
            retry = None
            for _ in range(100):  # until gunicorn has new workers
                try:
                    retry = requests.post(f"{server.url}/api/v1/events/{event_id}/registrations", json=body,
                                          headers={"Idempotency-Key": key}, timeout=30)
                    break
                except requests.ConnectionError:
                    time.sleep(0.1)
            other = requests.post(f"{server.url}/api/v1/events/{event_id}/registrations", json=body,
                                  headers={"Idempotency-Key": str(uuid.uuid4())}, timeout=30)
            serving = _worker_pids(server.process.pid)
        finally:
            server.stop()
        assert old_workers and not old_workers & serving, "the retry was not served by a new worker"
        assert retry is not None and retry.status_code == 201, retry and retry.text
        assert retry.headers.get("Idempotent-Replayed") == "true"
        assert other.status_code == 409  # a new key for the same person is the usual duplicate
        with app.app_context():
            rows = db.session.scalars(select(Registration).where(Registration.event_id == event_id)).all()
            assert [r.manage_token for r in rows] == [retry.json()["registration"]["manage_token"]]
            assert retry.json()["registration"]["status"] == "confirmed"
            db.session.remove()
            db.engine.dispose()
