"""Settings read from the environment; `create_app(overrides)` can replace any of them."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

DEV_SECRET_FILE = "secret_key"


def _instance_secret(instance_path: Path) -> str:
    """A development secret generated once and kept in instance/ so sessions survive restarts."""
    path = instance_path / DEV_SECRET_FILE
    if path.exists():
        return path.read_text().strip()
    instance_path.mkdir(parents=True, exist_ok=True)
    value = secrets.token_hex(32)
    path.write_text(value)
    path.chmod(0o600)
    return value


def _secret_key(instance_path: Path, production: bool) -> str:
    if env_secret := os.environ.get("SECRET_KEY"):
        return env_secret
    if production:
        # Never fall back to the generated development secret: sessions and CSRF tokens depend on it.
        raise RuntimeError(
            "EVENTAPP_ENV=production requires the SECRET_KEY environment variable "
            "(e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`). "
            "本番環境では SECRET_KEY 環境変数を設定してください。")
    return _instance_secret(instance_path)


def load_config(instance_path: Path) -> dict:
    env = os.environ
    default_db = f"sqlite:///{instance_path / 'eventapp.sqlite3'}"
    production = env.get("EVENTAPP_ENV", "development") == "production"
    return {
        "EVENTAPP_ENV": "production" if production else "development",
        "SECRET_KEY": _secret_key(instance_path, production),
        "SQLALCHEMY_DATABASE_URI": normalise_db_url(env.get("DATABASE_URL") or default_db),
        "PORT": int(env.get("PORT", "5000")),
        # Absolute base for links in mails and calendars (requests use their own host).
        # Default: the port the app is served on (`make run PORT=8080` → links to :8080).
        "PUBLIC_BASE_URL": env.get("PUBLIC_BASE_URL") or f"http://127.0.0.1:{int(env.get('PORT', '5000'))}",
        "MAIL_BACKEND": env.get("MAIL_BACKEND", "smtp" if env.get("MAIL_SERVER") else "file"),
        "MAIL_SERVER": env.get("MAIL_SERVER", ""),
        "MAIL_PORT": int(env.get("MAIL_PORT", "587")),
        "MAIL_USERNAME": env.get("MAIL_USERNAME", ""),
        "MAIL_PASSWORD": env.get("MAIL_PASSWORD", ""),
        "MAIL_USE_TLS": env.get("MAIL_USE_TLS", "1") == "1",
        "MAIL_SENDER": env.get("MAIL_SENDER", "遠恋複業課 事務局 <noreply@example.jp>"),
        "MAIL_FILE_DIR": env.get("MAIL_FILE_DIR", str(instance_path / "mail")),
        "MAIL_MAX_ATTEMPTS": int(env.get("MAIL_MAX_ATTEMPTS", "8")),
        # A sender's claim on the mails it is sending; renewed every third of it while it sends, so a
        # sender that died leaves its mails to the next one within this many seconds (services/mail.py).
        "MAIL_LEASE_S": float(env.get("MAIL_LEASE_S", "30")),
        # after_response: the web worker sends a request's mail once its response is out (no extra
        # process to run). sender: web workers only queue; `flask send-mail --watch` sends.
        "MAIL_DELIVERY": env.get("MAIL_DELIVERY", "after_response"),
        # The sender holds mail back while more than this many mails per second are being queued (a
        # sign-up rush; 0: never), for at most MAIL_RUSH_MAX_DEFER_S seconds (services/mail.py).
        "MAIL_RUSH_RATE": float(env.get("MAIL_RUSH_RATE", "20")),
        "MAIL_RUSH_MAX_DEFER_S": float(env.get("MAIL_RUSH_MAX_DEFER_S", "30")),
        "ORGANISER_NAME": env.get("ORGANISER_NAME", "岩手県 遠恋複業課 事務局"),
        # The sender identification every announcement carries (特定電子メール法 第4条): postal address and a
        # contact (phone / address / URL). Announcements are refused while either is empty (production default).
        "ORGANISER_ADDRESS": env.get("ORGANISER_ADDRESS", "" if production else "〒020-8570 岩手県盛岡市内丸10-1(開発用)"),
        "ORGANISER_CONTACT": env.get("ORGANISER_CONTACT", "" if production else "019-000-0000 / enren@example.jp(開発用)"),
        # Optional mailto: target of List-Unsubscribe (a mailbox someone reads); the https one-click link is always given.
        "ANNOUNCEMENT_UNSUBSCRIBE_MAILTO": env.get("ANNOUNCEMENT_UNSUBSCRIBE_MAILTO", ""),
        # 領収書 (receipts) also name ORGANISER_ADDRESS, and if registered the 適格請求書発行事業者登録番号
        # (T + 13 digits; checked at start-up, see services/payments.py).
        "INVOICE_REGISTRATION_NUMBER": env.get("INVOICE_REGISTRATION_NUMBER", ""),
        # How to pay a fee (bank details for 振込), stated in confirmation and reminder mails of paid events;
        # empty: "pay in cash at the desk on the day" (translated).
        "PAYMENT_INSTRUCTIONS": env.get("PAYMENT_INSTRUCTIONS", ""),
        # An absolute image URL for shared links' previews (og:image) and event data; none: text-only cards.
        "SITE_IMAGE_URL": env.get("SITE_IMAGE_URL", ""),
        "BABEL_DEFAULT_LOCALE": "ja",
        "BABEL_DEFAULT_TIMEZONE": "Asia/Tokyo",
        "LANGUAGES": ["ja", "en"],
        "WTF_CSRF_TIME_LIMIT": None,  # a sign-up form left open on a phone for hours must still submit
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        # Production: HTTPS only, and the __Host- prefix makes browsers refuse the cookie unless it is
        # Secure, host-only and for path / (no subdomain or plain-http page can plant or read it).
        "SESSION_COOKIE_SECURE": production or env.get("SESSION_COOKIE_SECURE", "0") == "1",
        "SESSION_COOKIE_NAME": "__Host-session" if production else "session",
        "SESSION_COOKIE_PATH": "/",
        "REMEMBER_COOKIE_SECURE": production or env.get("SESSION_COOKIE_SECURE", "0") == "1",
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        # Staff sessions (eventapp/auth): out after this many seconds without a request, and this long after
        # login whatever happens; logout and account changes end them at once (users.session_version).
        "STAFF_IDLE_TIMEOUT": int(env.get("STAFF_IDLE_TIMEOUT", str(8 * 3600))),
        "STAFF_SESSION_LIFETIME": int(env.get("STAFF_SESSION_LIFETIME", str(7 * 24 * 3600))),
        "PREFERRED_URL_SCHEME": "https" if production else "http",
        # Rate limits (Flask-Limiter syntax). database:// keeps the counters in the app's database, shared by
        # all gunicorn workers; redis://host:6379 also works; memory:// counts per worker process.
        "RATELIMIT_STORAGE_URI": env.get("RATELIMIT_STORAGE_URI", "database://"),
        "RATELIMIT_HEADERS_ENABLED": True,
        # Reverse proxies in front of gunicorn that set X-Forwarded-For/-Proto (0: none, trust nothing).
        "TRUSTED_PROXY_HOPS": int(env.get("TRUSTED_PROXY_HOPS", "0")),
        # json: one JSON line per request on stderr (eventapp/observability.py); anything else: no request log.
        "LOG_FORMAT": env.get("LOG_FORMAT", "text"),
        # GET /metrics needs `Authorization: Bearer <this>`; unset: only requests from this machine.
        "METRICS_TOKEN": env.get("METRICS_TOKEN", ""),
        # /readyz fails while a due mail has waited longer than this many seconds (no sender running;
        # 0: not checked). Mails waiting for a retry after a failure are not due yet.
        "READY_OUTBOX_MAX_DELAY_S": float(env.get("READY_OUTBOX_MAX_DELAY_S", "900")),
        # Server-Timing header with wall and CPU time on every response (benchmarks, profiling).
        "SERVER_TIMING": env.get("SERVER_TIMING", "0") == "1",
        # A storage outage lets requests through (logged) rather than turning sign-ups into errors.
        "RATELIMIT_SWALLOW_ERRORS": env.get("RATELIMIT_SWALLOW_ERRORS", "1") == "1",
        "LOGIN_RATE_LIMIT": env.get("LOGIN_RATE_LIMIT", "10/minute"),  # per client IP, submitted passwords
        "SIGNUP_RATE_LIMIT": env.get("SIGNUP_RATE_LIMIT", "20/minute"),  # per IP, sign-up form and API POSTs
        # Per IP over all secret-token pages (my registration, ticket, cancel, survey, invitations).
        "TOKEN_RATE_LIMIT": env.get("TOKEN_RATE_LIMIT", "120/minute"),
        # Personal calendar feeds: calendar services poll from few shared addresses.
        "FEED_RATE_LIMIT": env.get("FEED_RATE_LIMIT", "600/minute"),
        # Renders of public PDFs (programme) per client IP; served from the shared cache, a PDF costs nothing.
        "PDF_RATE_LIMIT": env.get("PDF_RATE_LIMIT", "30/minute"),
        "PDF_CACHE_DIR": env.get("PDF_CACHE_DIR", str(instance_path / "pdf-cache")),
        "CHECKIN_RATE_LIMIT": env.get("CHECKIN_RATE_LIMIT", "600/minute"),  # per staff user (or API token)
        # マイページ sign-in links asked for, per address (hashed) and, with the second value, per client IP.
        "MY_LINK_RATE_LIMIT": env.get("MY_LINK_RATE_LIMIT", "5/hour"),
        "MY_LINK_IP_RATE_LIMIT": env.get("MY_LINK_IP_RATE_LIMIT", "30/hour"),
        "MY_LINK_TTL_MINUTES": int(env.get("MY_LINK_TTL_MINUTES", "30")),  # a mailed sign-in link is valid this long
        # A マイページ session ends after this much idle time, and at the latest this long after sign-in.
        "MY_SESSION_IDLE_MINUTES": int(env.get("MY_SESSION_IDLE_MINUTES", "120")),
        "MY_SESSION_MAX_HOURS": int(env.get("MY_SESSION_MAX_HOURS", "24")),
        # Personal data is anonymised this many days after the person's last event ended (purge-expired).
        "RETENTION_DAYS": int(env.get("RETENTION_DAYS", "365")),
        # Sent (and finally failed) mail is deleted from the outbox this many days later (purge-expired).
        "MAIL_RETENTION_DAYS": int(env.get("MAIL_RETENTION_DAYS", "90")),
        # Largest request body (bytes) Werkzeug reads; anything bigger is answered 413 before it is parsed
        # (a 200 MB JSON sign-up took 13 s and ~1 GB of a worker). The largest real body is a check-in
        # batch of 500 scans (under 200 kB); there are no uploads.
        "MAX_CONTENT_LENGTH": int(env.get("MAX_CONTENT_LENGTH", str(1024 * 1024))),
        "SQLITE_BUSY_TIMEOUT_S": float(env.get("SQLITE_BUSY_TIMEOUT_S", "30")),
        # flask-smorest: the OpenAPI description lives under the API prefix.
        "API_TITLE": "eventapp API",
        "API_VERSION": "v1",
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/api/v1",
        "OPENAPI_JSON_PATH": "openapi.json",
    }


def normalise_db_url(url: str) -> str:
    # Heroku-style "postgres://" and plain "postgresql://" both mean psycopg 3 here.
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url
