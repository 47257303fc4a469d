"""eventapp: registration, tickets and check-in for 遠恋複業課 events."""

from __future__ import annotations

from pathlib import Path

from flask import Flask, g, has_request_context, make_response, render_template, request
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import DataError
from werkzeug.routing import IntegerConverter

from . import database
from .config import load_config, normalise_db_url
from .extensions import babel, csrf, db, limiter, login_manager, migrate

PROJECT_ROOT = Path(__file__).resolve().parent.parent
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def select_locale() -> str:
    if not has_request_context():
        return "ja"  # mails and CLI output are Japanese
    chosen = request.args.get("lang") or request.cookies.get("lang")
    return chosen if chosen in ("ja", "en") else "ja"


class BoundedIntConverter(IntegerConverter):
    """<int:…> up to the ids' column type (PostgreSQL INTEGER): a larger number in a URL is a 404, not a
    driver error."""

    def __init__(self, map, *args, **kwargs) -> None:
        from .params import MAX_ID
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)


def create_app(overrides: dict | None = None) -> Flask:
    app = Flask(
        __name__,
        instance_path=str(PROJECT_ROOT / "instance"),
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "static"),
    )
    app.url_map.converters["int"] = BoundedIntConverter
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    app.config.update(load_config(Path(app.instance_path)))
    app.json.ensure_ascii = False
    app.config.update(overrides or {})
    app.config["SQLALCHEMY_DATABASE_URI"] = normalise_db_url(app.config["SQLALCHEMY_DATABASE_URI"])
    app.config.setdefault(
        "SQLALCHEMY_ENGINE_OPTIONS",
        database.engine_options(app.config["SQLALCHEMY_DATABASE_URI"], app.config["SQLITE_BUSY_TIMEOUT_S"]),
    )

    db.init_app(app)
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"), render_as_batch=True)
    csrf.init_app(app)
    babel.init_app(app, locale_selector=select_locale, default_translation_directories=str(
        PROJECT_ROOT / "translations"))
    login_manager.init_app(app)
    from . import security
    security.configure(app)  # production checks; rate-limit storage options before the limiter reads them
    limiter.init_app(app)
    database.configure_engine(app)

    from . import formatting
    formatting.register_filters(app)
    from . import static_urls
    static_urls.init_app(app)  # /static/… URLs carry ?v=<hash of the file> (long cache in nginx)
    from .services import calendar
    calendar.init_app(app)  # mail invite hook + calendar_links() for templates

    _register_request_hooks(app)
    from . import idempotency
    idempotency.init_app(app)  # the sign-up form's hidden one-time key
    _register_blueprints(app)
    from . import health
    health.init_app(app)  # GET /healthz; Server-Timing when SERVER_TIMING is on
    security.init_app(app)  # headers; rate limits wrap the registered views
    _register_error_pages(app)
    from . import errors_db
    errors_db.register(app)  # 503 + Retry-After while the database is unreachable

    from . import cli
    cli.register(app)
    return app


def _register_request_hooks(app: Flask) -> None:
    from .services import mail

    @app.before_request
    def _declare_write_intent() -> None:
        database.set_write_intent(request.method in UNSAFE_METHODS)

    @app.after_request
    def _remember_language(response):
        lang = request.args.get("lang")
        if lang in ("ja", "en"):
            response.set_cookie("lang", lang, max_age=365 * 24 * 3600, samesite="Lax", httponly=True,
                                secure=app.config["SESSION_COOKIE_SECURE"])
        return response

    app.after_request(mail.deliver_after_response)

    @app.context_processor
    def _template_globals() -> dict:
        from flask_babel import get_locale
        return {"current_locale": str(get_locale() or "ja"), "lang_url": _lang_url}

    def _lang_url(lang: str) -> str:
        # The language switch keeps the page's other query parameters (?kind=fieldwork&lang=en).
        from urllib.parse import urlencode
        args = [(k, v) for k, v in request.args.items(multi=True) if k != "lang"] + [("lang", lang)]
        return "?" + urlencode(args)

    @app.teardown_request
    def _reset_write_intent(_exc) -> None:
        database.set_write_intent(False)
        g.pop("outbox_queued", None)


def _register_blueprints(app: Flask) -> None:
    from .api import register_api
    from .auth import bp as auth_bp
    from .public import bp as public_bp

    app.register_blueprint(public_bp)
    from .public.mypage import bp as mypage_bp
    app.register_blueprint(mypage_bp)
    app.register_blueprint(auth_bp)
    from .checkin import bp as checkin_bp
    app.register_blueprint(checkin_bp)
    from .staff import bp as staff_bp
    app.register_blueprint(staff_bp)
    from .documents_staff import bp as staff_documents_bp
    app.register_blueprint(staff_documents_bp)
    from .matching import bp as matching_bp
    from .matching import public_bp as matching_public_bp
    app.register_blueprint(matching_bp)
    app.register_blueprint(matching_public_bp)
    register_api(app)


def _register_error_pages(app: Flask) -> None:
    from flask_babel import gettext as _  # called in each handler: the request's language

    def page(status: int, title: str, message: str):
        if request.path.startswith("/api/"):
            from .api.errors import error_response
            return error_response(status)
        return render_template("errors/error.html", status=status, title=title, message=message), status

    @app.errorhandler(CSRFError)
    def _csrf(_exc):
        return page(400, _("ページの有効期限が切れました"),
                    _("お手数ですが、ページを再読み込みしてからもう一度送信してください。"))

    @app.errorhandler(DataError)
    def _value_refused(_exc):
        # A value the database refuses (NUL in text, a number beyond its integer range) is bad input, not a crash.
        db.session.rollback()
        return page(400, _("入力内容を確認してください"),
                    _("使用できない文字、または範囲外の数値が含まれています。入力内容を確認してください。"))

    @app.errorhandler(403)
    def _forbidden(_exc):
        return page(403, _("この画面を開く権限がありません"),
                    _("必要な権限がない場合は、管理者(admin)に依頼してください。"))

    @app.errorhandler(429)
    def _too_many(_exc):
        return page(429, _("しばらくお待ちください"),
                    _("短時間に何度も試行されたため、一時的に受け付けを止めています。1分ほど待ってからもう一度お試しください。"))

    @app.errorhandler(413)
    def _too_large(_exc):
        return page(413, _("送信された内容が大きすぎます"),
                    _("入力内容を短くしてから、もう一度送信してください。"))

    @app.errorhandler(404)
    def _not_found(_exc):
        return page(404, _("ページが見つかりません"), _("URLをご確認ください。"))

    @app.errorhandler(405)
    def _method(exc):
        response = make_response(page(405, _("この操作はできません"), _("ページを再読み込みしてからやり直してください。")))
        if getattr(exc, "valid_methods", None):  # RFC 9110: a 405 says which methods would work
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(500)
    def _server_error(_exc):
        db.session.rollback()
        return page(500, _("エラーが発生しました"),
                    _("申し訳ありません。時間をおいてもう一度お試しください。解決しない場合は事務局までご連絡ください。"))
