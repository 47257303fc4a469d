"""`GET /healthz` (liveness), `GET /readyz` (readiness) and the optional Server-Timing header.

/healthz answers `{"status": "ok"}` without touching the database: the process is up and serving.
A supervisor restarts a server that fails it; a database outage must not make it restart every
server. The benchmarks use it as the server's "trivial request" rate.

/readyz is for load balancers and monitoring: 200 when the database answers, its schema is at the
migrations' head (alembic_version against the scripts this code ships with, read once per process)
and no due mail has waited longer than READY_OUTBOX_MAX_DELAY_S (no sender is running); 503 with
the failed checks otherwise.

With SERVER_TIMING on (env SERVER_TIMING=1), every response carries
`Server-Timing: app;dur=<wall ms>, cpu;dur=<worker CPU ms>`: CPU time stays meaningful when other
processes compete for the cores, so benchmarks use it to judge optimisations.
"""

from __future__ import annotations

import contextlib
import functools
import time

from flask import Blueprint, Flask, current_app, g
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from .extensions import db

bp = Blueprint("health", __name__)
NO_STORE = {"Cache-Control": "no-store"}


@bp.get("/healthz")
def healthz():
    return {"status": "ok"}, 200, NO_STORE


@functools.cache
def migration_heads() -> frozenset[str]:
    """The head revision(s) of the migrations shipped with this code (parsed once per process)."""
    from alembic.script import ScriptDirectory

    from . import PROJECT_ROOT
    return frozenset(ScriptDirectory(str(PROJECT_ROOT / "migrations")).get_heads())


def readiness() -> tuple[bool, dict[str, dict]]:
    """(ready, check name → {"ok", "detail"}); stops at the first database failure."""
    checks: dict[str, dict] = {}
    try:
        applied = frozenset(db.session.execute(text("SELECT version_num FROM alembic_version")).scalars())
        db.session.rollback()
    except SQLAlchemyError as exc:
        with contextlib.suppress(SQLAlchemyError):
            db.session.rollback()
        checks["database"] = {"ok": False, "detail": type(getattr(exc, "orig", None) or exc).__name__}
        return False, checks
    checks["database"] = {"ok": True, "detail": ""}
    heads = migration_heads()
    checks["migrations"] = {"ok": applied == heads, "detail": "" if applied == heads else
                            f"database at {', '.join(sorted(applied)) or 'none'}, code at {', '.join(sorted(heads))}"}
    max_delay = current_app.config.get("READY_OUTBOX_MAX_DELAY_S", 900)
    if max_delay:
        from .metrics import outbox_figures
        try:
            overdue = outbox_figures().overdue_s
        except SQLAlchemyError:
            db.session.rollback()
            checks["outbox"] = {"ok": False, "detail": "query failed"}
        else:
            stuck = overdue is not None and overdue > max_delay
            checks["outbox"] = {"ok": not stuck,
                                "detail": f"a due mail has waited {overdue:.0f} s" if stuck else ""}
    return all(check["ok"] for check in checks.values()), checks


@bp.get("/readyz")
def readyz():
    ready, checks = readiness()
    return {"status": "ok" if ready else "fail", "checks": checks}, 200 if ready else 503, NO_STORE


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    if not app.config.get("SERVER_TIMING"):
        return

    @app.before_request
    def _timing_start() -> None:
        g.timing_started = time.perf_counter()
        g.timing_cpu = time.process_time()

    @app.after_request
    def _timing_header(response):
        # Views that time themselves (the check-in API) keep their own header.
        if "timing_started" in g and "Server-Timing" not in response.headers:
            response.headers["Server-Timing"] = (
                f"app;dur={(time.perf_counter() - g.timing_started) * 1000:.1f}, "
                f"cpu;dur={(time.process_time() - g.timing_cpu) * 1000:.1f}")
        return response
