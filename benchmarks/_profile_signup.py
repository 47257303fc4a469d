"""Profile one sign-up request in-process: CPU time and SQL statements per request, and a cProfile summary.

`.venv/bin/python -m benchmarks._profile_signup [--db URL] [-n 200] [--profile]` — without --db, a
throwaway SQLite file is used. Mail delivery after the response is included (it runs in the worker).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import time
from contextlib import nullcontext

from sqlalchemy import event as sa_event

from benchmarks._support import bench_app, sqlite_database
from benchmarks.signup_race import _create_event


def run(url: str, n: int, profile: bool, capacity: int) -> None:
    # All requests come from one client: rate limits stay on (their storage costs are measured) but never bite.
    os.environ.setdefault("SIGNUP_RATE_LIMIT", "1000000/minute")
    app = bench_app(url)
    event_id = _create_event(app, capacity)
    from eventapp.extensions import db

    statements: list[str] = []
    with app.app_context():
        engine = db.engine
    sa_event.listen(engine, "before_cursor_execute",
                    lambda conn, cursor, stmt, *a: statements.append(stmt.split("\n", 1)[0][:100]))
    client = app.test_client()
    endpoint = f"/api/v1/events/{event_id}/registrations"
    cpu, counts = [], []
    profiler = cProfile.Profile() if profile else None
    last: list[str] = []
    for i in range(n):
        body = {"name": f"岩手 太郎{i}", "furigana": "いわて たろう", "email": f"prof{i}@example.com",
                "consent_privacy": True}
        statements.clear()
        started = time.process_time()
        with (profiler if profiler and i >= 5 else nullcontext()):
            response = client.post(endpoint, json=body)
            response.close()  # runs call_on_close (mail delivery), as gunicorn does
        cpu.append((time.process_time() - started) * 1000)
        counts.append(len(statements))
        assert response.status_code == 201, response.get_data(as_text=True)
        last = list(statements)
    half = cpu[5:]
    print(f"CPU/request ms: median {statistics.median(half):.1f}  mean {statistics.mean(half):.1f}; "
          f"SQL statements: median {statistics.median(counts[5:])}")
    print("statements of the last request:")
    for s in last:
        print("   ", s)
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(45)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db")
    parser.add_argument("-n", type=int, default=200)
    parser.add_argument("--capacity", type=int, default=50)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    with (nullcontext(args.db) if args.db else sqlite_database()) as url:
        run(url, args.n, args.profile, args.capacity)


if __name__ == "__main__":
    main()
