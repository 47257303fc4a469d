"""Two app servers on one PostgreSQL (issue 22, item 2): two gunicorn processes on separate ports, as
two machines behind a load balancer would be, each with a mail sender (`send-mail --watch`) beside
it, and the database rate-limit storage.

Shows: a sign-up burst split across both never oversells and numbers the waiting list 1..n; scans
of one ticket from both servers make one check-in; a rate limit counts the requests of both; a feed
cached by the workers of one server follows an update made through the other; every queued mail is
sent exactly once; a cron job started on both servers at once does its work once.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select, update

from eventapp.extensions import db
from eventapp.models import CheckIn, Event, OutboxMessage, Registration
from eventapp.models.base import utcnow
from eventapp.models.matching import Attendance
from eventapp.services.accounts import create_token, create_user
from tests.conftest import TEST_SECRET
from tests.factories import make_checkin_event, make_event, make_registration
from tests.live_server import PROJECT_ROOT, LiveServer, server_errors, start_server

pytestmark = pytest.mark.server

SEATS = 50
SIGNUPS = 500
FEED_LIMIT = 10
FLASK = Path(sys.executable).parent / "flask"


@pytest.fixture(scope="module")
def cluster(app, database_url, tmp_path_factory):
    """Servers A and B (2 workers each) and a mail sender beside each, all on the test database."""
    if not database_url.startswith("postgresql"):
        pytest.skip("several app servers share PostgreSQL (SQLite is one machine's file)")
    base = tmp_path_factory.mktemp("two-servers")
    mail_dir = base / "mail"
    common = {
        "MAIL_DELIVERY": "sender", "MAIL_BACKEND": "file", "MAIL_FILE_DIR": str(mail_dir),
        "MAIL_RUSH_RATE": "0",  # send during the burst: the test waits for every mail
        # One endpoint with a low limit, for these two servers only: its counter must be shared.
        "FEED_RATE_LIMIT": f"{FEED_LIMIT}/minute",
    }
    servers: list[LiveServer] = []
    senders: list[subprocess.Popen] = []

    def start(name: str) -> LiveServer:
        metrics_dir = base / f"prometheus-{name}"  # one per machine; emptied before the server starts
        metrics_dir.mkdir()
        server = start_server(database_url, secret_key=TEST_SECRET, workers=2, log_path=base / f"server-{name}.log",
                              extra_env={**common, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)})
        servers.append(server)
        return server

    try:
        with ThreadPoolExecutor(max_workers=2) as pool:  # both start at once, as two machines would
            started = list(pool.map(start, ("a", "b")))
        for name, server in zip("ab", started, strict=True):
            env = {k: v for k, v in server.env.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
            with open(base / f"sender-{name}.log", "wb") as log:
                senders.append(subprocess.Popen(
                    [str(FLASK), "--app", "eventapp", "send-mail", "--watch", "--interval", "0.2"],
                    cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        yield {"a": started[0], "b": started[1], "mail_dir": mail_dir, "base": base, "senders": senders}
    finally:
        for sender in senders:
            sender.terminate()
            try:
                sender.wait(timeout=15)
            except subprocess.TimeoutExpired:
                sender.kill()
        for server in servers:
            server.stop()


@pytest.fixture(autouse=True)
def _fresh_mail_dir(request):
    """Outbox ids start again after each test's TRUNCATE … RESTART IDENTITY: count this test's files only."""
    if "cluster" in request.fixturenames:
        for path in request.getfixturevalue("cluster")["mail_dir"].glob("*.eml"):
            path.unlink()


@pytest.fixture
def staff_token(ctx) -> str:
    create_user("cluster-staff@example.jp", "staff", password="cluster-password-123")
    token = create_token("cluster-staff@example.jp")
    db.session.commit()
    return token


def _metric(server: LiveServer, name: str, **labels) -> float:
    text = requests.get(f"{server.url}/metrics", timeout=30).text
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()))


def _sent_files(mail_dir: Path) -> Counter:
    """Outbox id → number of .eml files written for it (`<stamp>-<id>-<kind>.eml`)."""
    return Counter(int(match.group(1)) for path in mail_dir.glob("*.eml")
                   if (match := re.match(r"\d{8}T\d{6}-(\d+)-", path.name)))


def _wait_until_sent(message_ids: set[int], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        db.session.rollback()
        left = db.session.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.id.in_(message_ids), OutboxMessage.status != "sent"))
        if left == 0:
            return
        assert time.monotonic() < deadline, f"{left} mails still unsent"
        time.sleep(0.2)


def test_signup_burst_across_two_servers_never_oversells_and_each_mail_goes_once(ctx, cluster, staff_token):
    a, b = cluster["a"], cluster["b"]
    signups_before = _metric(a, "eventapp_signups_total") + _metric(b, "eventapp_signups_total")
    event = make_event(capacity=SEATS, title="二台構成の負荷試験")
    path = f"/api/v1/events/{event.id}/registrations"

    def sign_up(i: int) -> requests.Response:
        server = (a, b)[i % 2]
        return requests.post(server.url + path, timeout=120, json={
            "name": f"二台 太郎{i}", "furigana": "にだい たろう", "email": f"two{i}@example.com",
            "consent_privacy": True})

    with ThreadPoolExecutor(max_workers=64) as pool:
        responses = list(pool.map(sign_up, range(SIGNUPS)))

    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: SIGNUPS}, f"{statuses}: {[r.text for r in responses if r.status_code != 201][:3]}"
    created = [r.json()["registration"] for r in responses]
    assert Counter(r["status"] for r in created) == {"confirmed": SEATS, "waitlisted": SIGNUPS - SEATS}
    told = sorted(r["waitlist_position"] for r in created if r["status"] == "waitlisted")
    assert told == list(range(1, SIGNUPS - SEATS + 1))
    # Each server's answers agree with the other's listing.
    listing = requests.get(b.url + path, headers={"Authorization": f"Bearer {staff_token}"}, timeout=30).json()
    waiting = sorted(r["waitlist_position"] for r in listing["registrations"] if r["status"] == "waitlisted")
    assert waiting == list(range(1, SIGNUPS - SEATS + 1))
    db.session.rollback()
    in_db = dict(db.session.execute(select(Registration.status, func.count()).where(
        Registration.event_id == event.id).group_by(Registration.status)).all())
    assert in_db == {"confirmed": SEATS, "waitlisted": SIGNUPS - SEATS}

    # Every worker of both servers counted its sign-ups; each server sums its own workers' files.
    signups_after = _metric(a, "eventapp_signups_total") + _metric(b, "eventapp_signups_total")
    assert signups_after - signups_before == SIGNUPS
    assert _metric(a, "eventapp_signups_total") > 0 and _metric(b, "eventapp_signups_total") > 0

    # Two senders (one beside each server) claimed from the same outbox: each mail written once.
    ids = set(db.session.execute(select(OutboxMessage.id).join(Registration).where(
        Registration.event_id == event.id)).scalars())
    assert len(ids) == SIGNUPS
    _wait_until_sent(ids)
    files = _sent_files(cluster["mail_dir"])
    assert {i: files[i] for i in ids if files[i] != 1} == {}
    for server in (a, b):
        assert server_errors(server) == [], server.log()[-4000:]


def test_scans_of_one_ticket_from_both_servers_make_one_checkin(ctx, cluster, staff_token):
    a, b = cluster["a"], cluster["b"]
    event = make_checkin_event(capacity=20, title="二台構成の受付")
    codes = {make_registration(event).id: None for _ in range(20)}
    for registration in db.session.execute(select(Registration).where(Registration.event_id == event.id)).scalars():
        codes[registration.id] = registration.ticket_code
    event_id = event.id
    db.session.rollback()
    scans = [(server, reg_id, code, f"scan-{name}-{n}-{reg_id:06d}") for reg_id, code in codes.items()
             for name, server in (("a", a), ("b", b)) for n in range(2)]

    def scan(args):
        server, reg_id, code, nonce = args
        response = requests.post(f"{server.url}/api/v1/events/{event_id}/checkins", timeout=60,
                                 json={"code": code, "nonce": nonce},
                                 headers={"Authorization": f"Bearer {staff_token}"})
        return reg_id, response

    with ThreadPoolExecutor(max_workers=32) as pool:
        results = list(pool.map(scan, scans))

    assert all(r.status_code in (200, 201) for _, r in results), [r.text for _, r in results if r.status_code >= 300][:3]
    admitted = Counter(reg_id for reg_id, r in results if r.json()["result"] == "checked_in")
    assert admitted == {reg_id: 1 for reg_id in codes}
    db.session.rollback()
    rows = Counter(db.session.execute(select(CheckIn.registration_id).join(Registration).where(
        Registration.event_id == event_id, CheckIn.duplicate_of_id.is_(None), CheckIn.undone_at.is_(None))).scalars())
    assert rows == {reg_id: 1 for reg_id in codes}


def test_a_rate_limit_counts_the_requests_of_both_servers(cluster):
    a, b = cluster["a"], cluster["b"]
    refused_before = sum(_metric(s, "eventapp_rate_limit_refusals_total", scope="feed") for s in (a, b))
    statuses = [requests.get(f"{(a, b)[n % 2].url}/feeds/person/not-a-token-{n}.ics", timeout=30).status_code
                for n in range(2 * FEED_LIMIT)]
    # Each server alone saw FEED_LIMIT requests: only a shared counter refuses any.
    assert statuses == [404] * FEED_LIMIT + [429] * FEED_LIMIT
    refused = sum(_metric(s, "eventapp_rate_limit_refusals_total", scope="feed") for s in (a, b))
    assert refused - refused_before == FEED_LIMIT


def test_feed_cached_on_one_server_follows_an_update_made_through_the_other(ctx, cluster, staff_token):
    a, b = cluster["a"], cluster["b"]
    event = make_event(title="Feed before")
    event_id = event.id
    db.session.rollback()
    for _ in range(6):  # every worker of B renders and caches the feed
        assert "SUMMARY:Feed before" in requests.get(f"{b.url}/feeds/events.ics", timeout=30).text
    changed = requests.patch(f"{a.url}/api/v1/events/{event_id}", json={"title": "Feed after"}, timeout=30,
                             headers={"Authorization": f"Bearer {staff_token}"})
    assert changed.status_code == 200, changed.text
    for _ in range(6):
        feed = requests.get(f"{b.url}/feeds/events.ics", timeout=30).text
        assert "SUMMARY:Feed after" in feed and "Feed before" not in feed


def test_a_cron_job_started_on_both_servers_at_once_runs_once(ctx, cluster):
    event = make_event(title="終了したイベント", capacity=30)
    registrations = [make_registration(event) for _ in range(12)]
    db.session.add_all(Attendance(registration_id=r.id, source="staff") for r in registrations)
    ended = utcnow() - timedelta(hours=2)
    db.session.execute(update(Event).where(Event.id == event.id).values(
        starts_at=ended - timedelta(hours=3), ends_at=ended))
    db.session.commit()
    reg_ids = {r.id for r in registrations}
    env = {k: v for k, v in cluster["a"].env.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    command = [str(FLASK), "--app", "eventapp", "matching", "send-surveys"]
    runs = [subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=60)[0] for run in runs]
    assert all(run.returncode == 0 for run in runs), outputs
    db.session.rollback()
    surveys = db.session.execute(select(OutboxMessage.id, OutboxMessage.registration_id).where(
        OutboxMessage.kind == "survey_request", OutboxMessage.registration_id.in_(reg_ids))).all()
    assert sorted(reg for _id, reg in surveys) == sorted(reg_ids), outputs  # one request per attendee
    _wait_until_sent({message_id for message_id, _reg in surveys})
    files = _sent_files(cluster["mail_dir"])
    assert all(files[message_id] == 1 for message_id, _reg in surveys)


def test_multiprocess_metrics_directory_is_used(cluster):
    # The servers ran in prometheus-client's multiprocess mode: their workers wrote the files.
    assert any(Path(cluster["base"], "prometheus-a").glob("counter_*.db"))
    assert any(Path(cluster["base"], "prometheus-b").glob("histogram_*.db"))
    assert not list(PROJECT_ROOT.glob("counter_*.db"))  # the senders and cron runs kept per-process counters


def test_two_servers_migrating_at_once_both_succeed(database_url):
    """A deploy that runs `flask db upgrade` on both machines: the second waits for the first (advisory
    lock in migrations/env.py) and finds the schema at the head."""
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only")
    from sqlalchemy import create_engine, text

    from eventapp.config import normalise_db_url
    admin = create_engine(normalise_db_url(database_url), isolation_level="AUTOCOMMIT")
    name = "eventapp_migrate_race"
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        conn.execute(text(f"CREATE DATABASE {name}"))
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    try:
        env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": TEST_SECRET}
        env.pop("TEST_DATABASE_URL", None)
        runs = [subprocess.Popen([str(FLASK), "--app", "eventapp", "db", "upgrade"], cwd=PROJECT_ROOT, env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
        outputs = [run.communicate(timeout=120)[0] for run in runs]
        assert [run.returncode for run in runs] == [0, 0], outputs
        from eventapp.health import migration_heads
        migrated = create_engine(url)
        with migrated.connect() as conn:
            assert set(conn.execute(text("SELECT version_num FROM alembic_version")).scalars()) == migration_heads()
        migrated.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()
