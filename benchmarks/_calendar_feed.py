"""Calendar feeds: /feeds/events.ics with 500 published events (target p95 < 100 ms).

Fills a throw-away database with 500 published events (a third of them two-day fieldworks with a
programme), then requests the public feed, a per-kind feed and one person's feed (20 registrations)
through the app in-process and reports client-side latency percentiles.
"""

from __future__ import annotations

import time as clock
from datetime import UTC, datetime, time, timedelta

from benchmarks._support import DATABASES, bench_app, percentiles

TITLE = "Calendar feeds (500 events)"
EVENTS = 500
ROUNDS = 30
TARGET_MS = 100.0
JST_OFFSET = timedelta(hours=9)


def _fill(app) -> str:
    """Insert the events in bulk (the feed is what is measured, not event creation). Returns a feed token."""
    from eventapp.extensions import db
    from eventapp.models import Event, EventDay, Person, ProgrammeItem, Registration

    kinds = ("online_seminar", "onsite_seminar", "fieldwork", "matching_session")
    base = datetime.now(UTC).replace(hour=1, minute=0, second=0, microsecond=0) + timedelta(days=3)
    with app.app_context():
        person = Person(email="bench@example.jp", name="岩手 太郎", furigana="いわて たろう")
        db.session.add(person)
        for n in range(EVENTS):
            kind = kinds[n % len(kinds)]
            start = base + timedelta(days=n // 3, hours=n % 3)
            two_days = kind == "fieldwork" and n % 2 == 0
            end = start + (timedelta(days=1, hours=3) if two_days else timedelta(hours=4))
            event = Event(slug=f"bench-{n}", kind=kind, title=f"岩手フィールドワーク 第{n}回", summary="収穫体験と交流",
                          starts_at=start, ends_at=end, venue_name="花巻市交流会館", venue_address="岩手県花巻市大通り1-1",
                          meeting_point="JR花巻駅 東口", latitude=39.39, longitude=141.11, capacity=30,
                          status="published", sequence=n % 3, online_url="https://zoom.example.jp/j/1",
                          organiser_email="enren@example.jp")
            spans = [(start, start + timedelta(hours=4))]
            if two_days:
                spans = [(start, start + timedelta(hours=8)), (start + timedelta(days=1), end)]
            for day_start, day_end in spans:
                day = EventDay(starts_at=day_start, ends_at=day_end)
                local = (day_start + JST_OFFSET).time()
                day.items = [ProgrammeItem(starts_at=time((local.hour + i) % 24), title=f"プログラム{i}", position=i)
                             for i in range(3)]
                event.days.append(day)
            db.session.add(event)
            if n % 25 == 0:
                db.session.add(Registration(event=event, person=person, status="confirmed", confirmed_at=start,
                                            manage_token=f"bench-manage-{n:04d}-xxxxxxxxxxxxxxxx",
                                            ticket_code=f"E{n}-BENCH-{n:04d}", consent_version="bench",
                                            consent_at=start, name=person.name, furigana=person.furigana))
        db.session.commit()
        return person.calendar_token


def _time(client, url: str) -> tuple[dict, int]:
    for _ in range(2):  # warm-up: imports, template and statement caches
        client.get(url)
    samples, size = [], 0
    for _ in range(ROUNDS):
        started = clock.perf_counter()
        response = client.get(url)
        samples.append(clock.perf_counter() - started)
        assert response.status_code == 200, (url, response.status_code)
        size = len(response.data)
    return percentiles(samples), size


def run(database: str) -> list[dict]:
    rows = []
    with DATABASES[database]() as url:
        app = bench_app(url)
        token = _fill(app)
        client = app.test_client()
        for label, path in (("all events", "/feeds/events.ics"), ("one kind (fieldwork)", "/feeds/fieldwork.ics"),
                            ("one person (20 registrations)", f"/feeds/person/{token}.ics")):
            stats, size = _time(client, path)
            ok = stats["p95"] < TARGET_MS
            print(f"{database:10} {label:32} p50 {stats['p50']:7.1f} ms  p95 {stats['p95']:7.1f} ms  "
                  f"{size / 1024:7.0f} KiB  {'ok' if ok else 'SLOW'}", flush=True)
            rows.append({"database": database, "feed": label, "events": EVENTS, "p50 ms": f"{stats['p50']:.1f}",
                         "p95 ms": f"{stats['p95']:.1f}", "size KiB": f"{size / 1024:.0f}",
                         "target": f"p95 < {TARGET_MS:.0f} ms", "result": "ok" if ok else "SLOW"})
        stats = _time_after_edit(app, client)
        print(f"{database:10} {'all events, first request after an edit':32} p50 {stats['p50']:7.1f} ms  "
              f"p95 {stats['p95']:7.1f} ms  (informational: one event re-rendered, the rest from cache)", flush=True)
        rows.append({"database": database, "feed": "all events, first request after an edit", "events": EVENTS,
                     "p50 ms": f"{stats['p50']:.1f}", "p95 ms": f"{stats['p95']:.1f}", "target": "-",
                     "result": "informational"})
    return rows


def _time_after_edit(app, client) -> dict:
    from eventapp.extensions import db
    from eventapp.models import Event

    samples = []
    for n in range(10):
        with app.app_context():
            event = db.session.get(Event, n + 1)
            event.summary = f"収穫体験と交流(更新{n})"
            db.session.commit()
        started = clock.perf_counter()
        assert client.get("/feeds/events.ics").status_code == 200
        samples.append(clock.perf_counter() - started)
    return percentiles(samples)


def main(argv: list[str] | None = None) -> list[dict]:
    chosen = [name for name in (argv or []) if name in DATABASES] or list(DATABASES)
    rows = []
    for database in chosen:
        rows += run(database)
    return rows
