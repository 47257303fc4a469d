"""Sign-up: a rush for a popular event, then a steady 100 sign-ups per second.

For SQLite and PostgreSQL: a migrated throwaway database, gunicorn with 2 workers (one per core) in
MAIL_DELIVERY=sender mode with a `send-mail --watch` process at idle CPU priority, as in production
(it holds mail back while a rush is on: services/mail.py RushDetector). Every worker is warmed up
with a few sign-ups on an event of their own first. The load comes from benchmarks/_loadgen.py.
1. Rush: 500 sign-ups for 50 seats from 32 concurrent clients through
   `POST /api/v1/events/{id}/registrations`: sign-ups per second, p50/p95/p99, confirmed / waitlisted,
   the oversell check (confirmed = capacity, waiting-list places 1..n without gaps) and how long after
   the rush the last mail went out. Latency here is mostly waiting in line behind the other clients
   (about clients ÷ rate).
2. Paced: sign-ups offered at a fixed rate (100/s for 5 s), open loop: each request is due at its
   time and its latency counts from then, so this is where p95 tells the server's speed.
The target (PostgreSQL): ≥ 100 sign-ups/s in the rush and achieved when paced, at p95 ≤ 200 ms paced.
Also the rate of `GET /healthz` (no database since issue 22; was one `SELECT 1`) from the same clients and the ratio between the two,
and the worker CPU per sign-up from the Server-Timing header (SERVER_TIMING=1).

Run alone from the project root: `.venv/bin/python -m benchmarks.signup_race [--db SQLite]`.
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from collections import Counter
from datetime import datetime, timedelta

from sqlalchemy import func, select

from benchmarks._loadgen import Answer, build_request, closed_loop, open_loop
from benchmarks._support import (
    BENCH_SECRET,
    DATABASES,
    bench_app,
    mail_sender,
    percentiles,
    run_per_database,
)
from tests.live_server import start_server

TITLE = "Sign-up burst (gunicorn, real database)"


def _create_event(app, capacity: int) -> int:
    from eventapp.extensions import db
    from eventapp.formatting import JST
    from eventapp.services.events import create_event

    starts = (datetime.now(JST) + timedelta(days=30)).replace(hour=13, minute=0, second=0, microsecond=0)
    with app.app_context():
        event = create_event({
            "slug": f"bench-{int(time.time() * 1000)}", "kind": "fieldwork", "status": "published",
            "title": "岩手・花巻でブドウ収穫体験フィールドワーク", "starts_at": starts,
            "ends_at": starts + timedelta(hours=5), "capacity": capacity, "venue_name": "かんたはうす",
        })
        db.session.commit()
        return event.id


def _db_counts(app, event_id: int) -> dict[str, int]:
    from eventapp.extensions import db
    from eventapp.models import Registration

    with app.app_context():
        rows = db.session.execute(select(Registration.status, func.count())
                                  .where(Registration.event_id == event_id).group_by(Registration.status)).all()
        db.session.remove()
        db.engine.dispose()
    return dict(rows)


def _pending_mail(app) -> int:
    from eventapp.extensions import db
    from eventapp.models import OutboxMessage

    with app.app_context():
        pending = db.session.execute(select(func.count()).select_from(OutboxMessage)
                                     .where(OutboxMessage.status == "pending")).scalar_one()
        db.session.remove()
    return pending


def _wait_for_mail(app, timeout_s: float = 120.0) -> None:
    """Until the sender has sent every queued mail (or `timeout_s` passed)."""
    deadline = time.perf_counter() + timeout_s
    while _pending_mail(app) and time.perf_counter() < deadline:
        time.sleep(0.2)


def _sign_up_requests(base_url: str, event_id: int, tag: str, n: int) -> list[bytes]:
    return [build_request(base_url, "POST", f"/api/v1/events/{event_id}/registrations", {
        "name": f"岩手 太郎{i}", "furigana": "いわて たろう", "email": f"bench-{tag}-{i}@example.com",
        "consent_privacy": True}) for i in range(n)]


def _results(answers: list[Answer]) -> list[tuple[int, dict, float]]:
    """(status, JSON body, worker CPU ms from the Server-Timing header) per sign-up."""
    results = []
    for answer in answers:
        found = re.search(r"cpu;dur=([0-9.]+)", answer.headers.get("server-timing", ""))
        results.append((answer.status, answer.body, float(found.group(1)) if found else 0.0))
    return results


def _oversell_ok(app, event_id: int, capacity: int, results: list[tuple[int, dict, float]]) -> tuple[bool, dict]:
    created = [payload["registration"] for status, payload, _ in results if status == 201]
    told = sorted(r["waitlist_position"] for r in created if r["status"] == "waitlisted")
    in_db = _db_counts(app, event_id)
    confirmed, waitlisted = in_db.get("confirmed", 0), in_db.get("waitlisted", 0)
    ok = (confirmed == min(capacity, len(created)) and confirmed + waitlisted == len(created)
          and told == list(range(1, waitlisted + 1)))
    return ok, in_db


def burst(app, base_url: str, *, signups: int, capacity: int, clients: int) -> dict:
    """Everyone at once: `signups` requests from `clients` closed-loop clients. Throughput; the
    latency here is mostly waiting in line (about clients ÷ rate), not the server's speed."""
    event_id = _create_event(app, capacity)
    answers, wall = closed_loop(base_url, _sign_up_requests(base_url, event_id, f"burst{event_id}", signups),
                                clients=clients)
    results = _results(answers)
    ok, in_db = _oversell_ok(app, event_id, capacity, results)
    statuses = Counter(status for status, _, _ in results)
    cpu = [c for _, _, c in results if c]
    return {"rate": statuses.get(201, 0) / wall, "latency": percentiles([a.seconds for a in answers]),
            "statuses": statuses, "ok": ok, "in_db": in_db, "cpu_ms": statistics.median(cpu) if cpu else 0.0}


def paced(app, base_url: str, *, rate: float, seconds: float, capacity: int) -> dict:
    """Open loop at a fixed offered rate (as wrk2 does): request i is due at start + i / rate and its
    latency counts from that moment, so a server that falls behind shows it in p95."""
    event_id = _create_event(app, capacity)
    requests = _sign_up_requests(base_url, event_id, f"paced{event_id}", int(rate * seconds))
    answers, wall = open_loop(base_url, requests, rate=rate)
    results = _results(answers)
    ok, in_db = _oversell_ok(app, event_id, capacity, results)
    statuses = Counter(status for status, _, _ in results)
    return {"rate": statuses.get(201, 0) / wall, "latency": percentiles([a.seconds for a in answers]),
            "statuses": statuses, "ok": ok, "in_db": in_db}


def run_burst(database: str, url: str, *, signups: int, capacity: int, clients: int, workers: int,
              paced_rate: float, paced_seconds: float) -> dict:
    app = bench_app(url)
    server = start_server(url, secret_key=BENCH_SECRET, workers=workers,
                          extra_env={"SERVER_TIMING": "1", "MAIL_DELIVERY": "sender"})
    try:
        with mail_sender(server.env):
            warm_up(app, server.url, workers=workers)
            rush = burst(app, server.url, signups=signups, capacity=capacity, clients=clients)
            burst_done = time.perf_counter()
            _wait_for_mail(app)
            drained_s = time.perf_counter() - burst_done
            steady = paced(app, server.url, rate=paced_rate, seconds=paced_seconds, capacity=capacity)
            _wait_for_mail(app)  # the sender's catching up would slow the trivial requests below
            trivial_rate, trivial_errors = trivial_requests(server.url, clients=clients, requests_n=signups * 2)
    finally:
        server.stop()
    # 98 %: the paced run's rate counts up to the last answer, so even an idle server stays just under.
    met = (rush["rate"] >= paced_rate and steady["rate"] >= paced_rate * 0.98
           and steady["latency"]["p95"] <= 200 and not steady["statuses"].get(0))
    errors = sum(n for s, n in (rush["statuses"] + steady["statuses"]).items() if s != 201)
    return {
        "database": database,
        "sign-ups": signups,
        "clients": clients,
        "workers": workers,
        "burst sign-ups/s": round(rush["rate"], 1),
        **{f"burst {k}": round(v, 1) for k, v in rush["latency"].items()},
        "confirmed": rush["in_db"].get("confirmed", 0),
        "waitlisted": rush["in_db"].get("waitlisted", 0),
        "mail sent within s": round(drained_s, 1) if drained_s < 120 else "not drained",
        f"paced {paced_rate:g}/s: achieved": round(steady["rate"], 1),
        **{f"paced {k}": round(v, 1) for k, v in steady["latency"].items()},
        "errors": errors,
        "5xx": sum(n for s, n in (rush["statuses"] + steady["statuses"]).items() if s >= 500),
        "CPU ms/sign-up": round(rush["cpu_ms"], 1),
        "/healthz req/s": round(trivial_rate, 1),
        "ratio": f"{rush['rate'] / trivial_rate:.2f}" if trivial_rate else "",
        "healthz errors": trivial_errors,
        "target (PostgreSQL)": (f"≥{paced_rate:g}/s (rush and paced), paced p95 ≤ 200 ms: "
                                + ("met" if met else "not met"))
        if database == "PostgreSQL" else "-",
        "oversell check": "OK (no oversell, queue 1..n)" if rush["ok"] and steady["ok"] else "FAILED",
    }


def warm_up(app, base_url: str, *, workers: int) -> None:
    """Sign-ups on an event of their own before measuring: every worker has then imported what a
    sign-up needs, compiled its statements and templates and opened its connections (a fresh worker
    spends its first second or so on that; measured, it cut the rush's rate by a quarter)."""
    event_id = _create_event(app, 10)
    answers, _ = closed_loop(base_url, _sign_up_requests(base_url, event_id, f"warm{event_id}", 30 * workers),
                             clients=2 * workers)
    failed = [a.status for a in answers if a.status != 201]
    if failed:
        raise RuntimeError(f"warm-up sign-ups failed: {failed[:5]}")
    _wait_for_mail(app)


def trivial_requests(base_url: str, *, clients: int, requests_n: int) -> tuple[float, int]:
    """Rate of `GET /healthz` from the same clients: what this server manages for a near-empty request."""
    request = build_request(base_url, "GET", "/healthz")
    answers, wall = closed_loop(base_url, [request] * requests_n, clients=clients)
    ok = sum(a.status == 200 for a in answers)
    return ok / wall, requests_n - ok


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signups", type=int, default=500)
    parser.add_argument("--capacity", type=int, default=50)
    parser.add_argument("--clients", type=int, default=32)
    # One worker per core: a sign-up is CPU-bound Python; more workers only time-slice each other.
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--paced-rate", type=float, default=100.0)
    parser.add_argument("--paced-seconds", type=float, default=5.0)
    parser.add_argument("--db", choices=[*DATABASES, "all"], default="all")
    args = parser.parse_args(argv if argv is not None else [])
    return run_per_database(args.db, lambda name, url: run_burst(
        name, url, signups=args.signups, capacity=args.capacity, clients=args.clients, workers=args.workers,
        paced_rate=args.paced_rate, paced_seconds=args.paced_seconds),
        failure_column="oversell check")


if __name__ == "__main__":
    import sys

    rows = main(sys.argv[1:])
    sys.exit(0 if all(str(r.get("oversell check", "")).startswith("OK") for r in rows) else 1)
