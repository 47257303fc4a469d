"""Security wiring in one place: response headers (CSP, HSTS, …), rate limits on the endpoints that
take sign-ups, secret tokens or check-ins, the shared rate-limit storage and the production checks.

`configure(app)` runs before Flask-Limiter is initialised, `init_app(app)` after the blueprints.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from flask import Flask, Request, Response, current_app, request, session
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_limiter.util import get_remote_address

from .extensions import limiter

# No 'unsafe-inline' anywhere: scripts and styles come from /static only (behaviour is wired in
# static/js via data- attributes). img data: for QR codes, blob:/mediastream: for the door camera.
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    "media-src 'self' blob: mediastream:",
    "connect-src 'self'",
    "worker-src 'self'",
    "manifest-src 'self'",
    "font-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])
HSTS = "max-age=31536000; includeSubDomains"
MIN_PRODUCTION_SECRET_LENGTH = 32


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, with the signing serializer built only for a request that sent
    a session cookie: API calls and first visits (most requests of a sign-up rush) carry none, and
    building it cost them more than the rest of opening the session."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if app.secret_key and not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()
        return super().open_session(app, request)


def configure(app: Flask) -> None:
    """Refuse unsafe production settings; point database:// rate-limit storage at the app's database."""
    if app.config.get("EVENTAPP_ENV") == "production":
        _check_production_secret(app)
    app.session_interface = SessionInterface()
    from .metrics import count_rate_limit_refusal
    app.config.setdefault("RATELIMIT_ON_BREACH_CALLBACK", count_rate_limit_refusal)  # /metrics: refusals per scope
    if str(app.config.get("RATELIMIT_STORAGE_URI", "")).startswith("database://"):
        from . import ratelimit_storage  # noqa: F401  (registers the database:// scheme with `limits`)

        app.config["RATELIMIT_STORAGE_OPTIONS"] = {
            "url": app.config["SQLALCHEMY_DATABASE_URI"],
            # Short: a counter is one tiny write; waiting 30 s for it would only hold the worker.
            "busy_timeout_s": min(5.0, app.config["SQLITE_BUSY_TIMEOUT_S"]),
        }


def _check_production_secret(app: Flask) -> None:
    secret = str(app.config.get("SECRET_KEY") or "")
    dev_file = Path(app.instance_path) / "secret_key"
    dev_secret = dev_file.read_text().strip() if dev_file.exists() else None
    if not secret or secret == dev_secret:
        raise RuntimeError("EVENTAPP_ENV=production refuses the development SECRET_KEY: set SECRET_KEY in the "
                           "environment. 本番環境では開発用の SECRET_KEY は使えません。")
    if len(secret) < MIN_PRODUCTION_SECRET_LENGTH:
        raise RuntimeError(f"SECRET_KEY is too short for production (at least {MIN_PRODUCTION_SECRET_LENGTH} "
                           "characters, e.g. secrets.token_hex(32)).")


def init_app(app: Flask) -> None:
    if hops := app.config.get("TRUSTED_PROXY_HOPS", 0):
        # The client's address (rate limits) and https (HSTS, secure cookies) as the proxy saw them.
        from werkzeug.middleware.proxy_fix import ProxyFix
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    app.after_request(_security_headers)
    _apply_rate_limits(app)
    _drop_global_limit_check(app)


def _drop_global_limit_check(app: Flask) -> None:
    """Every limit here is a decorator on its view, checked when the view runs; Flask-Limiter's
    before_request hook would only look for default or blueprint limits, of which there are none,
    on every request of the app. Kept if such limits are ever configured."""
    manager = limiter.limit_manager
    if manager.default_limits or manager.application_limits or manager._blueprint_limits:
        return
    hooks = app.before_request_funcs.get(None, [])
    app.before_request_funcs[None] = [hook for hook in hooks if hook != limiter._check_request_limit]


def _security_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    # Token pages set no-referrer themselves; everywhere else the path stays on this site.
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Permissions-Policy", "camera=(self), microphone=(), geolocation=()")
    if request.is_secure or current_app.config.get("PREFERRED_URL_SCHEME") == "https":
        headers.setdefault("Strict-Transport-Security", HSTS)
    return response


# --- rate limits ---------------------------------------------------------------------------------

def checkin_client_key() -> str:
    """Check-in is limited per staff member (a door team shares one NAT address).

    Reads the session, not `current_user`: loading the user would open the request's transaction (on
    SQLite a write lock for POST) before the limiter writes its counter on another connection."""
    user_id = session.get("_user_id")  # Flask-Login's key
    if user_id:
        return f"user:{user_id}"
    auth = request.headers.get("Authorization", "")
    if auth:
        return "bearer:" + hashlib.sha256(auth.encode()).hexdigest()[:32]
    return "ip:" + get_remote_address()


def my_link_address_key() -> str:
    """The マイページ link form is limited per address asked for (hashed; known or not alike)."""
    from .services.mypage import address_key
    return "my-address:" + address_key(request.form.get("email", ""))


def _config_limit(name: str) -> Callable[[], str]:
    return lambda: current_app.config[name]


# scope → (config key, key function, methods or None for all, endpoints)
RATE_LIMITED_ENDPOINTS: dict[str, tuple[str, Callable[[], str], list[str] | None, tuple[str, ...]]] = {
    "signup": ("SIGNUP_RATE_LIMIT", get_remote_address, ["POST"],
               ("public.signup", "api.create_registration")),
    "token": ("TOKEN_RATE_LIMIT", get_remote_address, None,
              ("public.manage", "public.cancel", "public.registration_ics", "public.ticket_pdf", "public.ticket_png",
               "public.receipt_pdf", "public.receipt_name",
               "matching_public.invitation", "matching_public.attendance_code", "matching_public.survey",
               "api.get_registration", "api.cancel_registration", "mypage.open_link",
               "public.announcement_opt_in", "public.announcement_unsubscribe")),
    "feed": ("FEED_RATE_LIMIT", get_remote_address, None, ("public.person_feed",)),
    # Asking for a マイページ sign-in link: per client IP and, separately, per address asked for.
    "my_link_ip": ("MY_LINK_IP_RATE_LIMIT", get_remote_address, ["POST"], ("mypage.request_link",)),
    "my_link_address": ("MY_LINK_RATE_LIMIT", my_link_address_key, ["POST"], ("mypage.request_link",)),
    # Writes only: the screen polls its counters and roster, and those reads need no budget.
    "checkin": ("CHECKIN_RATE_LIMIT", checkin_client_key, ["POST", "DELETE"],
                ("checkin.undo", "checkin_api.create_checkin", "checkin_api.checkin_batch",
                 "checkin_api.undo_checkin", "checkin_api.create_walkin", "payments_api.create_payment")),
}

# Views that count against a scope only for some requests: the sign-up page opened with a personal
# invitation token (`?invite=`) is a token page like /invite/<token> (150 of 150 guesses went through
# before), while the plain sign-up page is not limited. endpoint → (scope, exempt when).
CONDITIONAL_LIMITS: dict[str, tuple[str, Callable[[], bool]]] = {
    "public.signup": ("token", lambda: request.method != "GET" or not request.args.get("invite")),
}

# Flask-Limiter is one global object keyed by view function: wrap each view once per process,
# and give later apps (tests create several) the same wrapper instead of registering it twice.
_wrapped: dict[Callable, Callable] = {}
_wrapped_conditional: dict[Callable, Callable] = {}
_decorators: dict[str, Callable] = {}


def _scope_decorator(scope: str) -> Callable:
    if scope not in _decorators:
        config_key, key_func, methods, _endpoints = RATE_LIMITED_ENDPOINTS[scope]
        _decorators[scope] = limiter.shared_limit(_config_limit(config_key), scope=scope, key_func=key_func,
                                                  methods=methods)
    return _decorators[scope]


def _apply_rate_limits(app: Flask) -> None:
    # An endpoint may carry several scopes (e.g. per IP and per address): its decorators are stacked,
    # and Flask-Limiter checks all of them in the innermost one.
    scopes_of: dict[str, list[str]] = {}
    for scope, (_key, _func, _methods, endpoints) in RATE_LIMITED_ENDPOINTS.items():
        for endpoint in endpoints:
            scopes_of.setdefault(endpoint, []).append(scope)
    for endpoint, scopes in scopes_of.items():
        view = app.view_functions.get(endpoint)
        if view is None or view in _wrapped.values():
            continue
        if view not in _wrapped:
            wrapped = view
            for scope in scopes:
                wrapped = _scope_decorator(scope)(wrapped)
            _wrapped[view] = wrapped
        app.view_functions[endpoint] = _wrapped[view]
    # Stacked on the wrappers above: Flask-Limiter checks every limit of a view in its innermost
    # wrapper, and limits of the same scope share one counter (so /r/<token> guesses count too).
    for endpoint, (scope, exempt_when) in CONDITIONAL_LIMITS.items():
        config_key, key_func, _, _ = RATE_LIMITED_ENDPOINTS[scope]
        view = app.view_functions.get(endpoint)
        if view is None or view in _wrapped_conditional.values():
            continue
        if view not in _wrapped_conditional:
            _wrapped_conditional[view] = limiter.shared_limit(
                _config_limit(config_key), scope=scope, key_func=key_func, exempt_when=exempt_when)(view)
        app.view_functions[endpoint] = _wrapped_conditional[view]


def rate_limited_endpoints() -> dict[str, str]:
    """endpoint → scope (several joined by ", "), for tests and the README."""
    scopes: dict[str, list[str]] = {}
    for scope, (_, _, _, endpoints) in RATE_LIMITED_ENDPOINTS.items():
        for endpoint in endpoints:
            scopes.setdefault(endpoint, []).append(scope)
    return {endpoint: ", ".join(names) for endpoint, names in scopes.items()}
