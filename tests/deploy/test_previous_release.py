"""The previous release on the new schema (a rolling deploy's middle): the code from just before the newest
migration, taken from git, runs against a database migrated to head by this code, and its sign-up and
check-in paths work (docs/operations.md#zero-downtime-upgrades).

"Previous release" is the parent of the commit that added the head migration file (or HEAD while that file
is not committed yet, as on a branch being written). A head migration marked `# downtime:` is skipped: its
release is announced as a stop."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from eventapp import PROJECT_ROOT
from tests.deploy.test_migration_rules import MARKER, _scripts

OLD_RELEASE_SCRIPT = r"""
import json, sys
from eventapp import create_app
from eventapp.extensions import db
from eventapp.services.accounts import create_token, create_user
from tests.factories import make_checkin_event

app = create_app({"TESTING": True, "SECRET_KEY": "previous-release-" + "x" * 40, "SQLALCHEMY_DATABASE_URI": sys.argv[1],
                  "MAIL_BACKEND": "null", "PUBLIC_BASE_URL": "http://testserver.local",
                  "RATELIMIT_STORAGE_URI": "memory://"})
with app.app_context():
    event_id = make_checkin_event().id  # staff creating an event, as the old release does it
    create_user("door@example.jp", "checkin", None, "受付")  # a generated password
    db.session.commit()
    token = create_token("door@example.jp")
    db.session.commit()
client = app.test_client()
signup = client.post(f"/api/v1/events/{event_id}/registrations", json={
    "name": "旧版 太郎", "furigana": "きゅうばん たろう", "email": "old-release@example.com", "consent_privacy": True})
registration = (signup.get_json() or {}).get("registration") or {}
scan = client.post(f"/api/v1/events/{event_id}/checkins", json={"code": registration.get("ticket_code"),
                   "nonce": "previous-release-1"}, headers={"Authorization": f"Bearer {token}"})
print(json.dumps({"event_id": event_id, "signup_status": signup.status_code, "signup": signup.get_json(),
                  "checkin_status": scan.status_code, "checkin": scan.get_json()}, ensure_ascii=False))
"""


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, timeout=60)


def _previous_release() -> str:
    head_file = Path(_scripts()[-1].path).relative_to(PROJECT_ROOT)
    added = _git("log", "-1", "--format=%H", "--diff-filter=A", "--", str(head_file)).stdout.decode().strip()
    return f"{added}^" if added else "HEAD"


@pytest.mark.timeout(300)
def test_previous_release_signs_up_and_checks_in_on_the_head_schema(tmp_path):
    from flask_migrate import upgrade
    from sqlalchemy import func, select

    from eventapp.extensions import db
    from eventapp.models import CheckIn, Registration
    from tests.faults.support import app_for, scratch_database_url

    if _git("rev-parse", "--is-inside-work-tree").returncode != 0:
        pytest.skip("not a git checkout: the previous release cannot be taken from history")
    if MARKER.search(Path(_scripts()[-1].path).read_text()):
        pytest.skip("the head migration is marked `# downtime:`: its release is a stop, not a rolling deploy")
    commit = _previous_release()
    archive = _git("archive", "--format=tar", commit, "eventapp", "templates", "static", "migrations",
                   "translations", "tests/__init__.py", "tests/conftest.py", "tests/factories.py")
    if archive.returncode != 0:
        pytest.skip(f"previous release {commit} not in this clone's history: {archive.stderr.decode()[:200]}")
    old = tmp_path / "previous"
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(old, filter="data")
    old_heads = {p.name for p in (old / "migrations/versions").glob("*.py")}
    assert Path(_scripts()[-1].path).name not in old_heads, f"{commit} already has the head migration"

    with scratch_database_url(tmp_path) as url:
        app = app_for(url)
        with app.app_context():
            upgrade()  # this release's schema
            db.session.remove()
        env = {k: v for k, v in os.environ.items() if k not in ("TEST_DATABASE_URL", "PYTHONPATH")}
        result = subprocess.run([sys.executable, "-c", OLD_RELEASE_SCRIPT, url], cwd=old,
                                env={**env, "PYTHONPATH": str(old)}, capture_output=True, text=True, timeout=240)
        assert result.returncode == 0, result.stderr[-4000:]
        outcome = json.loads(result.stdout.strip().splitlines()[-1])
        assert outcome["signup_status"] == 201, outcome
        assert outcome["checkin_status"] == 200 and outcome["checkin"]["result"] == "checked_in", outcome
        with app.app_context():
            # What the old release wrote is whole for the new one.
            registration = db.session.execute(select(Registration).where(
                Registration.event_id == outcome["event_id"])).scalar_one()
            assert registration.name == "旧版 太郎" and registration.status == "confirmed"
            assert db.session.execute(select(func.count()).select_from(CheckIn)).scalar_one() == 1
            db.session.remove()
            db.engine.dispose()
