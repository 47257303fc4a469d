"""Pages and jobs at scale (issue 23): M and L data on PostgreSQL, gunicorn with 2 workers, one client.

M = 5,000 people, 209 events, 20,000 registrations, 10,000 check-ins over 8 fiscal years;
L = 50,000 people, 2,009 events, 200,000 registrations, 118,000 check-ins. Rows are copied from a
template the app's own services wrote (an event with its day, a registration, a check-in, an outcome),
then bulk-loaded with PostgreSQL COPY, so they are shaped exactly as the app writes them. One upcoming
event has 1,000 registrations (participant list, roster, scan). Every page is requested a few times after
a warm-up; the table gives the median time measured by the client and the answer's size. Then the CLI
jobs (send-mail, purge-expired) are timed as subprocesses.

Run alone: `.venv/bin/python benchmarks/scale.py [--sizes M,L] [--rounds 5]`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)  # run as a script: benchmarks/calendar.py would shadow the standard library's calendar
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

import requests  # noqa: E402
from sqlalchemy import select, text  # noqa: E402

from benchmarks._support import BENCH_SECRET, FLASK, PROJECT_ROOT, bench_app, postgres_database  # noqa: E402
from tests import live_server  # noqa: E402
from tests.live_server import start_server  # noqa: E402

live_server.STARTUP_TIMEOUT_S = 180.0  # a loaded machine; the readiness probe's answer is bounded, not its wait

TITLE = "Pages and jobs at scale (M and L data, PostgreSQL, 2 workers, one client)"
SIZES = {
    "M": {"people": 5_000, "events": 209, "registrations": 20_000, "checkins": 10_000},
    "L": {"people": 50_000, "events": 2_009, "registrations": 200_000, "checkins": 118_000},
}
BIG_EVENT = 1_000        # registrations of the upcoming event whose list, roster and door are measured
UPCOMING = 9             # events not held yet (the catalogue's upcoming list)
YEARS = 8
PASSWORD = "bench-password-123"
JOB_TIMEOUT_S = 300.0
SURNAMES = ("佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村", "小林", "加藤")


def _jsonable(value):
    return json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else value


def _copy(connection, table: str, columns: list[str], rows) -> int:
    """COPY rows (tuples in `columns` order) into `table`: the bulk path, ~10× faster than INSERTs."""
    n = 0
    with connection.cursor() as cursor, cursor.copy(
            f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([_jsonable(v) for v in row])
            n += 1
    return n


def _template(connection, table: str, row_id: int) -> dict:
    cursor = connection.execute(f"SELECT * FROM {table} WHERE id = %s", (row_id,))
    names = [c.name for c in cursor.description]
    return dict(zip(names, cursor.fetchone(), strict=True))


def build(app, size: dict) -> dict:
    """Fill the database; returns what the measurements need (ids, a ticket, tokens, logins)."""
    from eventapp.extensions import db
    from eventapp.formatting import JST
    from eventapp.models import Event
    from eventapp.services import checkin, matching, organisations
    from eventapp.services.accounts import create_token, create_user
    from eventapp.services.events import create_event
    from eventapp.services.registration import register
    from eventapp.services.tickets import make_ticket_code

    now = datetime.now(UTC)
    fy_now = (now.astimezone(JST).year if now.astimezone(JST).month >= 4 else now.astimezone(JST).year - 1)
    first_fy = fy_now - YEARS + 1
    with app.app_context():
        create_user("bench-staff@example.jp", "staff", PASSWORD, "計測")
        create_user("bench-desk@example.jp", "checkin", PASSWORD, "受付")
        db.session.flush()
        token = create_token("bench-desk@example.jp")
        starts = (now.astimezone(JST) + timedelta(days=1)).replace(hour=13, minute=0, second=0, microsecond=0)
        big = create_event({"slug": "scale-big", "kind": "fieldwork", "status": "published",
                            "title": "花巻ぶどう収穫フィールドワーク(計測)", "starts_at": starts,
                            "ends_at": starts + timedelta(hours=5), "capacity": BIG_EVENT + 100,
                            "venue_name": "かんたはうす", "venue_address": "岩手県花巻市", "fee_yen": 3000,
                            "organiser_email": "enren@example.jp",
                            "questions": [{"key": "bus", "kind": "yesno", "label": "送迎バスを利用しますか"}]})
        db.session.flush()
        first = register(big.id, {"name": "佐藤 花子", "furigana": "さとう はなこ", "email": "scale-0@example.com",
                                  "phone": "090-1234-0000", "prefecture": "東京都", "iwate_relation": "origin"},
                         {"bus": "yes"}, consent=True).registration
        db.session.flush()
        scan = checkin.check_in(big.id, first.ticket_code, uuid.uuid4().hex)
        org = organisations.create_organisation({"name": "計測受入団体", "municipality": "花巻市",
                                                 "project_type": "fan_community"})
        db.session.flush()
        outcome = matching.record_outcome(first.person_id, org.id, status="matched", matched_on=date.today(),
                                          project_type="fan_community")
        db.session.commit()
        ids = {"big": big.id, "person": first.person_id, "registration": first.id,
               "checkin": scan.checkin.id if getattr(scan, "checkin", None) else None,
               "day": big.days[0].id, "outcome": outcome.id if outcome else None, "org": org.id if org else None}
        db.session.remove()
        raw = db.engine.raw_connection()
    connection = raw.driver_connection
    context = app.app_context()  # ticket codes are signed with the app's key
    context.push()
    try:
        event_t = _template(connection, "events", ids["big"])
        day_t = _template(connection, "event_days", ids["day"])
        person_t = _template(connection, "people", ids["person"])
        reg_t = _template(connection, "registrations", ids["registration"])
        checkin_t = _template(connection, "checkins", ids["checkin"]) if ids["checkin"] else None
        outcome_t = _template(connection, "outcomes", ids["outcome"]) if ids["outcome"] else None
        base = 1_000_000  # ids above what the services wrote
        # Events: UPCOMING in the next weeks, the rest spread over YEARS fiscal years (past).
        n_events = size["events"] - 1
        kinds = ("online_seminar", "onsite_seminar", "fieldwork", "matching_session")
        past_count = n_events - UPCOMING
        span = (datetime(fy_now, 4, 1, tzinfo=JST) - datetime(first_fy, 4, 1, tzinfo=JST)) + (
            now - datetime(fy_now, 4, 1, tzinfo=JST))
        events, days = [], []
        for k in range(n_events):
            start = (now + timedelta(days=7 + 3 * k) if k < UPCOMING else
                     datetime(first_fy, 4, 2, 4, tzinfo=UTC) + span * ((k - UPCOMING) / past_count) - timedelta(days=2))
            start = start.replace(minute=0, second=0, microsecond=0, tzinfo=None)
            row = dict(event_t, id=base + k, slug=f"scale-{k}", kind=kinds[k % 4], title=f"岩手イベント 第{k}回",
                       starts_at=start, ends_at=start + timedelta(hours=5), capacity=200,
                       registration_opens_at=None, registration_closes_at=None,
                       checkin_opens_at=None, checkin_closes_at=None,
                       online_url="https://zoom.example.jp/j/1" if k % 4 == 0 else event_t.get("online_url"))
            events.append(row)
            days.append(dict(day_t, id=base + k, event_id=base + k, starts_at=start, ends_at=start + timedelta(hours=5)))
        cols = list(event_t)
        _copy(connection, "events", cols, ([r[c] for c in cols] for r in events))
        cols = list(day_t)
        _copy(connection, "event_days", cols, ([r[c] for c in cols] for r in days))

        people = size["people"]
        cols = list(person_t)

        def person_rows():
            for n in range(1, people + 1):
                surname = SURNAMES[n % len(SURNAMES)]
                yield [dict(person_t, id=base + n, email=f"scale-{n}@example.com", name=f"{surname} 太郎{n}",
                            furigana="さとう たろう", phone=f"090-{n // 10000:04d}-{n % 10000:04d}",
                            calendar_token=f"scale-cal-{n}")[c] for c in cols]
        _copy(connection, "people", cols, person_rows())

        # Registrations: BIG_EVENT - 1 more for the upcoming event, the rest over the past events.
        cols = list(reg_t)
        past_ids = [base + k for k in range(UPCOMING, n_events)]
        start_of = {r["id"]: r["starts_at"] for r in events}
        checked: list[tuple[int, int]] = []
        checkins_wanted = size["checkins"]

        def registration_rows():
            rid = base
            for n in range(1, BIG_EVENT):
                rid += 1
                yield [dict(reg_t, id=rid, event_id=ids["big"], person_id=base + n, name=f"佐藤 太郎{n}",
                            furigana=f"さとう {n:05d}", phone=f"090-{n // 10000:04d}-{n % 10000:04d}",
                            manage_token=f"scale-m-{rid}", ticket_code=make_ticket_code(ids["big"]))[c] for c in cols]
            for k in range(size["registrations"] - BIG_EVENT):
                rid += 1
                event_id = past_ids[k % len(past_ids)]
                person = (k // len(past_ids) + (k % len(past_ids)) * 37) % people + 1
                at = start_of[event_id] - timedelta(days=10)
                cancelled = k % 20 == 19
                row = dict(reg_t, id=rid, event_id=event_id, person_id=base + person, name=f"佐藤 太郎{person}",
                           furigana="さとう たろう", status="cancelled" if cancelled else "confirmed",
                           confirmed_at=at, cancelled_at=at + timedelta(days=1) if cancelled else None,
                           cancelled_by="participant" if cancelled else "", created_at=at, updated_at=at,
                           consent_at=at, manage_token=f"scale-m-{rid}", ticket_code=f"scale-t-{rid}")
                if not cancelled and len(checked) < checkins_wanted:
                    checked.append((rid, event_id))
                yield [row[c] for c in cols]
        started = time.perf_counter()
        n_regs = _copy(connection, "registrations", cols, registration_rows())
        if checkin_t:
            cols = list(checkin_t)
            _copy(connection, "checkins", cols, ([dict(checkin_t, id=base + i, registration_id=rid, event_day_id=eid,
                                                       checked_in_at=start_of[eid], recorded_at=start_of[eid],
                                                       nonce=f"scale-n-{i}")[c] for c in cols]
                                                 for i, (rid, eid) in enumerate(checked)))
        if outcome_t:
            cols = list(outcome_t)
            n_out = len(past_ids)  # about one talk per event, a third of them matches
            _copy(connection, "outcomes", cols, ([dict(
                outcome_t, id=base + i, person_id=base + 1 + i % people, organisation_id=ids["org"],
                matching_event_id=None, status="matched" if i % 3 == 0 else "met",
                matched_on=start_of[past_ids[i]].date() if i % 3 == 0 else None,
                project_type="fan_community" if i % 3 == 0 else None,
                created_at=start_of[past_ids[i]], updated_at=start_of[past_ids[i]])[c] for c in cols]
                for i in range(n_out)))
        for table in ("events", "event_days", "people", "registrations", "checkins", "outcomes"):
            connection.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                               f"(SELECT max(id) FROM {table}))")
        connection.commit()
        connection.execute("ANALYZE")
        connection.commit()
        print(f"  copied {n_regs} registrations, {len(checked)} check-ins in {time.perf_counter() - started:.1f} s",
              flush=True)
    finally:
        raw.close()
        context.pop()
    with app.app_context():
        ticket = db.session.execute(select(text("ticket_code")).select_from(text("registrations")).where(
            text("event_id = :e AND id > :b")).params(e=ids["big"], b=base + 500)).scalar()
        assert db.session.get(Event, ids["big"]) is not None
        db.session.remove()
        db.engine.dispose()
    return {**ids, "token": token, "ticket": ticket, "fy": fy_now}


def _login(base_url: str) -> requests.Session:
    import re
    session = requests.Session()
    page = session.get(f"{base_url}/staff/login", timeout=60).text
    csrf = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    response = session.post(f"{base_url}/staff/login", data={"email": "bench-staff@example.jp", "password": PASSWORD,
                                                             "csrf_token": csrf}, allow_redirects=False, timeout=60)
    assert response.status_code == 303, response.status_code
    return session


def _time(call, rounds: int) -> tuple[float, int, int]:
    """Median ms over `rounds` after one warm-up call; (median, bytes, status)."""
    response = call()
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        response = call()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000, len(response.content), response.status_code


def _job(url: str, *args: str) -> tuple[float, str]:
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": BENCH_SECRET, "MAIL_BACKEND": "null"}
    env.pop("TEST_DATABASE_URL", None)
    started = time.perf_counter()
    try:
        done = subprocess.run([str(FLASK), "--app", "eventapp", *args], cwd=PROJECT_ROOT, env=env,
                              capture_output=True, text=True, timeout=JOB_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return JOB_TIMEOUT_S * 1000, f"stopped after {JOB_TIMEOUT_S:.0f} s (not finished)"
    took = time.perf_counter() - started
    last = "; ".join(done.stdout.strip().splitlines()) if done.returncode == 0 else \
        f"exit {done.returncode}: {done.stderr.strip()[-200:]}"
    return took * 1000, last


def measure(label: str, url: str, info: dict, rounds: int) -> list[dict]:
    server = start_server(url, secret_key=BENCH_SECRET, workers=2)
    rows: list[dict] = []
    try:
        base = server.url
        staff = _login(base)
        anon = requests.Session()
        api = {"Authorization": f"Bearer {info['token']}"}
        big, fy = info["big"], info["fy"]
        report_year = fy - 1  # a full year
        pages = [
            ("catalogue `/`", lambda: anon.get(f"{base}/", timeout=120)),
            ("event page", lambda: anon.get(f"{base}/events/scale-big", timeout=120)),
            ("API `GET /api/v1/events`", lambda: anon.get(f"{base}/api/v1/events", timeout=120)),
            ("events feed `/feeds/events.ics`", lambda: anon.get(f"{base}/feeds/events.ics", timeout=120)),
            ("staff dashboard", lambda: staff.get(f"{base}/staff/", timeout=120)),
            ("staff events (upcoming)", lambda: staff.get(f"{base}/staff/events", timeout=120)),
            ("staff events `?show=all`", lambda: staff.get(f"{base}/staff/events?show=all", timeout=120)),
            ("staff events `?show=all&page=3`", lambda: staff.get(f"{base}/staff/events?show=all&page=3", timeout=120)),
            (f"participant list ({BIG_EVENT} people)", lambda: staff.get(f"{base}/staff/events/{big}/participants",
                                                                         timeout=120)),
            ("participant list, search `?q=さとう 0012`", lambda: staff.get(
                f"{base}/staff/events/{big}/participants?q=さとう 0012", timeout=120)),
            ("event detail (staff)", lambda: staff.get(f"{base}/staff/events/{big}", timeout=120)),
            ("`/staff/people?q=佐藤`", lambda: staff.get(f"{base}/staff/people?q=佐藤", timeout=120)),
            ("`/staff/people?q=0900012` (phone)", lambda: staff.get(f"{base}/staff/people?q=0900012", timeout=120)),
            (f"yearly report page (FY{report_year})", lambda: staff.get(f"{base}/staff/reports?year={report_year}",
                                                                       timeout=120)),
            ("yearly report CSV", lambda: staff.get(f"{base}/staff/reports/{report_year}.csv", timeout=120)),
            ("yearly report PDF", lambda: staff.get(f"{base}/staff/reports/{report_year}.pdf", timeout=120)),
            (f"check-in roster snapshot ({BIG_EVENT} people)", lambda: anon.get(
                f"{base}/api/v1/events/{big}/checkins/roster", headers=api, timeout=120)),
        ]
        for name, call in pages:
            ms, size, status = _time(call, rounds)
            rows.append({"data": label, "page or job": name, "median ms": f"{ms:.0f}", "KB": f"{size / 1000:.0f}",
                         "status": status})
            print(f"  {label} {name:45} {ms:8.0f} ms {size / 1000:8.0f} KB  {status}", flush=True)
        # A scan (a fresh ticket each time is not needed: a repeat scan is the same work plus "already").
        scan = lambda: anon.post(f"{base}/api/v1/events/{big}/checkins", headers=api, timeout=120,  # noqa: E731
                                 json={"code": info["ticket"], "nonce": uuid.uuid4().hex})
        counter = iter(range(10**6))
        signup = lambda: anon.post(f"{base}/api/v1/events/{big}/registrations", timeout=120, json={  # noqa: E731
            "name": "計測 太郎", "furigana": "けいそく たろう", "email": f"scale-signup-{next(counter)}@example.com",
            "consent_privacy": True})
        for name, call in (("scan (API)", scan), ("sign-up (API)", signup)):
            ms, size, status = _time(call, rounds)
            rows.append({"data": label, "page or job": name, "median ms": f"{ms:.0f}", "KB": f"{size / 1000:.1f}",
                         "status": status})
            print(f"  {label} {name:45} {ms:8.0f} ms {size / 1000:8.1f} KB  {status}", flush=True)
    finally:
        server.stop()
    for name, args in (("CLI `send-mail`", ("send-mail",)), ("CLI `purge-expired` (first run)", ("purge-expired",))):
        ms, last = _job(url, *args)
        rows.append({"data": label, "page or job": name, "median ms": f"{ms:.0f}", "KB": "", "status": last[:160]})
        print(f"  {label} {name:45} {ms:8.0f} ms  {last[:160]}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="M,L", help="comma-separated: M, L")
    parser.add_argument("--rounds", type=int, default=5, help="requests per page (median), after one warm-up")
    args = parser.parse_args(argv or [])
    rows: list[dict] = []
    for label in [s.strip() for s in args.sizes.split(",") if s.strip()]:
        size = SIZES[label]
        print(f"=== {label}: {size} ===", flush=True)
        with postgres_database() as url:
            started = time.perf_counter()
            info = build(bench_app(url), size)
            built = time.perf_counter() - started
            print(f"  built in {built:.0f} s", flush=True)
            rows.append({"data": label, "page or job": "build (services + COPY)", "median ms": f"{built * 1000:.0f}",
                         "KB": "", "status": ", ".join(f"{k} {v:,}" for k, v in size.items())})
            rows += measure(label, url, info, args.rounds)
    return rows


def write_section(rows: list[dict], took: float, argv: list[str]) -> None:
    """Run alone, the table replaces (or adds) this module's section of RESULTS.md, as run_all.py would."""
    from benchmarks.run_all import RESULTS, markdown_table

    stamp = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    current = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
    chunks = current.split("\n## ")
    # Rows of sizes not run this time stay (`--sizes L` after a run of M keeps M's rows).
    ran = {row["data"] for row in rows}
    old = next((c for c in chunks[1:] if "`benchmarks/scale.py`" in c), "")
    earlier = [line for line in old.splitlines() if line.startswith("| ") and not line.startswith("| data ")
               and line.split("|")[1].strip() not in ran]
    table = markdown_table(rows).splitlines()
    section = (f"## {TITLE}\n\n`benchmarks/scale.py` ({took:.0f} s, run {stamp}, alone: "
               f"`{' '.join(argv) or 'M,L'}`, load average at the end {load})\n\n"
               + "\n".join(table[:2] + earlier + table[2:]) + "\n")
    kept = [c for c in chunks[1:] if "`benchmarks/scale.py`" not in c]
    RESULTS.write_text("\n## ".join([chunks[0].rstrip("\n") + "\n", *kept]).rstrip("\n") + "\n\n" + section,
                       encoding="utf-8")
    print(f"wrote the section to {RESULTS}")


if __name__ == "__main__":
    began = time.perf_counter()
    result = main(sys.argv[1:])
    write_section(result, time.perf_counter() - began, sys.argv[1:])
