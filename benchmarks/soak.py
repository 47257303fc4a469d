"""Soak: steady mixed load on gunicorn for a while, worker memory sampled at the start and the end.

For SQLite and PostgreSQL: 4 gunicorn workers serve a steady rate (default 20 requests/s) of the
catalogue, an event page, the event API, `/healthz` and sign-ups (one in ten requests) for
`--seconds` (default 120). The resident memory (VmRSS from /proc) of every worker is read after a
warm-up and at the end; growth beyond noise would point at a leak (caches, sessions, the outbox).

Run alone from the project root: `.venv/bin/python -m benchmarks.soak [--seconds 120] [--rate 20] [--db SQLite]`.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from benchmarks._support import BENCH_SECRET, DATABASES, bench_app, percentiles, run_per_database
from benchmarks.signup_race import _create_event, _db_counts
from tests.live_server import start_server

TITLE = "Soak at steady load (gunicorn, worker memory)"
# Growth per worker over the soak still counted as noise (allocator arenas, first-use imports).
NOISE_MIB = 8.0


def worker_pids(master_pid: int) -> list[int]:
    children: list[int] = []
    for task in Path(f"/proc/{master_pid}/task").iterdir():
        with contextlib.suppress(OSError):
            children += [int(pid) for pid in (task / "children").read_text().split()]
    return sorted(children)


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def soak(database: str, url: str, *, seconds: float, rate: float, clients: int, workers: int) -> dict:
    app = bench_app(url)
    event_id = _create_event(app, capacity=100_000)
    with app.app_context():
        from eventapp.extensions import db
        from eventapp.models import Event
        slug = db.session.get(Event, event_id).slug
        db.session.remove()
        db.engine.dispose()
    server = start_server(url, secret_key=BENCH_SECRET, workers=workers)
    local = threading.local()
    counter = itertools.count()

    def session() -> requests.Session:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        return local.session

    def request(n: int) -> tuple[str, int, float]:
        kind = ("catalogue", "event page", "event API", "healthz", "event page", "event API", "catalogue",
                "event page", "healthz", "sign-up")[n % 10]
        started = time.perf_counter()
        try:
            if kind == "sign-up":
                i = next(counter)
                response = session().post(f"{server.url}/api/v1/events/{event_id}/registrations", timeout=60, json={
                    "name": f"岩手 花子{i}", "furigana": "いわて はなこ", "email": f"soak{i}@example.com",
                    "consent_privacy": True})
            else:
                path = {"catalogue": "/", "event page": f"/events/{slug}", "event API": f"/api/v1/events/{event_id}",
                        "healthz": "/healthz"}[kind]
                response = session().get(server.url + path, timeout=60)
            status = response.status_code
        except requests.RequestException:
            status = 0
        return kind, status, time.perf_counter() - started

    def paced(duration: float, offset: int) -> list[tuple[str, int, float]]:
        # Each client sends at rate/clients per second on a fixed schedule (open loop: a slow answer
        # does not lower the offered load, it makes the client late and it catches up).
        results, interval = [], clients / rate
        start, n = time.perf_counter(), 0
        while (due := start + n * interval) < start + duration:
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            results.append(request(offset + n * clients))
            n += 1
        return results

    try:
        with ThreadPoolExecutor(max_workers=clients) as pool:  # warm-up: imports, connections, caches
            warm = [r for rs in pool.map(lambda c: paced(5, c), range(clients)) for r in rs]
        pids = worker_pids(server.process.pid)
        before = {pid: rss_mib(pid) for pid in pids}
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=clients) as pool:
            results = [r for rs in pool.map(lambda c: paced(seconds, c), range(clients)) for r in rs]
        wall = time.perf_counter() - started
        after = {pid: rss_mib(pid) for pid in worker_pids(server.process.pid)}
    finally:
        server.stop()

    statuses = Counter(status for _, status, _ in results)
    same = [pid for pid in before if before[pid] is not None and after.get(pid) is not None]
    growth = [after[pid] - before[pid] for pid in same]
    signed_up = sum(1 for kind, status, _ in results if kind == "sign-up" and status == 201)
    warm_signups = sum(1 for kind, status, _ in warm if kind == "sign-up" and status == 201)
    in_db = _db_counts(app, event_id)
    return {
        "database": database,
        "seconds": round(wall),
        "requests": len(results),
        "req/s": round(len(results) / wall, 1),
        **{key: round(value, 1) for key, value in percentiles([t for _, _, t in results]).items()},
        "sign-ups": signed_up,
        "errors": len(results) - statuses.get(200, 0) - statuses.get(201, 0),
        "5xx": sum(n for status, n in statuses.items() if status >= 500),
        "workers (restarted)": f"{len(before)} ({len(set(before) - set(after))})",
        "RSS start MiB": " / ".join(f"{before[p]:.0f}" for p in same),
        "RSS end MiB": " / ".join(f"{after[p]:.0f}" for p in same),
        "max growth MiB": round(max(growth), 1) if growth else "",
        "memory": f"stable (≤ {NOISE_MIB:.0f} MiB/worker)" if growth and max(growth) <= NOISE_MIB
        else "GROWTH" if growth else "not measured",
        # Every 201 (warm-up included) is one confirmed seat in the database, nothing more.
        "DB check": "OK" if in_db.get("confirmed", 0) == signed_up + warm_signups else f"FAILED ({in_db})",
    }


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("BENCH_SOAK_SECONDS", "120")),
                        help="soak duration per database (default 120, or $BENCH_SOAK_SECONDS)")
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second offered")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--db", choices=[*DATABASES, "all"], default="all")
    args = parser.parse_args(argv if argv is not None else [])
    return run_per_database(args.db, lambda name, url: soak(
        name, url, seconds=args.seconds, rate=args.rate, clients=args.clients, workers=args.workers),
        failure_column="memory")


if __name__ == "__main__":
    import sys

    rows = main(sys.argv[1:])
    sys.exit(0 if all(str(r.get("memory", "")).startswith("stable") and r.get("5xx") == 0 for r in rows) else 1)
