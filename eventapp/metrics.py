"""Prometheus metrics: `GET /metrics` in the text exposition format (prometheus-client).

Counters and the latency histogram live in this process (one registry per process), or, when
PROMETHEUS_MULTIPROC_DIR is set in gunicorn's environment, in files there that every worker writes
and any worker sums up on a scrape (prometheus-client's multiprocess mode). The outbox gauges are
read from the database at scrape time with one query, so they are the same whichever worker or
server answers.

Domain counters (sign-ups, promotions, check-ins) are counted when the transaction that made the
change commits (`count_after_commit`): a sign-up rolled back after a later failure is not counted.

Access: `Authorization: Bearer $METRICS_TOKEN`, or from the machine itself when METRICS_TOKEN is
unset (see `_allowed`).
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from flask import Blueprint, Flask, Response, abort, current_app, request

# prometheus-client switches to files in the current directory when the variable is set but empty
# (compose and unit files often set variables empty): empty means unset here. Before its import.
if os.environ.get("PROMETHEUS_MULTIPROC_DIR") == "":
    del os.environ["PROMETHEUS_MULTIPROC_DIR"]
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Integer, column, event, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from .models.base import UTCDateTime, utcnow

PENDING_KEY = "eventapp_metrics_pending"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUESTS = Counter("eventapp_http_requests", "HTTP requests answered, by endpoint and status class",
                   ["endpoint", "method", "status_class"])
LATENCY = Histogram("eventapp_http_request_duration_seconds", "Time to answer a request (the view and its hooks)",
                    ["endpoint", "status_class"], buckets=LATENCY_BUCKETS)
SIGNUPS = Counter("eventapp_signups", "Sign-ups committed (a group counts once), by result", ["result"])
PROMOTIONS = Counter("eventapp_waitlist_promotions", "Registrations moved from the waiting list to a seat")
CHECKINS = Counter("eventapp_checkins", "Check-ins recorded (new rows, not replays or duplicates)")
MAIL_FAILURES = Counter("eventapp_mail_send_failures", "Mail send attempts that failed (retried or given up)")
RATE_LIMITED = Counter("eventapp_rate_limit_refusals", "Requests refused by a rate limit, by limit scope",
                       ["scope"])

# The three outbox figures in one statement; each part is a range of ix_outbox_status_next or the
# few pending rows, so the cost does not grow with the sent mail kept in the table.
_OUTBOX_QUERY = text("""
    SELECT (SELECT count(*) FROM outbox WHERE status = 'pending') AS pending,
           (SELECT min(created_at) FROM outbox WHERE status = 'pending') AS oldest,
           (SELECT min(next_attempt_at) FROM outbox WHERE status = 'pending') AS first_due,
           (SELECT count(*) FROM outbox WHERE status = 'failed') AS failed
""").columns(column("pending", Integer), column("oldest", UTCDateTime()), column("first_due", UTCDateTime()),
             column("failed", Integer))

FORWARDING_HEADERS = ("X-Forwarded-For", "X-Real-IP", "Forwarded")

bp = Blueprint("metrics", __name__)


def count_after_commit(counter: Counter, amount: float = 1, **labels: str) -> None:
    """Increment `counter` once the current database transaction commits (never if it rolls back)."""
    from .extensions import db
    db.session.info.setdefault(PENDING_KEY, []).append((counter, labels, amount))


@event.listens_for(Session, "after_commit")
def _flush_pending(session: Session) -> None:
    for counter, labels, amount in session.info.pop(PENDING_KEY, ()):
        (counter.labels(**labels) if labels else counter).inc(amount)


@event.listens_for(Session, "after_transaction_end")
def _drop_pending(session: Session, transaction) -> None:
    # The outermost transaction ended without a commit (rollback, or close): what it counted never happened.
    if transaction.parent is None:
        session.info.pop(PENDING_KEY, None)


def observe_request(endpoint: str, method: str, status: int, seconds: float) -> None:
    status_class = f"{status // 100}xx"
    REQUESTS.labels(endpoint, method, status_class).inc()
    LATENCY.labels(endpoint, status_class).observe(seconds)


def count_rate_limit_refusal(request_limit) -> None:
    """Flask-Limiter's on_breach callback (RATELIMIT_ON_BREACH): one refusal per limit breached."""
    # Flask-Limiter tests a limit with (key, scope): the scope is a name of security.RATE_LIMITED_ENDPOINTS
    # (shared limits) or the endpoint, never a client's key.
    args = getattr(request_limit, "request_args", None) or ["", "unknown"]
    RATE_LIMITED.labels(str(args[-1])).inc()


@dataclass(frozen=True)
class OutboxFigures:
    pending: int
    oldest_age_s: float | None  # the oldest pending mail's age (None: nothing pending)
    overdue_s: float | None  # how long the first due mail has been due and not sent (None: none due)
    failed: int


def outbox_figures(now: datetime | None = None) -> OutboxFigures:
    """The outbox at a glance, in one query (for /metrics and /readyz)."""
    from .extensions import db

    row = db.session.execute(_OUTBOX_QUERY).one()
    db.session.rollback()
    now = now or utcnow()

    def since(value: datetime | None) -> float | None:
        return None if value is None else (now - value).total_seconds()

    overdue = since(row.first_due)
    return OutboxFigures(int(row.pending), since(row.oldest), overdue if overdue and overdue > 0 else None,
                         int(row.failed))


class _OutboxCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            outbox = outbox_figures()
        except SQLAlchemyError:
            current_app.logger.warning("metrics: outbox figures unavailable (database)")
            yield GaugeMetricFamily("eventapp_database_up", "Whether the outbox query succeeded", value=0)
            return
        yield GaugeMetricFamily("eventapp_database_up", "Whether the outbox query succeeded", value=1)
        yield GaugeMetricFamily("eventapp_outbox_pending", "Mails queued and not yet sent", value=outbox.pending)
        yield GaugeMetricFamily("eventapp_outbox_oldest_pending_age_seconds",
                                "Age of the oldest mail still queued (0 when none)", value=max(0.0, outbox.oldest_age_s or 0.0))
        yield GaugeMetricFamily("eventapp_outbox_failed", "Mails given up after MAIL_MAX_ATTEMPTS", value=outbox.failed)


class _ProcessRegistry(Collector):
    """This process's own metrics (the default registry: ours plus process and Python collectors)."""

    def collect(self):
        return REGISTRY.collect()


def _scrape_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess
        multiprocess.MultiProcessCollector(registry)  # every worker's files, summed
    else:
        registry.register(_ProcessRegistry())
    registry.register(_OutboxCollector())
    return registry


def _is_loopback(address: str | None) -> bool:
    try:
        return ipaddress.ip_address((address or "").split("%")[0]).is_loopback
    except ValueError:
        return False


def _allowed() -> bool:
    token = current_app.config.get("METRICS_TOKEN") or ""
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())
    # No token: the machine itself only. The TCP peer is what ProxyFix saw before it rewrote
    # REMOTE_ADDR; behind a local proxy the peer is always 127.0.0.1, so the forwarded client must
    # be local too (an outside request through nginx carries its real address there). Without
    # TRUSTED_PROXY_HOPS a forwarded request cannot be judged: refused (a scraper sends no such header).
    peer = request.environ.get("werkzeug.proxy_fix.orig", {}).get("REMOTE_ADDR", request.environ.get("REMOTE_ADDR"))
    if not current_app.config.get("TRUSTED_PROXY_HOPS") and any(h in request.headers for h in FORWARDING_HEADERS):
        return False
    return _is_loopback(peer) and _is_loopback(request.remote_addr)


@bp.get("/metrics")
def metrics() -> Response:
    if not _allowed():
        abort(403 if not current_app.config.get("METRICS_TOKEN") else 401)
    return Response(generate_latest(_scrape_registry()), content_type=CONTENT_TYPE_LATEST,
                    headers={"Cache-Control": "no-store"})


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
