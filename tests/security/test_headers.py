"""Response headers (CSP without inline script, frame and MIME protection, HSTS over https), templates
that need no inline script or style, production cookies and the production secret check."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from eventapp import PROJECT_ROOT, create_app
from eventapp.security import CONTENT_SECURITY_POLICY
from tests.conftest import make_event, make_registration

# Templates a browser shows. PDF templates are rendered by WeasyPrint on the server (no CSP there)
# and mail templates are plain text.
SERVED_TEMPLATES = [p for p in (PROJECT_ROOT / "templates").rglob("*.html")
                    if p.relative_to(PROJECT_ROOT / "templates").parts[0] not in ("pdf", "mail")]


def directives(policy: str) -> dict[str, list[str]]:
    return {part.split()[0]: part.split()[1:] for part in policy.split(";") if part.strip()}


def test_policy_allows_no_inline_code_and_no_framing():
    policy = directives(CONTENT_SECURITY_POLICY)
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"]
    assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY and "'unsafe-eval'" not in CONTENT_SECURITY_POLICY
    assert policy["frame-ancestors"] == ["'none'"]
    assert "data:" in policy["img-src"]  # QR codes
    assert policy["worker-src"] == ["'self'"]  # the check-in service worker
    assert policy["object-src"] == ["'none'"]


@pytest.mark.parametrize("path", SERVED_TEMPLATES, ids=lambda p: str(p.relative_to(PROJECT_ROOT / "templates")))
def test_templates_have_no_inline_script_or_style(path: Path):
    html = path.read_text()
    for match in re.finditer(r"<script\b[^>]*>", html):
        if 'type="application/ld+json"' in match.group(0):
            continue  # schema.org data, never run (the CSP does not apply to it; tojson escapes `<`)
        assert "src=" in match.group(0), f"inline <script> in {path.name}: move it to static/js"
    assert not re.search(r"\son[a-z]+\s*=", html), f"inline event handler in {path.name}"
    assert "javascript:" not in html
    assert not re.search(r"<style\b", html), f"<style> block in {path.name}: move it to static/css"
    assert not re.search(r"\sstyle\s*=", html), f"style attribute in {path.name}"


@pytest.fixture
def pages(app):
    with app.app_context():
        event = make_event()
        registration = make_registration(event)
        return ["/", f"/events/{event.slug}", f"/events/{event.slug}/register", f"/r/{registration.manage_token}",
                f"/r/{registration.manage_token}/ticket.png", "/staff/login", "/api/v1/events", "/no-such-page",
                "/static/css/app.css", "/checkin/sw.js"]


def test_every_response_carries_the_security_headers(client, pages):
    for url in pages:
        response = client.get(url)
        assert response.status_code in (200, 404), url
        headers = response.headers
        assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY, url
        assert headers["X-Content-Type-Options"] == "nosniff", url
        assert headers["X-Frame-Options"] == "DENY", url
        assert headers["Referrer-Policy"] in ("same-origin", "no-referrer"), url
        assert "Strict-Transport-Security" not in headers, url  # plain http: HSTS would be ignored anyway
    assert client.get(pages[3]).headers["Referrer-Policy"] == "no-referrer"  # token page keeps its stricter one


def test_hsts_over_https(client, pages):
    response = client.get("/", base_url="https://events.example.jp")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")


def test_production_refuses_to_start_without_a_secret(monkeypatch):
    monkeypatch.setenv("EVENTAPP_ENV", "production")
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://"})


def test_production_refuses_the_development_secret(monkeypatch):
    from eventapp.config import _instance_secret
    dev_secret = _instance_secret(PROJECT_ROOT / "instance")
    monkeypatch.setenv("EVENTAPP_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", dev_secret)
    with pytest.raises(RuntimeError, match="development SECRET_KEY"):
        create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://"})
    monkeypatch.setenv("SECRET_KEY", "short")
    with pytest.raises(RuntimeError, match="too short"):
        create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://"})


def test_production_cookies_are_host_only_secure_and_httponly(monkeypatch, database_url, app):
    monkeypatch.setenv("EVENTAPP_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", "p" * 64)
    monkeypatch.setenv("RATELIMIT_STORAGE_URI", "memory://")
    production = create_app({"SQLALCHEMY_DATABASE_URI": database_url, "MAIL_BACKEND": "null"})
    assert production.config["SESSION_COOKIE_NAME"] == "__Host-session"
    assert production.config["REMEMBER_COOKIE_SECURE"] is True
    client = production.test_client()
    response = client.get("/staff/login", base_url="https://events.example.jp")
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("__Host-session="), cookie
    attributes = {a.strip().split("=")[0].lower(): a for a in cookie.split(";")[1:]}
    assert {"secure", "httponly", "path", "samesite"} <= set(attributes), cookie
    assert attributes["path"].strip() == "Path=/" and "domain" not in attributes
    assert attributes["samesite"].strip() == "SameSite=Lax"
    # Production also tells browsers to stay on https.
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    cookies = client.get("/?lang=en", base_url="https://events.example.jp").headers.getlist("Set-Cookie")
    lang = next(c for c in cookies if c.startswith("lang="))
    assert lang.startswith("lang=en;") and "Secure" in lang and "HttpOnly" in lang


def test_behind_a_proxy_the_client_address_and_https_come_from_the_proxy(monkeypatch, database_url, app):
    monkeypatch.setenv("TRUSTED_PROXY_HOPS", "1")
    monkeypatch.setenv("RATELIMIT_STORAGE_URI", "memory://")
    proxied = create_app({"SQLALCHEMY_DATABASE_URI": database_url, "MAIL_BACKEND": "null", "SECRET_KEY": "x" * 40})
    response = proxied.test_client().get("/", headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"})
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    # Without the setting the same headers are ignored (a client could forge them).
    assert "Strict-Transport-Security" not in app.test_client().get(
        "/", headers={"X-Forwarded-Proto": "https"}).headers
