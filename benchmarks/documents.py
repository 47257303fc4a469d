"""PDF documents: seconds and peak memory per document (targets from issue 5).

Each measurement runs in a fresh subprocess (so peak RSS is that document's, not the sum of
everything before it) against a throw-away SQLite database filled with a fieldwork event and
N confirmed registrations. The first render in a process pays WeasyPrint's import and font
set-up; we report the second, warm render, which is what a long-running web worker sees, and
the cold one next to it. "CPU s" adds the roster worker processes' CPU time: on a busy
machine it is the steadier figure. Each document is also written to test-artifacts/pdf/bench-*.pdf
with a PNG of its first page.

    .venv/bin/python benchmarks/documents.py            # all documents
    .venv/bin/python benchmarks/documents.py roster 1000
"""

from __future__ import annotations

import json
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "pdf"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# (document, participants, target seconds, target MB or None)
CASES = [
    ("programme", 0, 0.5, None),
    ("ticket", 1, 0.5, None),
    ("roster", 50, 0.5, None),
    ("roster", 1000, 3.0, 400),
    ("badges", 50, 1.0, None),
]

SURNAMES = [("佐藤", "さとう"), ("鈴木", "すずき"), ("高橋", "たかはし"), ("千葉", "ちば"), ("菊池", "きくち"),
            ("阿部", "あべ"), ("及川", "おいかわ"), ("小野寺", "おのでら"), ("渡辺", "わたなべ"), ("伊藤", "いとう")]
GIVEN = [("花子", "はなこ"), ("太郎", "たろう"), ("美咲", "みさき"), ("翔太", "しょうた"), ("由美", "ゆみ"),
         ("健一", "けんいち"), ("彩", "あや"), ("大輔", "だいすけ")]


def build_fixture(participants: int):
    """A 2-day fieldwork (the 夏油温泉 demo event) with `participants` confirmed registrations."""
    from eventapp.demo import onsen
    from eventapp.extensions import db
    from eventapp.models import Answer, Person, Registration
    from eventapp.services.events import create_event
    from eventapp.services.tickets import make_manage_token, make_ticket_code

    data = onsen(date.today() + timedelta(days=40), f"bench-{secrets.token_hex(4)}", capacity=max(participants, 1))
    data["status"] = "published"
    event = create_event(data)
    questions = {q.key: q for q in event.questions}
    room = questions.get("lodging") or questions["room"]  # the demo's room question (renamed "lodging")
    now = datetime.now().astimezone()
    people = []
    for i in range(participants):
        (sn, sk), (gn, gk) = SURNAMES[i % len(SURNAMES)], GIVEN[(i // len(SURNAMES)) % len(GIVEN)]
        people.append(Person(email=f"bench{i}-{event.id}@example.com", name=f"{sn} {gn}", furigana=f"{sk} {gk}",
                             phone=f"090-0000-{i:04d}", prefecture="東京都" if i % 3 else "神奈川県"))
    db.session.add_all(people)
    db.session.flush()
    for i, person in enumerate(people):
        reg = Registration(event_id=event.id, person_id=person.id, status="confirmed", confirmed_at=now,
                           manage_token=make_manage_token(), ticket_code=make_ticket_code(event.id),
                           consent_version="bench", consent_at=now, name=person.name, furigana=person.furigana,
                           phone=person.phone, prefecture=person.prefecture)
        reg.answers = [
            Answer(question_id=questions["bus"].id, question_label=questions["bus"].label,
                   value="yes" if i % 4 else "no"),
            Answer(question_id=room.id, question_label=room.label, value=room.choices[i % 2]),
            Answer(question_id=questions["dietary"].id, question_label=questions["dietary"].label,
                   value="えび・かに" if i % 7 == 0 else ""),
        ]
        db.session.add(reg)
    db.session.commit()
    return event


def _render(kind: str, event):
    from eventapp.extensions import db
    from eventapp.models import Registration
    from eventapp.services import documents

    if kind == "programme":
        return documents.programme_pdf(event)
    if kind == "ticket":
        reg = db.session.query(Registration).filter_by(event_id=event.id).first()
        return documents.ticket_pdf(reg)
    if kind == "roster":
        return documents.roster_pdf(event, "reception", "kana")
    if kind == "badges":
        return documents.badges_pdf(event)
    raise SystemExit(f"unknown document {kind}")


def _proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _proc_peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _timed(kind: str, event) -> tuple[object, float, float]:
    """(result, wall seconds, CPU seconds of this process and the roster workers)."""
    from eventapp.services import documents

    before = {pid: _proc_cpu_s(pid) for pid in documents.pool_pids()}
    cpu, start = time.process_time(), time.perf_counter()
    result = _render(kind, event)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    cpu += sum(_proc_cpu_s(pid) - before.get(pid, 0.0) for pid in documents.pool_pids())
    return result, wall, cpu


def save_artifact(pdf: bytes, name: str) -> None:
    """The PDF and a PNG of its first page under test-artifacts/pdf/ (as the tests do), to look at."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"{name}.pdf").write_bytes(pdf)
    subprocess.run(["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", "-singlefile", str(ARTIFACTS / f"{name}.pdf"),
                    str(ARTIFACTS / f"{name}-1")], capture_output=True, check=False)


def measure(kind: str, participants: int) -> dict:
    """Run in this process: build data, render twice (cold, warm), report time and peak memory."""
    from eventapp import create_app
    from eventapp.extensions import db
    from eventapp.services import documents

    with tempfile.TemporaryDirectory() as tmp:
        app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp}/bench.sqlite3", "SECRET_KEY": "bench",
                          "PUBLIC_BASE_URL": "https://events.example.jp"})
        with app.app_context(), app.test_request_context():
            db.create_all()
            event = build_fixture(participants)
            db.session.expire_all()
            result, cold, _cpu = _timed(kind, event)
            db.session.expire_all()
            result, warm, cpu = _timed(kind, event)
    save_artifact(result.pdf, f"bench-{kind}-{participants}")
    # Peak resident memory of this process plus the roster worker processes, if any ran.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 + sum(
        _proc_peak_mb(pid) for pid in documents.pool_pids())
    documents.shutdown_pool()
    return {"document": kind, "participants": participants, "cold_s": round(cold, 3), "warm_s": round(warm, 3),
            "cpu_s": round(cpu, 3), "pages": result.pages, "bytes": len(result.pdf), "peak_mb": round(peak, 1)}


def run_case(kind: str, participants: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--one", kind, str(participants)], cwd=ROOT,
                         capture_output=True, text=True, check=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> list[dict]:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--one"]:
        result = measure(argv[1], int(argv[2]))
        print(json.dumps(result))
        return [result]
    cases = [(k, n, t, m) for k, n, t, m in CASES if not argv or (k == argv[0] and (len(argv) < 2 or n == int(argv[1])))]
    if argv and not cases:
        cases = [(argv[0], int(argv[1]) if len(argv) > 1 else 50, None, None)]
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (other work on the machine slows these down)")
    print(f"{'document':<10} {'people':>6} {'pages':>5} {'cold s':>7} {'warm s':>7} {'CPU s':>6} {'target':>7} "
          f"{'peak MB':>8}")
    results = []
    for kind, n, target_s, target_mb in cases:
        r = run_case(kind, n)
        ok = (target_s is None or r["warm_s"] <= target_s) and (target_mb is None or r["peak_mb"] <= target_mb)
        flag = "" if target_s is None else (" ok" if ok else " OVER")
        print(f"{kind:<10} {n:>6} {r['pages']:>5} {r['cold_s']:>7.2f} {r['warm_s']:>7.2f} {r['cpu_s']:>6.2f} "
              f"{'' if target_s is None else f'≤{target_s:g}':>7} {r['peak_mb']:>8.0f}{flag}")
        results.append(r)
    return results


if __name__ == "__main__":
    main()
