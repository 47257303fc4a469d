"""`GET /healthz` for load balancers and monitoring, and the optional Server-Timing header.

The health check answers `{"status": "ok"}` after a `SELECT 1`, so it also tells whether the
database is reachable (a 503 from errors_db otherwise). The benchmarks use it as the server's
"trivial request" rate, the ceiling that a sign-up's rate is compared with.

With SERVER_TIMING on (env SERVER_TIMING=1), every response carries
`Server-Timing: app;dur=<wall ms>, cpu;dur=<worker CPU ms>`: CPU time stays meaningful when other
processes compete for the cores, so benchmarks use it to judge optimisations.
"""

from __future__ import annotations

import time

from flask import Blueprint, Flask, g
from sqlalchemy import text

from .extensions import db

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    db.session.execute(text("SELECT 1"))
    db.session.rollback()
    return {"status": "ok"}, 200, {"Cache-Control": "no-store"}


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
