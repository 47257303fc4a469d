"""Observability (issue 22, item 3): request ids, JSON request logs, /metrics, /healthz and /readyz."""

from __future__ import annotations

import io
import json
import logging
from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from eventapp import create_app
from eventapp.extensions import db
from eventapp.models import OutboxMessage, Registration
from eventapp.models.base import utcnow
from eventapp.observability import ACCESS_LOGGER
from eventapp.services import checkin as checkin_service
from eventapp.services import registration as registration_service
from eventapp.services.accounts import create_token, create_user
from tests.factories import make_checkin_event, make_event, make_registration, person_input
from tests.staff_support import login, make_user


def child_app(app, **overrides):
    """Another app on the session's database with some settings changed (before its first request)."""
    config = {k: v for k, v in app.config.items() if k.startswith(("SQLALCHEMY_", "SECRET", "MAIL_", "RATELIMIT_"))
              or k.endswith("_RATE_LIMIT")}
    return create_app({**config, "TESTING": True, **overrides})


def scrape(client, **kwargs) -> dict[str, dict[tuple, float]]:
    """GET /metrics parsed by prometheus-client's own parser: sample name → {labels: value}."""
    response = client.get("/metrics", **kwargs)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def value(samples, name: str, **labels) -> float:
    return samples.get(name, {}).get(tuple(sorted(labels.items())), 0.0)


# --- /metrics ------------------------------------------------------------------------------------------

def test_metrics_count_requests_signups_promotions_checkins_and_read_the_outbox(app, client):
    before = scrape(client)
    with app.app_context():
        event = make_checkin_event(capacity=1)
        seated, waiting = make_registration(event).id, make_registration(event).id
        # A sign-up rolled back is not counted: counters follow commits.
        registration_service.register(event.id, person_input(), {}, consent=True)
        db.session.rollback()
        registration_service.register(event.id, person_input(), {}, consent=True)
        db.session.close()  # ended without a commit, as a request's session is removed after an error
        registration_service.cancel(seated)
        db.session.commit()
        checkin_service.check_in(event.id, db.session.get(Registration, waiting).ticket_code, "metrics-nonce-1")
        db.session.commit()
        checkin_service.check_in(event.id, db.session.get(Registration, waiting).ticket_code, "metrics-nonce-2")
        db.session.commit()  # already checked in: no new check-in
        pending = db.session.query(OutboxMessage).filter_by(status="pending").count()
        db.session.add(OutboxMessage(kind="test", to_addr="x@example.com", subject="s", body="b", status="failed"))
        slug = event.slug
        db.session.commit()
    assert client.get(f"/events/{slug}").status_code == 200
    assert client.get("/no/such/page").status_code == 404
    after = scrape(client)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("eventapp_signups_total", result="confirmed") == 1
    assert delta("eventapp_signups_total", result="waitlisted") == 1
    assert delta("eventapp_waitlist_promotions_total") == 1
    assert delta("eventapp_checkins_total") == 1
    assert delta("eventapp_http_requests_total", endpoint="public.event_detail", method="GET", status_class="2xx") == 1
    # Unmatched paths share one label: a URL is never a label value.
    assert delta("eventapp_http_requests_total", endpoint="unmatched", method="GET", status_class="4xx") == 1
    assert delta("eventapp_http_request_duration_seconds_count", endpoint="public.event_detail",
                 status_class="2xx") == 1
    assert value(after, "eventapp_http_request_duration_seconds_bucket", endpoint="public.event_detail",
                 status_class="2xx", le="+Inf") >= 1
    assert value(after, "eventapp_outbox_pending") == pending > 0
    assert value(after, "eventapp_outbox_failed") == 1
    assert value(after, "eventapp_outbox_oldest_pending_age_seconds") >= 0
    assert value(after, "eventapp_database_up") == 1


def test_metrics_oldest_pending_age_and_failed_sends(app, client):
    with app.app_context():
        old = utcnow() - timedelta(minutes=7)
        db.session.add(OutboxMessage(kind="test", to_addr="x@example.com", subject="s", body="b",
                                     created_at=old, next_attempt_at=old))
        db.session.commit()
    samples = scrape(client)
    assert 7 * 60 <= value(samples, "eventapp_outbox_oldest_pending_age_seconds") < 8 * 60
    assert value(samples, "eventapp_outbox_pending") == 1
    with app.app_context():
        app.config["MAIL_BACKEND"] = "smtp"
        app.config["MAIL_SERVER"], app.config["MAIL_PORT"] = "127.0.0.1", 9  # nothing listens: a failure
        try:
            from eventapp.services.mail import deliver_due
            assert deliver_due() == (0, 1)
        finally:
            app.config["MAIL_BACKEND"] = "file"
    assert value(scrape(client), "eventapp_mail_send_failures_total") >= 1


def test_rate_limit_refusals_are_counted_per_scope(app):
    limited = child_app(app, TOKEN_RATE_LIMIT="2/minute", RATELIMIT_STORAGE_URI="memory://")
    client = limited.test_client()
    before = value(scrape(client), "eventapp_rate_limit_refusals_total", scope="token")
    statuses = [client.get(f"/r/guess-{n}", environ_base={"REMOTE_ADDR": "192.0.2.44"}).status_code
                for n in range(4)]
    assert statuses == [404, 404, 429, 429]
    assert value(scrape(client), "eventapp_rate_limit_refusals_total", scope="token") - before == 2


def test_metrics_without_token_only_from_this_machine(app, client):
    assert client.get("/metrics").status_code == 200  # the test client's peer is 127.0.0.1
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "::1"}).status_code == 200
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "203.0.113.7"}).status_code == 403
    # Behind a local proxy the peer is always 127.0.0.1: the forwarded client decides.
    proxied = child_app(app, TRUSTED_PROXY_HOPS=1).test_client()
    outside = proxied.get("/metrics", headers={"X-Forwarded-For": "203.0.113.7"})
    assert outside.status_code == 403
    assert proxied.get("/metrics", headers={"X-Forwarded-For": "127.0.0.1"}).status_code == 200
    # Without TRUSTED_PROXY_HOPS a forwarded request cannot be judged (nginx on this host, hops not set): refused.
    assert client.get("/metrics", headers={"X-Forwarded-For": "127.0.0.1"},
                      environ_base={"REMOTE_ADDR": "203.0.113.7"}).status_code == 403
    assert client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.7"}).status_code == 403
    assert client.get("/metrics", headers={"X-Real-IP": "203.0.113.7"}).status_code == 403


def test_metrics_with_token_need_it_from_anywhere(app):
    client = child_app(app, METRICS_TOKEN="s3cret-metrics-token").test_client()
    assert client.get("/metrics").status_code == 401  # even locally
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    samples = scrape(client, headers={"Authorization": "Bearer s3cret-metrics-token"},
                     environ_base={"REMOTE_ADDR": "203.0.113.7"})
    assert "eventapp_http_requests_total" in samples


# --- request ids ---------------------------------------------------------------------------------------

def test_request_id_is_taken_when_sane_and_made_otherwise(client):
    assert client.get("/healthz", headers={"X-Request-ID": "lb-1234.abc_DEF"}).headers["X-Request-ID"] == \
        "lb-1234.abc_DEF"
    for bad in ("x" * 65, "a b", "id;Set-Cookie=x", "<script>", "ü", ""):
        made = client.get("/healthz", headers={"X-Request-ID": bad}).headers["X-Request-ID"]
        assert made != bad and len(made) == 32 and int(made, 16) >= 0
    first, second = (client.get("/healthz").headers["X-Request-ID"] for _ in range(2))
    assert first != second


def test_request_id_on_error_pages_and_api_errors(app, client):
    failing = child_app(app, PROPAGATE_EXCEPTIONS=False)

    def boom():
        raise RuntimeError("a bug")

    def outage():
        raise OperationalError("SELECT 1", {}, Exception("server closed the connection"))

    failing.add_url_rule("/boom", "boom", boom)
    failing.add_url_rule("/outage", "outage", outage)
    failing.add_url_rule("/api/v1/boom", "api_boom", boom)
    failing.logger.disabled = True  # the traceback of the deliberate bug
    try:
        test = failing.test_client()
        for path, status in (("/boom", 500), ("/outage", 503)):
            page = test.get(path, headers={"X-Request-ID": f"ref-{status}"})
            assert page.status_code == status
            assert page.headers["X-Request-ID"] == f"ref-{status}"
            assert "<code>ref-" + str(status) + "</code>" in page.get_data(as_text=True)
        api = test.get("/api/v1/boom")
        assert api.status_code == 500
        assert api.get_json()["error"]["request_id"] == api.headers["X-Request-ID"]
    finally:
        failing.logger.disabled = False
    missing = client.get("/api/v1/events/999999")
    assert missing.get_json()["error"]["request_id"] == missing.headers["X-Request-ID"]
    # A 404 page is the visitor's mistake: no reference to quote.
    assert "request-id" not in client.get("/no/such/page").get_data(as_text=True)


# --- JSON request log ----------------------------------------------------------------------------------

@pytest.fixture
def json_log(app):
    logged = child_app(app, LOG_FORMAT="json")
    stream = io.StringIO()
    handlers = list(logging.getLogger(ACCESS_LOGGER).handlers)
    assert handlers, "LOG_FORMAT=json adds the JSON handler"
    previous = [h.stream for h in handlers]
    for handler in handlers:
        handler.setStream(stream)
    yield logged, stream
    for handler, old in zip(handlers, previous, strict=True):
        handler.setStream(old)


def test_json_log_line_per_request_with_the_rule_and_no_personal_data(app, json_log):
    logged, stream = json_log
    with app.app_context():
        event = make_event()
        registration = make_registration(event, email="hanako.secret@example.com", name="秘密 花子")
        token, email, name = registration.manage_token, "hanako.secret@example.com", "秘密 花子"
        event_id = event.id
        staff_email = make_user("admin").email
        create_user("api@example.jp", "staff", password="correct horse battery")
        api_token = create_token("api@example.jp")
        db.session.commit()
    client = logged.test_client()
    assert client.get(f"/r/{token}?email={email}", headers={"X-Request-ID": "trace-1"}).status_code == 200
    login(client, staff_email)
    assert client.get("/staff/").status_code == 200
    api = logged.test_client().get(f"/api/v1/events/{event_id}/registrations",
                                   headers={"Authorization": f"Bearer {api_token}"})
    assert api.status_code == 200

    raw = stream.getvalue()
    lines = [json.loads(line) for line in raw.splitlines()]
    assert len(lines) >= 4  # manage page, login GET and POST, staff page, API
    manage = next(line for line in lines if line["request_id"] == "trace-1")
    assert manage["route"] == "/r/<token>" and manage["endpoint"] == "public.manage"
    assert manage["method"] == "GET" and manage["status"] == 200
    assert isinstance(manage["duration_ms"], float) and manage["duration_ms"] >= 0
    assert "user_id" not in manage and "api_token_id" not in manage
    staff = next(line for line in lines if line["endpoint"] == "staff.dashboard")
    with app.app_context():
        from eventapp.models import ApiToken, User
        assert staff["user_id"] == db.session.query(User).filter_by(email=staff_email).one().id
        api_line = next(line for line in lines if line["endpoint"] == "api.list_registrations")
        assert api_line["api_token_id"] == db.session.query(ApiToken).one().id
    for secret in (token, email, "hanako.secret", name, api_token, staff_email):
        assert secret not in raw


def test_no_request_log_unless_switched_on(app, client, json_log):
    _logged, stream = json_log
    client.get("/healthz")  # the session's app: LOG_FORMAT unset
    assert stream.getvalue() == ""


# --- /healthz and /readyz ------------------------------------------------------------------------------

def test_healthz_needs_no_database(app):
    dead = child_app(app, SQLALCHEMY_DATABASE_URI="postgresql://nobody@127.0.0.1:9/nothing",
                     SQLALCHEMY_ENGINE_OPTIONS={"connect_args": {"connect_timeout": 1}})
    client = dead.test_client()
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.get_json()["checks"]["database"]["ok"] is False
    assert "migrations" not in ready.get_json()["checks"]


def test_readyz_ok_when_database_migrated_and_outbox_moving(app, client):
    with app.app_context():
        make_registration(make_event())  # fresh mail in the outbox is fine
    response = client.get("/readyz")
    assert response.status_code == 200, response.get_json()
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["status"] == "ok"
    assert {name: check["ok"] for name, check in body["checks"].items()} == {
        "database": True, "migrations": True, "outbox": True}


def test_readyz_fails_on_a_stuck_outbox(app, client):
    with app.app_context():
        stale = utcnow() - timedelta(minutes=20)
        db.session.add(OutboxMessage(kind="test", to_addr="x@example.com", subject="s", body="b",
                                     created_at=stale, next_attempt_at=stale))
        # Waiting for its retry after failures is not stuck: it is not due yet.
        db.session.add(OutboxMessage(kind="test", to_addr="y@example.com", subject="s", body="b",
                                     created_at=stale, next_attempt_at=utcnow() + timedelta(minutes=30)))
        db.session.commit()
    response = client.get("/readyz")
    assert response.status_code == 503
    checks = response.get_json()["checks"]
    assert checks["outbox"]["ok"] is False and "waited" in checks["outbox"]["detail"]
    assert checks["database"]["ok"] and checks["migrations"]["ok"]
    # The limit is configurable (0: not checked).
    assert child_app(app, READY_OUTBOX_MAX_DELAY_S=0).test_client().get("/readyz").status_code == 200
    assert child_app(app, READY_OUTBOX_MAX_DELAY_S=3600).test_client().get("/readyz").status_code == 200


def test_readyz_fails_when_the_schema_is_not_at_the_head(app, client):
    with app.app_context():
        head = db.session.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        db.session.execute(text("UPDATE alembic_version SET version_num = 'an_older_revision'"))
        db.session.commit()
        try:
            response = client.get("/readyz")
        finally:
            db.session.execute(text("UPDATE alembic_version SET version_num = :head"), {"head": head})
            db.session.commit()
    assert response.status_code == 503
    migrations = response.get_json()["checks"]["migrations"]
    assert migrations["ok"] is False
    assert "an_older_revision" in migrations["detail"] and head in migrations["detail"]
    assert client.get("/readyz").status_code == 200
